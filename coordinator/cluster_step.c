/* The cluster client's steps (see cluster.h): one session's ids through the
 * pipeline, cut into Forwards of at most the assignment's batch (or of the
 * sizes a replay asks for), sent without waiting and answered by one Result
 * each from the head stage. cluster.c opens, greets and assigns the nodes
 * and waits on their links; the server's micro-batches, several sessions in
 * one Forward, are in cluster_batch.c. */
#include "cluster.h"
#include "cluster_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "forward.h"
#include "log.h"
#include "wire.h"

/* The session's sampling as the head stage takes it, with the part of its
 * history the penalties look at. */
void cluster_sampling_to_wire(const cluster_sampling *s, Relais__Sampling *smp) {
    size_t w = wire_history_window(s->params, s->n_history);
    wire_sampling_from_params(s->params, smp);
    smp->stream = s->stream;
    smp->samples_before = s->samples_before;
    smp->top_logits = s->n_top;
    smp->history = (int32_t *)(s->history + s->n_history - w);
    smp->n_history = w;
}

/* f, with a new step id, to the first node of the pipeline. */
int cluster_send_first(cluster *c, Relais__Forward *f, char *err, size_t errlen) {
    f->step_id = c->next_step++;
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_FORWARD;
    env.forward = f;
    const cl_node *first = &c->nodes[c->pipe[0]];
    char why[256];
    const int64_t send = rl_trace_on() ? rl_now_us() : 0;
    if (wire_send(first->dealer, NULL, 0, &env, why, sizeof why)) {
        snprintf(err, errlen, "node %s: %s", first->name, why);
        return -1;
    }
    if (rl_trace_on())
        rl_trace("send step=%llu session=%llu tokens=%u send=%lld sent=%lld", (unsigned long long)f->step_id,
                 (unsigned long long)f->session_id, f->n_tokens, (long long)send, (long long)rl_now_us());
    return 0;
}

static int send_chunk(cluster *c, uint64_t session, uint32_t pos, const int32_t *ids, uint32_t n,
                      const cluster_sampling *s, char *err, size_t errlen) {
    const uint32_t dim = rl_model_hparams(c->model)->dim;
    if (rl_embed(c->model, ids, n, c->x, err, errlen))
        return -1;
    Relais__Forward f = RELAIS__FORWARD__INIT;
    Relais__Sampling smp = RELAIS__SAMPLING__INIT;
    f.session_id = session;
    f.pos = pos;
    f.n_tokens = n;
    f.dtype = c->wire;
    f.activations = (ProtobufCBinaryData){wire_activations_bytes(c->wire, n, dim), c->act};
    wire_activations_encode(c->x, n, dim, c->wire, c->act);
    if (s) {
        cluster_sampling_to_wire(s, &smp);
        f.sampling = &smp;
    }
    return cluster_send_first(c, &f, err, errlen);
}

/* Checks the Result of the last chunk and copies it out: 1, or -1 with err. */
static int take_result(const cluster *c, const Relais__Result *r, uint32_t n_top, rl_step_result *out, char *err,
                       size_t errlen) {
    const uint32_t V = rl_model_hparams(c->model)->n_vocab, want = n_top < V ? n_top : V;
    bool ok = r->id >= 0 && (uint32_t)r->id < V && r->n_top == want;
    for (size_t k = 0; ok && k < r->n_top; k++)
        ok = r->top[k]->id >= 0 && (uint32_t)r->top[k]->id < V;
    if (!ok) {
        snprintf(err, errlen, "node %s sent a Result with id %d and %zu top logits (asked %u, vocabulary %u)",
                 c->nodes[c->pipe[c->n_pipe - 1]].name, r->id, r->n_top, want, V);
        return -1;
    }
    out->id = r->id;
    out->n_top = want;
    for (uint32_t k = 0; k < want; k++)
        out->top_ids[k] = r->top[k]->id, out->top_vals[k] = r->top[k]->logit;
    return 1;
}

/* One message while a step waits: 1 when it is the Result of step `want`,
 * 0 to go on waiting, -1 with err. */
static int step_message(cluster *c, const wire_msg *m, int from, uint64_t session, uint64_t first, uint64_t want,
                        char *err, size_t errlen) {
    if (from >= 0) {
        const Relais__Envelope *e = wire_msg_env(m);
        if (!e) {
            snprintf(err, errlen, "node %s sent a message this coordinator cannot read: %s", c->nodes[from].name,
                     wire_msg_error(m));
            return -1;
        }
        if (e->body_case != RELAIS__ENVELOPE__BODY_ERROR || e->error->step_id < first)
            return 0;   /* not about this step */
        snprintf(err, errlen, "node %s: %s: %s", c->nodes[from].name, wire_code_name(e->error->code),
                 e->error->message);
        return -1;
    }
    const uint8_t *key = wire_msg_peer_key(m), *last = c->nodes[c->pipe[c->n_pipe - 1]].key;
    const Relais__Envelope *e = wire_msg_env(m);
    if (!key || memcmp(key, last, CURVE_KEY_BYTES) || !e || e->body_case != RELAIS__ENVELOPE__BODY_RESULT ||
        e->result->step_id < first)
        return 0;   /* not from the current last node, or from an earlier step */
    if (e->result->step_id != want || e->result->session_id != session) {
        snprintf(err, errlen, "a result for session %llu step %llu arrived while waiting for session %llu step %llu",
                 (unsigned long long)e->result->session_id, (unsigned long long)e->result->step_id,
                 (unsigned long long)session, (unsigned long long)want);
        return -1;
    }
    return 1;
}

