/* The sessions a node serves: per session id, the KV cache of the node's
 * own layers and, on the stage that runs the head, the sampler. A session
 * starts with a Forward at position 0 and ends with Forward.drop_sessions
 * or a new assignment; their number is bounded by Assign.max_sessions. */
#ifndef RELAIS_NODE_SESSION_H
#define RELAIS_NODE_SESSION_H

#include <stdint.h>
#include "kv.h"
#include "relais.pb-c.h"
#include "sampler.h"

typedef struct {
    uint64_t id;
    rl_kv *kv;           /* this node's layers only */
    rl_sampler *sampler; /* head stage: made from the Sampling of the current stream; else NULL */
    uint32_t stream;     /* Sampling.stream the sampler was made for */
} node_session;

typedef struct node_sessions node_sessions;

/* Room for up to max sessions of layers [l0, l1) of the model hp (not
 * copied: it must outlive the table), caching K and V in kv_type. NULL when
 * out of memory. */
node_sessions *node_sessions_new(uint32_t max, const rl_hparams *hp, uint32_t l0, uint32_t l1, rl_kv_type kv_type);
void node_sessions_destroy(node_sessions **s); /* NULLs *s; frees every session */

node_session *node_sessions_find(node_sessions *s, uint64_t id);
/* A new session with a cache of n_ctx positions. NULL with ERR_MEMORY and
 * err when the table is full or the cache cannot be allocated. */
node_session *node_sessions_create(node_sessions *s, uint64_t id, uint32_t n_ctx, Relais__ErrorCode *code, char *err,
                                   size_t errlen);
void node_sessions_drop(node_sessions *s, uint64_t id); /* no-op for an unknown id */
void node_sessions_clear(node_sessions *s);             /* drops them all */
uint32_t node_sessions_count(const node_sessions *s);

#endif
