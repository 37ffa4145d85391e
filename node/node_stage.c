/* A node's assigned slice and its data path (see node_stage.h). */
#include "node_stage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>
#include "forward.h"
#include "gguf.h"
#include "log.h"
#include "model.h"
#include "node_caps.h"
#include "node_session.h"
#include "sampler.h"
#include "util.h"

#define DRAWS_PER_POSITION 17 /* a verifying pass: a draft of up to 16 and the target's id */
#define HEAD_EXTRA 16         /* head rows beyond one per session: a draft's positions go through together */

/* A row that goes through the head: its segment and result, and how many of
 * the segment's tokens come after it (0: the last, the one `id` reports). */
typedef struct head_row {
    uint32_t seg, res, row, back;
} head_row;

struct node_stage {
    Relais__Assign *assign;              /* a packed-and-unpacked copy of the Assign (owned) */
    void *zctx;                          /* the node's ZeroMQ context (not owned) */
    const curve_keys *keys;              /* the node's key pair (not owned) */
    rl_model *model;                     /* the slice: layers [l0, l1), head when run_head */
    const rl_hparams *hp;                /* the model's shape (owned by model) */
    rl_ctx *ctx;                         /* threads and scratch */
    node_sessions *sessions;             /* per-session KV and sampler */
    void *next;                          /* DEALER to the next node or the coordinator's result endpoint */
    wire_monitor *link;                  /* events of `next` */
    bool link_up;                        /* the handshake with the next hop succeeded and the link holds */
    char link_error[160];                /* why the last handshake failed ("" after a success) */
    float *x;                            /* (max_batch, dim) activations */
    uint8_t *out;                        /* (max_batch, dim) activations in the wire dtype */
    uint32_t gemm_min;                   /* the assignment's sgemm threshold, for micro-batches allowing it */
    uint32_t max_rows;                   /* rows through the head at once: min(max_batch, max_sessions + HEAD_EXTRA) */
    head_row *picks;                     /* (max_rows) where each of them comes from */
    int32_t *verified;                   /* (max_batch) SegmentResult.ids of verifying segments */
    rl_segment *segs;                    /* (max_batch) the engine's view of a micro-batch */
    node_session **owners;               /* (max_batch) the session of each segment */
    float *rows;                         /* (max_rows, dim) rows going through the head, head stage */
    float *logits;                       /* (max_rows, n_vocab) on the head stage */
    Relais__SegmentResult *results;      /* (max_batch) Result.results entries */
    Relais__SegmentResult **result_ptrs; /* (max_batch) */
    int32_t *top_ids;                    /* (WIRE_MAX_TOP) */
    float *top_vals;                     /* (WIRE_MAX_TOP) */
    Relais__TopLogit *tops;              /* (WIRE_MAX_TOP) SegmentResult.top entries */
    Relais__TopLogit **top_ptrs;         /* (WIRE_MAX_TOP) */
    uint64_t weight_bytes;               /* bytes of the slice's weights */
    int64_t compute_us, send_us;         /* RELAIS_TRACE: when the Forward under way began computing, began sending */
    int64_t cpu_us;                      /* RELAIS_TRACE: the thread's CPU time from one to the other */
};

/* Keeps the Assign beyond the message it came in. */
static Relais__Assign *copy_assign(const Relais__Assign *a) {
    size_t n = relais__assign__get_packed_size(a);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return NULL;
    relais__assign__pack(a, buf);
    Relais__Assign *c = relais__assign__unpack(NULL, n, buf);
    free(buf);
    return c;
}

static rl_model_opts model_opts(const Relais__Assign *a, const node_stage_env *env) {
    rl_model_opts o = rl_model_opts_default();
    o.l0 = a->layer_begin;
    o.l1 = a->layer_end;
    o.embed = false;
    o.head = a->run_head;
    o.swa_window = a->swa_window;
    o.swa_pattern = *a->swa_pattern ? a->swa_pattern : NULL;
    o.n_ctx_beyond = a->n_ctx; /* the coordinator checked the context (and the user accepted it) */
    o.progress = env->progress;
    o.progress_ud = env->progress_ud;
    return o;
}

/* The KV types an Assign asks for (0, 0 from a coordinator that predates
 * them: f32). */
static rl_kv_type assign_kv_type(const Relais__Assign *a) {
    /* An id past the enum becomes 4, which no ggml type uses: rl_kv_type_check
     * refuses it as an unknown type. */
    const uint32_t k = a->kv_type_k < RL_DTYPE_COUNT ? a->kv_type_k : 4;
    const uint32_t v = a->kv_type_v < RL_DTYPE_COUNT ? a->kv_type_v : 4;
    return (rl_kv_type){(rl_dtype)k, (rl_dtype)v};
}

