/* The cluster session below `relais run`, `chat` and `serve` alike: the
 * options that name a cluster (--cluster, --layers, --wire), opening it
 * (read the cluster file, greet every node, split the layers with the
 * planner from the nodes' free memory and measured speed or by --layers,
 * check that every slice fits before anything is sent, wait until every
 * node has loaded its slice) and planning again after a lost node. The
 * executor of the nodes (executor_cluster.c) runs on what this opens.
 *
 * With the f32 wire and the same --batch / --gemm-min / --no-gemm as a run
 * on one machine, the ids and logits are bit-identical to it. */
#ifndef RELAIS_CLUSTER_SESSION_H
#define RELAIS_CLUSTER_SESSION_H

#include <getopt.h>
#include <stdbool.h>
#include "cluster.h"
#include "runner.h"

typedef struct {
    const char *file;   /* the cluster file; NULL: run on this machine */
    const char *layers; /* a fixed split "0-11,12-23", one range per node; NULL: planned */
    int wire;           /* a relais.proto DType: how activations travel between machines (0: f32) */
} rl_cluster_opts;

/* The options run, chat and serve add to their tables, and their handler: 1 when
 * `opt` was one of them, 0 when not, -1 on a bad value (message printed). */
enum { RL_CLUSTER_OPT_FILE = 1200, RL_CLUSTER_OPT_WIRE, RL_CLUSTER_OPT_LAYERS };
#define RL_CLUSTER_LONGOPTS                                                                                        \
    {"cluster", required_argument, 0, RL_CLUSTER_OPT_FILE}, {"wire", required_argument, 0, RL_CLUSTER_OPT_WIRE}, { \
        "layers", required_argument, 0, RL_CLUSTER_OPT_LAYERS                                                      \
    }
#define RL_CLUSTER_HELP                                                                             \
    "      --cluster FILE      run on the nodes of a cluster file (deploy/cluster.example.yaml);\n" \
    "                          -t then sets the threads of every node\n"                            \
    "      --wire f32|f16|i16  activations between machines (default f32: bit-identical to one\n"   \
    "                          machine); f16 and i16 take about half the bytes, i16 (int16 in\n"    \
    "                          blocks of 32 with a scale each) keeps 16 bits where f16 keeps 11\n"  \
    "      --layers A-B,C-D    fix the layers of each node in the file's order instead of planning\n"
int rl_cluster_opt(rl_cluster_opts *o, int opt, const char *arg);

/* Refuses --layers and --wire other than f32 without --cluster FILE. 0, or
 * -1 with err. */
int rl_cluster_opts_check(const rl_cluster_opts *o, char *err, size_t errlen);

/* The nodes of o->file, greeted, their layers planned (or checked against
 * --layers) and assigned for up to max_sessions sessions of *n_ctx
 * positions (r->n_ctx, default 4096 capped at the model's; more than the
 * model's is refused unless r->ctx_beyond_file), their KV in --kv-type,
 * else the cluster file's kv_type, else the default (read here once:
 * cluster_kv_type), micro-batches of rl_runner_batch(r) tokens. NULL with
 * err. */
cluster *rl_cluster_open(const rl_cluster_opts *o, const rl_runner_opts *r, uint32_t max_sessions, uint32_t *n_ctx,
                         char *err, size_t errlen);
/* After a node was lost: greets the nodes of c again (answered[i], n_nodes
 * flags, says who answered within a bounded wait), plans the layers over
 * those that did and assigns them as rl_cluster_open does (slices from the
 * nodes' model files or caches, or sent). --layers holds only while every
 * node answers; otherwise the planner splits the layers (and says so). The
 * sessions on the nodes are gone. 0, or -1 with err. */
int rl_cluster_replan(cluster *c, const rl_cluster_opts *o, const rl_runner_opts *r, uint32_t max_sessions,
                      bool *answered, char *err, size_t errlen);

#endif
