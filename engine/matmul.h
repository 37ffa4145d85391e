/* Matrix products of the forward pass: y (n, rows) = x (n, cols) · Wᵀ for a
 * weight W (rows, cols) of any supported type, split across the thread pool.
 *
 * Small batches (decode) quantize each activation row once to the weight's
 * dot type and run the integer block kernels, each weight row read once for
 * all the tokens. Large batches (prefill) dequantize tiles of weight rows to
 * f32 and multiply them with OpenBLAS sgemm, which is arithmetic-bound and so
 * gains from the float units that the memory-bound decode path leaves idle. */
#ifndef RELAIS_MATMUL_H
#define RELAIS_MATMUL_H

#include <stdbool.h>
#include <stdint.h>
#include "model.h"
#include "threadpool.h"

typedef struct rl_matmul rl_matmul;

/* Scratch for inputs of up to max_cols and batches of up to max_batch rows. */
rl_matmul *rl_matmul_new(rl_pool *pool, uint32_t max_cols, uint32_t max_batch);
void rl_matmul_destroy(rl_matmul **mm);   /* NULLs *mm; does not own the pool */

/* y (n, w->rows) = x (n, w->cols) · wᵀ; gemm selects the sgemm path. */
void rl_matmul_run(rl_matmul *mm, const rl_weight *w, const float *x, uint32_t n, float *y, bool gemm);

#endif