/* Checks the Assign against the file before anything is read: the layer
 * count, the context, the KV types, the message size and the memory the
 * slice needs. */
static Relais__ErrorCode check_fit(const Relais__Assign *a, const char *path, const node_stage_env *env,
                                   uint64_t *weights, char *err, size_t errlen) {
    rl_model_opts o = model_opts(a, env);
    rl_hparams hp;
    gguf_file *f = gguf_open(path, err, errlen);
    if (!f || rl_hparams_read(f, &o, &hp, err, errlen)) {
        gguf_close(&f);
        return RELAIS__ERROR_CODE__ERR_MODEL;
    }
    *weights = a->run_head ? rl_head_file_bytes(f, hp.tied_output) : 0; /* the last stage maps the head too */
    for (uint32_t il = a->layer_begin; il < a->layer_end && il < hp.n_layer; il++)
        *weights += rl_layer_file_bytes(f, il);
    gguf_close(&f);
    if (hp.n_layer != a->n_layer) {
        snprintf(err, errlen, "the model file has %u layers, the assignment says %u", hp.n_layer, a->n_layer);
        return RELAIS__ERROR_CODE__ERR_MODEL;
    }
    if (a->n_ctx > hp.n_ctx_train) {
        snprintf(err, errlen, "context %u exceeds the model's %u", a->n_ctx, hp.n_ctx_train);
        return RELAIS__ERROR_CODE__ERR_RANGE;
    }
    if (rl_kv_type_check(assign_kv_type(a), &hp, err, errlen))
        return RELAIS__ERROR_CODE__ERR_RANGE;
    const wire_bounds b = {a->max_batch, a->max_sessions, a->n_ctx, hp.dim, hp.n_vocab};
    const int64_t forward = wire_forward_max(&b);
    if (forward > env->max_message) {
        snprintf(err, errlen,
                 "a Forward of this assignment (%u tokens of width %u, %u sessions of %u positions, a vocabulary of "
                 "%u) may take %lld MiB; this node accepts %lld MiB (relais-node --max-message-mib)",
                 a->max_batch, hp.dim, a->max_sessions, a->n_ctx, hp.n_vocab,
                 (long long)((forward + (1 << 20) - 1) >> 20), (long long)(env->max_message >> 20));
        return RELAIS__ERROR_CODE__ERR_RANGE;
    }
    uint64_t need =
        *weights + rl_kv_bytes_for(&hp, a->layer_begin, a->layer_end, a->n_ctx, assign_kv_type(a)) * a->max_sessions;
    uint64_t avail = node_mem_available(NULL);
    if (avail && need > avail) {
        snprintf(err, errlen, "layers %u-%u need %llu MiB (weights and KV of %u sessions), %llu MiB available",
                 a->layer_begin, a->layer_end - 1, (unsigned long long)(need >> 20), a->max_sessions,
                 (unsigned long long)(avail >> 20));
        return RELAIS__ERROR_CODE__ERR_MEMORY;
    }
    return RELAIS__ERROR_CODE__ERR_NONE;
}

static int alloc_buffers(node_stage *s) {
    const uint32_t mb = s->assign->max_batch;
    const size_t act = (size_t)mb * s->hp->dim;
    s->x = malloc(act * sizeof *s->x);
    s->out = malloc(wire_activations_max(mb, s->hp->dim));
    s->segs = malloc(mb * sizeof *s->segs);
    s->owners = malloc(mb * sizeof *s->owners);
    if (!s->x || !s->out || !s->segs || !s->owners)
        return -1;
    if (!s->assign->run_head)
        return 0;
    const uint32_t rows = s->assign->max_sessions + HEAD_EXTRA;
    s->max_rows = mb < rows ? mb : rows;
    s->rows = malloc((size_t)s->max_rows * s->hp->dim * sizeof *s->rows);
    s->logits = malloc((size_t)s->max_rows * s->hp->n_vocab * sizeof *s->logits);
    s->picks = malloc(s->max_rows * sizeof *s->picks);
    s->verified = malloc(mb * sizeof *s->verified);
    s->results = malloc(mb * sizeof *s->results);
    s->result_ptrs = malloc(mb * sizeof *s->result_ptrs);
    s->top_ids = malloc(WIRE_MAX_TOP * sizeof *s->top_ids);
    s->top_vals = malloc(WIRE_MAX_TOP * sizeof *s->top_vals);
    s->tops = malloc(WIRE_MAX_TOP * sizeof *s->tops);
    s->top_ptrs = malloc(WIRE_MAX_TOP * sizeof *s->top_ptrs);
    if (!s->rows || !s->logits || !s->picks || !s->verified || !s->results || !s->result_ptrs || !s->top_ids ||
        !s->top_vals || !s->tops || !s->top_ptrs)
        return -1;
    for (int i = 0; i < WIRE_MAX_TOP; i++) {
        relais__top_logit__init(&s->tops[i]);
        s->top_ptrs[i] = &s->tops[i];
    }
    return 0;
}

