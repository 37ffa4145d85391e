/* The cluster micro-batch executor: `relais serve --cluster FILE`.
 *
 * A micro-batch becomes one Forward with a segment per session
 * (cluster_batch_send): the coordinator embeds the tokens, every node runs
 * its layers over the whole micro-batch in one pass and the last one
 * samples each session with its own sampler. Submission does not wait, so
 * the scheduler keeps one micro-batch per pipeline stage in flight (depth =
 * stages) and every node has work while the others compute theirs.
 *
 * A session's sampling parameters are kept here from its first segment
 * (the scheduler hands them over at position 0), because its sampler on
 * the last node is made at its first sampling segment, which may come after
 * some prompt chunks. Dropping a session sends a drop-only Forward down the
 * pipeline, so its slots are free on every node before any later
 * micro-batch arrives there.
 *
 * Statistics for /health and /metrics come from the answers: each node's
 * compute seconds (Result.stage_seconds) and the activation bytes it
 * received and sent; they are read from other threads under a lock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "backend_cluster.h"
#include "cluster.h"
#include "executor.h"
#include "log.h"

#define N_BUCKETS 256

typedef struct csession {
    uint64_t id;
    rl_sampler_params params;   /* as given at position 0 */
    struct csession *next;      /* bucket chain */
} csession;

/* An outstanding micro-batch. */
typedef struct {
    uint64_t batch;             /* the scheduler's id */
    uint64_t step;              /* the cluster's id of its Forward */
    uint32_t n;                 /* segments */
    uint64_t *sessions;         /* (max_batch) session of each segment */
    int32_t *ids;               /* (max_batch) sampled id of each segment, -1 where none */
    uint64_t act_bytes;         /* activation bytes each hop carries */
    bool answered;
    int status;
    char err[RL_XERR_LEN];
} cflight;

typedef struct {
    rl_executor base;           /* must be first */
    cluster *c;                 /* owned */
    uint32_t dim, wire_bytes;   /* activation width and bytes per element on the wire */
    cflight *ring;              /* (depth) outstanding micro-batches, oldest at head */
    uint32_t head, count;
    cluster_seg *segs;          /* (max_batch) the micro-batch being sent */
    cluster_sampling *smp;      /* (max_batch) their sampling */
    uint64_t *res_sessions;     /* (max_batch) an answer's sessions */
    int32_t *res_ids;           /* (max_batch) and ids */
    int32_t *done_ids;          /* (max_batch) handed out by wait */
    csession *table[N_BUCKETS];
    pthread_mutex_t stats_lock; /* guards nodes: /health and /metrics read them from other threads */
    rl_xnode nodes[CLUSTER_MAX_NODES];   /* per pipeline stage */
    uint32_t n_nodes;
} cluster_exec;

static csession **slot_of(cluster_exec *x, uint64_t id) {
    csession **p = &x->table[id % N_BUCKETS];
    while (*p && (*p)->id != id)
        p = &(*p)->next;
    return p;
}

/* Sessions holding a cache: the same on every node of the pipeline. */
static void count_sessions(cluster_exec *x, int delta) {
    pthread_mutex_lock(&x->stats_lock);
    for (uint32_t k = 0; k < x->n_nodes; k++)
        x->nodes[k].sessions += (uint32_t)delta;
    pthread_mutex_unlock(&x->stats_lock);
}

static void set_state(cluster_exec *x, const char *state) {
    pthread_mutex_lock(&x->stats_lock);
    for (uint32_t k = 0; k < x->n_nodes; k++)
        snprintf(x->nodes[k].state, sizeof x->nodes[k].state, "%s", state);
    pthread_mutex_unlock(&x->stats_lock);
}

/* The session's sampling: remembered at position 0, found later. */
static const rl_sampler_params *params_of(cluster_exec *x, const rl_xseg *g, char *err, size_t errlen) {
    csession **p = slot_of(x, g->session);
    if (g->pos == 0 && !*p) {
        if (!g->sampling || !(*p = calloc(1, sizeof **p))) {
            snprintf(err, errlen, g->sampling ? "out of memory" : "session %llu starts without sampling parameters",
                     (unsigned long long)g->session);
            return NULL;
        }
        (*p)->id = g->session;
        (*p)->params = *g->sampling;
        count_sessions(x, 1);
    }
    if (!*p)
        snprintf(err, errlen, "session %llu is unknown", (unsigned long long)g->session);
    return *p ? &(*p)->params : NULL;
}

