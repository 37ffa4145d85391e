/* AVX2 + FMA + F16C kernels (compiled with those flags only for this file).
 *
 * Integer dots follow ggml's scheme: 4/5/6-bit weights are widened to bytes,
 * multiplied with the int8 activation by VPMADDUBSW (unsigned x signed bytes
 * to int16 pairs, which cannot saturate for these ranges) and summed to int32
 * by VPMADDWD, whose second operand is either ones or the sub-block scale, so
 * the K-quant scales cost nothing extra. Q4_0/Q8_0 weights are signed, so the
 * sign is moved onto the activation first (|w| * sign(w)*a); that is exact
 * because activations never hold -128. Each block's int32 sum is converted
 * once and accumulated with its combined float scale by FMA.
 * The activation quantizers reproduce the scalar ones byte for byte. */
#include "cpu.h"

#include <immintrin.h>
#include <math.h>
#include "kv_softmax.h"

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax_ps(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float fp16(rl_fp16 h) { return _cvtsh_ss(h); }

static inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

/* 8 floats times s, rounded half-to-even to int32, capped at 127 (which only
 * the Q8_K quantizer can exceed, by rounding 127.5 up). */
static inline __m256i round_cvt8(const float *x, __m256 s) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), s);
    const __m256i q = _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return _mm256_min_epi32(q, _mm256_set1_epi32(127));
}

/* 32 floats times s, rounded and capped as above, packed to int8 in order. */
static inline __m256i round_pack32(const float *x, __m256 s) {
    const __m256i q0 = round_cvt8(x, s), q1 = round_cvt8(x + 8, s);
    const __m256i q2 = round_cvt8(x + 16, s), q3 = round_cvt8(x + 24, s);
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
    /* the packs work per 128-bit lane; put the 4-byte groups back in order */
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void quantize_q8_0_avx2(const float *x, void *dst, int n) {
    block_q8_0 *y = dst;
    for (int i = 0; i < n / QK8_0; i++, x += QK8_0) {
        __m256 amax = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++)
            amax = _mm256_max_ps(amax, abs_ps(_mm256_loadu_ps(x + 8 * k)));
        const float d = hmax_ps(amax) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)y[i].qs, round_pack32(x, _mm256_set1_ps(id)));
    }
}

/* Sums of each 16 int8 of q0 (groups 0,1) .. q7 (groups 14,15) as int16. */
static void q8_K_bsums(const __m256i q[8], int16_t *bsums) {
    __m256i s[8];
    for (int k = 0; k < 8; k++)
        s[k] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q[k]), _mm256_set1_epi16(1));
    /* after two rounds of hadd: low lane = even groups, high lane = odd */
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
    const __m256i p = _mm256_packs_epi32(a, b);
    const __m128i even = _mm256_castsi256_si128(p), odd = _mm256_extracti128_si256(p, 1);
    _mm_storeu_si128((__m128i *)bsums, _mm_unpacklo_epi16(even, odd));
    _mm_storeu_si128((__m128i *)(bsums + 8), _mm_unpackhi_epi16(even, odd));
}

static void quantize_q8_K_avx2(const float *x, void *dst, int n) {
    block_q8_K *y = dst;
    for (int i = 0; i < n / QK_K; i++, x += QK_K) {
        __m256 vmax = _mm256_setzero_ps();
        for (int k = 0; k < QK_K / 8; k++)
            vmax = _mm256_max_ps(vmax, abs_ps(_mm256_loadu_ps(x + 8 * k)));
        const float amax = hmax_ps(vmax);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the scalar quantizer keys on the first element of largest magnitude */
        int first = 0;
        for (int k = 0; k < QK_K / 8; k++) {
            const __m256 eq = _mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + 8 * k)), _mm256_set1_ps(amax), _CMP_EQ_OQ);
            const int m = _mm256_movemask_ps(eq);
            if (m) {
                first = 8 * k + __builtin_ctz((unsigned)m);
                break;
            }
        }
        const float iscale = -127.0f / x[first];
        __m256i q[8];
        for (int k = 0; k < 8; k++) {
            q[k] = round_pack32(x + 32 * k, _mm256_set1_ps(iscale));
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * k), q[k]);
        }
        q8_K_bsums(q, y[i].bsums);
        y[i].d = 1.0f / iscale;
    }
}