static Relais__ErrorCode connect_next(node_stage *s, char *err, size_t errlen) {
    char why[256];
    s->link_up = false;
    s->link_error[0] = '\0';
    if (!(s->next = wire_socket(s->zctx, ZMQ_DEALER, WIRE_CONTROL_MAX, why, sizeof why)) ||
        curve_apply_client(s->next, s->keys, s->assign->next_hop_public_key.data, why, sizeof why) ||
        !(s->link = wire_monitor_new(s->zctx, s->next, "next-hop", why, sizeof why))) {
        snprintf(err, errlen, "link to the next hop: %s", why);
        return RELAIS__ERROR_CODE__ERR_INTERNAL;
    }
    if (zmq_connect(s->next, s->assign->next_hop)) {
        snprintf(err, errlen, "cannot connect to the next hop %s: %s", s->assign->next_hop, zmq_strerror(errno));
        return RELAIS__ERROR_CODE__ERR_MALFORMED;
    }
    return RELAIS__ERROR_CODE__ERR_NONE;
}

static void close_link(node_stage *s) {
    wire_monitor_destroy(&s->link);
    if (s->next)
        zmq_close(s->next);
    s->next = NULL;
}

Relais__ErrorCode node_stage_relink(node_stage *s, char *err, size_t errlen) {
    close_link(s);
    return connect_next(s, err, errlen);
}

/* The coordinator's thread count (0: the node's own --threads), at most
 * one per CPU of this machine: more only adds threads that wait for a
 * core, and a coordinator must not make a node start thousands. */
static int stage_threads(uint32_t asked, int own) {
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (asked == 0)
        return own;
    if (cpus > 0 && asked > (uint32_t)cpus) {
        rl_log(RL_LOG_WARN, "the coordinator asks for %u threads; this machine has %ld CPUs: using %ld", asked, cpus,
               cpus);
        return (int)cpus;
    }
    return (int)asked;
}

static Relais__ErrorCode load(node_stage *s, const char *path, const node_stage_env *env, char *err, size_t errlen) {
    const Relais__Assign *a = s->assign;
    Relais__ErrorCode code = check_fit(a, path, env, &s->weight_bytes, err, errlen);
    if (code)
        return code;
    rl_model_opts o = model_opts(a, env);
    if (!(s->model = rl_model_load(path, &o, err, errlen)))
        return RELAIS__ERROR_CODE__ERR_MODEL;
    s->hp = rl_model_hparams(s->model);
    int threads = stage_threads(a->threads, env->threads);
    if (!(s->ctx = rl_ctx_new(s->model, threads, a->max_batch, err, errlen)))
        return RELAIS__ERROR_CODE__ERR_MEMORY;
    s->gemm_min = rl_gemm_min_for(a->no_gemm, a->gemm_min);
    rl_ctx_set_gemm_min(s->ctx, s->gemm_min);
    if (!(s->sessions = node_sessions_new(a->max_sessions, s->hp, a->layer_begin, a->layer_end, assign_kv_type(a))) ||
        alloc_buffers(s)) {
        snprintf(err, errlen, "out of memory for the stage's buffers");
        return RELAIS__ERROR_CODE__ERR_MEMORY;
    }
    return connect_next(s, err, errlen);
}

node_stage *node_stage_new(const Relais__Assign *a, const char *model_path, const node_stage_env *env,
                           Relais__ErrorCode *code, char *err, size_t errlen) {
    node_stage *s = calloc(1, sizeof *s);
    if (s)
        s->zctx = env->zctx, s->keys = env->keys;
    if (!s || !(s->assign = copy_assign(a))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        *code = RELAIS__ERROR_CODE__ERR_MEMORY;
        return NULL;
    }
    *code = load(s, model_path, env, err, errlen);
    if (*code)
        node_stage_destroy(&s);
    return s;
}

void node_stage_destroy(node_stage **ps) {
    node_stage *s = ps ? *ps : NULL;
    if (!s)
        return;
    close_link(s);
    node_sessions_destroy(&s->sessions);
    rl_ctx_destroy(&s->ctx);
    rl_model_destroy(&s->model);
    relais__assign__free_unpacked(s->assign, NULL);
    free(s->x), free(s->out), free(s->logits), free(s->segs), free(s->owners), free(s->rows);
    free(s->results), free(s->result_ptrs), free(s->picks), free(s->verified);
    free(s->top_ids), free(s->top_vals), free(s->tops), free(s->top_ptrs);
    free(s);
    *ps = NULL;
}

