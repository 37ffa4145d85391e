/* The local micro-batch executor: the whole model in this process.
 *
 * A micro-batch is embedded, run through every layer by one
 * rl_forward_batch call (one matrix product per weight for all sessions,
 * attention per session on its own cache), and the rows of the segments that
 * sample go through the head together; each session's own sampler then picks
 * its id. Everything runs inside submit, so there is never more than one
 * micro-batch outstanding (depth 1) and wait only hands the result over.
 *
 * A micro-batch uses the quantized kernels at every size unless all its
 * segments allow sgemm (a run's or chat's prompt chunks, computed as one
 * process always has): a row's result is then bit-identical whatever else
 * shares its batch (tests/test_forward.c test_batch_independence), which is
 * what makes a served request's output independent of the load. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "executor.h"
#include "forward.h"
#include "kv.h"
#include "util.h"

#define N_BUCKETS 256
#define HEAD_EXTRA 16 /* head rows beyond one per session: a draft's positions go through together */

typedef struct lsession {
    uint64_t id;         /* the scheduler's session id */
    rl_kv *kv;           /* all layers, n_ctx of the session */
    rl_sampler *sampler; /* of its current stream; made at the stream's first sample */
    uint32_t stream;
    struct lsession *next; /* bucket chain */
} lsession;

typedef struct {
    rl_executor base;       /* must be first */
    const rl_model *model;  /* borrowed: the caller keeps it alive */
    rl_kv_type kv_type;     /* of every session's cache */
    rl_ctx *ctx;            /* threads and scratch, max_batch rows */
    float *x;               /* (max_batch, dim) activations of the micro-batch */
    uint32_t max_rows;      /* rows through the head at once: min(max_batch, max_sessions + HEAD_EXTRA) */
    float *rows;            /* (max_rows, dim) rows going through the head */
    struct head_row *picks; /* (max_rows) where each of them comes from */
    float *logits;          /* (max_rows, n_vocab) */
    rl_segment *segs;       /* (max_batch) the engine's view of the segments */
    lsession **owner;       /* (max_batch) session of each segment */
    int32_t *ids;           /* (max_batch) sampled ids handed out by wait */
    rl_top *top;            /* (max_batch) and their top logits */
    int32_t *verified;      /* (max_batch) by row: the ids of verifying segments' positions */
    uint32_t gemm_min;      /* sgemm from this many rows, when every segment allows it (0: never) */
    lsession *table[N_BUCKETS];
    bool has_done;              /* a completion is waiting for wait */
    rl_xdone done;              /* that completion */
    pthread_mutex_t stats_lock; /* guards node: /metrics reads it from other threads */
    rl_xnode node;              /* this process as the single "node" */
} local_exec;

static lsession **slot_of(local_exec *l, uint64_t id) {
    lsession **p = &l->table[id % N_BUCKETS];
    while (*p && (*p)->id != id)
        p = &(*p)->next;
    return p;
}

static void session_free(lsession *s) {
    rl_kv_destroy(&s->kv);
    rl_sampler_destroy(&s->sampler);
    free(s);
}

/* The session a segment names: created at position 0, found otherwise
 * (a rewind first forgets its positions >= pos, at 0 too). */
static lsession *session_for(local_exec *l, const rl_xseg *g, char *err, size_t errlen) {
    lsession **p = slot_of(l, g->session);
    if (*p && g->rewind) {
        if (!rl_kv_truncate_exact((*p)->kv, g->pos)) {
            snprintf(err, errlen, "session %llu cannot go back to position %u exactly", (unsigned long long)g->session,
                     g->pos);
            return NULL;
        }
        rl_kv_truncate((*p)->kv, g->pos);
        return *p;
    }
    if (g->pos > 0) {
        if (!*p)
            snprintf(err, errlen, "session %llu is unknown", (unsigned long long)g->session);
        return *p;
    }
    if (*p) {
        snprintf(err, errlen, "session %llu already exists", (unsigned long long)g->session);
        return NULL;
    }
    const rl_hparams *hp = rl_model_hparams(l->model);
    lsession *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->id = g->session;
    if (!(s->kv = rl_kv_new(hp, 0, hp->n_layer, g->n_ctx, l->kv_type, err, errlen))) {
        session_free(s);
        return NULL;
    }
    *p = s;
    pthread_mutex_lock(&l->stats_lock);
    l->node.sessions++;
    pthread_mutex_unlock(&l->stats_lock);
    return s;
}

/* Embeds every segment into x and fills the engine's segment table. */
static int prepare(local_exec *l, const rl_xseg *segs, uint32_t n, char *err, size_t errlen) {
    const uint32_t dim = rl_model_hparams(l->model)->dim;
    uint32_t row = 0;
    for (uint32_t i = 0; i < n; i++) {
        const rl_xseg *g = &segs[i];
        if (g->n == 0 || row + g->n > l->base.max_batch) {
            snprintf(err, errlen, "micro-batch of more than %u tokens", l->base.max_batch);
            return -1;
        }
        lsession *s = session_for(l, g, err, errlen);
        if (!s)
            return -1;
        if (rl_embed(l->model, g->ids, g->n, l->x + (size_t)row * dim, err, errlen))
            return -1;
        l->segs[i] = (rl_segment){s->kv, g->pos, g->n};
        l->owner[i] = s;
        row += g->n;
    }
    return 0;
}

