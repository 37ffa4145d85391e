/* Scalar reference kernels: the definitions of every block format.
 *
 * These are written for clarity, not speed. Each SIMD file is tested against
 * them, so where rounding is involved the choice here is the one the SIMD
 * code can reproduce exactly: round-half-to-even (the vector instructions'
 * mode) wherever a float becomes an integer, and the same float operations in
 * the same order for the activation quantizers, whose bytes must match.
 * The dot products sum each block in integers and apply the block scales in
 * float, as ggml does, so results agree with llama.cpp to rounding. */
#include "cpu.h"

#include <assert.h>
#include <math.h>
#include "kv_softmax.h"

/* ---- half and bfloat16 ---------------------------------------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float rl_fp16_to_f32(rl_fp16 h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f)
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        const float mag = (float)mant * 0x1p-24f; /* subnormal: exact in f32 */
        return sign ? -mag : mag;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

rl_fp16 rl_f32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) /* NaN: keep the top payload bits, force quiet */
        return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
    if (x >= 0x477ff000u) /* 65520 and up rounds past the largest half */
        return (uint16_t)(sign | 0x7c00u);
    if (x >= 0x38800000u) { /* normal half: rebias, round the 13 dropped bits */
        x -= 112u << 23;
        x += 0xfffu + ((x >> 13) & 1u);
        return (uint16_t)(sign | (x >> 13));
    }
    const uint32_t shift = 126u - (x >> 23); /* subnormal half or zero */
    if (shift > 24)
        return sign;
    const uint32_t m = (x & 0x7fffffu) | 0x800000u;
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u)))
        q++;
    return (uint16_t)(sign | q);
}

float rl_bf16_to_f32(rl_bf16 h) { return bits_f32((uint32_t)h << 16); }

rl_bf16 rl_f32_to_bf16(float f) {
    const uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* ---- dequantization --------------------------------------------------------- */

static void dequant_q4_0(const block_q4_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK4_0) {
        const float d = rl_fp16_to_f32(b[i].d);
        for (int l = 0; l < QK4_0 / 2; l++) {
            y[l] = d * (float)((b[i].qs[l] & 0xf) - 8);
            y[l + QK4_0 / 2] = d * (float)((b[i].qs[l] >> 4) - 8);
        }
    }
}

static void dequant_q8_0(const block_q8_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK8_0) {
        const float d = rl_fp16_to_f32(b[i].d);
        for (int l = 0; l < QK8_0; l++)
            y[l] = d * (float)b[i].qs[l];
    }
}

/* Q4_K and Q5_K share everything but the fifth bit; qh is NULL for Q4_K. In
 * each 64-element chunk c, the low nibbles of qs[32c..32c+31] are sub-block
 * 2c and the high nibbles sub-block 2c+1; qh bit 2c / 2c+1 adds 16. */
static void dequant_k_minmax(rl_fp16 d16, rl_fp16 dmin16, const uint8_t *scales, const uint8_t *qh, const uint8_t *qs,
                             float *y) {
    const float d = rl_fp16_to_f32(d16), dmin = rl_fp16_to_f32(dmin16);
    uint8_t sm[16];
    rl_k_scales_unpack(scales, sm);
    for (int c = 0; c < 4; c++) {
        for (int h = 0; h < 2; h++) {
            const int sub = 2 * c + h;
            const float scale = d * sm[sub], min = dmin * sm[8 + sub];
            for (int l = 0; l < 32; l++) {
                int q = (qs[32 * c + l] >> (4 * h)) & 0xf;
                if (qh)
                    q |= ((qh[l] >> sub) & 1) << 4;
                y[32 * sub + l] = scale * (float)q - min;
            }
        }
    }
}

/* Q6_K: value = d * scales[e/16] * (q - 32), q as rl_q6_K_quant reads it. */
static int q6_K_value(const block_q6_K *b, int e) { return rl_q6_K_quant(b, e) - 32; }

static void dequant_q6_K(const block_q6_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        const float d = rl_fp16_to_f32(b[i].d);
        for (int e = 0; e < QK_K; e++)
            y[e] = d * (float)b[i].scales[e / 16] * (float)q6_K_value(&b[i], e);
    }
}