static int cx_submit(rl_executor *base, uint64_t batch, const rl_xseg *segs, uint32_t n, char *err, size_t errlen) {
    cluster_exec *x = (cluster_exec *)base;
    if (x->count == base->depth || n == 0 || n > base->max_batch) {
        snprintf(err, errlen, n ? "%u micro-batches are already outstanding" : "an empty micro-batch", x->count);
        return -1;
    }
    cflight *f = &x->ring[(x->head + x->count) % base->depth];
    uint32_t rows = 0;
    for (uint32_t i = 0; i < n; i++) {
        const rl_xseg *g = &segs[i];
        const rl_sampler_params *p = params_of(x, g, err, errlen);
        if (!p)
            return -1;
        x->smp[i] = (cluster_sampling){.params = p, .stream = 1, .history = g->history, .n_history = g->n_history};
        x->segs[i] = (cluster_seg){.session = g->session, .ids = g->ids, .n = g->n, .pos = g->pos, .n_ctx = g->n_ctx,
                                   .sampling = g->sample ? &x->smp[i] : NULL};
        f->sessions[i] = g->session;
        f->ids[i] = -1;
        rows += g->n;
    }
    if (!(f->step = cluster_batch_send(x->c, x->segs, n, err, errlen)))
        return -1;
    f->batch = batch;
    f->n = n;
    f->act_bytes = (uint64_t)rows * x->dim * x->wire_bytes;
    f->answered = false;
    x->count++;
    return 0;
}

static cflight *flight_of(cluster_exec *x, uint64_t step) {
    for (uint32_t k = 0; k < x->count; k++) {
        cflight *f = &x->ring[(x->head + k) % x->base.depth];
        if (f->step == step)
            return f;
    }
    return NULL;   /* a drop's answer, or one of a micro-batch already failed */
}

/* Puts an answer's ids at their segments and counts the work per node. */
static void take(cluster_exec *x, cflight *f, const cluster_batch_result *r) {
    f->answered = true;
    f->status = r->status;
    snprintf(f->err, sizeof f->err, "%s", r->err);
    for (uint32_t k = 0; r->status == 0 && k < r->n; k++) {
        uint32_t i = 0;
        while (i < f->n && f->sessions[i] != r->sessions[k])
            i++;
        if (i == f->n) {
            f->status = -1;
            snprintf(f->err, sizeof f->err, "an id for session %llu, which step %llu did not hold",
                     (unsigned long long)r->sessions[k], (unsigned long long)f->step);
            return;
        }
        f->ids[i] = r->ids[k];
    }
    pthread_mutex_lock(&x->stats_lock);
    for (uint32_t k = 0; k < r->n_stages && k < x->n_nodes; k++) {
        rl_xnode *nd = &x->nodes[k];
        nd->busy_seconds += r->stage_seconds[k];
        nd->batches++;
        nd->bytes_in += f->act_bytes;
        nd->bytes_out += k + 1 < x->n_nodes ? f->act_bytes : 0;
    }
    pthread_mutex_unlock(&x->stats_lock);
}

/* The pipeline is gone: every outstanding micro-batch fails with err. */
static void fail_all(cluster_exec *x, const char *err) {
    for (uint32_t k = 0; k < x->count; k++) {
        cflight *f = &x->ring[(x->head + k) % x->base.depth];
        if (!f->answered)
            f->answered = true, f->status = -1, snprintf(f->err, sizeof f->err, "%s", err);
    }
    set_state(x, "lost");
}

static int cx_wait(rl_executor *base, int timeout_ms, rl_xdone *done) {
    cluster_exec *x = (cluster_exec *)base;
    if (x->count == 0)
        return 0;
    cflight *oldest = &x->ring[x->head];
    cluster_batch_result r = {.cap = base->max_batch, .sessions = x->res_sessions, .ids = x->res_ids};
    while (!oldest->answered) {
        char err[RL_XERR_LEN];
        int rc = cluster_batch_wait(x->c, timeout_ms, &r, err, sizeof err);
        if (rc == 0)
            return 0;
        cflight *f = rc > 0 ? flight_of(x, r.step) : NULL;
        if (rc < 0)
            fail_all(x, err);
        else if (f)
            take(x, f, &r);
    }
    memcpy(x->done_ids, oldest->ids, oldest->n * sizeof *x->done_ids);
    *done = (rl_xdone){.batch = oldest->batch, .status = oldest->status, .n_segs = oldest->n, .ids = x->done_ids};
    snprintf(done->err, sizeof done->err, "%s", oldest->err);
    x->head = (x->head + 1) % base->depth;
    x->count--;
    return 1;
}

