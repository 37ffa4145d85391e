/* Continuous batching (see scheduler.h).
 *
 * One thread owns every session's progress; other threads only queue
 * requests, set cancel flags and read counters, all under `lock`. The lock
 * is never held while the executor runs or a sink is called, so a sink may
 * take its own locks and a slow micro-batch never blocks a new request. */
#include "scheduler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "draft.h"

typedef struct sess {
    uint64_t id;     /* the request's */
    uint64_t xid;    /* the executor's session: id, or a cached session's */
    bool bound;      /* xid chosen (bind, after admission) */
    int32_t *tokens; /* prompt, then the generated ids (n_prompt + max_tokens) */
    uint32_t n_prompt;
    uint32_t max_tokens;
    uint32_t n_gen;        /* ids generated */
    uint32_t n_sent;       /* positions handed to the executor */
    uint32_t in_flight;    /* outstanding micro-batches holding the session */
    bool awaiting;         /* a sampling segment is outstanding */
    bool has_next;         /* the last generated id still has to be fed */
    bool created;          /* the executor has seen the session */
    bool cancel;           /* asked by rl_sched_cancel (under lock) */
    bool finished;         /* ends as soon as in_flight drops to 0 */
    bool spec;             /* drafts (the scheduler has a draft, the request did not opt out) */
    uint32_t n_held;       /* positions the executor holds: n_sent, or more until the next segment rewinds */
    uint32_t k;            /* ids to draft next (adaptive, <= draft_max) */
    uint32_t n_draft;      /* ids drafted in the outstanding decode segment */
    rl_finish why;         /* how it finished */
    char err[RL_XERR_LEN]; /* message for ERROR */

    rl_qdist draft_q[RL_DRAFT_MAX]; /* a sampled draft's distributions (draft_q[0].n 0: a deterministic one) */
    rl_rng draft_rng;               /* the draws of a sampled draft: this request's own stream */

    rl_sampler_params sampling;
    uint32_t n_top; /* top logits asked with each sample */
    rl_sched_sink sink;
    const rl_jg_vocab *json; /* constrained to a JSON object (rl_sched_req.json) */
    rl_jg jg;                /* the grammar's state after the generated ids */
    uint8_t *mask;           /* (vocab/8) the ids the next sample may take */
    bool mask_due;           /* a segment formed holds mask: fill_masks computes it before the submit */
    struct sess *next;       /* in the queue or the active list */
} sess;

/* What the scheduler remembers of an outstanding micro-batch. */
typedef struct {
    uint64_t batch;
    uint32_t n; /* segments */
    uint32_t tokens;
    uint64_t *sessions; /* (max_batch) session of each segment */
    uint32_t *first;    /* (max_batch) its first row */
} flight;

struct rl_sched {
    rl_executor *x;          /* borrowed */
    const rl_tokenizer *tok; /* borrowed: end-of-generation ids */
    rl_sched_opts o;
    pthread_t thread;
    bool started;         /* thread running (joined by shutdown) */
    pthread_mutex_t lock; /* guards queue, active, cancel flags, counters, stopping */
    pthread_cond_t wake;  /* new request, cancel or shutdown */
    bool stopping;
    sess *queue, *queue_tail; /* waiting for a slot, in arrival order */
    sess *active;             /* holding a slot */
    uint32_t n_queued, n_active;
    uint64_t next_id;
    rl_sched_stats stats; /* counters (active/queued filled on read) */
    /* scheduler-thread only */
    flight *flights; /* (depth) ring of outstanding micro-batches */
    uint32_t f_head, f_count;
    rl_xseg *segs; /* (max_batch) the micro-batch being formed */
    uint64_t next_batch;
    uint32_t rr;      /* rotates which session is served first */
    rl_pcache *cache; /* finished sessions kept for reuse; NULL without */
};

static void sess_free(sess *s) {
    if (s) {
        free(s->tokens);
        free(s->mask);
        free(s);
    }
}

/* ---- finishing ---- */

/* Publishes the prompt cache's counters (scheduler thread, without the lock). */
static void sync_cache_stats(rl_sched *s) {
    if (s->cache) {
        pthread_mutex_lock(&s->lock);
        rl_pcache_stats_get(s->cache, &s->stats.cache);
        pthread_mutex_unlock(&s->lock);
    }
}

