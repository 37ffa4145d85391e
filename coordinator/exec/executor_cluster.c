/* The cluster micro-batch executor: `relais serve`, `run` and `chat` with
 * --cluster FILE.
 *
 * A micro-batch becomes one Forward with a segment per session
 * (cluster_batch_send): the coordinator embeds the tokens, every node runs
 * its layers over the whole micro-batch in one pass and the last one
 * samples each session with its own sampler. Submission does not wait, so
 * the scheduler keeps one micro-batch per pipeline stage in flight (depth =
 * stages) and every node has work while the others compute theirs.
 *
 * A session's sampling parameters are kept here from the first sampling
 * segment of its stream, for a replay. Dropping a session sends a
 * drop-only Forward down the pipeline, so its slots are free on every node
 * before any later micro-batch arrives there.
 *
 * Statistics for /health and /metrics come from the answers: each node's
 * compute seconds (Result.stage_seconds) and the activation bytes it
 * received and sent; they are read from other threads under a lock.
 *
 * A lost node does not end the service. Every session's tokens (and the
 * history its penalties look at) are kept here, so when the pipeline breaks
 * the executor re-plans the layers over the nodes that still answer
 * (rl_cluster_replan), feeds each session's tokens again on the new
 * pipeline, and answers the micro-batches that were in flight from that
 * replay: the scheduler sees them complete, later. Outputs are those of an
 * unbroken run, seeded sampling included: a session's stream is told how
 * many ids it sampled before, and the new head stage's sampler skips their
 * draws (cluster_recover.h). A lost node that answers a hello again is
 * taken back by a re-plan as soon as nothing is in flight. A micro-batch
 * waited for past its expected time shows the stages "late"; past its
 * deadline the pipeline is lost (cluster.h). /health lists the new stages
 * with their layers and the lost nodes.
 *
 * With a cluster file that discovers its nodes, the beacons keep being
 * heard: a trusted node that appears, or a lost one that announces another
 * address, is taken in by the same re-plan (cluster_discover.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cluster.h"
#include "cluster_discover.h"
#include "cluster_recover.h"
#include "executor.h"
#include "forward.h"
#include "log.h"

#define N_BUCKETS 256
#define MASK_LEN(x) (((size_t)(x)->base.n_vocab + 7) / 8) /* bytes of a sampling mask */

typedef struct csession {
    uint64_t id;
    rl_sampler_params params; /* of its current stream */
    uint32_t stream;          /* the current stream (valid when sampled) */
    bool sampled;             /* a segment has sampled: params and stream are set */
    uint32_t n_ctx;           /* as given at position 0 */
    int32_t *toks;            /* (cap) every id fed, by position: what a replay feeds again */
    uint32_t n_toks, cap;
    int32_t *hist; /* (n_hist) the history of its latest sampling segment */
    uint32_t n_hist;
    uint8_t *mask;   /* the allowed ids of its latest sampling segment (NULL: any) */
    uint32_t n_top;  /* the top logits its latest sampling segment asked for */
    rl_qdist *draft; /* (n_draft) its latest sampling segment's sampled draft (rl_xseg.draft_q) */
    uint32_t n_draft;
    uint32_t n_sampled; /* its stream's sampling segments: the draws its seeded stream has made */
    cluster_chunk *sg;  /* (n_sg) the chunks computed by sgemm: a replay cuts them again */
    uint32_t n_sg, cap_sg;
    struct csession *next; /* bucket chain */
} csession;

/* An outstanding micro-batch. */
typedef struct {
    uint64_t batch;     /* the scheduler's id */
    uint64_t step;      /* the cluster's id of its Forward */
    uint32_t n;         /* segments */
    uint64_t *sessions; /* (max_batch) session of each segment */
    int32_t *ids;       /* (max_batch) sampled id of each segment, -1 where none */
    bool *sample;       /* (max_batch) whether the segment asked for an id */
    rl_top *top;        /* (max_batch) the top logits of its id */
    bool *verify;       /* (max_batch) whether the segment verifies a draft */
    uint32_t *first;    /* (max_batch) its first row in the micro-batch */
    uint32_t *len;      /* (max_batch) its tokens */
    int32_t *verified;  /* (max_batch) by row: the ids per position of verifying segments, -1 elsewhere */
    uint32_t rows;
    uint64_t act_bytes; /* activation bytes each hop carries */
    bool answered;
    int status;
    char err[RL_XERR_LEN];
} cflight;