/* Sum of x*y over 32 signed bytes into 8 int32; requires y != -128. */
static inline __m256i dot_i8(__m256i x, __m256i y) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* 32 Q4_0 quants as signed bytes -8..7, in element order. */
static inline __m256i q4_0_bytes(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}

static inline __m256 q4_0_block(const block_q4_0 *x, const block_q8_0 *y, __m256 acc) {
    const __m256i y8 = _mm256_loadu_si256((const __m256i *)y->qs);
    const __m256 s = _mm256_cvtepi32_ps(dot_i8(q4_0_bytes(x->qs), y8));
    return _mm256_fmadd_ps(_mm256_set1_ps(fp16(x->d) * fp16(y->d)), s, acc);
}

static inline __m256 q8_0_block(const block_q8_0 *x, const block_q8_0 *y, __m256 acc) {
    const __m256i x8 = _mm256_loadu_si256((const __m256i *)x->qs);
    const __m256i y8 = _mm256_loadu_si256((const __m256i *)y->qs);
    const __m256 s = _mm256_cvtepi32_ps(dot_i8(x8, y8));
    return _mm256_fmadd_ps(_mm256_set1_ps(fp16(x->d) * fp16(y->d)), s, acc);
}

/* Two accumulators so consecutive blocks' FMAs do not wait on each other. */
static float vec_dot_q4_0_avx2(int n, const void *w, const void *a) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    const int nb = n / QK4_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        acc0 = q4_0_block(&x[i], &y[i], acc0);
        acc1 = q4_0_block(&x[i + 1], &y[i + 1], acc1);
    }
    if (i < nb)
        acc0 = q4_0_block(&x[i], &y[i], acc0);
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

static float vec_dot_q8_0_avx2(int n, const void *w, const void *a) {
    const block_q8_0 *x = w, *y = a;
    const int nb = n / QK8_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        acc0 = q8_0_block(&x[i], &y[i], acc0);
        acc1 = q8_0_block(&x[i + 1], &y[i + 1], acc1);
    }
    if (i < nb)
        acc0 = q8_0_block(&x[i], &y[i], acc0);
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* Accumulates one Q4_K/Q5_K super-block (qh NULL for Q4_K): d * sum(scale *
 * q * q8) into acc and dmin * sum(min * q8) into accm, both times y->d. */
static inline void k_minmax_block(rl_fp16 d, rl_fp16 dmin, const uint8_t *scales, const uint8_t *qh, const uint8_t *qs,
                                  const block_q8_K *y, __m256 *acc, __m128 *accm) {
    uint32_t r[4];
    rl_k_scales_words(scales, r);
    const __m256i sm16 = _mm256_cvtepu8_epi16(_mm_set_epi32((int)r[3], (int)r[2], (int)r[1], (int)r[0]));
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    const __m128i sub_sums = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    const __m128i msum = _mm_madd_epi16(_mm256_extracti128_si256(sm16, 1), sub_sums);
    *accm = _mm_fmadd_ps(_mm_set1_ps(y->d * fp16(dmin)), _mm_cvtepi32_ps(msum), *accm);

    const __m256i scales16 = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm16));
    const __m256i m4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        /* byte pairs selecting the int16 scale of sub-block 2c and of 2c+1 */
        const __m256i sl = _mm256_shuffle_epi8(scales16, _mm256_set1_epi16((short)(0x0100 + 0x0404 * c)));
        const __m256i sh = _mm256_shuffle_epi8(scales16, _mm256_set1_epi16((short)(0x0302 + 0x0404 * c)));
        const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (qh) { /* bit 2c -> 16 for the low nibbles, bit 2c+1 for the high */
            lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(hb, 4), bit4));
            hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(hb, 3), bit4));
            hb = _mm256_srli_epi16(hb, 2);
        }
        const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * c));
        const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * c + 32));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), sl));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), sh));
    }
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(y->d * fp16(d)), _mm256_cvtepi32_ps(sumi), *acc);
}

static float vec_dot_q4_K_avx2(int n, const void *w, const void *a) {
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int i = 0; i < n / QK_K; i++)
        k_minmax_block(x[i].d, x[i].dmin, x[i].scales, NULL, x[i].qs, &y[i], &acc, &accm);
    return hsum_ps(_mm256_sub_ps(acc, _mm256_set_m128(_mm_setzero_ps(), accm)));
}