void rl_dequantize_row(rl_dtype t, const void *src, float *dst, int64_t n) {
    const uint32_t bs = rl_dtype_block(t);
    assert(bs && n % bs == 0);
    const int64_t nb = n / bs;
    switch (t) {
    case RL_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case RL_F16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = rl_fp16_to_f32(((const rl_fp16 *)src)[i]);
        break;
    case RL_BF16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = rl_bf16_to_f32(((const rl_bf16 *)src)[i]);
        break;
    case RL_Q4_0:
        dequant_q4_0(src, dst, nb);
        break;
    case RL_Q8_0:
        dequant_q8_0(src, dst, nb);
        break;
    case RL_Q4_K:
        for (int64_t i = 0; i < nb; i++) {
            const block_q4_K *b = (const block_q4_K *)src + i;
            dequant_k_minmax(b->d, b->dmin, b->scales, NULL, b->qs, dst + i * QK_K);
        }
        break;
    case RL_Q5_K:
        for (int64_t i = 0; i < nb; i++) {
            const block_q5_K *b = (const block_q5_K *)src + i;
            dequant_k_minmax(b->d, b->dmin, b->scales, b->qh, b->qs, dst + i * QK_K);
        }
        break;
    case RL_Q6_K:
        dequant_q6_K(src, dst, nb);
        break;
    default:
        assert(!"rl_dequantize_row: unsupported type");
    }
}

/* ---- quantization ------------------------------------------------------------ */