typedef struct {
    rl_executor base; /* must be first */
    cluster *c;       /* owned */
    cflight *ring;    /* (depth) outstanding micro-batches, oldest at head */
    uint32_t head, count;
    cluster_seg *segs;        /* (max_batch) the micro-batch being sent */
    cluster_sampling *smp;    /* (max_batch) their sampling */
    uint64_t *res_sessions;   /* (max_batch) an answer's sessions */
    int32_t *res_ids;         /* (max_batch) and ids */
    rl_top *res_top;          /* (max_batch) and top logits */
    int32_t *res_verified;    /* (max_batch) and ids per position */
    uint32_t *res_n_verified; /* (max_batch) and how many of those each has */
    int32_t *done_verified;   /* (max_batch) handed out by wait */
    int32_t *done_ids;        /* (max_batch) handed out by wait */
    rl_top *done_top;         /* (max_batch) likewise */
    uint32_t gemm_min;        /* the nodes' sgemm threshold (rl_gemm_min_for) */
    csession *table[N_BUCKETS];
    rl_cluster_opts co; /* how the cluster was opened, for a re-plan */
    rl_runner_opts ro;
    uint32_t max_sessions;
    bool lost[CLUSTER_MAX_NODES];      /* by the cluster file's index: left out for not answering */
    bool late;                         /* the stages show "late": a micro-batch is overdue */
    pthread_mutex_t stats_lock;        /* guards nodes: /health and /metrics read them from other threads */
    rl_xnode nodes[CLUSTER_MAX_NODES]; /* the pipeline stages, then the lost nodes */
    uint32_t n_nodes, n_stages;
    cluster_config *disc_cfg; /* the cluster file, when it discovers its nodes; else NULL */
    discovery *disc;          /* the beacons heard since the start */
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
    for (uint32_t k = 0; k < x->n_stages; k++)
        x->nodes[k].sessions += (uint32_t)delta;
    pthread_mutex_unlock(&x->stats_lock);
}

static void set_state(cluster_exec *x, const char *state) {
    pthread_mutex_lock(&x->stats_lock);
    for (uint32_t k = 0; k < x->n_stages; k++)
        snprintf(x->nodes[k].state, sizeof x->nodes[k].state, "%s", state);
    pthread_mutex_unlock(&x->stats_lock);
}

static void session_free(csession *s) {
    free(s->toks), free(s->hist), free(s->mask), free(s->sg), free(s->draft), free(s);
}

/* The session a segment names: created at position 0, found later; a
 * sampling segment of a new stream takes its parameters. */
static csession *session_of(cluster_exec *x, const rl_xseg *g, char *err, size_t errlen) {
    csession **p = slot_of(x, g->session);
    if (g->pos == 0 && !*p) {
        if (!(*p = calloc(1, sizeof **p))) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        (*p)->id = g->session;
        (*p)->n_ctx = g->n_ctx;
        count_sessions(x, 1);
    }
    csession *s = *p;
    if (!s)
        snprintf(err, errlen, "session %llu is unknown", (unsigned long long)g->session);
    else if (g->sample && !g->sampling) {
        snprintf(err, errlen, "session %llu samples without sampling parameters", (unsigned long long)g->session);
        return NULL;
    } else if (g->sample && (!s->sampled || s->stream != g->stream)) {
        s->params = *g->sampling;
        s->stream = g->stream;
        s->sampled = true;
        s->n_sampled = 0;
    }
    return s;
}

/* Keeps what a replay needs of a segment: its ids, whether sgemm computed
 * them, and the history of a sampling one. 0, or -1 out of memory. */
