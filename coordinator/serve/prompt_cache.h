/* The prompt cache of the server: finished sessions that keep their KV
 * where the executor holds it (this process, or every node of a cluster), so
 * that the next turn of a conversation feeds only what is new.
 *
 * An entry is an executor session and the ids it was fed, by position. A new
 * request takes the entry sharing the longest prefix with its prompt (at
 * least half of what the entry holds, so that a few shared tokens, such as a
 * system prompt, do not cost another conversation its history); the
 * scheduler then feeds the rest, its first segment forgetting what the
 * session held past that prefix (rl_xseg.rewind).
 * Entries are kept in least-recently-used order within a budget of KV bytes
 * (the bytes of the positions each holds, in the cache's type, sliding
 * layers counted up to their window); the oldest are dropped first.
 *
 * Cached sessions live in free session slots: the scheduler evicts the
 * oldest when a request needs its slot, so the executor never holds more
 * sessions than the start-up memory check counted.
 *
 * Scheduler thread only: no locks. */
#ifndef RELAIS_PROMPT_CACHE_H
#define RELAIS_PROMPT_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include "executor.h"

typedef struct rl_pcache rl_pcache;

typedef struct {
    uint64_t hits;      /* requests that reused a cached session */
    uint64_t tokens;    /* prompt positions they did not feed again */
    uint64_t evictions; /* entries dropped for the budget or a slot */
    uint32_t sessions;  /* entries now */
    uint64_t bytes;     /* their KV bytes */
} rl_pcache_stats;

/* A cache of at most budget bytes of KV of model hp (copied) in types kv,
 * whose sessions live on x (borrowed). NULL out of memory. */
rl_pcache *rl_pcache_new(rl_executor *x, const rl_hparams *hp, rl_kv_type kv, uint64_t budget);
/* Drops every entry's session on the executor and frees the cache; NULLs *c. */
void rl_pcache_destroy(rl_pcache **c);

/* Keeps session xid, fed ids[0, n) (ids owned by the cache from now on) and
 * holding held >= n positions (more when a rejected draft's are still to be
 * forgotten), as the most recent entry; older ones are evicted while over
 * the budget (this one too, when it alone exceeds it). */
void rl_pcache_put(rl_pcache *c, uint64_t xid, int32_t *ids, uint32_t n, uint32_t held);

/* The entry sharing the longest prefix with prompt[0, n), if it shares at
 * least half of what it holds: removed from the cache, its session goes to
 * *xid, the shared length to *shared and the positions it holds to *held.
 * false when none qualifies. */
bool rl_pcache_take(rl_pcache *c, const int32_t *prompt, uint32_t n, uint64_t *xid, uint32_t *shared, uint32_t *held);

/* Counts a take whose session was kept up to `reused` positions. */
void rl_pcache_count_hit(rl_pcache *c, uint32_t reused);

/* Drops the least recently used entry's session; false when it is empty. */
bool rl_pcache_evict_oldest(rl_pcache *c);

void rl_pcache_stats_get(const rl_pcache *c, rl_pcache_stats *out);

#endif