/* The session's sampler for a sampling segment: a new stream starts a new
 * one (its seed restarts). 0, or -1 with err. */
static int sampler_for(local_exec *l, lsession *s, const rl_xseg *g, char *err, size_t errlen) {
    if (s->sampler && s->stream == g->stream)
        return 0;
    rl_sampler_destroy(&s->sampler);
    if (!g->sampling || !(s->sampler = rl_sampler_new(g->sampling, l->base.n_vocab))) {
        snprintf(err, errlen, g->sampling ? "out of memory for the sampler" : "a segment samples without parameters");
        return -1;
    }
    s->stream = g->stream;
    return 0;
}

/* A row that goes through the head: its segment, and how many of the
 * segment's tokens come after it (0: the last, whose id the segment reports). */
typedef struct head_row {
    uint32_t seg, row, back;
} head_row;

/* The k gathered rows through the head, then each sampled in order by its
 * session's sampler with the history up to its position; the top logits
 * are taken before the sampler edits the row. */
static int head_flush(local_exec *l, const rl_xseg *segs, uint32_t k, char *err, size_t errlen) {
    const rl_hparams *hp = rl_model_hparams(l->model);
    if (rl_head_rows(l->ctx, l->rows, k, l->logits, err, errlen))
        return -1;
    for (uint32_t j = 0; j < k; j++) {
        const head_row *h = &l->picks[j];
        const rl_xseg *g = &segs[h->seg];
        float *logits = l->logits + (size_t)j * hp->n_vocab;
        const uint32_t n_hist = g->n_history > h->back ? g->n_history - h->back : 0;
        rl_sampler *smp = l->owner[h->seg]->sampler;
        rl_top *t = &l->top[h->seg];
        if (h->back == 0) { /* a constrained segment does not verify (scheduler.c): its mask is for the last */
            t->n = g->n_top < RL_MAX_TOP ? g->n_top : RL_MAX_TOP;
            t->n = t->n < hp->n_vocab ? t->n : hp->n_vocab;
            rl_sampler_mask(logits, hp->n_vocab, g->mask);
        }
        /* an earlier row of a verifying segment checks the drafted id after it */
        const rl_qdist *q = h->back && g->draft_q ? &g->draft_q[g->n - 1 - h->back] : NULL;
        const int32_t id = h->back == 0
            ? rl_sampler_sample_top(smp, logits, g->history, n_hist, t->n, t->ids, t->vals, &t->lse, &t->chosen)
            : rl_sampler_verify(smp, logits, g->history, n_hist, q ? q->token : -1, q ? q->ids : NULL, q ? q->p : NULL,
                                q ? q->n : 0);
        if (h->back == 0)
            l->ids[h->seg] = id;
        if (g->verify)
            l->verified[h->row] = id;
    }
    return 0;
}

/* Head and sampling for the segments that ask for an id: the last row of
 * each, or every row of one that verifies a draft, max_rows at a time. */
static int sample(local_exec *l, const rl_xseg *segs, uint32_t n, char *err, size_t errlen) {
    const uint32_t dim = rl_model_hparams(l->model)->dim;
    uint32_t row = 0, k = 0;
    for (uint32_t i = 0; i < n; i++) {
        l->ids[i] = -1;
        l->top[i].n = 0;
        for (uint32_t r = row; r < row + segs[i].n; r++)
            l->verified[r] = -1;
        row += segs[i].n;
    }
    row = 0;
    for (uint32_t i = 0; i < n; i++) {
        const rl_xseg *g = &segs[i];
        const uint32_t first = row;
        row += g->n;
        if (!g->sample)
            continue;
        if (sampler_for(l, l->owner[i], g, err, errlen))
            return -1;
        for (uint32_t r = g->verify ? first : row - 1; r < row; r++) {
            l->picks[k] = (head_row){i, r, row - 1 - r};
            memcpy(l->rows + (size_t)k * dim, l->x + (size_t)r * dim, dim * sizeof(float));
            if (++k == l->max_rows) {
                if (head_flush(l, segs, k, err, errlen))
                    return -1;
                k = 0;
            }
        }
    }
    return k ? head_flush(l, segs, k, err, errlen) : 0;
}

