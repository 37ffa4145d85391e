/* The session table of a node (see node_session.h): a small array searched
 * linearly, since a node serves a handful of sessions at most. */
#include "node_session.h"

#include <stdio.h>
#include <stdlib.h>

struct node_sessions {
    const rl_hparams *hp; /* the model's shape (not owned) */
    uint32_t l0, l1;      /* the node's layers */
    rl_kv_type kv_type;   /* of every session's cache */
    uint32_t max;         /* capacity: Assign.max_sessions */
    uint32_t n;           /* sessions in use: slots [0, n) */
    node_session *slots;  /* (max) */
};

node_sessions *node_sessions_new(uint32_t max, const rl_hparams *hp, uint32_t l0, uint32_t l1, rl_kv_type kv_type) {
    node_sessions *s = calloc(1, sizeof *s);
    if (!s || !(s->slots = calloc(max, sizeof *s->slots))) {
        free(s);
        return NULL;
    }
    s->hp = hp, s->l0 = l0, s->l1 = l1, s->max = max, s->kv_type = kv_type;
    return s;
}

static void release(node_session *ss) {
    rl_kv_destroy(&ss->kv);
    rl_sampler_destroy(&ss->sampler);
}

void node_sessions_clear(node_sessions *s) {
    for (uint32_t i = 0; i < s->n; i++)
        release(&s->slots[i]);
    s->n = 0;
}

void node_sessions_destroy(node_sessions **ps) {
    node_sessions *s = ps ? *ps : NULL;
    if (!s)
        return;
    node_sessions_clear(s);
    free(s->slots);
    free(s);
    *ps = NULL;
}

node_session *node_sessions_find(node_sessions *s, uint64_t id) {
    for (uint32_t i = 0; i < s->n; i++)
        if (s->slots[i].id == id)
            return &s->slots[i];
    return NULL;
}

node_session *node_sessions_create(node_sessions *s, uint64_t id, uint32_t n_ctx, Relais__ErrorCode *code, char *err,
                                   size_t errlen) {
    *code = RELAIS__ERROR_CODE__ERR_MEMORY;
    if (s->n == s->max) {
        snprintf(err, errlen, "all %u sessions of this assignment are in use (drop one first)", s->max);
        return NULL;
    }
    node_session *ss = &s->slots[s->n];
    char kerr[256];
    if (!(ss->kv = rl_kv_new(s->hp, s->l0, s->l1, n_ctx, s->kv_type, kerr, sizeof kerr))) {
        snprintf(err, errlen, "KV cache for session %llu: %s", (unsigned long long)id, kerr);
        return NULL;
    }
    ss->id = id;
    ss->sampler = NULL;
    ss->stream = 0;
    s->n++;
    *code = RELAIS__ERROR_CODE__ERR_NONE;
    return ss;
}

void node_sessions_drop(node_sessions *s, uint64_t id) {
    node_session *ss = node_sessions_find(s, id);
    if (!ss)
        return;
    release(ss);
    *ss = s->slots[--s->n]; /* the last slot fills the hole */
}

uint32_t node_sessions_count(const node_sessions *s) { return s->n; }
