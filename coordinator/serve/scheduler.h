/* Continuous batching for the server: many generation requests in flight
 * through one executor (executor.h).
 *
 * A request starts at once when a session slot is free (at most
 * max_sessions hold a cache), else waits in a bounded queue; beyond that it
 * is refused. Every step the scheduler thread forms a micro-batch of up to
 * max_batch tokens from the active sessions: first one decode token of each
 * session that has one ready, then chunks of prompts in what room is left,
 * so a long prompt is prefilled piece by piece between the other sessions'
 * decode steps instead of freezing them. It keeps up to the executor's depth
 * micro-batches outstanding, so with S pipeline stages S are in flight.
 *
 * A request's tokens reach its sink on the scheduler thread; the sink ends
 * the request early by returning false (a stop string matched). A finished,
 * cancelled (client gone) or failed session has its cache freed where the
 * executor keeps it. Output does not depend on the load: the executor's
 * per-row results do not depend on the batch, sampling is per session with
 * its own seeded generator, and the penalties see only the session's ids.
 *
 * With a draft source (rl_sched_opts.draft, draft.h), a session's decode
 * segment carries the draft's guesses behind its last id and verifies them
 * (executor.h rl_xseg.verify): the ids the target's own samples equal are
 * accepted with its id after them, the rest dropped from the cache with the
 * session's next segment (rl_xseg.rewind). Drafted ids take at most a
 * quarter of a micro-batch, after one decode token for each session, so
 * speculation never pushes out another session's decode token or starves
 * prefill; a request may opt out (rl_sched_req.no_draft).
 *
 * With a prompt cache (cache_mem > 0, prompt_cache.h) a session that ends
 * with STOP or LENGTH keeps its KV in its slot instead; a new request takes
 * the cached session sharing the longest prefix with its prompt and feeds
 * only the rest, at least its last prompt token so that an id is sampled;
 * its first segment forgets what the session held past that prefix
 * (rl_xseg.rewind), or everything, fed again from 0, when a sliding window
 * cannot go back that far (rl_kv_truncate_for). Its ids are those it gets
 * without the cache: a position's keys and values do not depend on how they
 * were batched, nor on which request computed them. */
#ifndef RELAIS_SCHEDULER_H
#define RELAIS_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>
#include "executor.h"
#include "prompt_cache.h"
#include "json_grammar.h"
#include "sampler.h"
#include "tokenizer.h"

typedef enum {
    RL_FINISH_STOP,      /* end-of-generation token, or the sink asked to stop */
    RL_FINISH_LENGTH,    /* max_tokens reached */
    RL_FINISH_CANCELLED, /* rl_sched_cancel, or the scheduler shut down */
    RL_FINISH_ERROR      /* the executor failed a micro-batch holding the session */
} rl_finish;

typedef struct {
    /* Each generated id but the end-of-generation one, in order, with its
     * top logits when the request asked for some (else top is NULL).
     * Returns false to end the request (finish STOP). */
    bool (*on_token)(void *ud, int32_t id, const rl_top *top);
    /* Called exactly once, last; err is a message for RL_FINISH_ERROR and
     * CANCELLED by shutdown, else NULL. The scheduler never touches ud after. */
    void (*on_done)(void *ud, rl_finish why, const char *err);
    void *ud;
    /* Optional: once, before any token, the prompt positions taken from the
     * prompt cache (0 when none). */
    void (*on_cached)(void *ud, uint32_t n);
} rl_sched_sink;

typedef struct {
    const int32_t *prompt; /* copied by submit */
    uint32_t n_prompt;     /* >= 1 */
    uint32_t max_tokens;   /* >= 1; n_prompt + max_tokens <= the scheduler's n_ctx */
    rl_sampler_params sampling;
    uint32_t n_top; /* top logits reported with each id (<= RL_MAX_TOP; 0: none) */
    rl_sched_sink sink;
    bool no_draft; /* one id per pass even when the scheduler has a draft ("speculative": false) */
    /* The output is one JSON object (response_format json_object): each
     * sample is masked to the grammar (json_grammar.h) and the request ends
     * (STOP) when the object is complete. The vocabulary's bytes, borrowed
     * (it outlives the scheduler); NULL: unconstrained. */
    const rl_jg_vocab *json;
    const rl_js *schema; /* with json: the object follows this schema (borrowed until on_done); NULL: any */
} rl_sched_req;

typedef struct {
    uint32_t max_sessions;  /* sessions holding a cache at once */
    uint32_t max_queue;     /* requests waiting beyond the slots; more are refused */
    uint32_t n_ctx;         /* most positions of one session */
    uint32_t prefill_chunk; /* most prompt tokens of one session per micro-batch; 0 = max_batch */
    struct rl_draft *draft; /* borrowed; NULL: no speculation. Called on the scheduler thread only */
    uint32_t draft_max;     /* most ids drafted per session and pass (adaptive below it) */
    uint64_t cache_mem;     /* KV bytes finished sessions may keep for reuse; 0: no prompt cache */
    const rl_hparams *hp;   /* the model's shape (copied) and */
    rl_kv_type kv_type;     /* ... its KV type: what a cached position costs (read when cache_mem) */
} rl_sched_opts;

typedef struct {
    uint32_t active;        /* sessions holding a slot */
    uint32_t queued;        /* waiting for one */
    uint64_t batches;       /* micro-batches completed */
    uint64_t batch_tokens;  /* tokens in them */
    uint64_t prompt_tokens; /* prompt tokens fed */
    uint64_t generated;     /* ids sampled */
    uint64_t drafted;       /* ids drafted and verified */
    uint64_t accepted;      /* of which accepted */
    rl_pcache_stats cache;  /* the prompt cache's (zero without one) */
} rl_sched_stats;

typedef struct rl_sched rl_sched;

/* Starts the scheduler thread over x (borrowed; it must outlive the
 * scheduler). tok tells the end-of-generation ids. NULL with err. */
rl_sched *rl_sched_new(rl_executor *x, const rl_tokenizer *tok, const rl_sched_opts *o, char *err, size_t errlen);
/* Finishes every request (CANCELLED, "server shutting down"), refuses new
 * ones, stops the thread. Idempotent. After it returns no sink is called. */
void rl_sched_shutdown(rl_sched *s);
void rl_sched_destroy(rl_sched **s); /* shuts down if needed; NULLs *s */

enum { RL_SCHED_OK = 0, RL_SCHED_EINVAL = -1, RL_SCHED_EFULL = -2, RL_SCHED_ESTOPPED = -3 };

/* Queues a request; its id goes to *id. RL_SCHED_EFULL when the queue is
 * full, RL_SCHED_ESTOPPED after shutdown, RL_SCHED_EINVAL for an empty
 * prompt or one that with max_tokens exceeds n_ctx. On any error the sink is
 * never called. */
int rl_sched_submit(rl_sched *s, const rl_sched_req *r, uint64_t *id);
/* Ends a request (finish CANCELLED) and frees its cache; unknown or
 * finished ids are ignored. Any thread. */
void rl_sched_cancel(rl_sched *s, uint64_t id);
void rl_sched_stats_get(rl_sched *s, rl_sched_stats *out);

#endif
