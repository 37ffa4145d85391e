/* The coordinator's micro-batches (see cluster.h): one or several
 * sessions' tokens in one Forward, sent without waiting so that one
 * micro-batch per pipeline stage can be in flight, and their answers taken
 * as they arrive. cluster.c opens, greets and assigns the nodes and waits on
 * their links. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cluster.h"
#include "cluster_priv.h"
#include "forward.h"
#include "log.h"
#include "wire.h"
#include "util.h"

/* Answers come back in order through the pipeline (a Result from the last
 * node) or out of it (an Error from the node that failed the step); each
 * Forward gets exactly one of them, which is how `flying` counts. */

/* The session's sampling as the head stage takes it, with the part of its
 * history the penalties look at: for a segment verifying `verify` ids, that
 * of its first position too, and the window each position cuts. */
static void sampling_to_wire(const cluster_sampling *s, uint32_t verify, Relais__Sampling *smp) {
    size_t w = wire_history_window(s->params, s->n_history);
    if (verify > 1 && w > 0) {
        smp->window = s->params->repeat_last_n > 0 ? (uint32_t)s->params->repeat_last_n : 0;
        w = w + verify - 1 < s->n_history ? w + verify - 1 : s->n_history;
    }
    wire_sampling_from_params(s->params, smp);
    smp->stream = s->stream;
    smp->samples_before = s->samples_before;
    smp->top_logits = s->n_top;
    smp->history = (int32_t *)(s->history + s->n_history - w);
    smp->n_history = w;
    smp->allowed = (ProtobufCBinaryData){s->mask_len, (uint8_t *)s->mask};
}

/* A sampled draft's distributions as Sampling.draft: dd and ptrs (n each)
 * are the caller's, and point into q. */
static void draft_to_wire(const rl_qdist *q, uint32_t n, Relais__DraftDist *dd, Relais__DraftDist **ptrs,
                          Relais__Sampling *smp) {
    for (uint32_t i = 0; i < n; i++) {
        relais__draft_dist__init(&dd[i]);
        dd[i].token = q[i].token;
        dd[i].ids = (int32_t *)q[i].ids, dd[i].n_ids = q[i].n;
        dd[i].probs = (float *)q[i].p, dd[i].n_probs = q[i].n;
        ptrs[i] = &dd[i];
    }
    smp->draft = ptrs;
    smp->n_draft = n;
}

/* f, with a new step id, to the first node of the pipeline; rows: its tokens. */
static int send_first(cluster *c, Relais__Forward *f, uint32_t rows, char *err, size_t errlen) {
    f->step_id = c->next_step++;
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_FORWARD;
    env.forward = f;
    const cl_node *first = &c->nodes[c->pipe[0]];
    char why[256];
    const size_t bytes = relais__envelope__get_packed_size(&env);
    if ((int64_t)bytes > c->forward_max) { /* the node's socket would drop the link instead of refusing it */
        snprintf(err, errlen, "a micro-batch of %zu bytes, more than the %lld its assignment allows", bytes,
                 (long long)c->forward_max);
        return -1;
    }
    const int64_t send = rl_trace_on() ? rl_now_us() : 0;
    if (wire_send(first->dealer, NULL, 0, &env, why, sizeof why)) {
        snprintf(err, errlen, "node %s: %s", first->name, why);
        return -1;
    }
    if (rl_trace_on() && f->n_segments) /* a drop-only Forward carries no tokens to time */
        rl_trace("send step=%llu session=%llu tokens=%u send=%lld sent=%lld", (unsigned long long)f->step_id,
                 (unsigned long long)(f->n_segments ? f->segments[0]->session_id : 0), rows, (long long)send,
                 (long long)rl_now_us());
    return 0;
}

static int send_counted(cluster *c, Relais__Forward *f, uint32_t rows, char *err, size_t errlen) {
    if (cluster_check_usable(c, err, errlen) || send_first(c, f, rows, err, errlen))
        return -1;
    c->flying++;
    c->step_rows[f->step_id % 64] = rows;
    c->rows_flying += rows;
    c->alive_ms = (rl_now_us() / 1000); /* an answer may sit unread since long ago (a drop's, while idle) */
    return 0;
}

