/* The KV cache of one session over a contiguous range of layers.
 *
 * Full layers keep one entry per position up to n_ctx. Sliding layers keep a
 * ring buffer of C = min(W + RL_KV_SLACK, n_ctx) entries: the key of
 * position p lives in slot p % C, so their memory stops growing at C. The
 * slack beyond the window lets a rejected draft of up to RL_KV_SLACK ids be
 * taken back exactly (speculative decoding).
 *
 * Keys and values are stored in f32, f16 or q8_0, each chosen on its own (as
 * llama.cpp's -ctk / -ctv): f16 halves the memory of f32, q8_0 nearly quarters
 * it. f32 keeps the numerics the goldens were made with. The forward pass
 * converts a batch's new rows to the cache's types before any query reads
 * them, so a token sees the same bytes whether its keys came from the cache or
 * from its own batch: results do not depend on how a prompt was chunked, and
 * a cluster's split computation stays bit-identical to one process. */
#ifndef RELAIS_KV_H
#define RELAIS_KV_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "dtype.h"
#include "model.h"

typedef struct rl_kv rl_kv;

#define RL_KV_SLACK 16 /* slots a sliding ring keeps beyond its window */

/* The element types of the cached keys and values: RL_F32, RL_F16 or
 * RL_Q8_0 each. */
typedef struct {
    rl_dtype k, v;
} rl_kv_type;

#define RL_KV_TYPE_F32 ((rl_kv_type){RL_F32, RL_F32})
#define RL_KV_TYPE_DEFAULT ((rl_kv_type){RL_F16, RL_F16})

/* Parses "f32", "f16", "q8_0" (keys and values alike) or "K,V" (e.g.
 * "f16,q8_0": keys f16, values q8_0). 0, or -1 with err. */
int rl_kv_type_parse(const char *s, rl_kv_type *t, char *err, size_t errlen);
/* "f16", or "f16,q8_0" when the two differ, into buf; returns buf. */
const char *rl_kv_type_str(rl_kv_type t, char *buf, size_t n);
/* Whether t can cache this model: each type one of the three, and q8_0 only
 * when a head's row is whole 32-element blocks. 0, or -1 with err. */
int rl_kv_type_check(rl_kv_type t, const rl_hparams *hp, char *err, size_t errlen);
/* Bytes of one position's K and V over all layers (a full layer's share;
 * what a token costs until the sliding rings stop growing). */
uint64_t rl_kv_bytes_per_token(const rl_hparams *hp, rl_kv_type t);
/* "KV f16: 128.0 KiB per token, 512.0 MiB at context 4096" into buf (the
 * one wording of the startup lines, inspect and plan); returns buf. */
const char *rl_kv_describe(const rl_hparams *hp, rl_kv_type t, uint32_t n_ctx, char *buf, size_t n);
/* Bytes of KV cache in types t for layers [l0, l1) at n_ctx positions,
 * sliding layers counted at min(W + RL_KV_SLACK, n_ctx): what rl_kv_new allocates. */
uint64_t rl_kv_bytes_for(const rl_hparams *hp, uint32_t l0, uint32_t l1, uint32_t n_ctx, rl_kv_type t);

/* A cache for layers [l0, l1) of m at n_ctx positions in types t. NULL with
 * err on bad range, a type rl_kv_type_check refuses, or when memory cannot be
 * had. */
rl_kv *rl_kv_new(const rl_hparams *hp, uint32_t l0, uint32_t l1, uint32_t n_ctx, rl_kv_type t, char *err,
                 size_t errlen);
void rl_kv_destroy(rl_kv **kv); /* NULLs *kv: the session's "drop" */

uint32_t rl_kv_len(const rl_kv *kv); /* positions held: the next token's position */
uint32_t rl_kv_ctx(const rl_kv *kv);
void rl_kv_range(const rl_kv *kv, uint32_t *l0, uint32_t *l1);
size_t rl_kv_bytes(const rl_kv *kv); /* memory allocated */
rl_kv_type rl_kv_types(const rl_kv *kv);

/* Forgets positions >= pos. A sliding layer whose ring has already
 * overwritten keys that position `pos` would still need cannot go back
 * exactly; then the whole cache is cleared. Returns the length kept (pos, or
 * 0 when cleared), so the caller knows what it must feed again. The one way
 * positions are forgotten: a segment's rewind (rl_xseg.rewind,
 * Segment.rewind) does this where the cache lives. */
uint32_t rl_kv_truncate(rl_kv *kv, uint32_t pos);
/* Whether forgetting positions >= pos keeps everything the next query needs
 * (always, for up to RL_KV_SLACK + 1 positions back, and for pos 0). */
bool rl_kv_truncate_exact(const rl_kv *kv, uint32_t pos);
/* What rl_kv_truncate(kv, pos) keeps for a cache of every layer of hp at
 * n_ctx positions holding len: a pure function of the model's layout, so a
 * coordinator decides where a session's next segment starts after a rewind
 * without asking the nodes. A node's slice of the layers keeps at least as
 * much: a rewind the coordinator chose this way is never refused. */
uint32_t rl_kv_truncate_for(const rl_hparams *hp, uint32_t n_ctx, uint32_t len, uint32_t pos);

/* Benchmarks only: positions [0, len) (len <= the context) hold random keys
 * and values, uniform in [-1, 1) and stored in the cache's types, as if a
 * prompt of len tokens had been fed: decode at depth len is then timed
 * without a prefill that would take far longer than the decode itself. */
void rl_kv_fill_random(rl_kv *kv, uint32_t len, uint64_t seed);

/* Internal to the forward pass. rl_kv_head: KV head kvh's keys (value
 * false) or values in layer il (absolute index), a ring of its own: the row
 * of slot s (head_dim elements of the cache's type) is at the result + s *
 * *stride bytes, and position pos lives in slot pos % rl_kv_slots.
 * rl_kv_put: writes position pos's keys and values (n_head_kv head rows
 * each, one after another, in the cache's types) into their slots. */
const char *rl_kv_head(const rl_kv *kv, uint32_t il, uint32_t kvh, bool value, size_t *stride);
void rl_kv_put(rl_kv *kv, uint32_t il, uint32_t pos, const void *k, const void *v);
uint32_t rl_kv_span(const rl_kv *kv, uint32_t il);  /* positions a query sees back: n_ctx or W */
uint32_t rl_kv_slots(const rl_kv *kv, uint32_t il); /* slots of its ring: n_ctx, or W + RL_KV_SLACK */
void rl_kv_set_len(rl_kv *kv, uint32_t len);

#endif