/* Calls the sink's on_done, frees the session and the executor's state,
 * or keeps that in the prompt cache when the session ended well (its
 * positions [0, n_sent) all computed: nothing is in flight). The session
 * must already be off every list. */
static void finalize(rl_sched *s, sess *q) {
    if (q->created && s->cache && (q->why == RL_FINISH_STOP || q->why == RL_FINISH_LENGTH)) {
        rl_pcache_put(s->cache, q->xid, q->tokens, q->n_sent, q->n_held);
        q->tokens = NULL;
        sync_cache_stats(s); /* before the client hears of the end */
    } else if (q->created) {
        s->x->ops->drop(s->x, q->xid);
    }
    q->sink.on_done(q->sink.ud, q->why, q->err[0] ? q->err : NULL);
    sess_free(q);
}

static void finish(sess *q, rl_finish why, const char *err) {
    if (q->finished)
        return;
    q->finished = true;
    q->why = why;
    if (err)
        snprintf(q->err, sizeof q->err, "%s", err);
}

/* Moves finished, idle sessions off the active list into *out (under lock). */
static void collect_done(rl_sched *s, sess **out) {
    const char *why = s->stopping ? "server shutting down" : NULL;
    for (sess **p = &s->active; *p;) {
        sess *q = *p;
        if (q->cancel)
            finish(q, RL_FINISH_CANCELLED, why);
        if (q->finished && q->in_flight == 0) {
            *p = q->next;
            q->next = *out;
            *out = q;
            s->n_active--;
        } else {
            p = &q->next;
        }
    }
    for (sess **p = &s->queue; *p;) {
        sess *q = *p;
        if (q->cancel) {
            *p = q->next;
            finish(q, RL_FINISH_CANCELLED, why);
            q->next = *out;
            *out = q;
            s->n_queued--;
        } else {
            p = &q->next;
        }
    }
    s->queue_tail = NULL;
    for (sess *q = s->queue; q; q = q->next)
        s->queue_tail = q;
}

static void finalize_list(rl_sched *s, sess *list) {
    while (list) {
        sess *q = list;
        list = q->next;
        finalize(s, q);
    }
}

/* Admits queued requests while slots are free (under lock). */
static void admit(rl_sched *s) {
    while (s->queue && s->n_active < s->o.max_sessions) {
        sess *q = s->queue;
        s->queue = q->next;
        if (!s->queue)
            s->queue_tail = NULL;
        s->n_queued--;
        q->next = s->active;
        s->active = q;
        s->n_active++;
    }
}

/* ---- forming a micro-batch ---- */

/* The active session whose executor session is xid. */
static sess *find_active(rl_sched *s, uint64_t xid) {
    for (sess *q = s->active; q; q = q->next)
        if (q->xid == xid)
            return q;
    return NULL;
}

/* count tokens of q from n_sent; with draft > 0, the last id and the draft's
 * guesses behind it (at tokens[n_sent + 1..]), verified. */
static void add_segment(rl_sched *s, uint32_t *n, sess *q, uint32_t count, bool sample, uint32_t draft) {
    /* a session that may be cached takes the whole context: a later
     * request reusing it may need more than this one */
    s->segs[*n] = (rl_xseg){.session = q->xid,
                            .ids = q->tokens + q->n_sent,
                            .n = count,
                            .pos = q->n_sent,
                            .n_ctx = s->cache ? s->o.n_ctx : q->n_prompt + q->max_tokens,
                            .sample = sample,
                            .sampling = &q->sampling,
                            .n_top = sample ? q->n_top : 0,
                            .stream = (uint32_t)q->id, /* a reused session's sampler starts anew */
                            .history = q->tokens + q->n_prompt,
                            .n_history = q->n_gen + draft,
                            .verify = draft > 0,
                            .draft_q = draft > 0 && q->draft_q[0].n ? q->draft_q : NULL,
                            .rewind = q->n_held > q->n_sent};
    if (sample && q->json) { /* its contents: fill_masks, outside the lock */
        s->segs[*n].mask = q->mask;
        q->mask_due = true;
    }
    (*n)++;
    q->n_draft = draft;
    q->created = true;
    q->n_sent += count;
    q->n_held = q->n_sent;
    q->in_flight++;
    if (sample)
        q->awaiting = true;
}