static bool same_bytes(const ProtobufCBinaryData *x, const ProtobufCBinaryData *y) {
    return x->len == y->len && !memcmp(x->data, y->data, x->len);
}

bool node_stage_matches(const node_stage *s, const Relais__Assign *a) {
    const Relais__Assign *b = s->assign;
    return same_bytes(&a->model_sha256, &b->model_sha256) && a->layer_begin == b->layer_begin &&
        a->layer_end == b->layer_end && a->n_layer == b->n_layer && a->n_ctx == b->n_ctx &&
        a->max_sessions == b->max_sessions && a->max_batch == b->max_batch && a->threads == b->threads &&
        a->swa_window == b->swa_window && !strcmp(a->swa_pattern, b->swa_pattern) && a->run_head == b->run_head &&
        a->wire_dtype == b->wire_dtype && !strcmp(a->next_hop, b->next_hop) &&
        same_bytes(&a->next_hop_public_key, &b->next_hop_public_key) &&
        same_bytes(&a->prev_hop_public_key, &b->prev_hop_public_key) && a->gemm_min == b->gemm_min &&
        a->no_gemm == b->no_gemm && a->kv_type_k == b->kv_type_k && a->kv_type_v == b->kv_type_v;
}

void node_stage_reset(node_stage *s) { node_sessions_clear(s->sessions); }

const uint8_t *node_stage_prev_key(const node_stage *s) { return s->assign->prev_hop_public_key.data; }
uint64_t node_stage_weight_bytes(const node_stage *s) { return s->weight_bytes; }
uint32_t node_stage_sessions(const node_stage *s) { return node_sessions_count(s->sessions); }
void *node_stage_link_socket(node_stage *s) { return wire_monitor_socket(s->link); }

uint64_t node_stage_kv_bytes(const node_stage *s) {
    return rl_kv_bytes_for(s->hp, s->assign->layer_begin, s->assign->layer_end, s->assign->n_ctx,
                           assign_kv_type(s->assign));
}

node_link node_stage_link_event(node_stage *s) {
    uint16_t ev;
    uint32_t val;
    char ep[256];
    if (wire_monitor_read(s->link, &ev, &val, ep, sizeof ep))
        return NODE_LINK_NONE;
    if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        s->link_up = true;
        s->link_error[0] = '\0';
        return NODE_LINK_UP;
    }
    if (ev == ZMQ_EVENT_DISCONNECTED)
        s->link_up = false;
    if (!(ev & (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)))
        return NODE_LINK_OTHER;
    snprintf(s->link_error, sizeof s->link_error, "next hop %s: %s", s->assign->next_hop, wire_event_text(ev, val));
    return NODE_LINK_FAILED;
}

bool node_stage_link_up(const node_stage *s) { return s->link_up; }
const char *node_stage_link_error(const node_stage *s) { return s->link_error; }

/* ---- the data path ---- */

/* RELAIS_TRACE: the Forward's compute starts (send_next marks its end). */
static void mark_compute(node_stage *s) {
    s->compute_us = rl_now_us();
    s->cpu_us = -rl_thread_cpu_us();
}

static Relais__ErrorCode send_next(node_stage *s, Relais__Envelope *env, char *err, size_t errlen) {
    if (rl_trace_on()) {
        s->send_us = rl_now_us();
        s->cpu_us += rl_thread_cpu_us();
    }
    return wire_send(s->next, NULL, 0, env, err, errlen) ? RELAIS__ERROR_CODE__ERR_INTERNAL
                                                         : RELAIS__ERROR_CODE__ERR_NONE;
}

/* The compute seconds of the stages so far, this one's (since t0) last. */
typedef struct {
    float v[WIRE_MAX_STAGES + 1];
    size_t n;
} stage_times;

static void times_close(stage_times *t, const Relais__Forward *f, double t0) {
    if (f->n_stage_seconds) /* an empty repeated field may have no array at all */
        memcpy(t->v, f->stage_seconds, f->n_stage_seconds * sizeof *t->v);
    t->v[f->n_stage_seconds] = (float)(rl_now_s() - t0);
    t->n = f->n_stage_seconds + 1;
}

/* The head stage's answer to f, with the pipeline's timing. */
static Relais__ErrorCode send_result(node_stage *s, Relais__Result *r, const Relais__Forward *f, double t0, char *err,
                                     size_t errlen) {
    stage_times t;
    times_close(&t, f, t0);
    r->stage_seconds = t.v;
    r->n_stage_seconds = t.n;
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_RESULT;
    env.result = r;
    return send_next(s, &env, err, errlen);
}

