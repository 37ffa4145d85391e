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
 * bit-identical. */
#ifndef RELAIS_QGEMM_NEON_H
#define RELAIS_QGEMM_NEON_H

#include <arm_neon.h>
#include <string.h>
#include "quant.h"

#define NEON_TOKENS 2   /* tokens per register tile (32 Q registers) */

static inline int8x16_t neon_bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

/* Tokens [j0, j0 + T) against the tile. */
static inline __attribute__((always_inline)) void neon_span(const rl_qg_tile *tl, const rl_qg_act *a, uint32_t c0,
                                                            uint32_t j0, const int T, const int sub, const bool mins,
                                                            const bool sgn, float *accm)
{
    const uint32_t cols = a->cols, nsub = cols / sub, nb = cols / 32;
    const int8_t *x = a->qs + (size_t)j0 * cols + c0;
    const int32_t *corr = a->corr + (size_t)j0 * nsub + c0 / sub;
    const float *d = a->d + (size_t)j0 * nb + c0 / 32, *dsum = a->dsum + (size_t)j0 * nb + c0 / 32;
    float32x4_t acc[NEON_TOKENS][4];
    for (int t = 0; t < T; t++)
        for (int r = 0; r < 4; r++)
            acc[t][r] = vld1q_f32(accm + (size_t)(j0 + t) * RL_QG_ROWS + 4 * r);
    for (uint32_t s = 0; s < tl->cols / sub; s++) {
        isum is[NEON_TOKENS];
        for (int t = 0; t < T; t++)
            isum_init(&is[t], sgn ? 0 : corr[(size_t)t * nsub + s]);
        const uint8_t *q = tl->q + (size_t)s * sub * RL_QG_ROWS;
        for (int g = 0; g < sub / 4; g++) {
            int8x16_t w[4];
            for (int r = 0; r < 4; r++) {
                const uint8x16_t u = vld1q_u8(q + 64 * g + 16 * r);
                w[r] = vreinterpretq_s8_u8(sgn ? veorq_u8(u, vdupq_n_u8(0x80)) : u);
            }
            for (int t = 0; t < T; t++)
                isum_step(&is[t], w, neon_bcast4(x + (size_t)t * cols + (size_t)s * sub + 4 * g));
        }
        const uint32_t k = s * sub / 32;
        for (int t = 0; t < T; t++) {
            int32x4_t rows[4];
            isum_rows(&is[t], rows);
            for (int r = 0; r < 4; r++) {
                const float32x4_t sc = vmulq_n_f32(vld1q_f32(tl->scale + (size_t)s * RL_QG_ROWS + 4 * r),
                                                   d[(size_t)t * nb + k]);
                acc[t][r] = vfmaq_f32(acc[t][r], vcvtq_f32_s32(rows[r]), sc);
                if (mins)
                    acc[t][r] = vfmsq_f32(acc[t][r], vld1q_f32(tl->min + (size_t)s * RL_QG_ROWS + 4 * r),
                                          vdupq_n_f32(dsum[(size_t)t * nb + k]));
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int r = 0; r < 4; r++)
            vst1q_f32(accm + (size_t)(j0 + t) * RL_QG_ROWS + 4 * r, acc[t][r]);
}

static inline __attribute__((always_inline)) void neon_kernel_fmt(const rl_qg_tile *tl, const rl_qg_act *a,
                                                                  uint32_t c0, float *acc, const int sub,
                                                                  const bool mins, const bool sgn)
{
    uint32_t j = 0;
    for (; j + NEON_TOKENS <= a->n; j += NEON_TOKENS)
        neon_span(tl, a, c0, j, NEON_TOKENS, sub, mins, sgn, acc);
    if (j < a->n)
        neon_span(tl, a, c0, j, 1, sub, mins, sgn, acc);
}

static inline __attribute__((always_inline)) void neon_kernel(const rl_qg_tile *tile, const rl_qg_act *act,
                                                              uint32_t c0, float *acc)
{
    if (tile->fmt.sub == 16)
        neon_kernel_fmt(tile, act, c0, acc, 16, false, false);
    else if (tile->fmt.mins)
        neon_kernel_fmt(tile, act, c0, acc, 32, true, false);
    else if (tile->fmt.zero == 128)
        neon_kernel_fmt(tile, act, c0, acc, 32, false, true);
    else
        neon_kernel_fmt(tile, act, c0, acc, 32, false, false);
}

#endif