/* The draft's guesses behind q's last id, at most room of them (and what
 * its max_tokens leaves), written after it in q->tokens; how many. */
static uint32_t draft_for(rl_sched *s, sess *q, uint32_t room) {
    if (!q->spec || !s->o.draft)
        return 0;
    uint32_t k = q->k < room ? q->k : room;
    if (k > q->max_tokens - q->n_gen - 1)
        k = q->max_tokens - q->n_gen - 1;
    return k ? rl_draft_propose(s->o.draft, &q->sampling, &q->draft_rng, q->tokens, q->n_sent + 1,
                                q->tokens + q->n_sent + 1, q->draft_q, k)
             : 0;
}

/* The i-th active session counting from the rotating start. */
static sess *nth_active(rl_sched *s, uint32_t i) {
    uint32_t k = (s->rr + i) % s->n_active;
    sess *q = s->active;
    while (k--)
        q = q->next;
    return q;
}

/* Fills s->segs: decode tokens first (at most a depth-th of the sessions'),
 * then prompt chunks (under lock).
 * Returns the number of segments. */
static uint32_t form_batch(rl_sched *s, uint32_t *tokens) {
    uint32_t n = 0, budget = s->x->max_batch;
    const uint32_t chunk_max = s->o.prefill_chunk ? s->o.prefill_chunk : budget;
    if (s->n_active == 0)
        return 0;
    /* The decode tokens are spread over the micro-batches in flight, so
     * that with S pipeline stages each stage has a share to work on while
     * the others compute theirs. */
    const uint32_t share = (s->n_active + s->x->depth - 1) / s->x->depth;
    uint32_t ready = 0, drafts = s->x->max_batch / 4; /* decode tokens to place; room for drafted ids */
    for (uint32_t i = 0; i < s->n_active && ready < share; i++) {
        const sess *q = nth_active(s, i);
        ready += q->has_next && !q->finished && !q->cancel;
    }
    for (uint32_t i = 0; i < s->n_active && budget > 0 && n < share; i++) {
        sess *q = nth_active(s, i);
        if (q->has_next && !q->finished && !q->cancel) {
            q->has_next = false;
            const uint32_t room = budget > ready ? budget - ready : 0,
                           k = draft_for(s, q, room < drafts ? room : drafts);
            add_segment(s, &n, q, 1 + k, true, k);
            budget -= 1 + k, drafts -= k, ready--;
        }
    }
    for (uint32_t i = 0; i < s->n_active && budget > 0; i++) {
        sess *q = nth_active(s, i);
        if (q->bound && q->n_sent < q->n_prompt && !q->awaiting && !q->finished && !q->cancel) {
            uint32_t c = q->n_prompt - q->n_sent;
            c = c < budget ? c : budget;
            c = c < chunk_max ? c : chunk_max;
            add_segment(s, &n, q, c, q->n_sent + c == q->n_prompt, 0);
            budget -= c;
        }
    }
    s->rr++;
    *tokens = s->x->max_batch - budget;
    return n;
}

/* Computes the JSON masks of the segments form_batch gave one (each a pass
 * over the whole vocabulary), after the lock is released, so that requests
 * arriving, cancels and /metrics do not wait for them. No race: a session's
 * grammar state, n_gen and mask change only on this thread (deliver), and
 * only this thread unlinks and frees an active session. */
static void fill_masks(rl_sched *s) {
    for (sess *q = s->active; q; q = q->next)
        if (q->mask_due) {
            rl_jg_mask(&q->jg, q->json, q->max_tokens - q->n_gen, q->mask);
            q->mask_due = false;
        }
}

/* ---- completions ---- */

static bool is_eog(const rl_sched *s, int32_t id) { return rl_tok_is_eog(s->tok, id); }

