/* The 16-row interleaved weight layout ("x16") of the batched kernels.
 *
 * Packing a tile for the microkernel (quant.h) from the file's layout means
 * transposing 16 rows in registers for every block, every call; for a single
 * token that transposition costs more than the product itself. So at load the
 * weights are rearranged once, in place, group of 16 rows by group: for each
 * block index k, the k-th blocks of the 16 rows are stored together as a
 * sequence of units, a unit being 4 bytes (or a 2-byte scale) of the block
 * taken from all 16 rows side by side (64 or 32 bytes). A group keeps exactly
 * its byte range (16 x row_bytes), so nothing is copied beside the weights,
 * and a tile is packed from it with plain vector loads and bit operations.
 *
 * The units come in the order the packing code reads them, so that it reads
 * each group front to back: the hardware prefetchers follow a linear stream,
 * and on a 2-core Zen 5 that alone triples the speed at which a Q6_K group
 * is consumed.
 *
 * A weight whose row count is not a multiple of 16 keeps its last rows in the
 * file's layout. */
#ifndef RELAIS_X16_H
#define RELAIS_X16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dtype.h"

/* Whether type t has an x16 layout (the types with a batched kernel). */
bool rl_x16_supported(rl_dtype t);

/* The units of a block of type t, in x16 order: n of them (0 when t is not
 * supported). Unit u covers bytes [off, off + size) of each row's block and
 * sits at byte pos of the block group, its 16 rows size bytes apart. */
#define RL_X16_MAX_UNITS 56
typedef struct {
    uint16_t off, pos;
    uint8_t size;
} rl_x16_unit;
int rl_x16_units(rl_dtype t, rl_x16_unit u[RL_X16_MAX_UNITS]);

/* Blocks [k0, k0 + nblk) of 16 rows (row_bytes apart, file layout) written
 * to dst in the x16 layout: nblk groups of 16 x block bytes. */
void rl_x16_interleave(rl_dtype t, const void *w, size_t row_bytes, uint32_t k0, uint32_t nblk, void *dst);
/* The inverse: nblk x16 block groups back to blocks [k0, k0 + nblk) of 16
 * rows in the file's layout. */
void rl_x16_deinterleave(rl_dtype t, const void *src, uint32_t k0, uint32_t nblk, void *w, size_t row_bytes);

/* Rearranges every full group of 16 rows of a weight (rows x row_bytes at w,
 * writable) into the x16 layout, in place; the rows beyond the last full
 * group stay as they are. Groups [g0, g1) only, so threads can share the work.
 * -1 when scratch memory (16 rows) cannot be had. */
int rl_x16_repack(rl_dtype t, void *w, size_t row_bytes, uint32_t g0, uint32_t g1);

#endif