/* f with this stage's output (n_tokens rows of s->x) to the next node. */
static Relais__ErrorCode pass_on(node_stage *s, const Relais__Forward *f, uint32_t n_tokens, double t0, char *err,
                                 size_t errlen) {
    Relais__Forward out = *f;
    stage_times t;
    out.dtype = s->assign->wire_dtype;
    out.activations.data = s->out;
    out.activations.len = wire_activations_bytes(out.dtype, n_tokens, s->hp->dim);
    wire_activations_encode(s->x, n_tokens, s->hp->dim, out.dtype, s->out);
    times_close(&t, f, t0);
    out.stage_seconds = t.v;
    out.n_stage_seconds = t.n;
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_FORWARD;
    env.forward = &out;
    return send_next(s, &env, err, errlen);
}

/* The session's sampler for smp; a new stream value starts a new one (and
 * its seed), so a repeated request reproduces its ids. A sampler made in the
 * middle of a stream (this node took over the head in a re-plan) skips the
 * draws of the ids sampled before; those cannot outnumber the positions
 * DRAWS_PER_POSITION times (a pass verifying a draft draws at each of its
 * positions and keeps at least one). */
static Relais__ErrorCode session_sampler(node_stage *s, node_session *ss, const Relais__Sampling *smp, char *err,
                                         size_t errlen) {
    if (ss->sampler && ss->stream == smp->stream)
        return RELAIS__ERROR_CODE__ERR_NONE;
    rl_sampler_destroy(&ss->sampler);
    if (smp->samples_before > (uint64_t)rl_kv_len(ss->kv) * DRAWS_PER_POSITION) {
        snprintf(err, errlen, "%u samples before position %u", smp->samples_before, rl_kv_len(ss->kv));
        return RELAIS__ERROR_CODE__ERR_RANGE;
    }
    rl_sampler_params p = wire_sampling_to_params(smp);
    if (!(ss->sampler = rl_sampler_new(&p, s->hp->n_vocab))) {
        snprintf(err, errlen, "out of memory for a sampler");
        return RELAIS__ERROR_CODE__ERR_MEMORY;
    }
    rl_sampler_skip(ss->sampler, smp->samples_before);
    ss->stream = smp->stream;
    return RELAIS__ERROR_CODE__ERR_NONE;
}

/* The top logits of a segment's last row into s->tops[*at..] (before
 * sampling edits the row; smp->top_logits of them) with the row's
 * normalizer and the sampled id's logit into sr, then the session's
 * sampled id. */
static int32_t pick_last(node_stage *s, node_session *ss, const Relais__Sampling *smp, float *logits,
                         const int32_t *hist, size_t n_hist, uint32_t *at, Relais__SegmentResult *sr) {
    const uint32_t V = s->hp->n_vocab, k = smp->top_logits < V ? smp->top_logits : V;
    rl_sampler_mask(logits, V, smp->allowed.len ? smp->allowed.data : NULL); /* a constrained segment does not verify */
    const int32_t id = rl_sampler_sample_top(ss->sampler, logits, hist, n_hist, k, s->top_ids, s->top_vals,
                                             &sr->top_lse, &sr->chosen_logit);
    for (uint32_t i = 0; i < k; i++)
        s->tops[*at + i].id = s->top_ids[i], s->tops[*at + i].logit = s->top_vals[i];
    sr->top = s->top_ptrs + *at;
    sr->n_top = k;
    *at += k;
    return id;
}

/* The history a row samples with: all of it for a segment's last row; for
 * an earlier row of a verifying segment, the part before the tokens after
 * it, cut to the window ending there. */
static const int32_t *row_history(const Relais__Sampling *smp, uint32_t back, bool verify, size_t *n) {
    const size_t end = smp->n_history > back ? smp->n_history - back : 0;
    const size_t start = verify && smp->window && end > smp->window ? end - smp->window : 0;
    *n = end - start;
    return smp->history + start;
}

