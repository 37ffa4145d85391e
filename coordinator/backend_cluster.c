/* The cluster backend (see backend_cluster.h): one session on the nodes of a
 * cluster file. The coordinator keeps the ids the session holds, and sends
 * the last node the part of them the penalties look at with every step;
 * each begin() starts a new sampler stream there (the seed restarts, as with
 * the local backend).
 *
 * Those ids are also what a lost node needs: a step that finds the pipeline
 * broken re-plans over the nodes that still answer, feeds the ids again in
 * Forwards computed as the first ones were (where each step began is kept
 * for that), and takes the step's sample from the new head stage, whose
 * sampler skips the draws this stream made before (cluster_recover.h). */
#include "backend_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cluster.h"
#include "cluster_config.h"
#include "cluster_recover.h"
#include "gguf.h"
#include "log.h"
#include "planner.h"
#include "tokenizer.h"
#include "wire.h"

#define SESSION 1                      /* the one session a run or chat uses */
#define UNKNOWN_SPEED 1e9              /* a node that could not measure its matvec counts as 1 GB/s */
/* How long a re-plan waits for the nodes' answers to hello: a live node
 * answers at once, or after the micro-batch it is computing. */
#define REPLAN_HELLO_MS 10000

typedef struct {
    rl_backend base;                   /* must be first */
    cluster *cluster;                  /* the nodes */
    rl_tokenizer *tok;                 /* of the coordinator's copy of the model */
    rl_sampler_params params;          /* the current stream's sampling */
    uint32_t stream;                   /* counts begin(): a new value restarts the last node's sampler */
    uint32_t n_top;                    /* top logits per step */
    uint32_t n_sampled;                /* steps of the current stream: the draws its sampler made */
    int32_t *history;                  /* (n_ctx) the ids the session holds */
    uint8_t *starts;                   /* (n_ctx) 1 where a step began: how a replay cuts the ids */
    rl_cluster_opts co;                /* how the cluster was opened, for a re-plan */
    rl_runner_opts ro;
} cluster_backend;

int rl_cluster_opt(rl_cluster_opts *o, int opt, const char *arg) {
    switch (opt) {
    case RL_CLUSTER_OPT_FILE: o->file = arg; return 1;
    case RL_CLUSTER_OPT_LAYERS: o->layers = arg; return 1;
    case RL_CLUSTER_OPT_WIRE: {
        const int d = wire_dtype_from_name(arg);
        if (d < 0) {
            fprintf(stderr, "relais: --wire: '%s' is not f32, f16 or i16\n", arg);
            return -1;
        }
        o->wire = d;
        return 1;
    }
    default: return 0;
    }
}

/* ---- the generation interface ---- */

static int cl_begin(rl_backend *b, const rl_sampler_params *p, uint32_t n_top, char *err, size_t errlen) {
    (void)err, (void)errlen;
    cluster_backend *cb = (cluster_backend *)b;
    cb->params = *p;
    cb->n_top = n_top > RL_MAX_TOP ? RL_MAX_TOP : n_top;
    cb->stream++;
    cb->n_sampled = 0;
    return 0;
}

/* What a replay of the session needs: the ids up to the end of the step
 * that failed, its sampling, and where its sample goes. */
typedef struct {
    cluster_backend *cb;
    uint32_t n;
    const cluster_sampling *s;
    rl_step_result *out;
    bool reached;                      /* the re-plan succeeded and the replay began */
} replay_job;

static int replay_one(void *ud, const bool *answered, char *err, size_t errlen) {
    (void)answered;
    replay_job *j = ud;
    j->reached = true;
    cluster_replay r = {.session = SESSION, .ids = j->cb->history, .n = j->n, .starts = j->cb->starts,
                        .sampling = j->s};
    return cluster_replay_session(j->cb->cluster, &r, &j->cb->ro, j->out, err, errlen);
}

/* The pipeline broke during a step of n ids: re-plan and replay until the
 * step's sample comes back, as long as each re-plan finds nodes that fit
 * the model (a replay may lose another node). 0, or -1 with err. */