uint64_t cluster_batch_send(cluster *c, const cluster_seg *segs, uint32_t n, char *err, size_t errlen) {
    typedef struct {
        Relais__Segment seg;
        Relais__Sampling smp;
        Relais__DraftDist *dd, **dd_ptrs; /* (smp.n_draft) a sampled draft's, when verifying one */
    } wire_seg;
    if (cluster_check_usable(c, err, errlen))
        return 0;
    const uint32_t dim = rl_model_hparams(c->model)->dim;
    wire_seg *ws = calloc(n ? n : 1, sizeof *ws);
    Relais__Segment **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    uint64_t step = 0;
    uint32_t rows = 0, i;
    for (i = 0; ws && ptrs && i < n; rows += segs[i++].n) {
        const cluster_seg *g = &segs[i];
        if (g->n == 0 || rows + g->n > c->max_batch) {
            snprintf(err, errlen, "segment %u: %u tokens; a micro-batch holds 1 to %u in all", i, g->n, c->max_batch);
            break;
        }
        if (rl_embed(c->model, g->ids, g->n, c->x + (size_t)rows * dim, err, errlen))
            break;
        relais__segment__init(&ws[i].seg);
        relais__sampling__init(&ws[i].smp);
        ws[i].seg.session_id = g->session;
        ws[i].seg.pos = g->pos;
        ws[i].seg.n_tokens = g->n;
        ws[i].seg.n_ctx = g->n_ctx;
        ws[i].seg.sample = g->sampling != NULL;
        ws[i].seg.sgemm = g->sgemm;
        ws[i].seg.verify = g->verify && g->sampling;
        ws[i].seg.rewind = g->rewind;
        if (g->sampling) {
            if (g->sampling->n_top > RL_MAX_TOP) {
                snprintf(err, errlen, "segment %u asks for %u top logits, at most %d", i, g->sampling->n_top,
                         RL_MAX_TOP);
                break;
            }
            sampling_to_wire(g->sampling, g->verify ? g->n : 0, &ws[i].smp);
            ws[i].seg.sampling = &ws[i].smp;
            const uint32_t nd = g->verify && g->sampling->draft ? g->sampling->n_draft : 0;
            if (nd &&
                (!(ws[i].dd = malloc(nd * sizeof *ws[i].dd)) ||
                 !(ws[i].dd_ptrs = malloc(nd * sizeof *ws[i].dd_ptrs)))) {
                snprintf(err, errlen, "out of memory");
                break;
            }
            if (nd)
                draft_to_wire(g->sampling->draft, nd, ws[i].dd, ws[i].dd_ptrs, &ws[i].smp);
        }
        ptrs[i] = &ws[i].seg;
    }
    if (!ws || !ptrs)
        snprintf(err, errlen, "out of memory");
    if (ws && ptrs && i == n && n > 0) {
        Relais__Forward f = RELAIS__FORWARD__INIT;
        f.dtype = c->wire;
        f.activations = (ProtobufCBinaryData){wire_activations_bytes(c->wire, rows, dim), c->act};
        wire_activations_encode(c->x, rows, dim, c->wire, c->act);
        f.segments = ptrs;
        f.n_segments = n;
        if (send_counted(c, &f, rows, err, errlen) == 0)
            step = f.step_id;
    } else if (n == 0) {
        snprintf(err, errlen, "an empty micro-batch");
    }
    for (uint32_t k = 0; ws && k < n; k++)
        free(ws[k].dd), free(ws[k].dd_ptrs);
    free(ws), free(ptrs);
    return step;
}

uint64_t cluster_batch_drop(cluster *c, const uint64_t *sessions, uint32_t n, char *err, size_t errlen) {
    Relais__Forward f = RELAIS__FORWARD__INIT;
    f.dtype = c->wire;
    f.drop_sessions = (uint64_t *)sessions;
    f.n_drop_sessions = n;
    return n && send_counted(c, &f, 0, err, errlen) == 0 ? f.step_id : 0;
}

/* A SegmentResult's top logits into *top, checked against the vocabulary:
 * 0, or -1 with out's status and err set. */
static int take_top(const cluster *c, const Relais__SegmentResult *sr, rl_top *top, cluster_batch_result *out) {
    const uint32_t V = rl_model_hparams(c->model)->n_vocab;
    bool ok = sr->n_top <= RL_MAX_TOP;
    for (size_t k = 0; ok && k < sr->n_top; k++)
        ok = sr->top[k]->id >= 0 && (uint32_t)sr->top[k]->id < V;
    if (!ok) {
        out->status = -1;
        snprintf(out->err, sizeof out->err,
                 "node %s sent %zu top logits for session %llu, not all in the "
                 "vocabulary of %u or more than %d",
                 c->nodes[c->pipe[c->n_pipe - 1]].name, sr->n_top, (unsigned long long)sr->session_id, V, RL_MAX_TOP);
        return -1;
    }
    top->n = (uint32_t)sr->n_top;
    for (uint32_t k = 0; k < top->n; k++)
        top->ids[k] = sr->top[k]->id, top->vals[k] = sr->top[k]->logit;
    top->lse = sr->top_lse;
    top->chosen = sr->chosen_logit;
    return 0;
}