static float vec_dot_q5_K_avx2(int n, const void *w, const void *a) {
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int i = 0; i < n / QK_K; i++)
        k_minmax_block(x[i].d, x[i].dmin, x[i].scales, x[i].qh, x[i].qs, &y[i], &acc, &accm);
    return hsum_ps(_mm256_sub_ps(acc, _mm256_set_m128(_mm_setzero_ps(), accm)));
}

/* sum(q * q8 * scale) over 32 elements of two 16-element groups, as int32;
 * `pick` selects the groups' int8 scales from sc8 (8 bytes each). */
static inline __m256i q6_K_groups(__m256i q, const int8_t *q8, __m128i sc8, __m128i pick) {
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pick));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)q8)), sc);
}

/* Q6_K quants are used unsigned (0..63); the -32 offset is applied once per
 * super-block as 32 * sum(scale * bsum) instead of per element. */
static float vec_dot_q6_K_avx2(int n, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    const __m128i next = _mm_set1_epi8(2);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(),
                                        _mm256_slli_epi32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), bs), 5));
        __m128i pick = _mm_set_epi64x(0x0101010101010101LL, 0); /* groups 0 and 1 */
        for (int h = 0; h < 2; h++) {
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h + 32));
            const int8_t *q8 = y[i].qs + 128 * h;
            const __m256i q0 =
                _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            sumi = _mm256_add_epi32(sumi, q6_K_groups(q0, q8, sc8, pick));
            pick = _mm_add_epi8(pick, next);
            const __m256i q1 =
                _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            sumi = _mm256_add_epi32(sumi, q6_K_groups(q1, q8 + 32, sc8, pick));
            pick = _mm_add_epi8(pick, next);
            const __m256i q2 =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
            sumi = _mm256_add_epi32(sumi, q6_K_groups(q2, q8 + 64, sc8, pick));
            pick = _mm_add_epi8(pick, next);
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
            sumi = _mm256_add_epi32(sumi, q6_K_groups(q3, q8 + 96, sc8, pick));
            pick = _mm_add_epi8(pick, next);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * fp16(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

/* ---- float weights: four 8-wide accumulators, scalar tail ------------------- */

static inline __m256 load8_f32(const void *w, int i) { return _mm256_loadu_ps((const float *)w + i); }

static inline __m256 load8_f16(const void *w, int i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const rl_fp16 *)w + i)));
}

static inline __m256 load8_bf16(const void *w, int i) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const rl_bf16 *)w + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static inline float elem_f32(const void *w, int i) { return ((const float *)w)[i]; }

static inline float elem_f16(const void *w, int i) { return fp16(((const rl_fp16 *)w)[i]); }

static inline float elem_bf16(const void *w, int i) { return rl_bf16_to_f32(((const rl_bf16 *)w)[i]); }

/* Inlined into each caller with constant loaders, so no indirect calls remain. */
static inline __attribute__((always_inline)) float
dot_float(int n, const void *w, const float *y, __m256 (*load8)(const void *, int), float (*elem)(const void *, int)) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load8(w, i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(load8(w, i + 8), _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load8(w, i + 16), _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load8(w, i + 24), _mm256_loadu_ps(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(load8(w, i), _mm256_loadu_ps(y + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++)
        sum += elem(w, i) * y[i];
    return sum;
}

static float vec_dot_f32_avx2(int n, const void *w, const void *a) { return dot_float(n, w, a, load8_f32, elem_f32); }

static float vec_dot_f16_avx2(int n, const void *w, const void *a) { return dot_float(n, w, a, load8_f16, elem_f16); }

static float vec_dot_bf16_avx2(int n, const void *w, const void *a) {
    return dot_float(n, w, a, load8_bf16, elem_bf16);
}

/* ---- the attention: a tile of queries against a block of positions ------- */

/* Cache rows to f32: 8 elements per conversion, exact. */
static void kv_rows_f16_avx2(int n, const void *src, size_t src_stride, int rows, float *dst) {
    for (int r = 0; r < rows; r++, dst += n) {
        const rl_fp16 *x = (const rl_fp16 *)((const char *)src + (size_t)r * src_stride);
        int i = 0;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
        for (; i < n; i++)
            dst[i] = fp16(x[i]);
    }
}

static void kv_rows_q8_0_avx2(int n, const void *src, size_t src_stride, int rows, float *dst) {
    for (int r = 0; r < rows; r++) {
        const block_q8_0 *x = (const block_q8_0 *)((const char *)src + (size_t)r * src_stride);
        for (int b = 0; b < n / QK8_0; b++, dst += QK8_0) {
            const __m256 d = _mm256_set1_ps(fp16(x[b].d));
            for (int k = 0; k < 4; k++) {
                const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x[b].qs + 8 * k)));
                _mm256_storeu_ps(dst + 8 * k, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q)));
            }
        }
    }
}