/* A sampled id for q: hands it to the sink and decides whether to go on. */
static void deliver(rl_sched *s, sess *q, int32_t id, const rl_top *top) {
    q->awaiting = false;
    if (q->finished)
        return;
    q->tokens[q->n_prompt + q->n_gen++] = id;
    if (is_eog(s, id))
        finish(q, RL_FINISH_STOP, NULL);
    else if (q->json && !rl_jg_feed_token(&q->jg, q->json, id))
        finish(q, RL_FINISH_ERROR, "a sampled token does not follow the JSON grammar");
    else if (!q->sink.on_token(q->sink.ud, id, q->n_top ? top : NULL) || (q->json && rl_jg_done(&q->jg)))
        finish(q, RL_FINISH_STOP, NULL);
    else if (q->n_gen >= q->max_tokens)
        finish(q, RL_FINISH_LENGTH, NULL);
    else
        q->has_next = true;
}

/* A verified draft of q (the k ids behind its last one; v: the ids sampled
 * after each of the k + 1): the ids equal to the target's are kept with its
 * id after them, the rest go with q's next segment. Returns the ids
 * delivered; *accepted counts the kept ones. */
static uint32_t deliver_verified(rl_sched *s, sess *q, const int32_t *v, uint32_t *accepted) {
    const uint32_t k = q->n_draft;
    int32_t draft[RL_DRAFT_MAX];
    memcpy(draft, q->tokens + q->n_sent - k, k * sizeof *draft);
    uint32_t a = 0, j = 0;
    while (a < k && v[a] == draft[a])
        a++;
    q->n_sent -= k - a; /* n_held stays: the next segment rewinds */
    q->n_draft = 0;
    *accepted = a;
    if (a == k && q->k < s->o.draft_max) /* adapt: grow on a full acceptance, shrink to what was kept */
        q->k++;
    else if (a < k)
        q->k = a + 1 < q->k ? a + 1 : q->k;
    for (; j <= a && !q->finished; j++)
        deliver(s, q, v[j], NULL); /* no top logits: a drafting session asks for none */
    return j;
}

/* Applies a completion (or a failure of the whole micro-batch) to its
 * sessions. Sinks are called here, without the lock. */
static void complete(rl_sched *s, const flight *f, const rl_xdone *d) {
    uint32_t sampled = 0, drafted = 0, accepted = 0, a;
    for (uint32_t i = 0; i < f->n; i++) {
        sess *q = find_active(s, f->sessions[i]);
        if (!q)
            continue;
        q->in_flight--;
        if (d->status != 0)
            finish(q, RL_FINISH_ERROR, d->err);
        else if (q->n_draft && d->ids[i] >= 0)
            drafted += q->n_draft, sampled += deliver_verified(s, q, d->verified + f->first[i], &a), accepted += a;
        else if (d->ids[i] >= 0)
            deliver(s, q, d->ids[i], d->top ? &d->top[i] : NULL), sampled++;
    }
    pthread_mutex_lock(&s->lock);
    s->stats.batches++;
    s->stats.batch_tokens += f->tokens;
    s->stats.generated += sampled;
    s->stats.drafted += drafted;
    s->stats.accepted += accepted;
    pthread_mutex_unlock(&s->lock);
}

/* Submits the formed micro-batch; a refusal fails its sessions at once. */
static void submit_batch(rl_sched *s, uint32_t n, uint32_t tokens) {
    flight *f = &s->flights[(s->f_head + s->f_count) % s->x->depth];
    f->batch = s->next_batch++;
    f->n = n;
    f->tokens = tokens;
    for (uint32_t i = 0; i < n; i++)
        f->sessions[i] = s->segs[i].session, f->first[i] = i ? f->first[i - 1] + s->segs[i - 1].n : 0;
    char err[RL_XERR_LEN];
    if (s->x->ops->submit(s->x, f->batch, s->segs, n, err, sizeof err) == 0) {
        s->f_count++;
        return;
    }
    rl_xdone d = {.batch = f->batch, .status = -1, .n_segs = n};
    snprintf(d.err, sizeof d.err, "%s", err);
    complete(s, f, &d);
}

/* Waits for the oldest outstanding micro-batch. */
static void collect_completion(rl_sched *s) {
    rl_xdone d;
    if (s->x->ops->wait(s->x, 100, &d) != 1)
        return;
    flight *f = &s->flights[s->f_head];
    if (d.batch != f->batch) {
        d.status = -1;
        snprintf(d.err, sizeof d.err, "executor completed micro-batch %llu out of order (expected %llu)",
                 (unsigned long long)d.batch, (unsigned long long)f->batch);
    }
    s->f_head = (s->f_head + 1) % s->x->depth;
    s->f_count--;
    complete(s, f, &d);
}

