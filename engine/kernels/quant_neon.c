/* The aarch64 kernel set: the activation quantizer, the batched product and
 * the float-weight dots in NEON (every aarch64 core has it), with the
 * dot-product microkernel chosen at run time on cores that report it
 * (HWCAP_ASIMDDP: the Pi 5's Cortex-A76, not the Pi 4's A72).
 *
 * The batched product serves every batch size of the quantized formats, so
 * their matrix-vector dots and the Q8_K quantizer never run on this path
 * and come from the scalar reference, except the Q8_0 dot. The attention's
 * kernels (cache rows to f32, a tile's scores and value sums) are here too.
 * Float weights (F32, F16, BF16 files)
 * have no batched kernel: their decode is the matrix-vector dot, which the
 * reference computes in double, element by element (and F16 through a
 * software conversion), several times slower than the memory it reads. */
#include "cpu.h"

#include <arm_neon.h>
#include <math.h>
#include <pthread.h>
#include "kv_softmax.h"

/* The reference's Q8_0 quantizer, 32 elements at a time, byte for byte: the
 * same float operations, FCVTNS rounding half to even like lrintf. */
static void quantize_q8_0_neon(const float *x, void *dst, int n) {
    block_q8_0 *y = dst;
    for (int i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float32x4_t v[8], amax = vdupq_n_f32(0);
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(x + 4 * k);
            amax = vmaxq_f32(amax, vabsq_f32(v[k]));
        }
        const float d = vmaxvq_f32(amax) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = rl_f32_to_fp16(d);
        for (int k = 0; k < 8; k += 2) {
            const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[k], id)), b = vcvtnq_s32_f32(vmulq_n_f32(v[k + 1], id));
            const int16x8_t h = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
            vst1_s8(y[i].qs + 4 * k, vmovn_s16(h));
        }
    }
}

/* ---- float weights: four 4-wide accumulators, scalar tail ----------------- */

static inline float32x4_t load4_f32(const void *w, int i) { return vld1q_f32((const float *)w + i); }

static inline float32x4_t load4_f16(const void *w, int i) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const rl_fp16 *)w + i)));
}

static inline float32x4_t load4_bf16(const void *w, int i) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const rl_bf16 *)w + i), 16));
}

static inline float elem_f32(const void *w, int i) { return ((const float *)w)[i]; }

static inline float elem_f16(const void *w, int i) { return rl_fp16_to_f32(((const rl_fp16 *)w)[i]); }

static inline float elem_bf16(const void *w, int i) { return rl_bf16_to_f32(((const rl_bf16 *)w)[i]); }

/* Inlined into each caller with constant loaders, so no indirect calls
 * remain. Four independent accumulators cover the latency of FMLA. */
static inline __attribute__((always_inline)) float dot_float(int n, const void *w, const float *y,
                                                             float32x4_t (*load4)(const void *, int),
                                                             float (*elem)(const void *, int)) {
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++)
            acc[k] = vfmaq_f32(acc[k], load4(w, i + 4 * k), vld1q_f32(y + i + 4 * k));
    for (; i + 4 <= n; i += 4)
        acc[0] = vfmaq_f32(acc[0], load4(w, i), vld1q_f32(y + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; i++)
        sum += elem(w, i) * y[i];
    return sum;
}

static float vec_dot_f32_neon(int n, const void *w, const void *a) { return dot_float(n, w, a, load4_f32, elem_f32); }

static float vec_dot_f16_neon(int n, const void *w, const void *a) { return dot_float(n, w, a, load4_f16, elem_f16); }

static float vec_dot_bf16_neon(int n, const void *w, const void *a) {
    return dot_float(n, w, a, load4_bf16, elem_bf16);
}

/* ---- KV cache reads: the attention's Q8_0 key dot and value sums ---------- */

/* Q8_0 keys against the Q8_0 query: the reference's integer sum per block,
 * then one float multiply-add per block in the reference's order. */
static float vec_dot_q8_0_neon(int n, const void *w, const void *a) {
    const block_q8_0 *x = w, *y = a;
    float sum = 0;
    for (int i = 0; i < n / QK8_0; i++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int k = 0; k < QK8_0; k += 16) {
            const int8x16_t xv = vld1q_s8(x[i].qs + k), yv = vld1q_s8(y[i].qs + k);
            acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(xv), vget_low_s8(yv)));
            acc = vpadalq_s16(acc, vmull_s8(vget_high_s8(xv), vget_high_s8(yv)));
        }
        sum += (float)vaddvq_s32(acc) * (rl_fp16_to_f32(x[i].d) * rl_fp16_to_f32(y[i].d));
    }
    return sum;
}

/* ---- the attention: a tile of queries against a block of positions ------- */

