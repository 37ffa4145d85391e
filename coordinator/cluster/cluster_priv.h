/* The coordinator's cluster client, inside: the state of the links and the
 * pipeline, and the helpers its parts share. cluster.c holds setup, hello,
 * assignment, waiting and the KV calls; cluster_batch.c the micro-batches.
 * Nothing else includes this file: the interface is cluster.h. */
#ifndef RELAIS_CLUSTER_PRIV_H
#define RELAIS_CLUSTER_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include "cluster.h"
#include "curve.h"
#include "io_pin.h"
#include "weights_send.h"
#include "wire.h"

typedef struct {
    uint8_t sha256[32]; /* the model's */
    uint32_t l0, l1;
    bool head;
} cl_slice; /* a slice a node keeps in its cache */

typedef struct {
    char name[64];
    char address[256];
    uint8_t key[CURVE_KEY_BYTES]; /* the node's public key, from its certificate */
    void *dealer;                 /* control link, and the data link to the first stage */
    wire_monitor *mon;            /* events of `dealer` */
    bool up;                      /* a handshake has succeeded */
    const char *state;            /* the link's last event, for a timeout message */
    cluster_node_info info;       /* from Capabilities */
    uint8_t (*models)[32];        /* (n_models) model file hashes from Capabilities */
    size_t n_models;
    cl_slice *slices; /* (n_slices) cached slices from Capabilities */
    size_t n_slices;
    plan_range range;     /* assigned layers */
    uint64_t done, total; /* load progress */
    char phase[16];       /* of the last progress report: "map", "receive" */
    bool greet;           /* its link came up during a hello wait: greet it (again) */
    bool probed;          /* a hello went out to it since it was left out (or its link last came up) */
    bool answers;         /* it answered that hello: it may be planned again */
    int64_t probe_after;  /* it refused an assignment: not asked again before this time (ms) */
} cl_node;

struct cluster {
    void *zctx;
    io_pin *pin;         /* the CPU that handles messages */
    curve_keys keys;     /* the coordinator's key pair */
    curve_zap *zap;      /* admits the last node to `results` */
    void *results;       /* ROUTER the last node sends Results to */
    char result_ep[256]; /* `results` as the nodes reach it */
    cl_node *nodes;      /* (n) in pipeline order */
    uint32_t n;
    uint32_t pipe[CLUSTER_MAX_NODES]; /* indexes of the nodes with layers, in order */
    uint32_t n_pipe;
    rl_model *model; /* the embedding (no layers, no head) */
    float *x;        /* (max_batch, dim) embedded chunk */
    uint8_t *act;    /* (max_batch, dim) the chunk in the wire dtype */
    uint32_t max_batch;
    uint32_t n_ctx;      /* positions a session may hold */
    rl_kv_type kv_type;  /* the nodes' KV types, as assigned */
    int64_t forward_max; /* the largest Forward the assignment allows (wire_forward_max): the nodes accept it */
    Relais__DType wire;
    uint64_t next_step;  /* step ids increase over the cluster's life */
    uint64_t first_step; /* the first of the current assignment */
    uint64_t hb_seq;
    uint8_t id[16];         /* this process's cluster id (Hello, Assign, Release): who holds the nodes */
    bool hello_wait;        /* a hello wait: lost links do not fail it */
    int failed_node;        /* the node whose Error failed the last wait, or -1 */
    double row_ms;          /* the assignment's estimate of a step's milliseconds per row (a generous bound) */
    double gap_ms;          /* the average wait for an answer measured, ms (0: none yet) */
    uint32_t rows_flying;   /* rows of the micro-batches in flight */
    uint32_t step_rows[64]; /* rows of recent steps, by step id % 64: an answer's time per row */
    int control_ms, load_ms, step_ms;
    bool show_progress;    /* a load progress line is on the terminal */
    char lost[256];        /* why the pipeline cannot be trusted until the next assign */
    uint32_t flying;       /* micro-batches and drops sent, not answered yet */
    int64_t alive_ms;      /* the last send or answer of one */
    weights_send *weights; /* during an assignment: slices for nodes without the model */
    uint64_t weight_bytes; /* slice bytes sent over the cluster's life */
};

/* The next message from a node link (*from = its index) or from the result
 * endpoint (*from = -1) before deadline, serving ZAP and link events
 * meanwhile. 1 with *m, 0 on timeout, -1 with err when a link failed (the
 * pipeline is then marked lost). */
int cluster_next_msg(cluster *c, int64_t deadline, wire_msg **m, int *from, char *err, size_t errlen);
/* Whether the pipeline can take a request: assigned, and no link lost since. 0, or -1 with err. */
int cluster_check_usable(const cluster *c, char *err, size_t errlen);
#endif