/* Segment i of f against its session (found, or new at position 0). */
static Relais__ErrorCode check_segment(node_stage *s, const Relais__Forward *f, size_t i, uint32_t *fresh, char *err,
                                       size_t errlen) {
    const Relais__Segment *g = f->segments[i];
    const unsigned long long id = (unsigned long long)g->session_id;
    for (size_t k = 0; k < i; k++)
        if (f->segments[k]->session_id == g->session_id) {
            snprintf(err, errlen, "segment %zu: session %llu appears twice in one micro-batch", i, id);
            return RELAIS__ERROR_CODE__ERR_MALFORMED;
        }
    node_session *ss = node_sessions_find(s->sessions, g->session_id);
    uint32_t have = ss ? rl_kv_len(ss->kv) : 0;
    if (g->rewind && ss && g->pos < have) { /* positions >= pos go first (bind_segments) */
        if (!rl_kv_truncate_exact(ss->kv, g->pos)) {
            snprintf(err, errlen, "segment %zu: session %llu cannot go back from %u to %u exactly", i, id, have,
                     g->pos);
            return RELAIS__ERROR_CODE__ERR_RANGE;
        }
        have = g->pos;
    }
    const uint32_t ctx = ss ? rl_kv_ctx(ss->kv) : g->n_ctx ? g->n_ctx : s->assign->n_ctx;
    if (g->pos != have) {
        snprintf(err, errlen, "segment %zu: session %llu at position %u, but it holds %u positions%s", i, id, g->pos,
                 have, ss ? "" : " (it is unknown: a session starts at position 0)");
        return RELAIS__ERROR_CODE__ERR_SESSION;
    }
    if (ctx > s->assign->n_ctx || (uint64_t)g->pos + g->n_tokens > ctx) {
        snprintf(err, errlen, "segment %zu: session %llu: positions up to %llu in a context of %u (assigned %u)", i, id,
                 (unsigned long long)g->pos + g->n_tokens, ctx, s->assign->n_ctx);
        return RELAIS__ERROR_CODE__ERR_RANGE;
    }
    *fresh += !ss;
    Relais__ErrorCode code = wire_check_segment(g, err, errlen);
    if (code)
        return code;
    if (s->assign->run_head && g->sample && !g->sampling) {
        snprintf(err, errlen, "segment %zu: session %llu samples but carries no Sampling", i, id);
        return RELAIS__ERROR_CODE__ERR_MALFORMED;
    }
    /* every stage checks it, so that each passes on only what wire_forward_max counts */
    return g->sampling ? wire_check_sampling(g->sampling, s->hp->n_vocab, s->assign->n_ctx, err, errlen)
                       : RELAIS__ERROR_CODE__ERR_NONE;
}

/* Every segment of a micro-batch, all checked before any session is
 * created, so a refused micro-batch leaves the node as it was. *rows = the
 * tokens in it. */
static Relais__ErrorCode check_segments(node_stage *s, const Relais__Forward *f, uint32_t *rows, char *err,
                                        size_t errlen) {
    const uint32_t mb = s->assign->max_batch, V = s->hp->n_vocab;
    uint64_t total = 0, tops = 0;
    uint32_t fresh = 0;
    if (!wire_dtype_name(f->dtype) || f->n_segments > mb) {
        snprintf(err, errlen, "a micro-batch of %zu segments, dtype %d (this stage takes up to %u tokens)",
                 f->n_segments, (int)f->dtype, mb);
        return RELAIS__ERROR_CODE__ERR_MALFORMED;
    }
    for (size_t i = 0; i < f->n_segments; i++) {
        const Relais__Segment *g = f->segments[i];
        total += g->n_tokens;
        if (g->n_tokens == 0 || total > mb) {
            snprintf(err, errlen, "segment %zu: %u tokens; a micro-batch holds 1 to %u in all", i, g->n_tokens, mb);
            return RELAIS__ERROR_CODE__ERR_MALFORMED;
        }
        Relais__ErrorCode code = check_segment(s, f, i, &fresh, err, errlen);
        if (code)
            return code;
        if (s->assign->run_head && g->sample)
            tops += g->sampling->top_logits < V ? g->sampling->top_logits : V;
    }
    const size_t want = wire_activations_bytes(f->dtype, total, s->hp->dim);
    if (f->activations.len != want) {
        snprintf(err, errlen, "activations of %zu bytes; %llu tokens x %u in %s make %zu", f->activations.len,
                 (unsigned long long)total, s->hp->dim, wire_dtype_name(f->dtype), want);
        return RELAIS__ERROR_CODE__ERR_MALFORMED;
    }
    if (tops > WIRE_MAX_TOP) { /* rows beyond max_rows go through the head in turns */
        snprintf(err, errlen, "%llu top logits in one micro-batch; this stage reports up to %d at once",
                 (unsigned long long)tops, WIRE_MAX_TOP);
        return RELAIS__ERROR_CODE__ERR_RANGE;
    }
    if (fresh > s->assign->max_sessions - node_sessions_count(s->sessions)) {
        snprintf(err, errlen, "%u new sessions, %u of %u slots free (drop some first)", fresh,
                 s->assign->max_sessions - node_sessions_count(s->sessions), s->assign->max_sessions);
        return RELAIS__ERROR_CODE__ERR_MEMORY;
    }
    *rows = (uint32_t)total;
    return RELAIS__ERROR_CODE__ERR_NONE;
}

/* Each segment's session, found or created; when a cache cannot be had,
 * the sessions this micro-batch started are dropped again. */
