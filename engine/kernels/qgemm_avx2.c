/* AVX2 version of the batched quantized product (see quant.h), for x86
 * machines without AVX-512 VNNI.
 *
 * The packed tile is the same as for AVX-512; a 256-bit register holds its
 * rows 0-7 or 8-15, and the kernel runs the two halves one after the other,
 * 4 tokens at a time. Without VPDPBUSD a 4-column step is VPMADDUBSW
 * (unsigned weight x signed activation bytes, pairs summed to int16) then
 * VPMADDWD by ones (pairs to int32). The int16 pairs cannot saturate for
 * quants up to 63; Q8_0's (0..255) could, so its bytes are turned back into
 * signed weights and multiplied by sign transfer, |w| x sign(w)·a, as the
 * matrix-vector kernels do — which needs no zero-point correction. Tiles are
 * packed by the portable code of qgemm_x16.h (with F16C for the scales);
 * weights still in the file's layout are first interleaved by byte copies.
 *
 * Decode and batches of a few tokens (rl_qg_gemv_avx2, up to the set's
 * qg_gemv_max) run the same kernel on quants taken straight from the x16
 * loads (qgemm_x16.h's x16_quants), since writing a tile and reading it back
 * for a few tokens costs more than deriving the quants again for every 4;
 * the integer and float steps are the tile kernel's, so the results are
 * bit-identical. */
#include "cpu.h"

#include <immintrin.h>
#define X16_GV_BYTES 32 /* rows 8h..8h+7 */
#include "qgemm_x16.h"
#include "x16.h"

#define TOKENS 4 /* tokens per register tile (16 YMM registers) */

static inline __attribute__((always_inline)) v16f32 halves_to_f32(v16u32 h) {
    const v16u16 n = __builtin_convertvector(h, v16u16);
    __m128i a, b;
    memcpy(&a, &n, sizeof a);
    memcpy(&b, (const char *)&n + sizeof a, sizeof b);
    const __m256 fa = _mm256_cvtph_ps(a), fb = _mm256_cvtph_ps(b);
    v16f32 r;
    memcpy(&r, &fa, sizeof fa);
    memcpy((char *)&r + sizeof fa, &fb, sizeof fb);
    return r;
}

void rl_qg_unpack_avx2(rl_dtype t, const void *x16, uint32_t nc, rl_qg_tile *tile) { x16_unpack(t, x16, nc, tile); }

void rl_qg_pack_avx2(rl_dtype t, const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc,
                     rl_qg_tile *tile) {
    rl_qg_pack_via(rl_qg_unpack_avx2, rl_x16_interleave, t, w, row_bytes, rows, c0, nc, tile);
}

static inline __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* Where a span's weights come from: a packed tile (xt < 0) or, for decode,
 * the x16 block groups of type xt with their scales unpacked beside. */
typedef struct {
    const uint8_t *q; /* the tile's quants, or the chunk's first block group */
    const float *scale, *min;
    uint32_t cols;
} wsrc;

/* Column group g of sub-block s0 + u, rows 8h..8h+7: unsigned quants, or for
 * Q8_0 (sgn) the file's signed bytes. */
static inline __attribute__((always_inline)) __m256i weights(const wsrc *w, const int xt, const int sub, const bool sgn,
                                                             uint32_t s0, int u, int g, int h) {
    if (xt < 0) {
        const __m256i v =
            _mm256_load_si256((const __m256i *)(w->q + ((size_t)(s0 + u) * sub + 4 * g) * RL_QG_ROWS + 32 * h));
        return sgn ? _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80)) : v;
    }
    const x16_gv v = x16_quants(xt, w->q + s0 / x16_subs(xt) * x16_group_bytes(xt) + 32 * h, u, g);
    __m256i r;
    memcpy(&r, &v, sizeof r);
    return r;
}

/* Tokens [j0, j0 + T) against rows 8h..8h+7 of the weights, U sub-blocks at
 * a time (a block group's, for x16), unrolled so that each one's place is a
 * constant: Q6_K's decode goes from 17 to 22 GB/s on one Zen 5 thread. */