/* ---- the prompt cache ---- */

/* Chooses the executor session of a newly admitted request: the cached one
 * sharing the longest prefix of its prompt, whose first segment forgets the
 * rest (rl_xseg.rewind, in order with the micro-batches in flight: nothing
 * waits), or a new one; then the oldest cached sessions give up their slots
 * while the executor would hold more than max_sessions. Scheduler thread,
 * without the lock. */
static void bind(rl_sched *s, sess *q) {
    uint64_t xid;
    uint32_t shared = 0, held = 0, reused = 0;
    q->xid = q->id;
    if (s->cache && rl_pcache_take(s->cache, q->tokens, q->n_prompt, &xid, &shared, &held)) {
        /* the last prompt token is always fed again: its row gives the first id;
         * a sliding ring that cannot go back that far has it all fed again (0) */
        const uint32_t keep = shared < q->n_prompt ? shared : q->n_prompt - 1;
        q->xid = xid, q->n_held = held, q->created = true;
        q->n_sent = reused = rl_kv_truncate_for(&s->x->hp, s->o.n_ctx, held, keep);
        if (reused > 0)
            rl_pcache_count_hit(s->cache, reused);
    }
    rl_pcache_stats st;
    if (s->cache)
        for (rl_pcache_stats_get(s->cache, &st); s->n_active + st.sessions > s->o.max_sessions;
             rl_pcache_stats_get(s->cache, &st))
            if (!rl_pcache_evict_oldest(s->cache))
                break;
    q->bound = true;
    sync_cache_stats(s);
    if (q->sink.on_cached)
        q->sink.on_cached(q->sink.ud, reused);
}

/* Binds the requests admitted since the last step. */
static void bind_admitted(rl_sched *s) {
    for (sess *q = s->active; q; q = q->next) /* only this thread changes the list */
        if (!q->bound)
            bind(s, q);
}

/* ---- the thread ---- */

static bool has_work(const rl_sched *s) {
    if (s->queue && s->n_active < s->o.max_sessions)
        return true;
    for (const sess *q = s->active; q; q = q->next)
        if (q->cancel || (q->finished && q->in_flight == 0) || q->has_next || (q->n_sent < q->n_prompt && !q->awaiting))
            return true;
    for (const sess *q = s->queue; q; q = q->next)
        if (q->cancel)
            return true;
    return false;
}

/* One turn of the loop; false once shutdown has drained everything. */
static bool step(rl_sched *s) {
    sess *done = NULL;
    uint32_t n = 0, tokens = 0;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping && s->f_count == 0 && !has_work(s))
        pthread_cond_wait(&s->wake, &s->lock);
    if (s->stopping) {
        for (sess *q = s->active; q; q = q->next)
            q->cancel = true;
        for (sess *q = s->queue; q; q = q->next)
            q->cancel = true;
    }
    collect_done(s, &done);
    admit(s);
    if (!s->stopping && s->f_count < s->x->depth)
        n = form_batch(s, &tokens);
    bool over = s->stopping && s->f_count == 0 && !s->active && !s->queue && !done;
    pthread_mutex_unlock(&s->lock);
    finalize_list(s, done);
    bind_admitted(s);
    if (n > 0) {
        fill_masks(s);
        submit_batch(s, n, tokens);
    } else if (s->f_count > 0)
        collect_completion(s);
    return !over;
}

static void *run(void *arg) {
    rl_sched *s = arg;
    while (step(s))
        ;
    rl_pcache_destroy(&s->cache); /* drops the cached sessions, on this thread like every executor call */
    return NULL;
}

/* ---- public ---- */