static void cx_drop(rl_executor *base, uint64_t session) {
    cluster_exec *x = (cluster_exec *)base;
    csession **p = slot_of(x, session), *s = *p;
    if (s) {
        *p = s->next;
        free(s);
        count_sessions(x, -1);
    }
    char err[256];
    if (!cluster_batch_drop(x->c, &session, 1, err, sizeof err) && !cluster_lost(x->c)[0])
        rl_log(RL_LOG_WARN, "dropping session %llu on the nodes: %s", (unsigned long long)session, err);
}

static uint32_t cx_nodes(rl_executor *base, rl_xnode *out, uint32_t cap) {
    cluster_exec *x = (cluster_exec *)base;
    pthread_mutex_lock(&x->stats_lock);
    memcpy(out, x->nodes, (cap < x->n_nodes ? cap : x->n_nodes) * sizeof *out);
    pthread_mutex_unlock(&x->stats_lock);
    return x->n_nodes;
}

static void cx_destroy(rl_executor *base) {
    cluster_exec *x = (cluster_exec *)base;
    for (int b = 0; b < N_BUCKETS; b++)
        while (x->table[b]) {
            csession *s = x->table[b];
            x->table[b] = s->next;
            free(s);
        }
    for (uint32_t k = 0; x->ring && k < base->depth; k++)
        free(x->ring[k].sessions), free(x->ring[k].ids);
    cluster_destroy(&x->c);
    free(x->ring), free(x->segs), free(x->smp), free(x->res_sessions), free(x->res_ids), free(x->done_ids);
    pthread_mutex_destroy(&x->stats_lock);
    free(x);
}

static const rl_executor_ops CLUSTER_OPS = {cx_submit, cx_wait, cx_drop, cx_nodes, cx_destroy};

static int alloc_buffers(cluster_exec *x) {
    const uint32_t mb = x->base.max_batch;
    x->ring = calloc(x->base.depth, sizeof *x->ring);
    x->segs = malloc(mb * sizeof *x->segs);
    x->smp = malloc(mb * sizeof *x->smp);
    x->res_sessions = malloc(mb * sizeof *x->res_sessions);
    x->res_ids = malloc(mb * sizeof *x->res_ids);
    x->done_ids = malloc(mb * sizeof *x->done_ids);
    if (!x->ring || !x->segs || !x->smp || !x->res_sessions || !x->res_ids || !x->done_ids)
        return -1;
    for (uint32_t k = 0; k < x->base.depth; k++)
        if (!(x->ring[k].sessions = malloc(mb * sizeof *x->ring[k].sessions)) ||
            !(x->ring[k].ids = malloc(mb * sizeof *x->ring[k].ids)))
            return -1;
    return 0;
}

rl_executor *rl_executor_cluster_new(const rl_cluster_opts *co, const rl_runner_opts *ro, uint32_t max_sessions,
                                     uint32_t *n_ctx, const rl_model **model, char *err, size_t errlen) {
    cluster_exec *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&x->stats_lock, NULL);
    x->base.ops = &CLUSTER_OPS;
    if (!(x->c = rl_cluster_open(co, ro, max_sessions, n_ctx, err, errlen))) {
        cx_destroy(&x->base);
        return NULL;
    }
    const rl_hparams *hp = rl_model_hparams(cluster_model(x->c));
    x->n_nodes = cluster_n_stages(x->c);
    x->base = (rl_executor){&CLUSTER_OPS, ro->batch, x->n_nodes, hp->n_vocab};
    x->dim = hp->dim;
    x->wire_bytes = co->f16_wire ? 2 : 4;
    for (uint32_t k = 0; k < x->n_nodes; k++) {
        snprintf(x->nodes[k].name, sizeof x->nodes[k].name, "%s", cluster_node_name(x->c, cluster_stage_node(x->c, k)));
        snprintf(x->nodes[k].state, sizeof x->nodes[k].state, "ready");
    }
    if (alloc_buffers(x)) {
        snprintf(err, errlen, "out of memory for micro-batches of %u tokens", ro->batch);
        cx_destroy(&x->base);
        return NULL;
    }
    *model = cluster_model(x->c);
    return &x->base;
}
