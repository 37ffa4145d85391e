/* NEON version of the batched quantized product for cores without the dot
 * product instructions (Raspberry Pi 4, Cortex-A72), and the packing every
 * aarch64 core shares. A 4-column step multiplies 16 signed weight bytes of
 * 4 rows by the broadcast activation bytes in two widening multiplies
 * (SMULL/SMULL2, 8 products to int16 each) and folds pairs into int32 with
 * SADALP, so each row keeps two partial sums until its sub-block ends. Tiles
 * are packed by the portable code of qgemm_x16.h. */
#include "cpu.h"

#include <arm_neon.h>

#include "x16.h"

typedef struct {
    int32x4_t v[8]; /* per group of 4 rows: rows 4r, 4r+1 (two lanes each), then 4r+2, 4r+3 */
} isum;

static inline void isum_init(isum *s, int32_t corr) {
    const int32x4_t c = vsetq_lane_s32(corr, vsetq_lane_s32(corr, vdupq_n_s32(0), 0), 2);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        s->v[k] = c;
}

static inline void isum_step(isum *s, const int8x16_t w[4], int8x16_t a) {
#pragma GCC unroll 8
    for (int r = 0; r < 4; r++) {
        s->v[2 * r] = vpadalq_s16(s->v[2 * r], vmull_s8(vget_low_s8(w[r]), vget_low_s8(a)));
        s->v[2 * r + 1] = vpadalq_s16(s->v[2 * r + 1], vmull_high_s8(w[r], a));
    }
}

static inline void isum_rows(const isum *s, int32x4_t rows[4]) {
#pragma GCC unroll 8
    for (int r = 0; r < 4; r++)
        rows[r] = vpaddq_s32(s->v[2 * r], s->v[2 * r + 1]);
}

#include "qgemm_neon.h"

void rl_qg_kernel_neon(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc) {
    neon_kernel(tile, act, c0, acc);
}

void rl_qg_gemv_neon(rl_dtype t, const void *x16, uint32_t nc, const rl_qg_act *act, uint32_t c0, float *acc) {
    neon_gemv(t, x16, nc, act, c0, acc);
}

void rl_qg_unpack_neon(rl_dtype t, const void *x16, uint32_t nc, rl_qg_tile *tile) { x16_unpack(t, x16, nc, tile); }

void rl_qg_pack_neon(rl_dtype t, const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc,
                     rl_qg_tile *tile) {
    rl_qg_pack_via(rl_qg_unpack_neon, rl_x16_interleave, t, w, row_bytes, rows, c0, nc, tile);
}