rl_sched *rl_sched_new(rl_executor *x, const rl_tokenizer *tok, const rl_sched_opts *o, char *err, size_t errlen) {
    if (o->max_sessions == 0 || o->n_ctx == 0 || x->max_batch == 0 || x->depth == 0) {
        snprintf(err, errlen, "scheduler: max_sessions, n_ctx, max_batch and depth must be positive");
        return NULL;
    }
    rl_sched *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->x = x;
    s->tok = tok;
    s->o = *o;
    s->next_id = 1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    s->segs = calloc(x->max_batch, sizeof *s->segs);
    s->flights = calloc(x->depth, sizeof *s->flights);
    bool ok = s->segs && s->flights;
    if (ok && o->cache_mem > 0 && o->hp)
        ok = (s->cache = rl_pcache_new(x, o->hp, o->kv_type, o->cache_mem)) != NULL;
    for (uint32_t i = 0; ok && i < x->depth; i++)
        ok = (s->flights[i].sessions = calloc(x->max_batch, sizeof(uint64_t))) != NULL &&
            (s->flights[i].first = calloc(x->max_batch, sizeof(uint32_t))) != NULL;
    if (!ok || pthread_create(&s->thread, NULL, run, s) != 0) {
        snprintf(err, errlen, ok ? "cannot start the scheduler thread" : "out of memory");
        rl_sched_destroy(&s);
        return NULL;
    }
    s->started = true;
    return s;
}

void rl_sched_shutdown(rl_sched *s) {
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (s->started) {
        pthread_join(s->thread, NULL);
        s->started = false;
    }
}

void rl_sched_destroy(rl_sched **ps) {
    rl_sched *s = ps ? *ps : NULL;
    if (!s)
        return;
    rl_sched_shutdown(s);
    for (uint32_t i = 0; s->flights && i < s->x->depth; i++)
        free(s->flights[i].sessions), free(s->flights[i].first);
    free(s->flights);
    free(s->segs);
    rl_pcache_destroy(&s->cache); /* when the thread never ran */
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
    *ps = NULL;
}

int rl_sched_submit(rl_sched *s, const rl_sched_req *r, uint64_t *id) {
    if (r->n_prompt == 0 || r->max_tokens == 0 || (uint64_t)r->n_prompt + r->max_tokens > s->o.n_ctx)
        return RL_SCHED_EINVAL;
    sess *q = calloc(1, sizeof *q);
    if (!q || !(q->tokens = malloc(((size_t)r->n_prompt + r->max_tokens) * sizeof *q->tokens))) {
        sess_free(q);
        return RL_SCHED_EFULL;
    }
    memcpy(q->tokens, r->prompt, r->n_prompt * sizeof *q->tokens);
    q->n_prompt = r->n_prompt;
    q->max_tokens = r->max_tokens;
    q->sampling = r->sampling;
    rl_draft_seed(&q->draft_rng, r->sampling.seed);
    q->n_top = r->n_top < RL_MAX_TOP ? r->n_top : RL_MAX_TOP;
    q->sink = r->sink;
    q->spec = s->o.draft && !r->no_draft && !r->json; /* a mask is for one position */
    q->k = s->o.draft_max < RL_DRAFT_MAX ? s->o.draft_max : RL_DRAFT_MAX;
    q->json = r->json;
    if (r->schema)
        rl_jg_init_schema(&q->jg, r->schema);
    else
        rl_jg_init(&q->jg);
    if (q->json && !(q->mask = malloc((rl_jg_vocab_size(q->json) + 7) / 8))) {
        sess_free(q);
        return RL_SCHED_EFULL;
    }
    pthread_mutex_lock(&s->lock);
    /* room: every slot plus every queue place */
    bool full = (uint64_t)s->n_queued + s->n_active >= (uint64_t)s->o.max_sessions + s->o.max_queue;
    int rc = s->stopping ? RL_SCHED_ESTOPPED : full ? RL_SCHED_EFULL : RL_SCHED_OK;
    if (rc == RL_SCHED_OK) {
        q->id = *id = s->next_id++;
        if (s->queue_tail)
            s->queue_tail->next = q;
        else
            s->queue = q;
        s->queue_tail = q;
        s->n_queued++;
        s->stats.prompt_tokens += r->n_prompt;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc != RL_SCHED_OK)
        sess_free(q);
    return rc;
}

void rl_sched_cancel(rl_sched *s, uint64_t id) {
    pthread_mutex_lock(&s->lock);
    for (sess *q = s->active; q; q = q->next)
        if (q->id == id)
            q->cancel = true;
    for (sess *q = s->queue; q; q = q->next)
        if (q->id == id)
            q->cancel = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

void rl_sched_stats_get(rl_sched *s, rl_sched_stats *out) {
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    out->active = s->n_active;
    out->queued = s->n_queued;
    pthread_mutex_unlock(&s->lock);
}
