/* The coordinator's side of a relais cluster: the links to the nodes, the
 * assignment of layer slices, and the generation step.
 *
 * Lifecycle: cluster_new (load the coordinator's key, open a CURVE link to
 * every node, bind the result endpoint) -> cluster_hello (every node's
 * capabilities and model files) -> cluster_assign (ranges decided by the
 * planner or by the user; every node loads its slice, the coordinator loads
 * the embedding) -> cluster_batch_send / cluster_batch_wait /
 * cluster_batch_drop -> cluster_destroy.
 *
 * A micro-batch embeds its sessions' ids here and goes to the first node as
 * one Forward; activations go node to node and the last node sends back a
 * Result (the sampled ids and top logits), which arrives on the result
 * endpoint. Only the last node's key may connect there. Every wait is
 * bounded, and a node that refuses our key, fails a message or drops its
 * connection fails the call with a message naming the node. After a lost
 * link or a micro-batch without answer, micro-batches and heartbeats fail at
 * once (the sessions' state is unknown) until cluster_assign succeeds
 * again. */
#ifndef RELAIS_CLUSTER_H
#define RELAIS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cluster_config.h"
#include "model.h"
#include "planner.h"
#include "sampler.h"
#include "top_logits.h"

typedef struct cluster cluster;

/* What a node reported at Hello. */
typedef struct {
    char hostname[64];
    char software[96];
    char simd[64]; /* space-separated feature names */
    uint32_t cores;
    uint64_t free_ram, total_ram;
    double matvec_bytes_per_s; /* weight bytes a matvec streams per second */
    double rtt_s;              /* round trip from the coordinator (cluster_measure_links); 0: not measured */
} cluster_node_info;

/* Connects to the nodes (in pipeline order) with the coordinator's secret
 * certificate key_path, and binds the result endpoint `listen`; nodes reach
 * it at `advertise` (NULL: the bound endpoint, with 127.0.0.1 for a wildcard
 * host). Messages are handled on io_cpu (io_pin.h). Nothing is sent yet.
 * NULL with err. Destroy with cluster_destroy. */
cluster *cluster_new(const char *key_path, const char *listen, const char *advertise, int io_cpu,
                     const cluster_node *nodes, uint32_t n_nodes, char *err, size_t errlen);
void cluster_destroy(cluster **c); /* NULLs *c; drops the sessions it started on the nodes */
/* Adds a node at the end of the cluster (a discovered one) and connects to
 * it; it gets layers at the next assignment, after it answered hello. 0, or
 * -1 with err. */
int cluster_add_node(cluster *c, const cluster_node *spec, char *err, size_t errlen);
/* Points node i's link at another address (a discovered node that came back
 * elsewhere). 0, or -1 with err. */
int cluster_node_readdress(cluster *c, uint32_t i, const char *address, char *err, size_t errlen);
const uint8_t *cluster_node_key(const cluster *c, uint32_t i); /* its CURVE public key (32 bytes) */
const char *cluster_node_address(const cluster *c, uint32_t i);

/* Bounds of the waits, in milliseconds: for a control answer (hello,
 * acknowledgements), for news while nodes load (each progress report
 * restarts it), and the most a step's deadline may be. Defaults 30 s,
 * 120 s, 600 s. A step's deadline is derived from what was measured:
 * 8 times the average wait for an answer, or, when longer, 8 times the rows
 * in flight at the estimated time per row (the model file streamed at the
 * slowest node's matvec speed); at least CLUSTER_STEP_FLOOR_MS, at most
 * step_ms. */
#define CLUSTER_STEP_FLOOR_MS 10000
void cluster_set_timeouts(cluster *c, int control_ms, int load_ms, int step_ms);

/* Hello to every node; waits for all their capabilities. 0, or -1 with err. */
int cluster_hello(cluster *c, char *err, size_t errlen);
/* Hello to every node, waiting at most timeout_ms: answered[i] (n_nodes
 * flags) says who answered, and only they may be given layers next. Lost
 * links do not end the wait: a node whose link drops is not waited for, and
 * one whose link comes up meanwhile (restarted) is greeted then; the wait
 * ends when every node greeted has answered, or at timeout_ms. Returns how
 * many answered, or -1 with err when none did. */
