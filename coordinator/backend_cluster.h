/* The cluster backend of `relais run` and `relais chat` (`--cluster FILE`):
 * the same generation interface as the local backend (backend.h), served
 * by the nodes of a cluster file. Opening it reads the cluster file,
 * greets every node, splits the layers (the planner, from the nodes' free
 * memory and measured speed, or --layers), checks that every slice fits
 * before anything is sent, and waits until every node has loaded its slice.
 *
 * With the f32 wire and the same --batch / --gemm-min / --no-gemm as a run
 * on one machine, the ids and logits are bit-identical to it. */
#ifndef RELAIS_BACKEND_CLUSTER_H
#define RELAIS_BACKEND_CLUSTER_H

#include <getopt.h>
#include <stdbool.h>
#include "backend.h"
#include "runner.h"

typedef struct {
    const char *file;      /* the cluster file; NULL: run on this machine */
    const char *layers;    /* a fixed split "0-11,12-23", one range per node; NULL: planned */
    int wire;              /* a relais.proto DType: how activations travel between machines (0: f32) */
} rl_cluster_opts;

/* The options run and chat add to their tables, and their handler: 1 when
 * `opt` was one of them, 0 when not, -1 on a bad value (message printed). */
enum { RL_CLUSTER_OPT_FILE = 1200, RL_CLUSTER_OPT_WIRE, RL_CLUSTER_OPT_LAYERS };
#define RL_CLUSTER_LONGOPTS                                                                             \
    {"cluster", required_argument, 0, RL_CLUSTER_OPT_FILE}, {"wire", required_argument, 0, RL_CLUSTER_OPT_WIRE}, \
    {"layers", required_argument, 0, RL_CLUSTER_OPT_LAYERS}
#define RL_CLUSTER_HELP                                                                                 \
    "      --cluster FILE      run on the nodes of a cluster file (deploy/cluster.example.yaml);\n"      \
    "                          -t then sets the threads of every node\n"                                \
    "      --wire f32|f16|i16  activations between machines (default f32: bit-identical to one\n"      \
    "                          machine); f16 and i16 take about half the bytes, i16 (int16 in\n"       \
    "                          blocks of 32 with a scale each) keeps 16 bits where f16 keeps 11\n"      \
    "      --layers A-B,C-D    fix the layers of each node in the file's order instead of planning\n"
int rl_cluster_opt(rl_cluster_opts *o, int opt, const char *arg);

/* The backend for a run: the cluster when o->file is set, else this machine.
 * NULL with err. */
rl_backend *rl_backend_open(const rl_cluster_opts *o, const rl_runner_opts *r, char *err, size_t errlen);

/* The nodes of o->file, greeted, their layers planned (or checked against
 * --layers) and assigned for up to max_sessions sessions of *n_ctx
 * positions (r->n_ctx, default 4096, capped at the model's), micro-batches
 * of r->batch tokens. NULL with err. */
struct cluster *rl_cluster_open(const rl_cluster_opts *o, const rl_runner_opts *r, uint32_t max_sessions,
                                uint32_t *n_ctx, char *err, size_t errlen);
/* After a node was lost: greets the nodes of c again (answered[i], n_nodes
 * flags, says who answered within a bounded wait), plans the layers over
 * those that did and assigns them as rl_cluster_open does (slices from the
 * nodes' model files or caches, or sent). --layers holds only while every
 * node answers; otherwise the planner splits the layers (and says so). The
 * sessions on the nodes are gone. 0, or -1 with err. */
int rl_cluster_replan(struct cluster *c, const rl_cluster_opts *o, const rl_runner_opts *r, uint32_t max_sessions,
                      bool *answered, char *err, size_t errlen);

/* The cluster backend itself. A node lost during a step does not end the
 * session: the step re-plans over the nodes that answer and feeds the
 * session's ids again (cluster_recover.h), then goes on, with the output of
 * an unbroken run. NULL with err. */
rl_backend *rl_backend_cluster_new(const rl_cluster_opts *o, const rl_runner_opts *r, char *err, size_t errlen);

#endif