/* Round half to even, the mode of the vector conversion instructions. */
static int round_even(float v) { return (int)lrintf(v); }

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The element of largest magnitude, sign kept; the first one on ties. */
static float signed_absmax(const float *x, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void quantize_q8_0_ref(const float *x, void *dst, int n) {
    block_q8_0 *y = dst;
    for (int i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = rl_f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            y[i].qs[j] = (int8_t)round_even(x[j] * id);
    }
}

/* ggml's Q8_K: the largest-magnitude element maps to -127 (current ggml uses
 * 127, not 128, so every quant stays in [-127, 127]). */
static void quantize_q8_K_ref(const float *x, void *dst, int n) {
    block_q8_K *y = dst;
    for (int i = 0; i < n / QK_K; i++, x += QK_K) {
        const float max = signed_absmax(x, QK_K);
        memset(&y[i], 0, sizeof y[i]);
        if (max == 0.0f)
            continue;
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            const int v = round_even(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
            y[i].bsums[j / 16] = (int16_t)(y[i].bsums[j / 16] + y[i].qs[j]);
        }
        y[i].d = 1.0f / iscale;
    }
}

static void quantize_q4_0(const float *x, block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK4_0) {
        const float d = signed_absmax(x, QK4_0) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = rl_f32_to_fp16(d);
        for (int l = 0; l < QK4_0 / 2; l++) {
            const int lo = clampi(round_even(x[l] * id) + 8, 0, 15);
            const int hi = clampi(round_even(x[l + QK4_0 / 2] * id) + 8, 0, 15);
            y[i].qs[l] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* Q4_K / Q5_K: each 32-element sub-block gets value = scale * q - min with q
 * in [0, nmax], from its own range; the eight scales and eight mins are then
 * quantized to 6 bits against the super-block d and dmin, and the quants are
 * chosen against the scales as stored. Writes d, dmin, the 12 packed scale
 * bytes and q[256]. */
static void quantize_k_minmax(const float *x, int nmax, rl_fp16 *d16, rl_fp16 *dmin16, uint8_t *packed,
                              uint8_t q[QK_K]) {
    float scale[8], min[8], max_scale = 0, max_min = 0;
    for (int s = 0; s < 8; s++) {
        float lo = 0, hi = x[32 * s];
        for (int l = 0; l < 32; l++) {
            lo = fminf(lo, x[32 * s + l]);
            hi = fmaxf(hi, x[32 * s + l]);
        }
        scale[s] = (hi - lo) / (float)nmax;
        min[s] = -lo;
        max_scale = fmaxf(max_scale, scale[s]);
        max_min = fmaxf(max_min, min[s]);
    }
    *d16 = rl_f32_to_fp16(max_scale / 63.0f);
    *dmin16 = rl_f32_to_fp16(max_min / 63.0f);
    const float d = rl_fp16_to_f32(*d16), dmin = rl_fp16_to_f32(*dmin16);
    uint8_t ls[8], lm[8];
    for (int s = 0; s < 8; s++) {
        ls[s] = (uint8_t)(d > 0 ? clampi(round_even(scale[s] / d), 0, 63) : 0);
        lm[s] = (uint8_t)(dmin > 0 ? clampi(round_even(min[s] / dmin), 0, 63) : 0);
        const float sc = d * ls[s], mn = dmin * lm[s];
        for (int l = 0; l < 32; l++)
            q[32 * s + l] = (uint8_t)(sc > 0 ? clampi(round_even((x[32 * s + l] + mn) / sc), 0, nmax) : 0);
    }
    for (int j = 0; j < 4; j++) {
        packed[j] = (uint8_t)(ls[j] | ((ls[j + 4] >> 4) << 6));
        packed[j + 4] = (uint8_t)(lm[j] | ((lm[j + 4] >> 4) << 6));
        packed[j + 8] = (uint8_t)((ls[j + 4] & 0xf) | ((lm[j + 4] & 0xf) << 4));
    }
}

static void quantize_q4_K(const float *x, block_q4_K *y, int64_t nb) {
    uint8_t q[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        quantize_k_minmax(x, 15, &y[i].d, &y[i].dmin, y[i].scales, q);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * c + l] = (uint8_t)(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
    }
}

static void quantize_q5_K(const float *x, block_q5_K *y, int64_t nb) {
    uint8_t q[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        quantize_k_minmax(x, 31, &y[i].d, &y[i].dmin, y[i].scales, q);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                const int lo = q[64 * c + l], hi = q[64 * c + 32 + l];
                y[i].qs[32 * c + l] = (uint8_t)((lo & 0xf) | ((hi & 0xf) << 4));
                y[i].qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
    }
}

/* Q6_K: each 16-element group gets a signed scale mapping its largest-
 * magnitude element to -32; the 16 scales become int8 against the super-block
 * d, and the quants are chosen against the scales as stored. */
static void quantize_q6_K(const float *x, block_q6_K *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float scale[16];
        for (int g = 0; g < 16; g++)
            scale[g] = signed_absmax(x + 16 * g, 16) / -32.0f;
        const float max_scale = signed_absmax(scale, 16);
        const float iscale = max_scale != 0.0f ? -128.0f / max_scale : 0.0f;
        y[i].d = rl_f32_to_fp16(iscale != 0.0f ? 1.0f / iscale : 0.0f);
        const float d = rl_fp16_to_f32(y[i].d);
        uint8_t q[QK_K];
        for (int g = 0; g < 16; g++) {
            y[i].scales[g] = (int8_t)clampi(round_even(iscale * scale[g]), -128, 127);
            const float sc = d * y[i].scales[g];
            for (int l = 0; l < 16; l++)
                q[16 * g + l] = (uint8_t)(sc != 0.0f ? clampi(round_even(x[16 * g + l] / sc), -32, 31) + 32 : 32);
        }
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, p = (e % 128) / 32, l = e % 32;
            uint8_t *ql = &y[i].ql[64 * h + 32 * (p & 1) + l];
            if (p < 2)
                *ql = (uint8_t)(q[e] & 0xf);
            else
                *ql = (uint8_t)(*ql | ((q[e] & 0xf) << 4));
            y[i].qh[32 * h + l] |= (uint8_t)((q[e] >> 4) << (2 * p));
        }
    }
}

size_t rl_quantize_row(rl_dtype t, const float *src, void *dst, int64_t n) {
    const size_t bytes = rl_dtype_row_bytes(t, (uint64_t)n);
    if (n <= 0 || bytes == 0)
        return 0;
    const int64_t nb = n / rl_dtype_block(t);
    switch (t) {
    case RL_F32:
        memcpy(dst, src, bytes);
        break;
    case RL_F16:
        for (int64_t i = 0; i < n; i++)
            ((rl_fp16 *)dst)[i] = rl_f32_to_fp16(src[i]);
        break;
    case RL_BF16:
        for (int64_t i = 0; i < n; i++)
            ((rl_bf16 *)dst)[i] = rl_f32_to_bf16(src[i]);
        break;
    case RL_Q4_0:
        quantize_q4_0(src, dst, nb);
        break;
    case RL_Q8_0:
        for (int64_t i = 0; i < nb; i++)
            quantize_q8_0_ref(src + i * QK8_0, (block_q8_0 *)dst + i, QK8_0);
        break;
    case RL_Q4_K:
        quantize_q4_K(src, dst, nb);
        break;
    case RL_Q5_K:
        quantize_q5_K(src, dst, nb);
        break;
    case RL_Q6_K:
        quantize_q6_K(src, dst, nb);
        break;
    default:
        return 0;
    }
    return bytes;
}

rl_dtype rl_vec_dot_type(rl_dtype weight) {
    switch (weight) {
    case RL_Q4_0:
    case RL_Q8_0:
        return RL_Q8_0;
    case RL_Q4_K:
    case RL_Q5_K:
    case RL_Q6_K:
        return RL_Q8_K;
    default:
        return RL_F32;
    }
}

/* ---- dot products ---------------------------------------------------------- */

static float vec_dot_q4_0_ref(int n, const void *w, const void *a) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0;
    for (int i = 0; i < n / QK4_0; i++) {
        int isum = 0;
        for (int l = 0; l < QK4_0 / 2; l++) {
            isum += ((x[i].qs[l] & 0xf) - 8) * y[i].qs[l];
            isum += ((x[i].qs[l] >> 4) - 8) * y[i].qs[l + QK4_0 / 2];
        }
        sum += (float)isum * (rl_fp16_to_f32(x[i].d) * rl_fp16_to_f32(y[i].d));
    }
    return sum;
}