/* Cache rows to f32, exact. */
static void kv_rows_f16_neon(int n, const void *src, size_t src_stride, int rows, float *dst) {
    for (int r = 0; r < rows; r++, dst += n) {
        const void *x = (const char *)src + (size_t)r * src_stride;
        int i = 0;
        for (; i + 4 <= n; i += 4)
            vst1q_f32(dst + i, load4_f16(x, i));
        for (; i < n; i++)
            dst[i] = elem_f16(x, i);
    }
}

static void kv_rows_q8_0_neon(int n, const void *src, size_t src_stride, int rows, float *dst) {
    for (int r = 0; r < rows; r++) {
        const block_q8_0 *x = (const block_q8_0 *)((const char *)src + (size_t)r * src_stride);
        for (int b = 0; b < n / QK8_0; b++, dst += QK8_0) {
            const float d = rl_fp16_to_f32(x[b].d);
            for (int k = 0; k < 4; k++) {
                const int16x8_t q = vmovl_s8(vld1_s8(x[b].qs + 8 * k));
                vst1q_f32(dst + 8 * k, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q))), d));
                vst1q_f32(dst + 8 * k + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(q))), d));
            }
        }
    }
}

/* Scores of four queries against two keys over n elements (a multiple of
 * 4): one 4-lane FMA chain per score, reduced by pairwise adds ((0+1) +
 * (2+3), vaddvq's tree); kv_tiles.h adds the tail element by element.
 * out[2 * t + j] = q_t · k_j. */
static inline void scores_4x2(int n, const float *const q[4], const float *k0, const float *k1, float out[8]) {
    float32x4_t a[8];
    for (int t = 0; t < 8; t++)
        a[t] = vdupq_n_f32(0);
    for (int e = 0; e < n; e += 4) {
        const float32x4_t x0 = vld1q_f32(k0 + e), x1 = vld1q_f32(k1 + e);
        for (int t = 0; t < 4; t++) {
            const float32x4_t y = vld1q_f32(q[t] + e);
            a[2 * t] = vfmaq_f32(a[2 * t], x0, y);
            a[2 * t + 1] = vfmaq_f32(a[2 * t + 1], x1, y);
        }
    }
    vst1q_f32(out, vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3])));
    vst1q_f32(out + 4, vpaddq_f32(vpaddq_f32(a[4], a[5]), vpaddq_f32(a[6], a[7])));
}

/* y (W * 4 elements, for Q queries) += p_j * v_j over the nv positions,
 * multiply then add, with the sums in registers across the positions. */
#define RL_VALUES_TILE(Q, W)                                                                                     \
    static inline void values_##Q##x##W(int n, const float *p, size_t p_stride, const float *v, size_t v_stride, \
                                        int nv, float *y) {                                                      \
        float32x4_t acc[Q][W];                                                                                   \
        for (int t = 0; t < Q; t++)                                                                              \
            for (int w = 0; w < W; w++)                                                                          \
                acc[t][w] = vld1q_f32(y + (size_t)t * n + 4 * w);                                                \
        for (int j = 0; j < nv; j++) {                                                                           \
            float32x4_t x[W];                                                                                    \
            for (int w = 0; w < W; w++)                                                                          \
                x[w] = vld1q_f32(v + (size_t)j * v_stride + 4 * w);                                              \
            for (int t = 0; t < Q; t++) {                                                                        \
                const float a = p[(size_t)t * p_stride + j];                                                     \
                for (int w = 0; w < W; w++)                                                                      \
                    acc[t][w] = vaddq_f32(acc[t][w], vmulq_n_f32(x[w], a));                                      \
            }                                                                                                    \
        }                                                                                                        \
        for (int t = 0; t < Q; t++)                                                                              \
            for (int w = 0; w < W; w++)                                                                          \
                vst1q_f32(y + (size_t)t * n + 4 * w, acc[t][w]);                                                 \
    }
RL_VALUES_TILE(4, 4)
RL_VALUES_TILE(4, 1)
RL_VALUES_TILE(1, 4)
RL_VALUES_TILE(1, 1)
#undef RL_VALUES_TILE

#define KV_LANES 4
#define KV_4W_ELEMS 16
#define KV_1W_ELEMS 16
#define values_4w values_4x4
#define values_41 values_4x1
#define values_1w values_1x4
#define values_11 values_1x1
#include "kv_tiles.h"