static int recover(cluster_backend *cb, uint32_t n, const cluster_sampling *s, rl_step_result *out, char *err,
                   size_t errlen) {
    replay_job job = {.cb = cb, .n = n, .s = s, .out = out};
    bool answered[CLUSTER_MAX_NODES];
    int rc = -1;
    for (uint32_t tries = 0; rc && cluster_lost(cb->cluster)[0] && tries < cluster_n_nodes(cb->cluster); tries++) {
        job.reached = false;
        rc = cluster_recover(cb->cluster, &cb->co, &cb->ro, 1, err, answered, replay_one, &job, err, errlen);
        if (rc && !job.reached)
            break;
    }
    return rc;
}

static int cl_step(rl_backend *b, const int32_t *ids, uint32_t n, rl_step_result *out, char *err, size_t errlen) {
    cluster_backend *cb = (cluster_backend *)b;
    if (!cb->stream) {
        snprintf(err, errlen, "step before begin");
        return -1;
    }
    if (n == 0) {
        snprintf(err, errlen, "a step needs at least one id");
        return -1;
    }
    if ((uint64_t)b->pos + n > b->n_ctx) {
        snprintf(err, errlen, "%u more tokens would exceed the context of %u (%u used)", n, b->n_ctx, b->pos);
        return -1;
    }
    memcpy(cb->history + b->pos, ids, n * sizeof *ids);
    memset(cb->starts + b->pos, 0, n);
    cb->starts[b->pos] = 1;
    cluster_sampling s = {.params = &cb->params, .stream = cb->stream, .history = cb->history,
                          .n_history = b->pos + n, .n_top = cb->n_top, .samples_before = cb->n_sampled};
    int rc = cluster_step(cb->cluster, SESSION, b->pos, ids, n, &s, out, err, errlen);
    if (rc && cluster_lost(cb->cluster)[0])
        rc = recover(cb, b->pos + n, &s, out, err, errlen);
    else if (rc) {
        /* some nodes may have taken part of the ids: bring them all back */
        char why[256];
        int64_t kept = cluster_truncate(cb->cluster, SESSION, b->pos, why, sizeof why);
        if (kept >= 0)
            b->pos = (uint32_t)kept;
    }
    if (rc)
        return -1;
    b->pos += n;
    cb->n_sampled++;
    return 0;
}

static uint32_t cl_truncate(rl_backend *b, uint32_t pos) {
    cluster_backend *cb = (cluster_backend *)b;
    char err[512];
    int64_t kept = cluster_lost(cb->cluster)[0] ? -1 : cluster_truncate(cb->cluster, SESSION, pos, err, sizeof err);
    if (kept < 0 && cluster_lost(cb->cluster)[0])   /* the next step re-plans and feeds the ids up to pos again */
        return b->pos = pos < b->pos ? pos : b->pos;
    if (kept < 0)   /* the next step at position 0 will say what is wrong */
        rl_log(RL_LOG_ERROR, "truncating the session on the cluster: %s", err);
    return b->pos = kept < 0 ? 0 : (uint32_t)kept;
}

static void cl_describe(const rl_backend *b, char *buf, size_t len) {
    cluster_describe(((const cluster_backend *)b)->cluster, buf, len);
}

static void cl_destroy(rl_backend *b) {
    cluster_backend *cb = (cluster_backend *)b;
    cluster_destroy(&cb->cluster);
    rl_tok_destroy(&cb->tok);
    free(cb->history);
    free(cb->starts);
    free(cb);
}

static const rl_backend_ops CLUSTER_OPS = {cl_begin, cl_step, cl_truncate, cl_describe, cl_destroy};

/* ---- opening ---- */

/* The model's shape and per-layer costs, with the run's window overrides. */
typedef struct {
    rl_hparams hp;
    uint64_t *layer_bytes;   /* (hp.n_layer) */
    uint64_t head_bytes;
} model_costs;

