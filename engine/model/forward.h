/* The forward pass, in the three parts a pipeline stage needs:
 *   (a) rl_embed:          token ids -> activations
 *   (b) rl_forward_layers: layers [l0, l1) of the model over a batch of one
 *                          session's tokens at consecutive positions, updating
 *                          that range's KV cache
 *   (c) rl_head:           final norm and output head -> logits (sampling is
 *                          sampler.h)
 * One process runs (a), (b) over all layers, then (c). A cluster node runs
 * (b) on its slice, the last one also (c).
 *
 * A batch of more than one token is prefill: each weight matrix multiplies the
 * whole chunk at once (OpenBLAS sgemm over dequantized weight tiles once the
 * chunk reaches the GEMM threshold). Decode (one token) uses the quantized
 * matrix-vector kernels. */
#ifndef RELAIS_FORWARD_H
#define RELAIS_FORWARD_H

#include <stddef.h>
#include <stdint.h>
#include "kv.h"
#include "model.h"

typedef struct rl_ctx rl_ctx;

/* Scratch buffers for batches of up to max_batch tokens and a persistent pool
 * of n_threads workers (n_threads <= 0: one per core). */
rl_ctx *rl_ctx_new(const rl_model *m, int n_threads, uint32_t max_batch, char *err, size_t errlen);
void rl_ctx_destroy(rl_ctx **c); /* NULLs *c */
int rl_ctx_threads(const rl_ctx *c);
uint32_t rl_ctx_max_batch(const rl_ctx *c);
/* Chunks of at least this many tokens use sgemm (default RL_GEMM_MIN_DEFAULT;
 * 0 = never). Shorter chunks compute each token as it would be computed
 * alone, which a replay on a cluster relies on (coordinator/cluster/cluster_recover.c). */
#define RL_GEMM_MIN_DEFAULT 16
/* The threshold that --no-gemm and --gemm-min N (0: the default) ask for;
 * the nodes and a coordinator replaying on them must agree on it. */
uint32_t rl_gemm_min_for(bool no_gemm, uint32_t gemm_min);
void rl_ctx_set_gemm_min(rl_ctx *c, uint32_t n);
uint32_t rl_ctx_gemm_min(const rl_ctx *c);

/* (a) x (n, dim) = rows of token_embd. -1 with err for an id out of range. */
int rl_embed(const rl_model *m, const int32_t *ids, uint32_t n, float *x, char *err, size_t errlen);

/* (b) x (n, dim) in/out through the layers of kv's range, for positions
 * pos0..pos0+n-1; pos0 must equal rl_kv_len(kv) and pos0+n fit the context.
 * n may exceed max_batch: the batch is processed in max_batch chunks. */
int rl_forward_layers(rl_ctx *c, rl_kv *kv, float *x, uint32_t n, uint32_t pos0, char *err, size_t errlen);

/* (b) for several sessions at once, as the serving scheduler batches them:
 * the segments' tokens are consecutive rows of x, segment after segment. One
 * matrix product per weight serves all of them; each segment attends over
 * its own session's cache. The total must not exceed max_batch, and a cache
 * may appear in only one segment. */
typedef struct {
    rl_kv *kv;     /* the session's cache over this model instance's range */
    uint32_t pos0; /* position of the segment's first token: rl_kv_len(kv) */
    uint32_t n;    /* tokens (rows of x) */
} rl_segment;

int rl_forward_batch(rl_ctx *c, const rl_segment *segs, uint32_t n_segs, float *x, char *err, size_t errlen);

/* (c) logits (n_vocab) of the activation row x (dim). */
int rl_head(rl_ctx *c, const float *x, float *logits, char *err, size_t errlen);
/* (c) for n rows at once (n <= max_batch): logits (n, n_vocab). */
int rl_head_rows(rl_ctx *c, const float *x, uint32_t n, float *logits, char *err, size_t errlen);

#endif