static inline __attribute__((always_inline)) void span(const wsrc *src, const int xt, const rl_qg_act *a, uint32_t c0,
                                                       uint32_t j0, const int T, const int sub, const bool mins,
                                                       const bool sgn, const int S, int h, float *accm) {
    const uint32_t cols = a->cols, nsub = cols / sub, nb = cols / 32;
    const int8_t *x = a->qs + (size_t)j0 * cols + c0;
    const int32_t *corr = a->corr + (size_t)j0 * nsub + c0 / sub;
    const float *d = a->d + (size_t)j0 * nb + c0 / 32, *dsum = a->dsum + (size_t)j0 * nb + c0 / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    const int U = xt < 0 ? 1 : x16_subs(xt);
    float *out = accm + (size_t)j0 * RL_QG_ROWS + 8 * h;
    __m256 acc[TOKENS];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_loadu_ps(out + (size_t)t * RL_QG_ROWS);
    for (uint32_t s0 = 0; s0 < src->cols / sub; s0 += U)
#pragma GCC unroll 16
        for (int u = 0; u < U; u++) {
            const uint32_t s = s0 + u;
            __m256i isum[TOKENS]; /* set at the first widening, so it holds no register before */
            const int8_t *xs = x + (size_t)s * sub;
            __m256i i16[TOKENS];
#pragma GCC unroll 8
            for (int g = 0; g < sub / 4; g++) {
                const __m256i w = weights(src, xt, sub, sgn, s0, u, g, h), wa = _mm256_abs_epi8(w);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    const __m256i b = bcast4(xs + (size_t)t * cols + 4 * g);
                    const __m256i p =
                        sgn ? _mm256_maddubs_epi16(wa, _mm256_sign_epi8(b, w)) : _mm256_maddubs_epi16(w, b);
                    i16[t] = g % S == 0 ? p : _mm256_add_epi16(i16[t], p);
                    if (g % S == S - 1) {
                        const __m256i wide = _mm256_madd_epi16(i16[t], ones);
                        if (g + 1 > S)
                            isum[t] = _mm256_add_epi32(isum[t], wide);
                        else
                            isum[t] =
                                sgn ? wide : _mm256_add_epi32(wide, _mm256_set1_epi32(corr[(size_t)t * nsub + s]));
                    }
                }
            }
            const __m256 sc = _mm256_load_ps(src->scale + (size_t)s * RL_QG_ROWS + 8 * h);
            const uint32_t k = s * sub / 32;
#pragma GCC unroll 4
            for (int t = 0; t < T; t++)
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]),
                                         _mm256_mul_ps(sc, _mm256_set1_ps(d[(size_t)t * nb + k])), acc[t]);
            if (mins) {
                const __m256 mn = _mm256_load_ps(src->min + (size_t)s * RL_QG_ROWS + 8 * h);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++)
                    acc[t] = _mm256_fnmadd_ps(mn, _mm256_set1_ps(dsum[(size_t)t * nb + k]), acc[t]);
            }
        }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        _mm256_storeu_ps(out + (size_t)t * RL_QG_ROWS, acc[t]);
}

/* S: column groups whose int16 pair sums (at most 2 * 127 * the largest
 * quant each) are added in int16 before they are widened, as many as stay
 * below 32767: 8 for 4-bit quants, 4 for 5-bit, 2 for 6-bit, 1 for Q8_0's
 * signed bytes. An integer sum's value does not depend on its order, so the
 * results stay the reference's bits; the widening add per column group was
 * a third of the work per token, which is what a batch of a few tokens
 * pays for. */
static inline __attribute__((always_inline)) void kernel_fmt(const wsrc *src, const int xt, const rl_qg_act *a,
                                                             uint32_t c0, float *acc, const int sub, const bool mins,
                                                             const bool sgn, const int S) {
    for (int h = 0; h < 2; h++) {
        uint32_t j = 0;
        for (; j + TOKENS <= a->n; j += TOKENS)
            span(src, xt, a, c0, j, TOKENS, sub, mins, sgn, S, h, acc);
        if (a->n - j >= 2) {
            span(src, xt, a, c0, j, 2, sub, mins, sgn, S, h, acc);
            j += 2;
        }
        if (a->n - j >= 1)
            span(src, xt, a, c0, j, 1, sub, mins, sgn, S, h, acc);
    }
}

void rl_qg_kernel_avx2(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc) {
    const wsrc src = {tile->q, tile->scale, tile->min, tile->cols};
    if (tile->fmt.sub == 16)
        kernel_fmt(&src, -1, act, c0, acc, 16, false, false, 2);
    else if (tile->fmt.mins) /* Q4_K or Q5_K: a tile does not say which */
        kernel_fmt(&src, -1, act, c0, acc, 32, true, false, 4);
    else if (tile->fmt.zero == 128)
        kernel_fmt(&src, -1, act, c0, acc, 32, false, true, 1);
    else
        kernel_fmt(&src, -1, act, c0, acc, 32, false, false, 8);
}

/* Decode's product: the quants go from the x16 loads straight into the
 * multiplies; only the chunk's scales are unpacked, by the tile's code. */
void rl_qg_gemv_avx2(rl_dtype t, const void *x16, uint32_t nc, const rl_qg_act *act, uint32_t c0, float *acc) {
    _Alignas(32) float scale[RL_QG_CHUNK / 16 * RL_QG_ROWS], min[RL_QG_CHUNK / 32 * RL_QG_ROWS];
    x16_scales(t, x16, nc, scale, min);
    const wsrc src = {x16, scale, min, nc};
    switch (t) {
    case RL_Q4_0:
        kernel_fmt(&src, RL_Q4_0, act, c0, acc, 32, false, false, 8);
        break;
    case RL_Q8_0:
        kernel_fmt(&src, RL_Q8_0, act, c0, acc, 32, false, true, 1);
        break;
    case RL_Q4_K:
        kernel_fmt(&src, RL_Q4_K, act, c0, acc, 32, true, false, 8);
        break;
    case RL_Q5_K:
        kernel_fmt(&src, RL_Q5_K, act, c0, acc, 32, true, false, 4);
        break;
    default:
        kernel_fmt(&src, RL_Q6_K, act, c0, acc, 16, false, false, 2);
        break;
    }
}
