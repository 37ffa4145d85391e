/* The planner: which contiguous layers each node of the pipeline runs.
 *
 * A pure computation over numbers (the model's per-layer weight bytes and
 * shape, each node's free RAM and measured speed), so `relais plan` can size
 * a cluster that does not exist yet and tests can pin every decision.
 *
 * A node's memory is the weights of its layers, their KV cache for
 * n_sessions sessions of n_ctx positions (sliding layers hold only W
 * positions: rl_kv_bytes_for), the final norm and output matrix on the node
 * that runs the head (the last one, unless the coordinator runs it), and a
 * fixed reserve for activations, buffers and the runtime. A node's time per
 * token is the weight bytes it streams divided by its speed, plus the link
 * that brings it the activations (link_s) when it gets layers: a node behind
 * a slow hop gets fewer layers, and with allow_idle none when the hop costs
 * more than the node saves.
 *
 * Among the splits that fit every node, the plan minimizes the slowest
 * node's time (the pipeline's bottleneck); among those, it minimizes
 * sum(bytes^2 / speed), which is smallest when bytes are proportional to
 * speed, so the nodes that are not the bottleneck are balanced as well.
 * Both are exact dynamic programs over contiguous splits, O(nodes x layers^2).
 * When nothing fits, the plan shown is the split with the smallest worst
 * shortfall, and the problem text names each node that is short and by how
 * much, with the total needed against the total free. */
#ifndef RELAIS_PLANNER_H
#define RELAIS_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "gguf.h"
#include "kv.h"
#include "model.h"

#define PLAN_MAX_NODES 64
#define PLAN_DEFAULT_RESERVE (64ull << 20)

typedef struct {
    const char *name;  /* shown in the problem text */
    uint64_t free_ram; /* bytes the node can give to weights, KV and the runtime */
    double speed;      /* weight bytes a matvec streams per second; > 0 */
    double link_s;     /* seconds the hop into this node adds to a token (>= 0; 0: unknown or local) */
} plan_node;

typedef struct {
    uint32_t l0, l1; /* layers [l0, l1) */
} plan_range;

typedef struct {
    const rl_hparams *hp;        /* shape and sliding layout (n_layer >= 1) */
    const uint64_t *layer_bytes; /* (hp->n_layer) bytes of each layer's weights */
    uint64_t head_bytes;         /* final norm and output matrix (token_embd when tied) */
    const plan_node *nodes;      /* in pipeline order: the first gets layer 0 */
    uint32_t n_nodes;            /* 1..PLAN_MAX_NODES */
    uint32_t n_ctx;              /* positions of KV per session (>= 1) */
    uint32_t n_sessions;         /* sessions each node keeps KV for (>= 1) */
    rl_kv_type kv_type;          /* KV cache element types (default f16) */
    uint64_t reserve;            /* per used node: activations, buffers, the runtime */
    bool head_on_coordinator;    /* false: the last node runs final norm, head and sampling */
    bool allow_idle;             /* a node may get no layers; otherwise each gets at least one */
    const plan_range *ranges;    /* (n_nodes) a fixed split to check instead of planning, or NULL */
} plan_input;

/* n_sessions 1, the default reserve, head on the last node, no idle node,
 * no fixed split; the caller fills in the model, nodes and n_ctx. */
plan_input plan_input_default(void);

typedef struct {
    uint32_t l0, l1;        /* layers [l0, l1); l0 == l1 when the node is idle */
    bool head;              /* runs the final norm, head and sampling */
    uint64_t weight_bytes;  /* its layers' weights */
    uint64_t kv_bytes;      /* its layers' KV for all sessions */
    uint64_t head_bytes;    /* 0 unless head */
    uint64_t reserve_bytes; /* 0 for an idle node */
    uint64_t need_bytes;    /* the four above */
    uint64_t free_bytes;    /* the node's free RAM */
    double time_s;          /* per token: (weights + head) / speed, plus link_s when it has layers */
    double link_s;          /* of that, the hop into it */
    double share;           /* time_s over all nodes' sum, 0..1 */
} plan_stage;

typedef struct plan plan;

/* Plans (or checks in->ranges). NULL with a message in err only when the
 * input itself is wrong (a zero speed, more nodes than layers without
 * allow_idle, a fixed split that does not cover the model...). A model that
 * does not fit still gets a plan: plan_fits says so and plan_problem
 * explains. */
plan *plan_new(const plan_input *in, char *err, size_t errlen);
void plan_destroy(plan **p); /* NULLs *p */

bool plan_fits(const plan *p);
const char *plan_problem(const plan *p);                    /* NULL when it fits; else lines ending in '\n' */
uint32_t plan_n_stages(const plan *p);                      /* = n_nodes */
const plan_stage *plan_stage_at(const plan *p, uint32_t i); /* NULL past the end */
uint64_t plan_total_need(const plan *p);                    /* all stages' need */
uint64_t plan_total_free(const plan *p);                    /* all nodes' free RAM */

/* Parses a fixed split "0-11,12-23,24-35" (inclusive layer numbers; "5" is
 * the single layer 5; "-" gives a node no layers, which plan_new accepts
 * only with allow_idle), one entry per node; the ranges must cover layers
 * 0..n_layer-1 in order without gap or overlap. Returns 0, or -1 with a
 * message naming the offending range. */
int plan_parse_ranges(const char *spec, uint32_t n_layer, uint32_t n_nodes, plan_range *out, char *err, size_t errlen);
/* Writes the plan's split in the same syntax, to pin it with --layers. */
void plan_format_ranges(const plan *p, char *buf, size_t len);
/* One stage's layers in that syntax: "12-23", "35", or "-". */
void plan_stage_layers(const plan_stage *s, char *buf, size_t len);

/* Fills layer_bytes (hp->n_layer) and *head_bytes from a model file. */
void plan_costs_from_gguf(const gguf_file *f, const rl_hparams *hp, uint64_t *layer_bytes, uint64_t *head_bytes);

/* A model's shape and costs, read from its file. */
typedef struct {
    rl_hparams hp;         /* with the sliding-window overrides applied */
    uint64_t *layer_bytes; /* (hp.n_layer), owned */
    uint64_t head_bytes;
} plan_model;

/* Reads path's hyper-parameters, with mo's overrides (sliding window,
 * context beyond the file's; NULL: rl_model_opts_default, the file's
 * layout), and costs. 0, or -1 with err naming the file. Free with
 * plan_model_free, in both cases. */
int plan_model_read(const char *path, const rl_model_opts *mo, plan_model *m, char *err, size_t errlen);
void plan_model_free(plan_model *m);

#endif
