/* The prompt cache (see prompt_cache.h): a list of entries, most recently
 * used first, searched linearly (a server holds a handful of sessions). */
#include "prompt_cache.h"

#include <stdlib.h>

typedef struct entry {
    uint64_t xid; /* the executor's session */
    int32_t *ids; /* (n) the ids it was fed, by position */
    uint32_t n;
    uint32_t held;  /* positions the executor holds (>= n) */
    uint64_t bytes; /* KV of its n positions */
    struct entry *next;
} entry;

struct rl_pcache {
    rl_executor *x; /* borrowed */
    rl_hparams hp;  /* a copy: a cluster's re-plan reloads its model */
    rl_kv_type kv;
    uint64_t budget;
    entry *head; /* most recently used first */
    rl_pcache_stats st;
};

rl_pcache *rl_pcache_new(rl_executor *x, const rl_hparams *hp, rl_kv_type kv, uint64_t budget) {
    rl_pcache *c = calloc(1, sizeof *c);
    if (c)
        c->x = x, c->hp = *hp, c->kv = kv, c->budget = budget;
    return c;
}

/* Unlinks *p and frees it; its session is dropped when `drop`. */
static void remove_at(rl_pcache *c, entry **p, bool drop) {
    entry *e = *p;
    *p = e->next;
    c->st.sessions--;
    c->st.bytes -= e->bytes;
    if (drop)
        c->x->ops->drop(c->x, e->xid);
    free(e->ids);
    free(e);
}

void rl_pcache_destroy(rl_pcache **pc) {
    rl_pcache *c = pc ? *pc : NULL;
    if (!c)
        return;
    while (c->head)
        remove_at(c, &c->head, true);
    free(c);
    *pc = NULL;
}

bool rl_pcache_evict_oldest(rl_pcache *c) {
    if (!c->head)
        return false;
    entry **p = &c->head;
    while ((*p)->next)
        p = &(*p)->next;
    remove_at(c, p, true);
    c->st.evictions++;
    return true;
}

void rl_pcache_put(rl_pcache *c, uint64_t xid, int32_t *ids, uint32_t n, uint32_t held) {
    entry *e = malloc(sizeof *e);
    if (!e) { /* not kept: the session goes as it would without a cache */
        c->x->ops->drop(c->x, xid);
        free(ids);
        return;
    }
    *e = (entry){xid, ids, n, held, rl_kv_bytes_for(&c->hp, 0, c->hp.n_layer, n, c->kv), c->head};
    c->head = e;
    c->st.sessions++;
    c->st.bytes += e->bytes;
    while (c->st.bytes > c->budget && rl_pcache_evict_oldest(c))
        ;
}

static uint32_t common_prefix(const int32_t *a, uint32_t na, const int32_t *b, uint32_t nb) {
    uint32_t i = 0;
    while (i < na && i < nb && a[i] == b[i])
        i++;
    return i;
}

/* The link to the entry a prompt would take (NULL: none), *len its shared length. */
static entry **best_of(rl_pcache *c, const int32_t *prompt, uint32_t n, uint32_t *len) {
    entry **best = NULL;
    *len = 0;
    for (entry **p = &c->head; *p; p = &(*p)->next) {
        uint32_t m = common_prefix((*p)->ids, (*p)->n, prompt, n);
        if (m > *len && 2 * (uint64_t)m >= (*p)->n)
            best = p, *len = m;
    }
    return best;
}

bool rl_pcache_take(rl_pcache *c, const int32_t *prompt, uint32_t n, uint64_t *xid, uint32_t *shared, uint32_t *held) {
    uint32_t best_len;
    entry **best = best_of(c, prompt, n, &best_len);
    if (!best)
        return false;
    *xid = (*best)->xid;
    *shared = best_len;
    *held = (*best)->held;
    remove_at(c, best, false);
    return true;
}

void rl_pcache_count_hit(rl_pcache *c, uint32_t reused) {
    c->st.hits++;
    c->st.tokens += reused;
}

void rl_pcache_stats_get(const rl_pcache *c, rl_pcache_stats *out) { *out = c->st; }
