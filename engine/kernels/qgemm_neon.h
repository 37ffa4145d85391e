/* The NEON microkernel of the batched product (quant.h), shared by the
 * Cortex-A72 build (qgemm_neon.c: widening multiplies) and the dot-product
 * one for the Cortex-A76 (qgemm_dot_neon.c: SDOT), which differ only in how
 * 4 columns of 16 rows are multiplied by 4 activation bytes. The including
 * file defines, before including this one,
 *     typedef struct { int32x4_t v[...]; } isum;       integer sums of one token
 *     static inline void isum_init(isum *s, int32_t corr);
 *     static inline void isum_step(isum *s, const int8x16_t w[4], int8x16_t a);
 *     static inline void isum_rows(const isum *s, int32x4_t rows[4]);
 * A packed tile's 64-byte column group is four 128-bit vectors of 4 rows
 * each. The weights are multiplied as signed bytes: quants below 128 are the
 * same either way, and Q8_0's (stored + 128) are turned back into the file's
 * signed values, which then need no zero-point correction, as on AVX2. The
 * float work is the same operations as every other ISA's, so the results are
 * bit-identical.
 *
 * The same span serves decode (neon_gemv, each core's qg_gemv): its weights
 * then come from the x16 block groups through qgemm_x16.h's x16_quants, with
 * no tile written and read back, and only the scales unpacked. */
#ifndef RELAIS_QGEMM_NEON_H
#define RELAIS_QGEMM_NEON_H

#include <arm_neon.h>
#include <string.h>
#include "quant.h"
#define X16_GV_BYTES 16 /* 4 rows */
#include "qgemm_x16.h"

/* For qgemm_x16.h: FCVTL, 4 halves at a time. */
static inline __attribute__((always_inline)) v16f32 halves_to_f32(v16u32 h) {
    uint16_t n[16];
    v16f32 r;
    for (int i = 0; i < 16; i++)
        n[i] = (uint16_t)h[i];
    for (int i = 0; i < 4; i++) {
        const float32x4_t f = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(n + 4 * i)));
        memcpy((char *)&r + sizeof f * i, &f, sizeof f);
    }
    return r;
}

#define NEON_TOKENS 2 /* tokens per register tile (32 Q registers) */

static inline int8x16_t neon_bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

/* Where a span's weights come from: a packed tile (xt < 0) or, for decode,
 * the x16 block groups of type xt with their scales unpacked beside. */
typedef struct {
    const uint8_t *q; /* the tile's quants, or the chunk's first block group */
    const float *scale, *min;
    uint32_t cols;
} neon_src;

/* Column group g of sub-block s0 + u, 4 rows a vector: unsigned quants, or
 * for Q8_0 (sgn) the file's signed bytes. */
static inline __attribute__((always_inline)) void neon_weights(const neon_src *w, const int xt, const int sub,
                                                               const bool sgn, uint32_t s0, int u, int g,
                                                               int8x16_t out[4]) {
    if (xt < 0) {
        const uint8_t *q = w->q + ((size_t)(s0 + u) * sub + 4 * g) * RL_QG_ROWS;
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const uint8x16_t v = vld1q_u8(q + 16 * r);
            out[r] = vreinterpretq_s8_u8(sgn ? veorq_u8(v, vdupq_n_u8(0x80)) : v);
        }
        return;
    }
    const uint8_t *x = w->q + s0 / x16_subs(xt) * x16_group_bytes(xt);
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
        out[r] = (int8x16_t)x16_quants(xt, x + 16 * r, u, g);
}

/* Tokens [j0, j0 + T) against the weights, U sub-blocks at a time (a block
 * group's, for x16). The sub-blocks stay a loop: unrolled, GCC hoists their
 * loads and spills most of the 32 registers' worth of sums and weights. */