/* A SegmentResult's ids per position (a verifying segment's) into out at
 * *at, checked against the vocabulary and the room: 0, or -1 with out's
 * status and err set. */
static int take_verified(const cluster *c, const Relais__SegmentResult *sr, size_t k, uint32_t *at,
                         cluster_batch_result *out) {
    const uint32_t V = rl_model_hparams(c->model)->n_vocab;
    bool ok = sr->n_ids <= out->cap_verified - *at;
    for (size_t j = 0; ok && j < sr->n_ids; j++)
        ok = sr->ids[j] >= 0 && (uint32_t)sr->ids[j] < V;
    if (!ok) {
        out->status = -1;
        snprintf(out->err, sizeof out->err,
                 "node %s sent %zu ids per position for session %llu, not all in the "
                 "vocabulary of %u or more than the micro-batch held",
                 c->nodes[c->pipe[c->n_pipe - 1]].name, sr->n_ids, (unsigned long long)sr->session_id, V);
        return -1;
    }
    if (sr->n_ids)
        memcpy(out->verified + *at, sr->ids, sr->n_ids * sizeof *sr->ids);
    out->n_verified[k] = (uint32_t)sr->n_ids;
    *at += (uint32_t)sr->n_ids;
    return 0;
}

/* A Result from the last node: its sampled ids, checked against the
 * vocabulary and the caller's room. */
static void take_batch_result(const cluster *c, const Relais__Result *r, cluster_batch_result *out) {
    const uint32_t V = rl_model_hparams(c->model)->n_vocab;
    const char *last = c->nodes[c->pipe[c->n_pipe - 1]].name;
    out->step = r->step_id;
    out->n_stages = r->n_stage_seconds < CLUSTER_MAX_NODES ? (uint32_t)r->n_stage_seconds : CLUSTER_MAX_NODES;
    if (out->n_stages) /* an empty repeated field may have no array at all */
        memcpy(out->stage_seconds, r->stage_seconds, out->n_stages * sizeof *out->stage_seconds);
    if (r->n_results > out->cap) {
        out->status = -1;
        snprintf(out->err, sizeof out->err, "node %s sent %zu ids for step %llu, more than it had segments", last,
                 r->n_results, (unsigned long long)r->step_id);
        return;
    }
    uint32_t at = 0;
    for (size_t k = 0; k < r->n_results; k++) {
        const Relais__SegmentResult *sr = r->results[k];
        if (sr->id < 0 || (uint32_t)sr->id >= V) {
            out->status = -1;
            snprintf(out->err, sizeof out->err, "node %s sent id %d for session %llu (vocabulary %u)", last, sr->id,
                     (unsigned long long)sr->session_id, V);
            return;
        }
        out->sessions[k] = sr->session_id;
        out->ids[k] = sr->id;
        if (out->top && take_top(c, sr, &out->top[k], out) < 0)
            return;
        if (out->verified && take_verified(c, sr, k, &at, out) < 0)
            return;
    }
    out->n = (uint32_t)r->n_results;
}

/* Whether m answers a micro-batch or a drop: 1 with *out filled, else 0. */
static int batch_answer(const cluster *c, const wire_msg *m, int from, cluster_batch_result *out) {
    const Relais__Envelope *e = wire_msg_env(m);
    out->status = 0;
    out->err[0] = '\0';
    out->n = out->n_stages = 0;
    if (from >= 0) { /* a node's own link: an Error naming the step it failed */
        if (!e || e->body_case != RELAIS__ENVELOPE__BODY_ERROR || e->error->step_id < c->first_step ||
            e->error->step_id == 0)
            return 0;
        out->step = e->error->step_id;
        out->status = -1;
        snprintf(out->err, sizeof out->err, "node %s: %s: %s", c->nodes[from].name, wire_code_name(e->error->code),
                 e->error->message);
        return 1;
    }
    const uint8_t *key = wire_msg_peer_key(m), *last = c->nodes[c->pipe[c->n_pipe - 1]].key;
    if (!key || memcmp(key, last, CURVE_KEY_BYTES) || !e || e->body_case != RELAIS__ENVELOPE__BODY_RESULT ||
        e->result->step_id < c->first_step)
        return 0;
    take_batch_result(c, e->result, out);
    return 1;
}

