/* The cluster session (see cluster_session.h): the cluster options, and
 * opening or re-planning the nodes of a cluster file. */
#include "cluster_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cluster_config.h"
#include "cluster_discover.h"
#include "gguf.h"
#include "log.h"
#include "planner.h"
#include "wire.h"

#define UNKNOWN_SPEED 1e9 /* a node that could not measure its matvec counts as 1 GB/s */
/* How long a re-plan waits for the nodes' answers to hello: a live node
 * answers at once, or after the micro-batch it is computing. */
#define REPLAN_HELLO_MS 10000
/* Heartbeat rounds for each node's round trip (the planner's link cost: half
 * of it, one way over the node's link). */
#define LINK_ROUNDS 3

int rl_cluster_opt(rl_cluster_opts *o, int opt, const char *arg) {
    switch (opt) {
    case RL_CLUSTER_OPT_FILE:
        o->file = arg;
        return 1;
    case RL_CLUSTER_OPT_LAYERS:
        o->layers = arg;
        return 1;
    case RL_CLUSTER_OPT_WIRE: {
        const int d = wire_dtype_from_name(arg);
        if (d < 0) {
            fprintf(stderr, "relais: --wire: '%s' is not f32, f16 or i16\n", arg);
            return -1;
        }
        o->wire = d;
        return 1;
    }
    default:
        return 0;
    }
}

int rl_cluster_opts_check(const rl_cluster_opts *o, char *err, size_t errlen) {
    if (!o->file && (o->layers || o->wire != RELAIS__DTYPE__DTYPE_F32)) {
        snprintf(err, errlen, "--layers and --wire %s need --cluster FILE", wire_dtype_name(o->wire));
        return -1;
    }
    return 0;
}

/* The model's shape and per-layer costs, with the run's window overrides
 * and its context beyond the file's, as the nodes will load it. */
static int read_costs(const rl_runner_opts *r, plan_model *m, char *err, size_t errlen) {
    rl_model_opts mo = rl_model_opts_default();
    mo.swa_window = r->swa_window;
    mo.swa_pattern = r->swa_pattern;
    mo.n_ctx_beyond = r->ctx_beyond_file ? r->n_ctx : 0;
    return plan_model_read(r->model_path, &mo, m, err, errlen);
}

/* Each node's layers: --layers or the planner's split, and in both cases
 * every slice checked against its node's free memory before anything is
 * sent. With `use` (a re-plan), only the nodes it flags get layers; when
 * that leaves some out, --layers (one range per node of the file) cannot
 * apply and the planner splits the layers instead. The others get an empty
 * range. */
static int plan_ranges(const rl_cluster_opts *o, cluster *c, const plan_model *m, uint32_t n_ctx, rl_kv_type kt,
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
        nodes[n++] =
            (plan_node){cluster_node_name(c, i), info->free_ram,
                        info->matvec_bytes_per_s > 0 ? info->matvec_bytes_per_s : UNKNOWN_SPEED, info->rtt_s / 2};
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
    cluster_config *cfg = cluster_config_open(o->file, err, errlen);
    if (!cfg)
        return -1;
    *c = cluster_new(cluster_config_key(cfg), cluster_config_listen(cfg), cluster_config_advertise(cfg),
                     cluster_config_io_cpu(cfg), cluster_config_node(cfg, 0), cluster_config_n_nodes(cfg), err, errlen);
    cluster_config_destroy(&cfg);
    return *c && cluster_hello(*c, err, errlen) == 0 ? cluster_measure_links(*c, LINK_ROUNDS, NULL, err, errlen) : -1;
}

/* The KV type of the nodes of o->file into *t: --kv-type when given
 * (r->kv_type_set), else the file's kv_type, else the default. Read once,
 * when the cluster opens: a re-plan keeps the type the session began with
 * (cluster_kv_type), which the commands also report. 0, or -1 with err
 * when the file cannot be read. */
static int read_kv_type(const rl_cluster_opts *o, const rl_runner_opts *r, rl_kv_type *t, char *err, size_t errlen) {
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

static int assign(cluster *c, const rl_cluster_opts *o, const rl_runner_opts *r, uint32_t max_sessions, const bool *use,
                  uint32_t *n_ctx, char *err, size_t errlen) {
    plan_model m;
    plan_range ranges[CLUSTER_MAX_NODES];
    if (read_costs(r, &m, err, errlen)) {
        plan_model_free(&m);
        return -1;
    }
    rl_kv_type kt = use ? cluster_kv_type(c) : (rl_kv_type){0}; /* a re-plan: the session's */
    int rc = rl_hparams_ctx(&m.hp, r->n_ctx, n_ctx, err, errlen) || (!use && read_kv_type(o, r, &kt, err, errlen)) ||
            rl_kv_type_check(kt, &m.hp, err, errlen)
        ? -1
        : plan_ranges(o, c, &m, *n_ctx, kt, use, ranges, err, errlen);
    plan_model_free(&m);
    if (rc)
        return -1;
    cluster_assign_opts ao = {.model_path = r->model_path,
                              .ranges = ranges,
                              .n_ctx = *n_ctx,
                              .max_sessions = max_sessions,
                              .max_batch = rl_runner_batch(r),
                              .gemm_min = r->no_gemm ? 0 : r->gemm_min,
                              .no_gemm = r->no_gemm,
                              .threads = r->n_threads > 0 ? (uint32_t)r->n_threads : 0,
                              .swa_window = r->swa_window,
                              .swa_pattern = r->swa_pattern,
                              .wire = o->wire,
                              .kv_type = kt,
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
    int n = cluster_hello_some(c, REPLAN_HELLO_MS, answered, err, errlen);
    if (n < 0 || cluster_measure_links(c, LINK_ROUNDS, answered, err, errlen))
        return -1;
    /* A node that answers but refuses its slice (it serves another
     * coordinator, or failed to load) is left out of the next try. */
    for (;;) {
        if (assign(c, o, r, max_sessions, answered, &n_ctx, err, errlen) == 0)
            return 0;
        const int f = cluster_failed_node(c);
        if (f < 0 || !answered[f] || --n == 0)
            return -1;
        rl_log(RL_LOG_WARN, "%s: planning again without node %s", err, cluster_node_name(c, (uint32_t)f));
        answered[f] = false;
    }
}