static inline __attribute__((always_inline)) void neon_span(const neon_src *src, const int xt, const rl_qg_act *a,
                                                            uint32_t c0, uint32_t j0, const int T, const int sub,
                                                            const bool mins, const bool sgn, float *accm) {
    const uint32_t cols = a->cols, nsub = cols / sub, nb = cols / 32;
    const int8_t *x = a->qs + (size_t)j0 * cols + c0;
    const int32_t *corr = a->corr + (size_t)j0 * nsub + c0 / sub;
    const float *d = a->d + (size_t)j0 * nb + c0 / 32, *dsum = a->dsum + (size_t)j0 * nb + c0 / 32;
    const int U = xt < 0 ? 1 : x16_subs(xt);
    float32x4_t acc[NEON_TOKENS][4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            acc[t][r] = vld1q_f32(accm + (size_t)(j0 + t) * RL_QG_ROWS + 4 * r);
    for (uint32_t s0 = 0; s0 < src->cols / sub; s0 += U)
#pragma GCC unroll 1
        for (int u = 0; u < U; u++) {
            const uint32_t s = s0 + u;
            isum is[NEON_TOKENS];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++)
                isum_init(&is[t], sgn ? 0 : corr[(size_t)t * nsub + s]);
            for (int g = 0; g < sub / 4; g++) {
                int8x16_t w[4];
                neon_weights(src, xt, sub, sgn, s0, u, g, w);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++)
                    isum_step(&is[t], w, neon_bcast4(x + (size_t)t * cols + (size_t)s * sub + 4 * g));
            }
            const uint32_t k = s * sub / 32;
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                int32x4_t rows[4];
                isum_rows(&is[t], rows);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    const float32x4_t sc =
                        vmulq_n_f32(vld1q_f32(src->scale + (size_t)s * RL_QG_ROWS + 4 * r), d[(size_t)t * nb + k]);
                    acc[t][r] = vfmaq_f32(acc[t][r], vcvtq_f32_s32(rows[r]), sc);
                    if (mins)
                        acc[t][r] = vfmsq_f32(acc[t][r], vld1q_f32(src->min + (size_t)s * RL_QG_ROWS + 4 * r),
                                              vdupq_n_f32(dsum[(size_t)t * nb + k]));
                }
            }
        }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            vst1q_f32(accm + (size_t)(j0 + t) * RL_QG_ROWS + 4 * r, acc[t][r]);
}

static inline __attribute__((always_inline)) void neon_kernel_fmt(const neon_src *src, const int xt, const rl_qg_act *a,
                                                                  uint32_t c0, float *acc, const int sub,
                                                                  const bool mins, const bool sgn) {
    uint32_t j = 0;
    for (; j + NEON_TOKENS <= a->n; j += NEON_TOKENS)
        neon_span(src, xt, a, c0, j, NEON_TOKENS, sub, mins, sgn, acc);
    if (j < a->n)
        neon_span(src, xt, a, c0, j, 1, sub, mins, sgn, acc);
}

static inline __attribute__((always_inline)) void neon_kernel(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0,
                                                              float *acc) {
    const neon_src src = {tile->q, tile->scale, tile->min, tile->cols};
    if (tile->fmt.sub == 16)
        neon_kernel_fmt(&src, -1, act, c0, acc, 16, false, false);
    else if (tile->fmt.mins)
        neon_kernel_fmt(&src, -1, act, c0, acc, 32, true, false);
    else if (tile->fmt.zero == 128)
        neon_kernel_fmt(&src, -1, act, c0, acc, 32, false, true);
    else
        neon_kernel_fmt(&src, -1, act, c0, acc, 32, false, false);
}

/* Decode's product: the quants go from the x16 loads straight into the
 * multiplies; only the chunk's scales are unpacked, by the tile's code. */
static inline __attribute__((always_inline)) void neon_gemv(rl_dtype t, const void *x16, uint32_t nc,
                                                            const rl_qg_act *act, uint32_t c0, float *acc) {
    float scale[RL_QG_CHUNK / 16 * RL_QG_ROWS], min[RL_QG_CHUNK / 32 * RL_QG_ROWS];
    x16_scales(t, x16, nc, scale, min);
    const neon_src src = {x16, scale, min, nc};
    switch (t) {
    case RL_Q4_0:
        neon_kernel_fmt(&src, RL_Q4_0, act, c0, acc, 32, false, false);
        break;
    case RL_Q8_0:
        neon_kernel_fmt(&src, RL_Q8_0, act, c0, acc, 32, false, true);
        break;
    case RL_Q4_K:
        neon_kernel_fmt(&src, RL_Q4_K, act, c0, acc, 32, true, false);
        break;
    case RL_Q5_K:
        neon_kernel_fmt(&src, RL_Q5_K, act, c0, acc, 32, true, false);
        break;
    default:
        neon_kernel_fmt(&src, RL_Q6_K, act, c0, acc, 16, false, false);
        break;
    }
}

#endif