static int read_costs(const rl_runner_opts *r, model_costs *m, char *err, size_t errlen) {
    rl_model_opts mo = rl_model_opts_default();
    mo.swa_window = r->swa_window;
    mo.swa_pattern = r->swa_pattern;
    mo.n_ctx_beyond = r->ctx_beyond_file ? r->n_ctx : 0;
    gguf_file *f = gguf_open(r->model_path, err, errlen);
    int rc = !f || rl_hparams_read(f, &mo, &m->hp, err, errlen) ? -1 : 0;
    if (rc == 0 && !(m->layer_bytes = malloc(m->hp.n_layer * sizeof *m->layer_bytes))) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc == 0)
        plan_costs_from_gguf(f, &m->hp, m->layer_bytes, &m->head_bytes);
    gguf_close(&f);
    return rc;
}

/* Each node's layers: --layers or the planner's split, and in both cases
 * every slice checked against its node's free memory before anything is
 * sent. With `use` (a re-plan), only the nodes it flags get layers; when
 * that leaves some out, --layers (one range per node of the file) cannot
 * apply and the planner splits the layers instead. The others get an empty
 * range. */
static int plan_ranges(const rl_cluster_opts *o, cluster *c, const model_costs *m, uint32_t n_ctx, rl_kv_type kt,
                       const bool *use, plan_range *ranges, char *err, size_t errlen) {
    plan_node nodes[CLUSTER_MAX_NODES];
    plan_range fixed[CLUSTER_MAX_NODES];
    uint32_t index[CLUSTER_MAX_NODES], n = 0, total = cluster_n_nodes(c);
    for (uint32_t i = 0; i < total; i++) {
        ranges[i] = (plan_range){0, 0};
        if (use && !use[i])
            continue;
        const cluster_node_info *info = cluster_info(c, i);
        index[n] = i;
        nodes[n++] = (plan_node){cluster_node_name(c, i), info->free_ram,
                                 info->matvec_bytes_per_s > 0 ? info->matvec_bytes_per_s : UNKNOWN_SPEED};
    }
    plan_input in = plan_input_default();
    in.hp = &m->hp;
    in.layer_bytes = m->layer_bytes;
    in.head_bytes = m->head_bytes;
    in.nodes = nodes;
    in.n_nodes = n;
    in.n_ctx = n_ctx;
    in.kv_type = kt;
    if (o->layers && n < total)
        rl_log(RL_LOG_WARN, "--layers %s names %u nodes and %u answer: the layers are planned over those instead",
               o->layers, total, n);
    if (o->layers && n == total) {
        if (plan_parse_ranges(o->layers, m->hp.n_layer, n, fixed, err, errlen))
            return -1;
        in.ranges = fixed;
        in.allow_idle = true;
    }
    plan *p = plan_new(&in, err, errlen);
    if (!p)
        return -1;
    int rc = plan_fits(p) ? 0 : -1;
    if (rc)
        snprintf(err, errlen, "the model does not fit the cluster:\n%s", plan_problem(p));
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        ranges[index[i]] = (plan_range){plan_stage_at(p, i)->l0, plan_stage_at(p, i)->l1};
    plan_destroy(&p);
    return rc;
}

static int connect_cluster(cluster **c, const rl_cluster_opts *o, char *err, size_t errlen) {
    cluster_config *cfg = cluster_config_load(o->file, err, errlen);
    if (!cfg)
        return -1;
    *c = cluster_new(cluster_config_key(cfg), cluster_config_listen(cfg), cluster_config_advertise(cfg),
                     cluster_config_io_cpu(cfg),
                     cluster_config_node(cfg, 0), cluster_config_n_nodes(cfg), err, errlen);
    cluster_config_destroy(&cfg);
    return *c ? cluster_hello(*c, err, errlen) : -1;
}

/* The nodes' KV types: --kv-type when given, else the cluster file's
 * kv_type, else the default. */
static int kv_type_for(const rl_cluster_opts *o, const rl_runner_opts *r, rl_kv_type *t, char *err, size_t errlen) {
    *t = r->kv_type;
    if (r->kv_type_set)
        return 0;
    cluster_config *cfg = cluster_config_load(o->file, err, errlen);
    if (!cfg)
        return -1;
    cluster_config_kv_type(cfg, t);
    cluster_config_destroy(&cfg);
    return 0;
}