static int local_submit(rl_executor *x, uint64_t batch, const rl_xseg *segs, uint32_t n, char *err, size_t errlen) {
    local_exec *l = (local_exec *)x;
    if (l->has_done || n == 0 || n > x->max_batch) {
        snprintf(err, errlen, l->has_done ? "a micro-batch is already outstanding" : "bad segment count %u", n);
        return -1;
    }
    double t0 = rl_now_s();
    rl_xdone *d = &l->done;
    *d = (rl_xdone){.batch = batch, .n_segs = n, .ids = l->ids, .top = l->top, .verified = l->verified};
    bool sgemm = true;
    for (uint32_t i = 0; i < n; i++)
        sgemm = sgemm && segs[i].sgemm;
    rl_ctx_set_gemm_min(l->ctx, sgemm ? l->gemm_min : 0);
    if (prepare(l, segs, n, d->err, sizeof d->err) ||
        rl_forward_batch(l->ctx, l->segs, n, l->x, d->err, sizeof d->err) || sample(l, segs, n, d->err, sizeof d->err))
        d->status = -1;
    l->has_done = true;
    pthread_mutex_lock(&l->stats_lock);
    l->node.busy_seconds += rl_now_s() - t0;
    l->node.batches++;
    pthread_mutex_unlock(&l->stats_lock);
    return 0;
}

static int local_wait(rl_executor *x, int timeout_ms, rl_xdone *done) {
    local_exec *l = (local_exec *)x;
    (void)timeout_ms; /* the work was done in submit */
    if (!l->has_done)
        return 0;
    *done = l->done;
    l->has_done = false;
    return 1;
}

static void local_drop(rl_executor *x, uint64_t session) {
    local_exec *l = (local_exec *)x;
    lsession **p = slot_of(l, session);
    lsession *s = *p;
    if (s) {
        *p = s->next;
        session_free(s);
        pthread_mutex_lock(&l->stats_lock);
        l->node.sessions--;
        pthread_mutex_unlock(&l->stats_lock);
    }
}

static void local_describe(rl_executor *x, char *buf, size_t len) {
    local_exec *l = (local_exec *)x;
    size_t kv = 0;
    for (int b = 0; b < N_BUCKETS; b++)
        for (const lsession *s = l->table[b]; s; s = s->next)
            kv += rl_kv_bytes(s->kv);
    snprintf(buf, len, "one process, %d threads, %.1f MiB of KV in use", rl_ctx_threads(l->ctx), kv / 1048576.0);
}

static uint32_t local_nodes(rl_executor *x, rl_xnode *out, uint32_t cap) {
    local_exec *l = (local_exec *)x;
    if (cap > 0) {
        pthread_mutex_lock(&l->stats_lock);
        out[0] = l->node;
        pthread_mutex_unlock(&l->stats_lock);
    }
    return 1;
}

static void local_destroy(rl_executor *x) {
    local_exec *l = (local_exec *)x;
    for (int b = 0; b < N_BUCKETS; b++)
        while (l->table[b]) {
            lsession *s = l->table[b];
            l->table[b] = s->next;
            session_free(s);
        }
    rl_ctx_destroy(&l->ctx);
    free(l->x), free(l->rows), free(l->logits), free(l->segs), free(l->owner), free(l->ids), free(l->top);
    free(l->picks), free(l->verified);
    pthread_mutex_destroy(&l->stats_lock);
    free(l);
}

static const rl_executor_ops LOCAL_OPS = {local_submit, local_wait,     local_drop,
                                          local_nodes,  local_describe, local_destroy};

rl_executor *rl_executor_local_new(const rl_model *m, int n_threads, uint32_t max_batch, uint32_t max_sessions,
                                   uint32_t gemm_min, rl_kv_type kv_type, char *err, size_t errlen) {
    const rl_hparams *hp = rl_model_hparams(m);
    local_exec *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&l->stats_lock, NULL);
    l->base = (rl_executor){&LOCAL_OPS, max_batch, 1, hp->n_vocab, *hp};
    l->model = m;
    l->kv_type = kv_type;
    snprintf(l->node.name, sizeof l->node.name, "local");
    snprintf(l->node.state, sizeof l->node.state, "ready");
    if (!(l->ctx = rl_ctx_new(m, n_threads, max_batch, err, errlen))) {
        local_destroy(&l->base);
        return NULL;
    }
    l->gemm_min = gemm_min;
    l->x = malloc((size_t)max_batch * hp->dim * sizeof(float));
    l->max_rows = max_batch < max_sessions + HEAD_EXTRA ? max_batch : max_sessions + HEAD_EXTRA;
    l->rows = malloc((size_t)l->max_rows * hp->dim * sizeof(float));
    l->logits = malloc((size_t)l->max_rows * hp->n_vocab * sizeof(float));
    l->segs = malloc(max_batch * sizeof *l->segs);
    l->owner = malloc(max_batch * sizeof *l->owner);
    l->ids = malloc(max_batch * sizeof *l->ids);
    l->top = malloc(max_batch * sizeof *l->top);
    l->picks = malloc(l->max_rows * sizeof *l->picks);
    l->verified = malloc(max_batch * sizeof *l->verified);
    if (!l->x || !l->rows || !l->logits || !l->segs || !l->owner || !l->ids || !l->top || !l->picks || !l->verified) {
        snprintf(err, errlen, "out of memory for micro-batches of %u tokens", max_batch);
        local_destroy(&l->base);
        return NULL;
    }
    return &l->base;
}

void rl_executor_destroy(rl_executor **px) {
    if (px && *px) {
        (*px)->ops->destroy(*px);
        *px = NULL;
    }
}