/* The eight sums of a[0..7], each by hsum_ps's tree (lanes l and l+4, then
 * 0+2 and 1+3, then the two), so a score's bits do not depend on whether it
 * was reduced with seven others. */
static inline __m256 hsum8_ps(const __m256 a[8]) {
    __m256 h[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)
        h[k] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * k], a[2 * k + 1], 0x20),
                             _mm256_permute2f128_ps(a[2 * k], a[2 * k + 1], 0x31));
    /* h[k] = [x0..x3 of a[2k] | of a[2k+1]]; pair lanes 0+2 and 1+3 */
    const __m256 t0 = _mm256_add_ps(_mm256_shuffle_ps(h[0], h[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm256_shuffle_ps(h[0], h[1], _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 t1 = _mm256_add_ps(_mm256_shuffle_ps(h[2], h[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm256_shuffle_ps(h[2], h[3], _MM_SHUFFLE(3, 2, 3, 2)));
    /* t0 = [a0: 0+2, 1+3, a2: 0+2, 1+3 | a1 .., a3 ..], t1 likewise for a4..a7 */
    const __m256 u = _mm256_add_ps(_mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1)));
    /* u = [a0 a2 a4 a6 | a1 a3 a5 a7] */
    return _mm256_permutevar8x32_ps(u, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Scores of four queries against two keys over n elements (a multiple of
 * 8): one 8-lane FMA chain per score, then hsum8_ps; kv_tiles.h adds the
 * tail element by element as dot4_f16 did. out[2 * t + j] = q_t · k_j. */
static inline void scores_4x2(int n, const float *const q[4], const float *k0, const float *k1, float out[8]) {
    __m256 a[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++)
        a[t] = _mm256_setzero_ps();
    for (int e = 0; e < n; e += 8) {
        const __m256 x0 = _mm256_loadu_ps(k0 + e), x1 = _mm256_loadu_ps(k1 + e);
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            __m256 y = _mm256_loadu_ps(q[t] + e);
            __asm__("" : "+x"(y)); /* one load for both keys: GCC would fold it into each FMA */
            a[2 * t] = _mm256_fmadd_ps(x0, y, a[2 * t]);
            a[2 * t + 1] = _mm256_fmadd_ps(x1, y, a[2 * t + 1]);
        }
    }
    _mm256_storeu_ps(out, hsum8_ps(a));
}

/* y (W * 8 elements, for Q queries) += p_j * v_j over the nv positions,
 * with the sums in registers across the positions. */
#define RL_VALUES_TILE(Q, W)                                                                                     \
    static inline void values_##Q##x##W(int n, const float *p, size_t p_stride, const float *v, size_t v_stride, \
                                        int nv, float *y) {                                                      \
        __m256 acc[Q][W];                                                                                        \
        _Pragma("GCC unroll 4") for (int t = 0; t < Q; t++) _Pragma("GCC unroll 4") for (int w = 0; w < W; w++)  \
            acc[t][w] = _mm256_loadu_ps(y + (size_t)t * n + 8 * w);                                              \
        for (int j = 0; j < nv; j++) {                                                                           \
            __m256 x[W];                                                                                         \
            _Pragma("GCC unroll 4") for (int w = 0; w < W; w++) x[w] =                                           \
                _mm256_loadu_ps(v + (size_t)j * v_stride + 8 * w);                                               \
            _Pragma("GCC unroll 4") for (int t = 0; t < Q; t++) {                                                \
                const __m256 a = _mm256_broadcast_ss(p + (size_t)t * p_stride + j);                              \
                _Pragma("GCC unroll 4") for (int w = 0; w < W; w++) acc[t][w] =                                  \
                    _mm256_add_ps(acc[t][w], _mm256_mul_ps(a, x[w]));                                            \
            }                                                                                                    \
        }                                                                                                        \
        _Pragma("GCC unroll 4") for (int t = 0; t < Q; t++) _Pragma("GCC unroll 4") for (int w = 0; w < W; w++)  \
            _mm256_storeu_ps(y + (size_t)t * n + 8 * w, acc[t][w]);                                              \
    }
RL_VALUES_TILE(4, 2)
RL_VALUES_TILE(4, 1)
RL_VALUES_TILE(1, 4)
RL_VALUES_TILE(1, 1)
#undef RL_VALUES_TILE

#define KV_LANES 8
#define KV_4W_ELEMS 16
#define KV_1W_ELEMS 32
#define values_4w values_4x2
#define values_41 values_4x1
#define values_1w values_1x4
#define values_11 values_1x1
#include "kv_tiles.h"

/* kv_softmax.h's exponential, 8 lanes, the same operations in the same order. */
static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(RL_EXP_MIN));
    const __m256 n =
        _mm256_floor_ps(_mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(RL_EXP_LOG2E)), _mm256_set1_ps(0.5f)));
    x = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(RL_EXP_C1)));
    x = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(RL_EXP_C2)));
    __m256 y = _mm256_set1_ps(RL_EXP_P0);
    y = _mm256_add_ps(_mm256_mul_ps(y, x), _mm256_set1_ps(RL_EXP_P1));
    y = _mm256_add_ps(_mm256_mul_ps(y, x), _mm256_set1_ps(RL_EXP_P2));
    y = _mm256_add_ps(_mm256_mul_ps(y, x), _mm256_set1_ps(RL_EXP_P3));
    y = _mm256_add_ps(_mm256_mul_ps(y, x), _mm256_set1_ps(RL_EXP_P4));
    y = _mm256_add_ps(_mm256_mul_ps(y, x), _mm256_set1_ps(RL_EXP_P5));
    y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(y, _mm256_mul_ps(x, x)), x), _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

