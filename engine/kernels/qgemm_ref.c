/* Batched quantized products (see quant.h): the packed-tile format, the
 * activation preparation every kernel set shares, and the scalar reference
 * packing and microkernel that the SIMD versions are tested against.
 *
 * The reference packing unpacks each weight block to one byte per quant and
 * combines the scales into one float per sub-block, so the microkernels never
 * see a weight format; the SIMD sets produce the same bytes from the x16
 * layout (qgemm_x16.h). */
#include "cpu.h"

#include <math.h>
#include <stdlib.h>
#include "x16.h"

rl_qg_format rl_qg_format_of(rl_dtype weight) {
    switch (weight) {
    case RL_Q4_0:
        return (rl_qg_format){.sub = 32, .zero = 8};
    case RL_Q8_0:
        return (rl_qg_format){.sub = 32, .zero = 128};
    case RL_Q4_K:
    case RL_Q5_K:
        return (rl_qg_format){.sub = 32, .zero = 0, .mins = true};
    case RL_Q6_K:
        return (rl_qg_format){.sub = 16, .zero = 32};
    default:
        return (rl_qg_format){0};
    }
}

/* ---- activations ------------------------------------------------------------ */

int rl_qg_act_buf_init(rl_qg_act_buf *b, uint32_t n, uint32_t cols) {
    const size_t nq = (size_t)n * cols;
    b->qs = malloc(nq);
    b->d = malloc(nq / 32 * sizeof *b->d);
    b->dsum = malloc(nq / 32 * sizeof *b->dsum);
    b->corr = malloc(nq / 16 * sizeof *b->corr);
    if (b->qs && b->d && b->dsum && b->corr)
        return 0;
    rl_qg_act_buf_free(b);
    return -1;
}

void rl_qg_act_buf_free(rl_qg_act_buf *b) {
    free(b->qs);
    free(b->d);
    free(b->dsum);
    free(b->corr);
    *b = (rl_qg_act_buf){0};
}

static int sum_i8(const int8_t *q, int n) {
    int s = 0;
    for (int i = 0; i < n; i++)
        s += q[i];
    return s;
}

void rl_qg_act_rows(void (*quantize_q8_0)(const float *, void *, int), rl_qg_format fmt, const float *x, uint32_t cols,
                    uint32_t r0, uint32_t r1, rl_qg_act_buf *b) {
    const uint32_t nb = cols / QK8_0, nsub = cols / fmt.sub, per = QK8_0 / fmt.sub;
    for (uint32_t r = r0; r < r1; r++) {
        for (uint32_t k = 0; k < nb; k++) {
            block_q8_0 blk;
            quantize_q8_0(x + (size_t)r * cols + (size_t)k * QK8_0, &blk, QK8_0);
            memcpy(b->qs + (size_t)r * cols + (size_t)k * QK8_0, blk.qs, QK8_0);
            const float d = rl_fp16_to_f32(blk.d);
            b->d[(size_t)r * nb + k] = d;
            b->dsum[(size_t)r * nb + k] = d * (float)sum_i8(blk.qs, QK8_0);
            for (uint32_t j = 0; j < per; j++)
                b->corr[(size_t)r * nsub + k * per + j] = -(int32_t)fmt.zero * sum_i8(blk.qs + j * fmt.sub, fmt.sub);
        }
    }
}

rl_qg_act rl_qg_act_view(const rl_qg_act_buf *b, rl_qg_format fmt, uint32_t n, uint32_t cols) {
    return (rl_qg_act){.n = n, .cols = cols, .sub = fmt.sub, .qs = b->qs, .d = b->d, .corr = b->corr, .dsum = b->dsum};
}

/* ---- tiles ------------------------------------------------------------------ */

/* Unpacks one weight block to bytes q[0..block) and its scales (and mins) to
 * scale[s * RL_QG_ROWS] for each sub-block s of the block. */
static void unpack_block(rl_dtype t, const void *blk, uint8_t *q, float *scale, float *min) {
    switch (t) {
    case RL_Q4_0: {
        const block_q4_0 *b = blk;
        scale[0] = rl_fp16_to_f32(b->d);
        for (int l = 0; l < QK4_0 / 2; l++) {
            q[l] = b->qs[l] & 0xf;
            q[l + QK4_0 / 2] = b->qs[l] >> 4;
        }
        break;
    }
    case RL_Q8_0: {
        const block_q8_0 *b = blk;
        scale[0] = rl_fp16_to_f32(b->d);
        for (int l = 0; l < QK8_0; l++)
            q[l] = (uint8_t)(b->qs[l] + 128);
        break;
    }
    case RL_Q4_K:
    case RL_Q5_K: {
        const bool five = t == RL_Q5_K;
        const block_q4_K *b4 = blk;
        const block_q5_K *b5 = blk;
        const uint8_t *qs = five ? b5->qs : b4->qs, *sc = five ? b5->scales : b4->scales;
        const float d = rl_fp16_to_f32(five ? b5->d : b4->d), dmin = rl_fp16_to_f32(five ? b5->dmin : b4->dmin);
        uint8_t sm[16];
        rl_k_scales_unpack(sc, sm);
        for (int sub = 0; sub < 8; sub++) {
            scale[sub * RL_QG_ROWS] = d * sm[sub];
            min[sub * RL_QG_ROWS] = dmin * sm[8 + sub];
            for (int l = 0; l < 32; l++) {
                int v = (qs[32 * (sub / 2) + l] >> (4 * (sub % 2))) & 0xf;
                if (five)
                    v |= ((b5->qh[l] >> sub) & 1) << 4;
                q[32 * sub + l] = (uint8_t)v;
            }
        }
        break;
    }
    case RL_Q6_K: {
        const block_q6_K *b = blk;
        const float d = rl_fp16_to_f32(b->d);
        for (int g = 0; g < QK_K / 16; g++)
            scale[g * RL_QG_ROWS] = d * b->scales[g];
        for (int e = 0; e < QK_K; e++)
            q[e] = (uint8_t)rl_q6_K_quant(b, e);
        break;
    }
    default:
        break;
    }
}