int cluster_hello_some(cluster *c, int timeout_ms, bool *answered, char *err, size_t errlen);
/* The round trip to every node (only those `only` flags, when not NULL):
 * the smallest of `rounds` heartbeats each, into cluster_info(c, i)->rtt_s
 * (0 for a node not asked or that did not answer within the control
 * timeout). 0, or -1 with err when no node answered. */
int cluster_measure_links(cluster *c, int rounds, const bool *only, char *err, size_t errlen);
uint32_t cluster_n_nodes(const cluster *c);
const char *cluster_node_name(const cluster *c, uint32_t i);
const cluster_node_info *cluster_info(const cluster *c, uint32_t i); /* after cluster_hello */
/* Whether node i reported a model file with this sha256 at Hello. */
bool cluster_node_holds(const cluster *c, uint32_t i, const uint8_t sha256[32]);
/* Whether node i reported that slice of that model in its cache at Hello. */
bool cluster_node_cached(const cluster *c, uint32_t i, const uint8_t sha256[32], uint32_t l0, uint32_t l1, bool head);

/* The sha256 of a model file, cached under $XDG_CACHE_HOME/relais (or
 * ~/.cache/relais) by real path, size and mtime; progress on a terminal. */
int cluster_model_hash(const char *path, uint8_t out[32], char *err, size_t errlen);

typedef struct {
    const char *model_path;   /* the model file on this machine */
    const plan_range *ranges; /* (n_nodes) layers per node in order; l0 == l1 leaves a node out */
    uint32_t n_ctx;           /* positions per session */
    uint32_t max_sessions;
    uint32_t max_batch;      /* tokens per Forward: one process's prefill chunk */
    uint32_t gemm_min;       /* sgemm from this many rows (segments allowing it): 0 = engine default */
    bool no_gemm;            /* never sgemm */
    uint32_t threads;        /* per node; 0 = the node's own setting */
    int64_t swa_window;      /* -1 = the file's */
    const char *swa_pattern; /* NULL = the file's */
    int wire;                /* a relais.proto DType: how activations travel between stages (0: f32) */
    rl_kv_type kv_type;      /* the nodes' KV cache types */
    bool progress;           /* show the nodes' loading on a terminal */
} cluster_assign_opts;

/* Sends every node its slice (the last node also runs the head) and waits
 * until all are ready; loads the embedding here. A node that holds neither
 * the model file nor its slice in its cache asks for the slice, and gets it
 * from o->model_path meanwhile (see weights_send.h). 0, or -1 with err. */
int cluster_assign(cluster *c, const cluster_assign_opts *o, char *err, size_t errlen);
/* Slice bytes sent to nodes by all assignments so far. */
uint64_t cluster_weight_bytes_sent(const cluster *c);
/* The coordinator's view of the model (embedding only, the tokenizer's file). */
const rl_model *cluster_model(const cluster *c);
/* The KV types of the last assignment that succeeded (a re-plan keeps them). */
rl_kv_type cluster_kv_type(const cluster *c);

typedef struct {
    const rl_sampler_params *params;
    uint32_t stream;        /* changes when a new sampler (and seed) starts */
    const int32_t *history; /* the ids the session holds, these included (the penalties' window is cut here) */
    size_t n_history;
    uint32_t n_top;          /* top logits to report, <= RL_MAX_TOP */
    uint32_t samples_before; /* ids this stream sampled before: where a sampler made anew goes on */
    const uint8_t *mask;     /* the ids the sample may take (rl_sampler_mask); NULL: any */
    size_t mask_len;
    const rl_qdist *draft; /* a verifying segment's sampled draft: the distribution of each id after its
                              first (Sampling.draft); NULL: a deterministic draft */
    uint32_t n_draft;
} cluster_sampling;

/* A round trip to every node of the pipeline. 0, or -1 with err. */
int cluster_heartbeat(cluster *c, char *err, size_t errlen);

/* ---- micro-batches of one or several sessions, pipelined ----
 *
 * A micro-batch goes out without waiting, so S of them can be in the S
 * stages at once; the answers are taken with cluster_batch_wait in the
 * order they arrive. A session lives on the nodes from its first segment
 * (position 0) until cluster_batch_drop. */