static void kv_softmax_avx2(float *x, int n, float scale) {
    const int n8 = n & ~7;
    const __m256 sc = _mm256_set1_ps(scale);
    __m256 m8 = _mm256_set1_ps(-INFINITY);
    int j = 0;
    for (; j < n8; j += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j), sc);
        _mm256_storeu_ps(x + j, v);
        m8 = _mm256_max_ps(m8, v);
    }
    float mx = hmax_ps(m8);
    for (; j < n; j++) {
        x[j] *= scale;
        mx = x[j] > mx ? x[j] : mx;
    }
    const __m256 m = _mm256_set1_ps(mx);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (j = 0; j < n8; j += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), m));
        _mm256_storeu_ps(x + j, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double d[8];
    _mm256_storeu_pd(d, s0);
    _mm256_storeu_pd(d + 4, s1);
    double sum = rl_kv_sum8(d);
    for (; j < n; j++) {
        x[j] = rl_kv_exp(x[j] - mx);
        sum += x[j];
    }
    const float inv = (float)(1.0 / sum);
    const __m256 iv = _mm256_set1_ps(inv);
    for (j = 0; j < n8; j += 8)
        _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), iv));
    for (; j < n; j++)
        x[j] *= inv;
}

static const rl_kernel_set avx2_set = {
    .name = "avx2",
    .quantize_q8_0 = quantize_q8_0_avx2,
    .quantize_q8_K = quantize_q8_K_avx2,
    .vec_dot =
        {
            [RL_F32] = vec_dot_f32_avx2,
            [RL_F16] = vec_dot_f16_avx2,
            [RL_BF16] = vec_dot_bf16_avx2,
            [RL_Q4_0] = vec_dot_q4_0_avx2,
            [RL_Q8_0] = vec_dot_q8_0_avx2,
            [RL_Q4_K] = vec_dot_q4_K_avx2,
            [RL_Q5_K] = vec_dot_q5_K_avx2,
            [RL_Q6_K] = vec_dot_q6_K_avx2,
        },
    .qg_pack = rl_qg_pack_avx2,
    .qg_unpack = rl_qg_unpack_avx2,
    .qg_kernel = rl_qg_kernel_avx2,
    .qg_gemv = rl_qg_gemv_avx2,
    /* Up to 16 tokens (matvec_bench -k, 2-core EPYC): re-deriving the quants
     * from x16 once per 4 tokens costs less than a tile's store and load. */
    .qg_gemv_max = 16,
    .kv_rows =
        {
            [RL_F16] = kv_rows_f16_avx2,
            [RL_Q8_0] = kv_rows_q8_0_avx2,
        },
    .kv_scores = kv_scores_tiles,
    .kv_values = kv_values_tiles,
    .kv_softmax = kv_softmax_avx2,
};

const rl_kernel_set *rl_kernels_avx2(void) {
    if (!rl_cpu()->avx2)
        return NULL;
    return &avx2_set;
}