static int remember_session(cluster *c, uint64_t session) {
    for (size_t i = 0; i < c->n_sessions; i++)
        if (c->sessions[i] == session)
            return 0;
    if (c->n_sessions == c->cap_sessions) {
        size_t cap = c->cap_sessions ? 2 * c->cap_sessions : 4;
        uint64_t *a = realloc(c->sessions, cap * sizeof *a);
        if (!a)
            return -1;
        c->sessions = a, c->cap_sessions = cap;
    }
    c->sessions[c->n_sessions++] = session;
    return 0;
}

static int check_step(const cluster *c, uint32_t pos, const int32_t *ids, uint32_t n, const cluster_sampling *s,
                      char *err, size_t errlen) {
    if (cluster_check_usable(c, err, errlen))
        return -1;
    const uint32_t V = rl_model_hparams(c->model)->n_vocab;
    if (n == 0 || s->n_top > RL_MAX_TOP) {
        snprintf(err, errlen, "a step needs at least one id and at most %d top logits", RL_MAX_TOP);
        return -1;
    }
    if ((uint64_t)pos + n > c->n_ctx) {
        snprintf(err, errlen, "%u more tokens at position %u would exceed the context of %u", n, pos, c->n_ctx);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)   /* all of them before any chunk leaves */
        if (ids[i] < 0 || (uint32_t)ids[i] >= V) {
            snprintf(err, errlen, "token id %d at index %u is outside the vocabulary of %u", ids[i], i, V);
            return -1;
        }
    return 0;
}

/* Chunk k of a step: sizes[k] ids, or max_batch while that many are left. */
static uint32_t chunk_at(const cluster *c, const uint32_t *sizes, uint32_t k, uint32_t left) {
    return sizes ? sizes[k] : left < c->max_batch ? left : c->max_batch;
}

static int step_chunks(cluster *c, uint64_t session, uint32_t pos, const int32_t *ids, uint32_t n,
                       const uint32_t *sizes, const cluster_sampling *s, rl_step_result *out, char *err, size_t errlen) {
    if (check_step(c, pos, ids, n, s, err, errlen) || remember_session(c, session))
        return -1;
    const uint64_t first = c->next_step;
    for (uint32_t done = 0, k = 0; done < n; k++) {   /* all chunks go out at once: the pipeline overlaps them */
        const uint32_t chunk = chunk_at(c, sizes, k, n - done);
        if (chunk == 0 || chunk > c->max_batch || chunk > n - done) {
            snprintf(err, errlen, "chunk %u of %u ids does not fit a Forward of %u", k, chunk, c->max_batch);
            return -1;
        }
        if (send_chunk(c, session, pos + done, ids + done, chunk, done + chunk == n ? s : NULL, err, errlen))
            return -1;
        done += chunk;
    }
    int64_t deadline = cluster_now_ms() + c->step_ms;
    for (uint64_t want = first, through = 0; want < c->next_step;) {
        wire_msg *m = NULL;
        int from, rc = cluster_next_msg(c, deadline, &m, &from, err, errlen);
        if (rc == 0) {
            snprintf(err, errlen, "no result from the pipeline within %d s", c->step_ms / 1000);
            snprintf(c->lost, sizeof c->lost, "%s", err);
            return -1;
        }
        if (rc > 0)
            rc = step_message(c, m, from, session, first, want, err, errlen);
        if (rc > 0 && c->prefill_progress) {   /* chunk want - first is through */
            const uint32_t chunk = chunk_at(c, sizes, (uint32_t)(want - first), n - (uint32_t)through);
            through += chunk;
            rl_show_prefill((uint32_t)through, n, chunk);
        }
        if (rc > 0 && ++want == c->next_step)
            rc = take_result(c, wire_msg_env(m)->result, s->n_top, out, err, errlen);
        if (rc > 0)
            deadline = cluster_now_ms() + c->step_ms;   /* a chunk came through: the pipeline is alive */
        wire_msg_destroy(&m);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int cluster_step(cluster *c, uint64_t session, uint32_t pos, const int32_t *ids, uint32_t n,
                 const cluster_sampling *s, rl_step_result *out, char *err, size_t errlen) {
    return step_chunks(c, session, pos, ids, n, NULL, s, out, err, errlen);
}

int cluster_step_chunks(cluster *c, uint64_t session, uint32_t pos, const int32_t *ids, const uint32_t *sizes,
                        uint32_t n_chunks, const cluster_sampling *s, rl_step_result *out, char *err, size_t errlen) {
    uint64_t n = 0;
    for (uint32_t k = 0; k < n_chunks; k++)
        n += sizes[k];
    if (n > UINT32_MAX) {
        snprintf(err, errlen, "%llu ids in one step", (unsigned long long)n);
        return -1;
    }
    return step_chunks(c, session, pos, ids, (uint32_t)n, sizes, s, out, err, errlen);
}
