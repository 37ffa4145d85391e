/* The x16 layout (see x16.h): one list of each block type's units drives
 * both directions of the rearrangement and the SIMD packers' transposes, so
 * the layout is defined in one place. Plain byte moves: this runs once per
 * load. */
#include "x16.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "quant.h"

#define ROWS 16

static int add(rl_x16_unit *u, int n, uint16_t off, uint8_t size) {
    u[n].off = off;
    u[n].size = size;
    u[n].pos = n ? (uint16_t)(u[n - 1].pos + u[n - 1].size * ROWS) : 0;
    return n + 1;
}

/* Each block type in the order qgemm_x16.h reads it, with one twist: the
 * scales, which the packing decodes last because its stores wait on them,
 * lie first. By the time they are read the hardware prefetcher has long
 * fetched them, which is not so for the group's last lines; the other way
 * round a Q4_K group streams at a third of the speed. Q4_0/Q8_0 take each
 * block's scale, then its quants; Q5_K has its high-bit dwords next to the
 * first quant dwords that use them, Q6_K the three dwords that make 16 quants
 * together. */
int rl_x16_units(rl_dtype t, rl_x16_unit u[RL_X16_MAX_UNITS]) {
    int n = 0;
    switch (t) {
    case RL_Q4_0:
    case RL_Q8_0:
        n = add(u, n, 0, 2);
        for (uint16_t o = 2; o < rl_dtype_block_bytes(t); o += 4)
            n = add(u, n, o, 4);
        break;
    case RL_Q4_K:
    case RL_Q5_K: {
        const uint16_t qs = t == RL_Q5_K ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs);
        for (uint16_t o = 0; o < 4 + K_SCALE_SIZE; o += 4) /* d and dmin, then the scales */
            n = add(u, n, o, 4);
        for (uint16_t o = 0; o < QK_K / 2; o += 4) {
            if (t == RL_Q5_K && o < QK_K / 8)
                n = add(u, n, offsetof(block_q5_K, qh) + o, 4);
            n = add(u, n, qs + o, 4);
        }
        break;
    }
    case RL_Q6_K: /* d last, so that the quant dwords keep 64-byte alignment */
        for (uint16_t o = 0; o < QK_K / 16; o += 4)
            n = add(u, n, offsetof(block_q6_K, scales) + o, 4);
        for (uint16_t h = 0; h < 2; h++)
            for (uint16_t o = 0; o < 32; o += 4) {
                n = add(u, n, offsetof(block_q6_K, ql) + 64 * h + o, 4);
                n = add(u, n, offsetof(block_q6_K, ql) + 64 * h + 32 + o, 4);
                n = add(u, n, offsetof(block_q6_K, qh) + 32 * h + o, 4);
            }
        n = add(u, n, offsetof(block_q6_K, d), 2);
        break;
    default:
        break;
    }
    return n;
}

bool rl_x16_supported(rl_dtype t) {
    rl_x16_unit u[RL_X16_MAX_UNITS];
    return rl_x16_units(t, u) > 0;
}

/* Moves one block group between the file layout (rows of `blk`, row_bytes
 * apart) and the x16 layout at x; `to_x16` gives the direction. */
static void move_block(const rl_x16_unit *u, int n, uint8_t *blk, size_t row_bytes, uint8_t *x, bool to_x16) {
    for (int k = 0; k < n; k++)
        for (int i = 0; i < ROWS; i++) {
            uint8_t *row = blk + (size_t)i * row_bytes + u[k].off, *il = x + u[k].pos + (size_t)i * u[k].size;
            memcpy(to_x16 ? il : row, to_x16 ? row : il, u[k].size);
        }
}

void rl_x16_interleave(rl_dtype t, const void *w, size_t row_bytes, uint32_t k0, uint32_t nblk, void *dst) {
    rl_x16_unit u[RL_X16_MAX_UNITS];
    const int n = rl_x16_units(t, u);
    const size_t bb = rl_dtype_block_bytes(t);
    for (uint32_t k = 0; k < nblk; k++)
        move_block(u, n, (uint8_t *)w + (size_t)(k0 + k) * bb, row_bytes, (uint8_t *)dst + (size_t)k * bb * ROWS, true);
}

void rl_x16_deinterleave(rl_dtype t, const void *src, uint32_t k0, uint32_t nblk, void *w, size_t row_bytes) {
    rl_x16_unit u[RL_X16_MAX_UNITS];
    const int n = rl_x16_units(t, u);
    const size_t bb = rl_dtype_block_bytes(t);
    for (uint32_t k = 0; k < nblk; k++)
        move_block(u, n, (uint8_t *)w + (size_t)(k0 + k) * bb, row_bytes, (uint8_t *)src + (size_t)k * bb * ROWS,
                   false);
}

int rl_x16_repack(rl_dtype t, void *w, size_t row_bytes, uint32_t g0, uint32_t g1) {
    uint8_t *tmp = malloc(row_bytes * ROWS);
    if (!tmp)
        return -1;
    const uint32_t nblk = (uint32_t)(row_bytes / rl_dtype_block_bytes(t));
    for (uint32_t g = g0; g < g1; g++) {
        uint8_t *group = (uint8_t *)w + (size_t)g * ROWS * row_bytes;
        rl_x16_interleave(t, group, row_bytes, 0, nblk, tmp);
        memcpy(group, tmp, row_bytes * ROWS);
    }
    free(tmp);
    return 0;
}