static int assign(cluster *c, const rl_cluster_opts *o, const rl_runner_opts *r, uint32_t max_sessions,
                  const bool *use, uint32_t *n_ctx, char *err, size_t errlen) {
    model_costs m = {0};
    plan_range ranges[CLUSTER_MAX_NODES];
    if (read_costs(r, &m, err, errlen)) {
        free(m.layer_bytes);
        return -1;
    }
    rl_kv_type kt;
    int rc = rl_hparams_ctx(&m.hp, r->n_ctx, n_ctx, err, errlen) || kv_type_for(o, r, &kt, err, errlen) ||
                     rl_kv_type_check(kt, &m.hp, err, errlen)
                 ? -1
             : plan_ranges(o, c, &m, *n_ctx, kt, use, ranges, err, errlen);
    free(m.layer_bytes);
    if (rc)
        return -1;
    cluster_assign_opts ao = {.model_path = r->model_path, .ranges = ranges, .n_ctx = *n_ctx,
                              .max_sessions = max_sessions, .max_batch = rl_runner_batch(r),
                              .gemm_min = r->no_gemm ? 0 : r->gemm_min, .no_gemm = r->no_gemm,
                              .threads = r->n_threads > 0 ? (uint32_t)r->n_threads : 0, .swa_window = r->swa_window,
                              .swa_pattern = r->swa_pattern, .wire = o->wire, .kv_type = kt,
                              .progress = r->progress};
    return cluster_assign(c, &ao, err, errlen);
}

cluster *rl_cluster_open(const rl_cluster_opts *o, const rl_runner_opts *r, uint32_t max_sessions, uint32_t *n_ctx,
                         char *err, size_t errlen) {
    cluster *c = NULL;
    if (connect_cluster(&c, o, err, errlen) || assign(c, o, r, max_sessions, NULL, n_ctx, err, errlen))
        cluster_destroy(&c);
    return c;
}

int rl_cluster_replan(cluster *c, const rl_cluster_opts *o, const rl_runner_opts *r, uint32_t max_sessions,
                      bool *answered, char *err, size_t errlen) {
    uint32_t n_ctx;
    if (cluster_hello_some(c, REPLAN_HELLO_MS, answered, err, errlen) < 0)
        return -1;
    return assign(c, o, r, max_sessions, answered, &n_ctx, err, errlen);
}

rl_backend *rl_backend_cluster_new(const rl_cluster_opts *o, const rl_runner_opts *r, char *err, size_t errlen) {
    cluster_backend *cb = calloc(1, sizeof *cb);
    if (!cb) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cb->base.ops = &CLUSTER_OPS;
    if (!(cb->cluster = rl_cluster_open(o, r, 1, &cb->base.n_ctx, err, errlen)))
        goto fail;
    const rl_model *model = cluster_model(cb->cluster);
    if (!(cb->tok = rl_tok_new(rl_model_gguf(model), err, errlen)))
        goto fail;
    cb->base.tok = cb->tok;
    cb->base.hp = rl_model_hparams(model);
    cb->base.file = rl_model_gguf(model);
    cb->co = *o, cb->ro = *r;
    if (!(cb->history = malloc((size_t)cb->base.n_ctx * sizeof *cb->history)) ||
        !(cb->starts = malloc(cb->base.n_ctx))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return &cb->base;
fail:
    cl_destroy(&cb->base);
    return NULL;
}

rl_backend *rl_backend_open(const rl_cluster_opts *o, const rl_runner_opts *r, char *err, size_t errlen) {
    if (o->file)
        return rl_backend_cluster_new(o, r, err, errlen);
    if (o->layers || o->wire != RELAIS__DTYPE__DTYPE_F32) {
        snprintf(err, errlen, "--layers and --wire %s need --cluster FILE", wire_dtype_name(o->wire));
        return NULL;
    }
    return rl_backend_local_new(r, err, errlen);
}