typedef struct {
    uint64_t session;
    const int32_t *ids;               /* tokens at positions pos.. */
    uint32_t n;                       /* >= 1 */
    uint32_t pos;                     /* 0 starts the session */
    uint32_t n_ctx;                   /* the new session's context (0: the assignment's) */
    const cluster_sampling *sampling; /* sample after the last id; NULL: do not */
    bool sgemm;                       /* may use sgemm (executor.h, rl_xseg.sgemm) */
    bool verify;                      /* sample after every id, a draft's check (rl_xseg.verify); needs sampling */
    bool rewind;                      /* forget positions >= pos first (rl_xseg.rewind; pos 0 too) */
} cluster_seg;

/* Embeds the segments (max_batch tokens in all, each session once) and
 * sends them as one Forward to the first node. Returns its step id, or 0
 * with err (then nothing was sent). */
uint64_t cluster_batch_send(cluster *c, const cluster_seg *segs, uint32_t n, char *err, size_t errlen);
/* Frees sessions' caches and samplers on every node, in order with the
 * micro-batches sent before (so a later one finds the slots free); its
 * answer is an empty result. Returns its step id, or 0 with err. */
uint64_t cluster_batch_drop(cluster *c, const uint64_t *sessions, uint32_t n, char *err, size_t errlen);

typedef struct {
    uint64_t step; /* the Forward answered */
    int status;    /* 0, or -1 with err: a node failed it */
    char err[256];
    uint32_t n;            /* sampled ids */
    uint32_t cap;          /* set by the caller: room in sessions and ids */
    uint64_t *sessions;    /* (cap) caller's: the session of each id */
    int32_t *ids;          /* (cap) caller's */
    rl_top *top;           /* (cap) caller's or NULL: the top logits of each id, as asked */
    int32_t *verified;     /* (cap) caller's or NULL: the ids per position of verifying segments, one after another */
    uint32_t *n_verified;  /* (cap) caller's, with verified: how many of them each id's segment has (0: not one) */
    uint32_t cap_verified; /* set by the caller: room in verified */
    uint32_t n_stages;     /* compute seconds of each pipeline stage */
    float stage_seconds[CLUSTER_MAX_NODES];
} cluster_batch_result;

/* The next answer, waiting at most timeout_ms: 1 with *out, 0 on timeout,
 * -1 with err when the pipeline is lost (a link failed, or nothing came back
 * by the step deadline while Forwards were out): every outstanding one is
 * lost then, and the cluster unusable until it is assigned again. */
int cluster_batch_wait(cluster *c, int timeout_ms, cluster_batch_result *out, char *err, size_t errlen);

uint32_t cluster_n_stages(const cluster *c);                        /* nodes with layers */
uint64_t cluster_activation_bytes(const cluster *c, uint32_t rows); /* rows of activations on the wire */
uint32_t cluster_stage_node(const cluster *c, uint32_t k);          /* the node index of stage k */
const char *cluster_lost(const cluster *c);                         /* why the cluster is unusable; "" when it is not */
/* Reads the links' pending events without waiting: a node whose connection
 * came back is up again; a pipeline node's lost connection makes the
 * cluster unusable. */
void cluster_poll_links(cluster *c);
bool cluster_node_up(const cluster *c, uint32_t i); /* node i's link has a live connection */
/* Sends a hello, without waiting, to every node the current plan leaves out
 * whose link is up and that was not asked since it was left out or since
 * its link last came up; its answer, read by any later wait, makes
 * cluster_node_answers(c, i) true until the next assignment. A link's state
 * is only a hint: a node is taken back when it answers. */
void cluster_probe_left_out(cluster *c);
bool cluster_node_answers(const cluster *c, uint32_t i);
/* The node whose Error failed the last assignment (e.g. it serves another
 * coordinator process), or -1. */
int cluster_failed_node(const cluster *c);
/* How long the oldest micro-batch in flight has been waited for past its
 * expected time (the measured time per row, with a floor), in ms; 0 when
 * none is late. Its deadline (cluster_batch_wait) comes later. */
int64_t cluster_overdue_ms(const cluster *c);
bool cluster_node_in_pipeline(const cluster *c, uint32_t i); /* node i holds layers of the current plan */
plan_range cluster_node_range(const cluster *c, uint32_t i); /* node i's layers in the current plan */

/* One line: the nodes and their layers, for the closing statistics. */
void cluster_describe(const cluster *c, char *buf, size_t len);

#endif
