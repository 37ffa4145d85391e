/* The KV cache of one session over a contiguous range of layers.
 *
 * Full layers keep one entry per position up to n_ctx. Sliding layers keep a
 * ring buffer of min(W, n_ctx) entries: the key of position p lives in slot
 * p % W, so their memory stops growing at W. K and V are kept in f32 so the
 * cluster's split computation is bit-identical to one process. */
#ifndef RELAIS_KV_H
#define RELAIS_KV_H

#include <stdint.h>
#include <stddef.h>
#include "model.h"

typedef struct rl_kv rl_kv;

/* A cache for layers [l0, l1) of m at n_ctx positions. NULL with err on bad
 * range or when memory cannot be had. */
rl_kv *rl_kv_new(const rl_hparams *hp, uint32_t l0, uint32_t l1, uint32_t n_ctx, char *err, size_t errlen);
void rl_kv_destroy(rl_kv **kv);   /* NULLs *kv: the session's "drop" */

uint32_t rl_kv_len(const rl_kv *kv);      /* positions held: the next token's position */
uint32_t rl_kv_ctx(const rl_kv *kv);
void rl_kv_range(const rl_kv *kv, uint32_t *l0, uint32_t *l1);
size_t rl_kv_bytes(const rl_kv *kv);      /* memory allocated */

/* Forgets positions >= pos. A sliding layer whose ring has already
 * overwritten keys that position `pos` would still need cannot go back
 * exactly; then the whole cache is cleared. Returns the length kept (pos, or
 * 0 when cleared), so the caller knows what it must feed again. */
uint32_t rl_kv_truncate(rl_kv *kv, uint32_t pos);

/* Internal to the forward pass: the K and V rows (n_head_kv * head_dim f32)
 * of layer il (absolute index) for position pos, and the slot capacity. */
float *rl_kv_k(rl_kv *kv, uint32_t il, uint32_t pos);
float *rl_kv_v(rl_kv *kv, uint32_t il, uint32_t pos);
uint32_t rl_kv_span(const rl_kv *kv, uint32_t il);   /* positions a query sees back: n_ctx or W */
void rl_kv_set_len(rl_kv *kv, uint32_t len);

#endif