static float vec_dot_q8_0_ref(int n, const void *w, const void *a) {
    const block_q8_0 *x = w, *y = a;
    float sum = 0;
    for (int i = 0; i < n / QK8_0; i++) {
        int isum = 0;
        for (int l = 0; l < QK8_0; l++)
            isum += x[i].qs[l] * y[i].qs[l];
        sum += (float)isum * (rl_fp16_to_f32(x[i].d) * rl_fp16_to_f32(y[i].d));
    }
    return sum;
}

/* Integer part of a Q4_K/Q5_K super-block dot: sum over sub-blocks of
 * scale * sum(q * q8), and of min * (sum of the sub-block's q8, from bsums). */
static void k_minmax_isums(const uint8_t *scales, const uint8_t *qh, const uint8_t *qs, const block_q8_K *y, int *isum,
                           int *msum) {
    uint8_t sm[16];
    rl_k_scales_unpack(scales, sm);
    *isum = *msum = 0;
    for (int sub = 0; sub < 8; sub++) {
        const int c = sub / 2, shift = 4 * (sub % 2);
        int s = 0;
        for (int l = 0; l < 32; l++) {
            int q = (qs[32 * c + l] >> shift) & 0xf;
            if (qh)
                q |= ((qh[l] >> sub) & 1) << 4;
            s += q * y->qs[32 * sub + l];
        }
        *isum += sm[sub] * s;
        *msum += sm[8 + sub] * (y->bsums[2 * sub] + y->bsums[2 * sub + 1]);
    }
}

static float vec_dot_q4_K_ref(int n, const void *w, const void *a) {
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    float sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int isum, msum;
        k_minmax_isums(x[i].scales, NULL, x[i].qs, &y[i], &isum, &msum);
        sum += y[i].d * rl_fp16_to_f32(x[i].d) * (float)isum;
        sum -= y[i].d * rl_fp16_to_f32(x[i].dmin) * (float)msum;
    }
    return sum;
}

static float vec_dot_q5_K_ref(int n, const void *w, const void *a) {
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    float sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int isum, msum;
        k_minmax_isums(x[i].scales, x[i].qh, x[i].qs, &y[i], &isum, &msum);
        sum += y[i].d * rl_fp16_to_f32(x[i].d) * (float)isum;
        sum -= y[i].d * rl_fp16_to_f32(x[i].dmin) * (float)msum;
    }
    return sum;
}

static float vec_dot_q6_K_ref(int n, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    float sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += q6_K_value(&x[i], 16 * g + l) * y[i].qs[16 * g + l];
            isum += x[i].scales[g] * s;
        }
        sum += y[i].d * rl_fp16_to_f32(x[i].d) * (float)isum;
    }
    return sum;
}

/* The float dots accumulate in double: the reference should carry no
 * rounding of its own beyond the final conversion. */