static Relais__ErrorCode bind_segments(node_stage *s, const Relais__Forward *f, char *err, size_t errlen) {
    Relais__ErrorCode code = RELAIS__ERROR_CODE__ERR_NONE;
    size_t i;
    for (i = 0; i < f->n_segments && !code; i++) {
        const Relais__Segment *g = f->segments[i];
        node_session *ss = node_sessions_find(s->sessions, g->session_id);
        if (ss && g->rewind)
            rl_kv_truncate(ss->kv, g->pos);
        if (!ss)
            ss = node_sessions_create(s->sessions, g->session_id, g->n_ctx ? g->n_ctx : s->assign->n_ctx, &code, err,
                                      errlen);
        s->owners[i] = ss;
        if (ss)
            s->segs[i] = (rl_segment){ss->kv, g->pos, g->n_tokens};
    }
    for (size_t k = 0; code && k < i; k++)
        if (f->segments[k]->pos == 0)
            node_sessions_drop(s->sessions, f->segments[k]->session_id);
    return code;
}

/* The k gathered rows through the head, then each sampled in order by its
 * session's sampler (the top logits of a segment's last row first). */
static Relais__ErrorCode head_flush(node_stage *s, const Relais__Forward *f, uint32_t k, uint32_t *at, char *err,
                                    size_t errlen) {
    const uint32_t V = s->hp->n_vocab;
    if (rl_head_rows(s->ctx, s->rows, k, s->logits, err, errlen))
        return RELAIS__ERROR_CODE__ERR_INTERNAL;
    for (uint32_t j = 0; j < k; j++) {
        const head_row *h = &s->picks[j];
        const Relais__Segment *g = f->segments[h->seg];
        Relais__SegmentResult *sr = &s->results[h->res];
        float *logits = s->logits + (size_t)j * V;
        size_t n_hist;
        const int32_t *hist = row_history(g->sampling, h->back, g->verify, &n_hist);
        node_session *ss = s->owners[h->seg];
        /* an earlier row of a verifying segment checks the drafted id after
         * it: with its q when the draft was sampled (Sampling.draft) */
        const Relais__DraftDist *q =
            h->back && g->sampling->n_draft ? g->sampling->draft[g->n_tokens - 1 - h->back] : NULL;
        const int32_t id = h->back == 0
            ? pick_last(s, ss, g->sampling, logits, hist, n_hist, at, sr)
            : rl_sampler_verify(ss->sampler, logits, hist, n_hist, q ? q->token : -1, q ? q->ids : NULL,
                                q ? q->probs : NULL, q ? (uint32_t)q->n_ids : 0);
        if (h->back == 0)
            sr->id = id;
        if (g->verify)
            sr->ids[g->n_tokens - 1 - h->back] = id;
    }
    return RELAIS__ERROR_CODE__ERR_NONE;
}

/* The head stage of a micro-batch: the last row of each sampling segment
 * (every row of one that verifies a draft) through the head, max_rows at a
 * time, each sampled by its session's own sampler; one SegmentResult per
 * sampling segment, in order. */
static Relais__ErrorCode batch_finish(node_stage *s, const Relais__Forward *f, double t0, char *err, size_t errlen) {
    const uint32_t dim = s->hp->dim;
    uint32_t row = 0, k = 0, at = 0, j = 0, nv = 0;
    Relais__ErrorCode code = RELAIS__ERROR_CODE__ERR_NONE;
    for (size_t i = 0; i < f->n_segments && !code; i++) {
        const Relais__Segment *g = f->segments[i];
        const uint32_t first = row;
        row += g->n_tokens;
        if (!g->sample)
            continue;
        if ((code = session_sampler(s, s->owners[i], g->sampling, err, errlen)))
            break;
        Relais__SegmentResult *sr = &s->results[j];
        relais__segment_result__init(sr);
        s->result_ptrs[j] = sr;
        sr->session_id = g->session_id;
        sr->pos = rl_kv_len(s->owners[i]->kv);
        if (g->verify)
            sr->ids = s->verified + nv, sr->n_ids = g->n_tokens, nv += g->n_tokens;
        for (uint32_t r = g->verify ? first : row - 1; r < row && !code; r++) {
            s->picks[k] = (head_row){(uint32_t)i, j, r, row - 1 - r};
            memcpy(s->rows + (size_t)k * dim, s->x + (size_t)r * dim, dim * sizeof *s->rows);
            if (++k == s->max_rows)
                code = head_flush(s, f, k, &at, err, errlen), k = 0;
        }
        j++;
    }
    if (!code && k)
        code = head_flush(s, f, k, &at, err, errlen);
    if (code)
        return code;
    Relais__Result r = RELAIS__RESULT__INIT;
    r.step_id = f->step_id;
    r.results = s->result_ptrs;
    r.n_results = j;
    return send_result(s, &r, f, t0, err, errlen);
}