void rl_qg_pack_via(rl_qg_unpack_fn unpack,
                    void (*interleave)(rl_dtype, const void *, size_t, uint32_t, uint32_t, void *), rl_dtype t,
                    const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc, rl_qg_tile *tile) {
    const size_t bs = rl_dtype_block(t), bb = rl_dtype_block_bytes(t), span = nc / bs * bb;
    _Alignas(64) uint8_t x[RL_QG_CHUNK_X16_BYTES];
    if (rows == RL_QG_ROWS) {
        interleave(t, w, row_bytes, (uint32_t)(c0 / bs), (uint32_t)(nc / bs), x);
    } else { /* the rows there are, then zero blocks */
        uint8_t pad[RL_QG_CHUNK_X16_BYTES] = {0};
        for (int i = 0; i < rows; i++)
            memcpy(pad + (size_t)i * span, (const char *)w + (size_t)i * row_bytes + c0 / bs * bb, span);
        interleave(t, pad, span, 0, (uint32_t)(nc / bs), x);
    }
    unpack(t, x, nc, tile);
}

/* ---- the scalar reference ---------------------------------------------------- */

/* The definition: each row's blocks unpacked to one byte per quant (all-zero
 * blocks for missing rows), then interleaved 4 bytes at a time. */
void rl_qg_pack_ref(rl_dtype t, const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc, rl_qg_tile *tile) {
    const rl_qg_format f = rl_qg_format_of(t);
    const uint32_t bs = rl_dtype_block(t), bb = rl_dtype_block_bytes(t);
    const uint8_t zero[sizeof(block_q6_K)] = {0};
    uint8_t q[RL_QG_ROWS][RL_QG_CHUNK];
    tile->fmt = f;
    tile->cols = nc;
    for (int i = 0; i < RL_QG_ROWS; i++)
        for (uint32_t c = 0; c < nc; c += bs) {
            const void *blk = zero;
            if (i < rows)
                blk = (const char *)w + (size_t)i * row_bytes + (size_t)((c0 + c) / bs) * bb;
            unpack_block(t, blk, q[i] + c, tile->scale + (size_t)(c / f.sub) * RL_QG_ROWS + i,
                         tile->min + (size_t)(c / 32) * RL_QG_ROWS + i);
        }
    for (uint32_t k = 0; k < nc / 4; k++)
        for (int i = 0; i < RL_QG_ROWS; i++)
            memcpy(tile->q + ((size_t)k * RL_QG_ROWS + i) * 4, q[i] + 4 * k, 4);
}

/* From the x16 layout: back to the file's layout, then as above. */
void rl_qg_unpack_ref(rl_dtype t, const void *x16, uint32_t nc, rl_qg_tile *tile) {
    const uint32_t nblk = nc / rl_dtype_block(t);
    const size_t span = (size_t)nblk * rl_dtype_block_bytes(t);
    uint8_t rows[RL_QG_CHUNK_X16_BYTES];
    rl_x16_deinterleave(t, x16, 0, nblk, rows, span);
    rl_qg_pack_ref(t, rows, span, RL_QG_ROWS, 0, nc, tile);
}

/* Row i of the tile against token j from column c0 on: per sub-block an
 * exact integer sum (offset by the activation's correction), then one
 * multiply-add in float, as every SIMD kernel does it. */
static float tile_dot_ref(const rl_qg_tile *tl, int i, const rl_qg_act *a, uint32_t j, uint32_t c0, float acc) {
    const uint32_t sub = tl->fmt.sub, nsub = a->cols / sub, nb = a->cols / 32;
    const int8_t *x = a->qs + (size_t)j * a->cols + c0;
    for (uint32_t s = 0; s < tl->cols / sub; s++) {
        int32_t isum = a->corr[(size_t)j * nsub + c0 / sub + s];
        for (uint32_t e = s * sub; e < (s + 1) * sub; e++)
            isum += tl->q[((size_t)(e / 4) * RL_QG_ROWS + (size_t)i) * 4 + e % 4] * x[e];
        const size_t blk = (size_t)j * nb + (c0 + s * sub) / 32;
        acc = fmaf((float)isum, tl->scale[(size_t)s * RL_QG_ROWS + i] * a->d[blk], acc);
        if (tl->fmt.mins)
            acc = fmaf(-tl->min[(size_t)s * RL_QG_ROWS + i], a->dsum[blk], acc);
    }
    return acc;
}

void rl_qg_kernel_ref(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc) {
    for (uint32_t j = 0; j < act->n; j++)
        for (int i = 0; i < RL_QG_ROWS; i++)
            acc[(size_t)j * RL_QG_ROWS + i] = tile_dot_ref(tile, i, act, j, c0, acc[(size_t)j * RL_QG_ROWS + i]);
}
