/* A node's assignment: its slice of the model (layers [l0, l1), plus the
 * final norm, head and sampler when it is the last stage), its compute
 * context, its sessions and the link to the next hop.
 *
 * A Forward (a micro-batch of one or several sessions' tokens) is run
 * through the slice and its output sent on: as a Forward to
 * the next node, or, on the last stage, as a Result to the coordinator's
 * result endpoint. Each stage adds its compute time to Forward.stage_seconds,
 * so the coordinator learns every node's share from the Result. Failures come back as an error code and a message, which
 * the server reports to the coordinator. */
#ifndef RELAIS_NODE_STAGE_H
#define RELAIS_NODE_STAGE_H

#include <stdbool.h>
#include <stdint.h>
#include "curve.h"
#include "relais.pb-c.h"
#include "wire.h"

typedef struct {
    void *zctx;             /* the node's ZeroMQ context */
    const curve_keys *keys; /* the node's own key pair */
    int threads;            /* --threads, used when the Assign asks for 0 (<= 0: one per core) */
    int64_t max_message;    /* the node's inbound message limit */
    void (*progress)(void *ud, uint64_t done, uint64_t total); /* while the slice is read in */
    void *progress_ud;
} node_stage_env;

typedef struct node_stage node_stage;

/* When a Forward reached the node, for RELAIS_TRACE (CLOCK_MONOTONIC, us):
 * the server's poll returned, and the message was read and unpacked. */
typedef struct {
    int64_t wake_us, read_us;
} node_arrival;

/* Loads the slice an Assign describes from model_path and connects to the
 * next hop. NULL with a code (ERR_MODEL, ERR_RANGE, ERR_MEMORY, ...) and err.
 * Destroy with node_stage_destroy. */
node_stage *node_stage_new(const Relais__Assign *a, const char *model_path, const node_stage_env *env,
                           Relais__ErrorCode *code, char *err, size_t errlen);
void node_stage_destroy(node_stage **s); /* NULLs *s */

/* True when a describes exactly this stage (so a repeated Assign need not
 * load anything again). */
bool node_stage_matches(const node_stage *s, const Relais__Assign *a);
/* Drops every session (a new coordinator run starts clean). */
void node_stage_reset(node_stage *s);
/* Connects to the next hop afresh (libzmq gives up on a link whose
 * handshake was refused). ERR_NONE, or a code with err. */
Relais__ErrorCode node_stage_relink(node_stage *s, char *err, size_t errlen);

const uint8_t *node_stage_prev_key(const node_stage *s); /* who may send Forward */
uint64_t node_stage_weight_bytes(const node_stage *s);
uint64_t node_stage_kv_bytes(const node_stage *s); /* per session at the assigned context */
uint32_t node_stage_sessions(const node_stage *s);
/* The link to the next hop: poll its event socket, and read one event with
 * node_stage_link_event. A failed handshake is remembered (and reported by
 * every Forward) until one succeeds. */
typedef enum {
    NODE_LINK_NONE,   /* no event pending */
    NODE_LINK_UP,     /* a handshake succeeded */
    NODE_LINK_FAILED, /* a handshake failed: node_stage_link_error says why */
    NODE_LINK_OTHER   /* connects, retries, disconnects */
} node_link;
void *node_stage_link_socket(node_stage *s);
node_link node_stage_link_event(node_stage *s);
bool node_stage_link_up(const node_stage *s);
const char *node_stage_link_error(const node_stage *s); /* "" unless the last handshake failed */

/* Runs a Forward through the slice and sends the output on. ERR_NONE, or a
 * code with err; the sessions are left as they were unless the layers ran.
 * Forward.drop_sessions are forgotten first. A micro-batch runs all its
 * sessions' tokens in one pass (one matrix product per weight, attention
 * per session): through sgemm when every segment allows it and it has the
 * assignment's gemm_min tokens or more, else with the quantized kernels, so
 * each session's result does not depend on the others. The head stage
 * sends one SegmentResult per sampling segment. Every segment is checked
 * before any session is created: a refused micro-batch changes nothing.
 * With RELAIS_TRACE, logs the Forward's arrival, compute and send times. */
Relais__ErrorCode node_stage_forward(node_stage *s, const Relais__Forward *f, const node_arrival *in, char *err,
                                     size_t errlen);

#endif