static Relais__ErrorCode batch_forward(node_stage *s, const Relais__Forward *f, double t0, char *err, size_t errlen) {
    uint32_t rows = 0;
    Relais__ErrorCode code = check_segments(s, f, &rows, err, errlen);
    if (!code)
        code = bind_segments(s, f, err, errlen);
    if (code)
        return code;
    wire_activations_decode(f->activations.data, rows, s->hp->dim, f->dtype, s->x);
    /* sgemm only when every segment allows it (a run's prompt chunk, as one
     * process computes it); else the quantized kernels at every size, so a
     * session's rows come out the same whatever else shares the micro-batch
     * (the engine's batch independence) and a served request's output does
     * not depend on load. */
    bool sgemm = true;
    for (size_t i = 0; i < f->n_segments; i++)
        sgemm = sgemm && f->segments[i]->sgemm;
    rl_ctx_set_gemm_min(s->ctx, sgemm ? s->gemm_min : 0);
    if (rl_trace_on())
        mark_compute(s);
    if (rl_forward_batch(s->ctx, s->segs, (uint32_t)f->n_segments, s->x, err, errlen))
        return RELAIS__ERROR_CODE__ERR_INTERNAL;
    return s->assign->run_head ? batch_finish(s, f, t0, err, errlen) : pass_on(s, f, rows, t0, err, errlen);
}

static Relais__ErrorCode run_forward(node_stage *s, const Relais__Forward *f, char *err, size_t errlen) {
    const double t0 = rl_now_s();
    if (f->n_stage_seconds >= WIRE_MAX_STAGES || f->n_drop_sessions > s->assign->max_sessions) {
        snprintf(err, errlen, "a Forward that already went through %zu stages (at most %d) or drops %zu sessions (%u)",
                 f->n_stage_seconds, WIRE_MAX_STAGES - 1, f->n_drop_sessions, s->assign->max_sessions);
        return RELAIS__ERROR_CODE__ERR_MALFORMED;
    }
    for (size_t i = 0; i < f->n_drop_sessions; i++) /* before the tokens: they may reuse the slots */
        node_sessions_drop(s->sessions, f->drop_sessions[i]);
    if (s->link_error[0]) { /* the output could not go anywhere: say why instead of letting the step time out */
        snprintf(err, errlen, "%s", s->link_error);
        return RELAIS__ERROR_CODE__ERR_STATE;
    }
    if (f->n_segments)
        return batch_forward(s, f, t0, err, errlen);
    if (!f->n_drop_sessions) {
        snprintf(err, errlen, "a Forward with neither segments nor sessions to drop");
        return RELAIS__ERROR_CODE__ERR_MALFORMED;
    }
    if (!s->assign->run_head) /* only drops: on to the next node, and an empty Result from the last */
        return pass_on(s, f, 0, t0, err, errlen);
    Relais__Result r = RELAIS__RESULT__INIT;
    r.step_id = f->step_id;
    return send_result(s, &r, f, t0, err, errlen);
}

/* One line per Forward: layers name the node; the times join, by step, with
 * the previous hop's "sent" and the next one's "wake" (bench/trace_hops.awk). */
static void trace(const node_stage *s, const Relais__Forward *f, const node_arrival *in, int64_t sent,
                  Relais__ErrorCode code) {
    uint64_t tokens = 0;
    for (size_t i = 0; i < f->n_segments; i++)
        tokens += f->segments[i]->n_tokens;
    rl_trace("forward step=%llu session=%llu tokens=%u layers=%u-%u code=%d wake=%lld read=%lld compute=%lld "
             "send=%lld sent=%lld cpu=%lld",
             (unsigned long long)f->step_id, (unsigned long long)(f->n_segments ? f->segments[0]->session_id : 0),
             (unsigned)tokens, s->assign->layer_begin, s->assign->layer_end - 1, (int)code, (long long)in->wake_us,
             (long long)in->read_us, (long long)s->compute_us, (long long)s->send_us, (long long)sent,
             (long long)(s->compute_us && s->send_us ? s->cpu_us : 0));
}

Relais__ErrorCode node_stage_forward(node_stage *s, const Relais__Forward *f, const node_arrival *in, char *err,
                                     size_t errlen) {
    s->compute_us = s->send_us = s->cpu_us = 0;
    Relais__ErrorCode code = run_forward(s, f, err, errlen);
    if (rl_trace_on() && f->n_segments) /* a drop-only Forward carries no tokens to time */
        trace(s, f, in, rl_now_us(), code);
    return code;
}