/* kv_softmax.h's exponential, 4 lanes, the same operations in the same order. */
static inline float32x4_t exp4(float32x4_t x) {
    x = vmaxq_f32(x, vdupq_n_f32(RL_EXP_MIN));
    const float32x4_t n = vrndmq_f32(vaddq_f32(vmulq_n_f32(x, RL_EXP_LOG2E), vdupq_n_f32(0.5f)));
    x = vsubq_f32(x, vmulq_n_f32(n, RL_EXP_C1));
    x = vsubq_f32(x, vmulq_n_f32(n, RL_EXP_C2));
    float32x4_t y = vdupq_n_f32(RL_EXP_P0);
    y = vaddq_f32(vmulq_f32(y, x), vdupq_n_f32(RL_EXP_P1));
    y = vaddq_f32(vmulq_f32(y, x), vdupq_n_f32(RL_EXP_P2));
    y = vaddq_f32(vmulq_f32(y, x), vdupq_n_f32(RL_EXP_P3));
    y = vaddq_f32(vmulq_f32(y, x), vdupq_n_f32(RL_EXP_P4));
    y = vaddq_f32(vmulq_f32(y, x), vdupq_n_f32(RL_EXP_P5));
    y = vaddq_f32(vaddq_f32(vmulq_f32(y, vmulq_f32(x, x)), x), vdupq_n_f32(1.0f));
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(y, vreinterpretq_f32_s32(e));
}

static void kv_softmax_neon(float *x, int n, float scale) {
    const int n8 = n & ~7;
    float32x4_t m4 = vdupq_n_f32(-INFINITY);
    int j = 0;
    for (; j < n8; j += 4) {
        const float32x4_t v = vmulq_n_f32(vld1q_f32(x + j), scale);
        vst1q_f32(x + j, v);
        m4 = vmaxq_f32(m4, v);
    }
    float mx = vmaxvq_f32(m4);
    for (; j < n; j++) {
        x[j] *= scale;
        mx = x[j] > mx ? x[j] : mx;
    }
    const float32x4_t m = vdupq_n_f32(mx);
    float64x2_t s01 = vdupq_n_f64(0), s23 = vdupq_n_f64(0), s45 = vdupq_n_f64(0), s67 = vdupq_n_f64(0);
    for (j = 0; j < n8; j += 8) {
        const float32x4_t e0 = exp4(vsubq_f32(vld1q_f32(x + j), m)), e1 = exp4(vsubq_f32(vld1q_f32(x + j + 4), m));
        vst1q_f32(x + j, e0);
        vst1q_f32(x + j + 4, e1);
        s01 = vaddq_f64(s01, vcvt_f64_f32(vget_low_f32(e0)));
        s23 = vaddq_f64(s23, vcvt_high_f64_f32(e0));
        s45 = vaddq_f64(s45, vcvt_f64_f32(vget_low_f32(e1)));
        s67 = vaddq_f64(s67, vcvt_high_f64_f32(e1));
    }
    double d[8];
    vst1q_f64(d, s01);
    vst1q_f64(d + 2, s23);
    vst1q_f64(d + 4, s45);
    vst1q_f64(d + 6, s67);
    double sum = rl_kv_sum8(d);
    for (; j < n; j++) {
        x[j] = rl_kv_exp(x[j] - mx);
        sum += x[j];
    }
    const float inv = (float)(1.0 / sum);
    for (j = 0; j + 4 <= n; j += 4)
        vst1q_f32(x + j, vmulq_n_f32(vld1q_f32(x + j), inv));
    for (; j < n; j++)
        x[j] *= inv;
}

static rl_kernel_set neon_set = {
    .name = "neon",
    .quantize_q8_0 = quantize_q8_0_neon,
    .vec_dot =
        {
            [RL_F32] = vec_dot_f32_neon,
            [RL_F16] = vec_dot_f16_neon,
            [RL_BF16] = vec_dot_bf16_neon,
            [RL_Q8_0] = vec_dot_q8_0_neon,
        },
    .qg_pack = rl_qg_pack_neon,
    .qg_unpack = rl_qg_unpack_neon,
    .qg_kernel = rl_qg_kernel_neon,
    .qg_gemv = rl_qg_gemv_neon,
    .qg_gemv_max = 2, /* its passes take 2 tokens; larger batches unmeasured on hardware */
    .kv_rows =
        {
            [RL_F16] = kv_rows_f16_neon,
            [RL_Q8_0] = kv_rows_q8_0_neon,
        },
    .kv_scores = kv_scores_tiles,
    .kv_values = kv_values_tiles,
    .kv_softmax = kv_softmax_neon,
};

static pthread_once_t neon_once = PTHREAD_ONCE_INIT;

static void neon_complete(void) {
    if (rl_cpu()->dotprod) {
        neon_set.qg_kernel = rl_qg_kernel_neon_dot;
        neon_set.qg_gemv = rl_qg_gemv_neon_dot;
    }
    rl_kernels_fill(&neon_set, rl_kernels_ref());
}

const rl_kernel_set *rl_kernels_neon(void) {
    if (!rl_cpu()->neon)
        return NULL;
    pthread_once(&neon_once, neon_complete);
    return &neon_set;
}
