/* Matrix products of the forward pass: y (n, rows) = x (n, cols) · Wᵀ for a
 * weight W (rows, cols) of any supported type, split across the thread pool.
 *
 * Three paths, chosen by batch size:
 *  - one token (decode): the activation row is quantized once to the
 *    weight's dot type and each weight row is dotted with it by the integer
 *    block kernels — a single streaming pass over the weights;
 *  - several tokens (prefill, or decode tokens of several sessions): the
 *    activations are quantized to Q8_0 once, and each tile of 16 weight rows
 *    is repacked into cache and multiplied with all the tokens by the
 *    register-tiled integer microkernel (quant.h, "batched products"); up
 *    to the kernel set's qg_gemv_max tokens (a draft being verified, a few
 *    sessions' decode tokens) the same products read the rearranged weights
 *    directly, with no tile;
 *  - weights without a packed format (f32, f16, bf16), and quantized ones at
 *    batches past a crossover, when the caller allows it: tiles of weight
 *    rows are dequantized to f32 and multiplied with OpenBLAS sgemm. */
#ifndef RELAIS_MATMUL_H
#define RELAIS_MATMUL_H

#include <stdbool.h>
#include <stdint.h>
#include "model.h"
#include "threadpool.h"

typedef struct rl_matmul rl_matmul;

/* Scratch for inputs of up to max_cols and batches of up to max_batch rows. */
rl_matmul *rl_matmul_new(rl_pool *pool, uint32_t max_cols, uint32_t max_batch);
void rl_matmul_destroy(rl_matmul **mm); /* NULLs *mm; does not own the pool */

/* y (n, w->rows) = x (n, w->cols) · wᵀ. gemm allows the sgemm path (for
 * float weights, and quantized ones from the sgemm crossover on); without it
 * only the quantized kernels run. */
void rl_matmul_run(rl_matmul *mm, const rl_weight *w, const float *x, uint32_t n, float *y, bool gemm);

/* Batches of at least qgemm_min tokens use the packed integer kernel, and of
 * at least sgemm_min (when allowed) sgemm; UINT32_MAX turns a path off. The
 * defaults are the measured crossovers; tests and benchmarks force paths. */
void rl_matmul_set_batch_paths(rl_matmul *mm, uint32_t qgemm_min, uint32_t sgemm_min);

#endif