static int remember(csession *s, const rl_xseg *g, bool sgemm, size_t mask_len) {
    const uint32_t end = g->pos + g->n;
    if (end > s->cap) {
        uint32_t cap = end > 2 * s->cap ? end : 2 * s->cap;
        int32_t *t = realloc(s->toks, cap * sizeof *t);
        if (!t)
            return -1;
        s->toks = t, s->cap = cap;
    }
    memcpy(s->toks + g->pos, g->ids, g->n * sizeof *g->ids);
    s->n_toks = end;
    while (s->n_sg && s->sg[s->n_sg - 1].pos >= g->pos) /* a rewind: the chunks past pos are gone */
        s->n_sg--;
    if (s->n_sg && s->sg[s->n_sg - 1].pos + s->sg[s->n_sg - 1].n > g->pos)
        s->sg[s->n_sg - 1].n = g->pos - s->sg[s->n_sg - 1].pos;
    if (sgemm) {
        if (s->n_sg == s->cap_sg) {
            uint32_t cap = s->cap_sg ? 2 * s->cap_sg : 8;
            cluster_chunk *c = realloc(s->sg, cap * sizeof *c);
            if (!c)
                return -1;
            s->sg = c, s->cap_sg = cap;
        }
        s->sg[s->n_sg++] = (cluster_chunk){g->pos, g->n};
    }
    if (g->sample) {
        s->n_sampled += g->verify ? g->n : 1; /* a verifying segment draws once per position */
        s->n_top = g->n_top;
        int32_t *h = realloc(s->hist, (g->n_history ? g->n_history : 1) * sizeof *h);
        if (!h)
            return -1;
        if (g->n_history)
            memcpy(h, g->history, g->n_history * sizeof *h);
        s->hist = h, s->n_hist = g->n_history;
        free(s->mask);
        s->mask = NULL;
        if (g->mask && !(s->mask = malloc(mask_len)))
            return -1;
        s->n_draft = g->verify && g->draft_q ? g->n - 1 : 0;
        if (s->n_draft) {
            rl_qdist *q = realloc(s->draft, s->n_draft * sizeof *q);
            if (!q)
                return -1;
            memcpy(q, g->draft_q, s->n_draft * sizeof *q);
            s->draft = q;
        }
        if (g->mask)
            memcpy(s->mask, g->mask, mask_len);
    }
    return 0;
}

static int recover(cluster_exec *x, const char *why);

/* A lost node that answers a hello again (it was restarted, or woke up) is
 * taken back by a re-plan, while nothing is in flight; its link's state is
 * only a hint of when to ask (cluster_probe_left_out). */
static void readmit(cluster_exec *x) {
    if (x->count)
        return;
    char what[256];
    if (x->disc && discovery_update_cluster(x->disc, x->c, x->disc_cfg, what, sizeof what) > 0) {
        recover(x, what);
        return;
    }
    cluster_probe_left_out(x->c);
    for (uint32_t i = 0; i < cluster_n_nodes(x->c); i++)
        if (x->lost[i] && cluster_node_answers(x->c, i)) {
            char why[128];
            snprintf(why, sizeof why, "node %s answers again", cluster_node_name(x->c, i));
            recover(x, why);
            return;
        }
}