static float vec_dot_f32_ref(int n, const void *w, const void *a) {
    const float *x = w, *y = a;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += (double)x[i] * y[i];
    return (float)sum;
}

static float vec_dot_f16_ref(int n, const void *w, const void *a) {
    const rl_fp16 *x = w;
    const float *y = a;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += (double)rl_fp16_to_f32(x[i]) * y[i];
    return (float)sum;
}

static float vec_dot_bf16_ref(int n, const void *w, const void *a) {
    const rl_bf16 *x = w;
    const float *y = a;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += (double)rl_bf16_to_f32(x[i]) * y[i];
    return (float)sum;
}

/* ---- the attention's kernels (kv_rows, kv_scores, kv_values) -------------- */

static void kv_rows_f16_ref(int n, const void *src, size_t src_stride, int rows, float *dst) {
    for (int r = 0; r < rows; r++)
        rl_dequantize_row(RL_F16, (const char *)src + (size_t)r * src_stride, dst + (size_t)r * n, n);
}

static void kv_rows_q8_0_ref(int n, const void *src, size_t src_stride, int rows, float *dst) {
    for (int r = 0; r < rows; r++)
        rl_dequantize_row(RL_Q8_0, (const char *)src + (size_t)r * src_stride, dst + (size_t)r * n, n);
}

static void kv_scores_ref(int n, const float *q, int nq, const float *k, size_t k_stride, int nk, float *s,
                          size_t s_stride) {
    for (int i = 0; i < nq; i++)
        for (int j = 0; j < nk; j++) {
            double sum = 0;
            for (int e = 0; e < n; e++)
                sum += (double)q[(size_t)i * n + e] * k[(size_t)j * k_stride + e];
            s[(size_t)i * s_stride + j] = (float)sum;
        }
}

/* Position by position, so that y gets each term in order. */
static void kv_values_ref(int n, const float *p, size_t p_stride, int nq, const float *v, size_t v_stride, int nv,
                          float *y) {
    for (int j = 0; j < nv; j++)
        for (int i = 0; i < nq; i++) {
            const float a = p[(size_t)i * p_stride + j];
            for (int e = 0; e < n; e++)
                y[(size_t)i * n + e] += a * v[(size_t)j * v_stride + e];
        }
}

static void kv_softmax_ref(float *x, int n, float scale) {
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        x[j] *= scale;
        mx = x[j] > mx ? x[j] : mx;
    }
    double d[8] = {0};
    const int n8 = n & ~7;
    for (int j = 0; j < n8; j++) {
        x[j] = rl_kv_exp(x[j] - mx);
        d[j % 8] += x[j];
    }
    double sum = rl_kv_sum8(d);
    for (int j = n8; j < n; j++) {
        x[j] = rl_kv_exp(x[j] - mx);
        sum += x[j];
    }
    const float inv = (float)(1.0 / sum);
    for (int j = 0; j < n; j++)
        x[j] *= inv;
}

static const rl_kernel_set ref_set = {
    .name = "scalar",
    .quantize_q8_0 = quantize_q8_0_ref,
    .quantize_q8_K = quantize_q8_K_ref,
    .vec_dot =
        {
            [RL_F32] = vec_dot_f32_ref,
            [RL_F16] = vec_dot_f16_ref,
            [RL_BF16] = vec_dot_bf16_ref,
            [RL_Q4_0] = vec_dot_q4_0_ref,
            [RL_Q8_0] = vec_dot_q8_0_ref,
            [RL_Q4_K] = vec_dot_q4_K_ref,
            [RL_Q5_K] = vec_dot_q5_K_ref,
            [RL_Q6_K] = vec_dot_q6_K_ref,
        },
    .qg_pack = rl_qg_pack_ref,
    .qg_unpack = rl_qg_unpack_ref,
    .qg_kernel = rl_qg_kernel_ref,
    .kv_rows =
        {
            [RL_F16] = kv_rows_f16_ref,
            [RL_Q8_0] = kv_rows_q8_0_ref,
        },
    .kv_scores = kv_scores_ref,
    .kv_values = kv_values_ref,
    .kv_softmax = kv_softmax_ref,
};

const rl_kernel_set *rl_kernels_ref(void) { return &ref_set; }