/* ---- deadlines ----
 *
 * The pipeline must answer within a time derived from what it measured:
 * the usual wait between answers (an average over the recent ones, so that
 * one slow step, a node stopped for a while, moves it only a little), or,
 * for micro-batches of many rows, the assignment's estimate per row times
 * the rows in flight (cluster_assign), whichever is longer. */
#define DEADLINE_FACTOR 8 /* a step is lost at 8 times its expected time */
#define LATE_FACTOR 2     /* and late (cluster_overdue_ms) at twice */
#define LATE_FLOOR_MS 2000
#define GAP_WEIGHT 0.1 /* of a new answer's wait in the average */

static double expected_ms(const cluster *c) {
    const double rows = c->row_ms * c->rows_flying;
    return rows > c->gap_ms ? rows : c->gap_ms;
}

static int64_t deadline_ms(const cluster *c) {
    double ms = DEADLINE_FACTOR * expected_ms(c);
    ms = ms > CLUSTER_STEP_FLOOR_MS ? ms : CLUSTER_STEP_FLOOR_MS;
    return (int64_t)(ms < c->step_ms ? ms : c->step_ms);
}

int64_t cluster_overdue_ms(const cluster *c) {
    if (!c->flying)
        return 0;
    const double late = LATE_FACTOR * expected_ms(c);
    const int64_t past = (rl_now_us() / 1000) - c->alive_ms - (int64_t)(late > LATE_FLOOR_MS ? late : LATE_FLOOR_MS);
    return past > 0 ? past : 0;
}

/* An answer to `step` came: its wait joins the average. */
static void measured(cluster *c, uint64_t step) {
    const uint32_t rows = c->step_rows[step % 64];
    c->rows_flying -= rows < c->rows_flying ? rows : c->rows_flying;
    c->step_rows[step % 64] = 0;
    if (!rows)
        return; /* a drop's answer: no computation to time */
    const double gap = (double)((rl_now_us() / 1000) - c->alive_ms);
    c->gap_ms = c->gap_ms > 0 ? (1 - GAP_WEIGHT) * c->gap_ms + GAP_WEIGHT * gap : gap;
}

int cluster_batch_wait(cluster *c, int timeout_ms, cluster_batch_result *out, char *err, size_t errlen) {
    const int64_t deadline = (rl_now_us() / 1000) + timeout_ms;
    for (;;) {
        if (cluster_check_usable(c, err, errlen))
            return -1;
        const int64_t allowed = deadline_ms(c), silent = c->alive_ms + allowed;
        if (c->flying && (rl_now_us() / 1000) >= silent) {
            snprintf(err, errlen,
                     "no answer from the pipeline within %.1f s (its deadline: %d times the %.1f ms expected, "
                     "at least %d s)",
                     allowed / 1000.0, DEADLINE_FACTOR, expected_ms(c), CLUSTER_STEP_FLOOR_MS / 1000);
            snprintf(c->lost, sizeof c->lost, "%s", err);
            return -1;
        }
        wire_msg *m = NULL;
        int from, rc = cluster_next_msg(c, c->flying && silent < deadline ? silent : deadline, &m, &from, err, errlen);
        if (rc < 0)
            return -1; /* next_msg marked the pipeline lost */
        if (rc == 0 && (rl_now_us() / 1000) >= deadline)
            return 0;
        rc = rc > 0 ? batch_answer(c, m, from, out) : 0;
        wire_msg_destroy(&m);
        if (rc > 0) {
            c->flying -= c->flying > 0;
            measured(c, out->step);
            c->alive_ms = (rl_now_us() / 1000);
            return 1;
        }
    }
}

uint32_t cluster_n_stages(const cluster *c) { return c->n_pipe; }

uint64_t cluster_activation_bytes(const cluster *c, uint32_t rows) {
    return wire_activations_bytes(c->wire, rows, rl_model_hparams(c->model)->dim);
}

uint32_t cluster_stage_node(const cluster *c, uint32_t k) { return c->pipe[k]; }
const char *cluster_lost(const cluster *c) { return c->lost; }
int cluster_failed_node(const cluster *c) { return c->failed_node; }