static int cx_submit(rl_executor *base, uint64_t batch, const rl_xseg *segs, uint32_t n, char *err, size_t errlen) {
    cluster_exec *x = (cluster_exec *)base;
    if (x->count == base->depth || n == 0 || n > base->max_batch) {
        snprintf(err, errlen, n ? "%u micro-batches are already outstanding" : "an empty micro-batch", x->count);
        return -1;
    }
    readmit(x);
    if (cluster_lost(x->c)[0]) /* lost while idle, or an earlier re-plan failed: try again */
        recover(x, cluster_lost(x->c));
    cflight *f = &x->ring[(x->head + x->count) % base->depth];
    uint32_t rows = 0;
    bool sgemm = x->gemm_min > 0; /* the nodes' rule: every segment allows it and the rows reach gemm_min */
    for (uint32_t i = 0; i < n; i++)
        rows += segs[i].n, sgemm = sgemm && segs[i].sgemm;
    sgemm = sgemm && rows >= x->gemm_min;
    for (uint32_t i = 0; i < n; i++) {
        const rl_xseg *g = &segs[i];
        csession *s = session_of(x, g, err, errlen);
        if (!s)
            return -1;
        const uint32_t before = s->n_sampled;
        if (remember(s, g, sgemm, MASK_LEN(x))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        x->smp[i] = (cluster_sampling){.params = &s->params,
                                       .stream = s->stream,
                                       .history = g->history,
                                       .n_history = g->n_history,
                                       .mask = g->mask,
                                       .mask_len = g->mask ? MASK_LEN(x) : 0,
                                       .n_top = g->n_top,
                                       .samples_before = before,
                                       .draft = g->sample && g->verify ? g->draft_q : NULL,
                                       .n_draft = g->n - 1};
        x->segs[i] = (cluster_seg){.session = g->session,
                                   .ids = g->ids,
                                   .n = g->n,
                                   .pos = g->pos,
                                   .n_ctx = g->n_ctx,
                                   .sampling = g->sample ? &x->smp[i] : NULL,
                                   .sgemm = g->sgemm,
                                   .verify = g->sample && g->verify,
                                   .rewind = g->rewind};
        f->sessions[i] = g->session;
        f->ids[i] = -1;
        f->top[i].n = 0;
        f->sample[i] = g->sample;
        f->verify[i] = g->sample && g->verify;
        f->first[i] = i ? f->first[i - 1] + f->len[i - 1] : 0;
        f->len[i] = g->n;
    }
    for (uint32_t r = 0; r < rows; r++)
        f->verified[r] = -1;
    f->rows = rows;
    if (!(f->step = cluster_batch_send(x->c, x->segs, n, err, errlen)))
        return -1;
    f->batch = batch;
    f->n = n;
    f->act_bytes = cluster_activation_bytes(x->c, rows);
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
    return NULL; /* a drop's answer, or one of a micro-batch already failed */
}

/* Puts an answer's ids at their segments and counts the work per node. */
static void take(cluster_exec *x, cflight *f, const cluster_batch_result *r) {
    f->answered = true;
    f->status = r->status;
    snprintf(f->err, sizeof f->err, "%s", r->err);
    for (uint32_t k = 0, at = 0; r->status == 0 && k < r->n; at += r->n_verified[k++]) {
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
        f->top[i] = r->top[k];
        if (r->n_verified[k] != (f->verify[i] ? f->len[i] : 0)) { /* a node that predates Segment.verify */
            f->status = -1;
            snprintf(f->err, sizeof f->err, "%u ids per position for session %llu, which verifies %u", r->n_verified[k],
                     (unsigned long long)r->sessions[k], f->verify[i] ? f->len[i] : 0);
            return;
        }
        if (f->verify[i])
            memcpy(f->verified + f->first[i], r->verified + at, f->len[i] * sizeof *f->verified);
    }
    pthread_mutex_lock(&x->stats_lock);
    for (uint32_t k = 0; k < r->n_stages && k < x->n_stages; k++) {
        rl_xnode *nd = &x->nodes[k];
        nd->busy_seconds += r->stage_seconds[k];
        nd->batches++;
        nd->bytes_in += f->act_bytes;
        nd->bytes_out += k + 1 < x->n_stages ? f->act_bytes : 0;
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

/* x->nodes from the current plan: its stages with their layers, then the
 * nodes left out for not answering; counters carry over by name. */
static void publish_nodes(cluster_exec *x) {
    rl_xnode old[CLUSTER_MAX_NODES], nodes[CLUSTER_MAX_NODES];
    uint32_t n = 0, n_old, sessions = 0;
    for (int b = 0; b < N_BUCKETS; b++)
        for (const csession *s = x->table[b]; s; s = s->next)
            sessions++;
    const cluster *c = x->c;
    const uint32_t stages = cluster_n_stages(c);
    for (uint32_t k = 0; k < stages + cluster_n_nodes(c); k++) {
        const uint32_t i = k < stages ? cluster_stage_node(c, k) : k - stages;
        if (k >= stages && (!x->lost[i] || cluster_node_in_pipeline(c, i)))
            continue;
        rl_xnode *nd = &nodes[n++];
        *nd = (rl_xnode){.sessions = k < stages ? sessions : 0};
        snprintf(nd->name, sizeof nd->name, "%s", cluster_node_name(c, i));
        snprintf(nd->state, sizeof nd->state, "%s", k < stages ? "ready" : "lost");
        plan_range r = cluster_node_range(c, i);
        if (k < stages)
            snprintf(nd->layers, sizeof nd->layers, "%u-%u", r.l0, r.l1 - 1);
    }
    pthread_mutex_lock(&x->stats_lock);
    n_old = x->n_nodes;
    memcpy(old, x->nodes, n_old * sizeof *old);
    for (uint32_t k = 0; k < n; k++)
        for (uint32_t j = 0; j < n_old; j++)
            if (!strcmp(old[j].name, nodes[k].name)) {
                nodes[k].busy_seconds = old[j].busy_seconds, nodes[k].batches = old[j].batches;
                nodes[k].bytes_in = old[j].bytes_in, nodes[k].bytes_out = old[j].bytes_out;
            }
    memcpy(x->nodes, nodes, n * sizeof *nodes);
    x->n_nodes = n, x->n_stages = stages;
    pthread_mutex_unlock(&x->stats_lock);
}

/* Where a session waits for an id in an unanswered micro-batch: its flight
 * and segment, or NULL. (A session samples once at a time: its next
 * segment needs that id.) */
static cflight *pending_sample(cluster_exec *x, uint64_t session, uint32_t *seg) {
    for (uint32_t k = 0; k < x->count; k++) {
        cflight *f = &x->ring[(x->head + k) % x->base.depth];
        for (uint32_t i = 0; !f->answered && i < f->n; i++)
            if (f->sessions[i] == session && f->sample[i]) {
                *seg = i;
                return f;
            }
    }
    return NULL;
}

/* Feeds a session's tokens again from position 0, sampling after the last
 * one when an unanswered micro-batch waits for that id (put there). */
static int replay(cluster_exec *x, const csession *s, char *err, size_t errlen) {
    uint32_t seg = 0;
    cflight *f = pending_sample(x, s->id, &seg);
    /* the sample in flight was counted when it was sent */
    cluster_sampling smp = {.params = &s->params,
                            .stream = s->stream,
                            .history = s->hist,
                            .n_history = s->n_hist,
                            .mask = s->mask,
                            .mask_len = s->mask ? MASK_LEN(x) : 0,
                            .n_top = s->n_top,
                            .samples_before = s->n_sampled - 1};
    const uint32_t verify = f && f->verify[seg] ? f->len[seg] : 0;
    if (verify) /* its draws, one per position, were all counted when it was sent */
        smp.samples_before = s->n_sampled - verify;
    if (verify && s->n_draft) /* a sampled draft: checked against the same distributions */
        smp.draft = s->draft, smp.n_draft = s->n_draft;
    cluster_replay r = {.session = s->id,
                        .ids = s->toks,
                        .n = s->n_toks,
                        .n_ctx = s->n_ctx,
                        .sgemm = s->sg,
                        .n_sgemm = s->n_sg,
                        .sampling = f ? &smp : NULL,
                        .verify = verify};
    int32_t id;
    rl_top top;
    if (cluster_replay_session(x->c, &r, x->base.max_batch, &id, &top, f ? f->verified + f->first[seg] : NULL, err,
                               errlen))
        return -1;
    if (f)
        f->ids[seg] = id, f->top[seg] = top;
    return 0;
}

/* Every session again on the new plan; the nodes it leaves out are lost. */
static int replay_all(void *ud, const bool *answered, char *err, size_t errlen) {
    cluster_exec *x = ud;
    for (uint32_t i = 0; i < cluster_n_nodes(x->c); i++)
        x->lost[i] = !answered[i];
    int rc = 0;
    for (int b = 0; rc == 0 && b < N_BUCKETS; b++)
        for (const csession *s = x->table[b]; rc == 0 && s; s = s->next)
            rc = replay(x, s, err, errlen);
    return rc;
}

/* Re-plans over the nodes that answer and restores every session there;
 * the unanswered micro-batches are answered from the replay. When that
 * fails, they fail with the reason, and the next submit tries again. */
static int recover(cluster_exec *x, const char *why) {
    char err[RL_XERR_LEN];
    set_state(x, "lost");
    bool answered[CLUSTER_MAX_NODES];
    if (cluster_recover(x->c, &x->co, &x->ro, x->max_sessions, why, answered, replay_all, x, err, sizeof err)) {
        rl_log(RL_LOG_ERROR, "%s", err);
        fail_all(x, err);
        return -1;
    }
    for (uint32_t k = 0; k < x->count; k++) {
        cflight *f = &x->ring[(x->head + k) % x->base.depth];
        if (!f->answered)
            f->answered = true, f->status = 0;
    }
    publish_nodes(x);
    return 0;
}

/* The stages show "late" while a micro-batch is overdue (before its
 * deadline makes the pipeline lost), "ready" again when answers come. */
static void show_late(cluster_exec *x) {
    const bool late = cluster_overdue_ms(x->c) > 0 && !cluster_lost(x->c)[0];
    if (late == x->late)
        return;
    x->late = late;
    set_state(x, late ? "late" : "ready");
}

static int cx_wait(rl_executor *base, int timeout_ms, rl_xdone *done) {
    cluster_exec *x = (cluster_exec *)base;
    if (x->count == 0)
        return 0;
    cflight *oldest = &x->ring[x->head];
    cluster_batch_result r = {.cap = base->max_batch,
                              .sessions = x->res_sessions,
                              .ids = x->res_ids,
                              .top = x->res_top,
                              .verified = x->res_verified,
                              .n_verified = x->res_n_verified,
                              .cap_verified = base->max_batch};
    while (!oldest->answered) {
        char err[RL_XERR_LEN];
        int rc = cluster_batch_wait(x->c, timeout_ms, &r, err, sizeof err);
        if (rc == 0) {
            show_late(x);
            return 0;
        }
        cflight *f = rc > 0 ? flight_of(x, r.step) : NULL;
        if (rc < 0)
            recover(x, err);
        else if (f && !f->answered)
            take(x, f, &r);
    }
    show_late(x);
    memcpy(x->done_ids, oldest->ids, oldest->n * sizeof *x->done_ids);
    memcpy(x->done_top, oldest->top, oldest->n * sizeof *x->done_top);
    memcpy(x->done_verified, oldest->verified, oldest->rows * sizeof *x->done_verified);
    *done = (rl_xdone){.batch = oldest->batch,
                       .status = oldest->status,
                       .n_segs = oldest->n,
                       .ids = x->done_ids,
                       .top = x->done_top,
                       .verified = x->done_verified};
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
        session_free(s);
        count_sessions(x, -1);
    }
    char err[256];
    if (!cluster_batch_drop(x->c, &session, 1, err, sizeof err) && !cluster_lost(x->c)[0])
        rl_log(RL_LOG_WARN, "dropping session %llu on the nodes: %s", (unsigned long long)session, err);
}

static void cx_describe(rl_executor *base, char *buf, size_t len) {
    cluster_describe(((cluster_exec *)base)->c, buf, len);
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
            session_free(s);
        }
    for (uint32_t k = 0; x->ring && k < base->depth; k++)
        free(x->ring[k].sessions), free(x->ring[k].ids), free(x->ring[k].sample), free(x->ring[k].top),
            free(x->ring[k].verify), free(x->ring[k].first), free(x->ring[k].len), free(x->ring[k].verified);
    cluster_destroy(&x->c);
    discovery_destroy(&x->disc);
    cluster_config_destroy(&x->disc_cfg);
    free(x->ring), free(x->segs), free(x->smp), free(x->res_sessions), free(x->res_ids), free(x->done_ids);
    free(x->res_top), free(x->done_top), free(x->res_verified), free(x->res_n_verified), free(x->done_verified);
    pthread_mutex_destroy(&x->stats_lock);
    free(x);
}

static const rl_executor_ops CLUSTER_OPS = {cx_submit, cx_wait, cx_drop, cx_nodes, cx_describe, cx_destroy};

/* A cluster file with `discover`: its beacons go on being heard. 0, or -1 with err. */
static int keep_discovering(cluster_exec *x, char *err, size_t errlen) {
    if (!(x->disc_cfg = cluster_config_load(x->co.file, err, errlen)))
        return -1;
    if (!cluster_config_discover(x->disc_cfg)) {
        cluster_config_destroy(&x->disc_cfg);
        return 0;
    }
    return (x->disc = discovery_new(x->disc_cfg, NULL, 0, err, errlen)) ? 0 : -1;
}

static int alloc_buffers(cluster_exec *x) {
    const uint32_t mb = x->base.max_batch;
    x->ring = calloc(x->base.depth, sizeof *x->ring);
    x->segs = malloc(mb * sizeof *x->segs);
    x->smp = malloc(mb * sizeof *x->smp);
    x->res_sessions = malloc(mb * sizeof *x->res_sessions);
    x->res_ids = malloc(mb * sizeof *x->res_ids);
    x->done_ids = malloc(mb * sizeof *x->done_ids);
    x->res_top = malloc(mb * sizeof *x->res_top);
    x->done_top = malloc(mb * sizeof *x->done_top);
    x->res_verified = malloc(mb * sizeof *x->res_verified);
    x->res_n_verified = malloc(mb * sizeof *x->res_n_verified);
    x->done_verified = malloc(mb * sizeof *x->done_verified);
    if (!x->ring || !x->segs || !x->smp || !x->res_sessions || !x->res_ids || !x->done_ids || !x->res_top ||
        !x->done_top || !x->res_verified || !x->res_n_verified || !x->done_verified)
        return -1;
    for (uint32_t k = 0; k < x->base.depth; k++)
        if (!(x->ring[k].sessions = malloc(mb * sizeof *x->ring[k].sessions)) ||
            !(x->ring[k].ids = malloc(mb * sizeof *x->ring[k].ids)) ||
            !(x->ring[k].sample = malloc(mb * sizeof *x->ring[k].sample)) ||
            !(x->ring[k].top = malloc(mb * sizeof *x->ring[k].top)) ||
            !(x->ring[k].verify = malloc(mb * sizeof *x->ring[k].verify)) ||
            !(x->ring[k].first = malloc(mb * sizeof *x->ring[k].first)) ||
            !(x->ring[k].len = malloc(mb * sizeof *x->ring[k].len)) ||
            !(x->ring[k].verified = malloc(mb * sizeof *x->ring[k].verified)))
            return -1;
    return 0;
}

rl_executor *rl_executor_cluster_new(const rl_cluster_opts *co, const rl_runner_opts *ro, uint32_t max_sessions,
                                     uint32_t *n_ctx, const rl_model **model, rl_kv_type *kv_type, char *err,
                                     size_t errlen) {
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
    /* The depth stays that of the first plan: the scheduler's ring is that
     * long, and a shorter pipeline only queues at its first node. */
    x->base = (rl_executor){&CLUSTER_OPS, rl_runner_batch(ro), cluster_n_stages(x->c), hp->n_vocab, *hp};
    x->co = *co, x->ro = *ro, x->max_sessions = max_sessions;
    x->gemm_min = rl_gemm_min_for(ro->no_gemm, ro->gemm_min);
    publish_nodes(x);
    if (keep_discovering(x, err, errlen)) {
        cx_destroy(&x->base);
        return NULL;
    }
    if (alloc_buffers(x)) {
        snprintf(err, errlen, "out of memory for micro-batches of %u tokens", x->base.max_batch);
        cx_destroy(&x->base);
        return NULL;
    }
    *model = cluster_model(x->c);
    *kv_type = cluster_kv_type(x->c);
    return &x->base;
}
