/* NEON version of the batched quantized product for cores with the dot
 * product instructions (Raspberry Pi 5, Cortex-A76; compiled with +dotprod
 * and installed only when the CPU reports it): SDOT sums the 4 products of
 * each row's 4 weight bytes with the broadcast activation bytes straight
 * into that row's int32 lane, one instruction per 4 rows. */
#include "cpu.h"

#include <arm_neon.h>

typedef struct {
    int32x4_t v[4]; /* rows 4r..4r+3 */
} isum;

static inline void isum_init(isum *s, int32_t corr) {
#pragma GCC unroll 8
    for (int r = 0; r < 4; r++)
        s->v[r] = vdupq_n_s32(corr);
}

static inline void isum_step(isum *s, const int8x16_t w[4], int8x16_t a) {
#pragma GCC unroll 8
    for (int r = 0; r < 4; r++)
        s->v[r] = vdotq_s32(s->v[r], w[r], a);
}

static inline void isum_rows(const isum *s, int32x4_t rows[4]) {
#pragma GCC unroll 8
    for (int r = 0; r < 4; r++)
        rows[r] = s->v[r];
}

#include "qgemm_neon.h"

void rl_qg_kernel_neon_dot(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc) {
    neon_kernel(tile, act, c0, acc);
}

void rl_qg_gemv_neon_dot(rl_dtype t, const void *x16, uint32_t nc, const rl_qg_act *act, uint32_t c0, float *acc) {
    neon_gemv(t, x16, nc, act, c0, acc);
}
