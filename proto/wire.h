/* The relais wire: how one relais.Envelope (proto/relais.proto) travels over
 * a ZeroMQ socket, and the checks every decoded message goes through before
 * anyone uses it.
 *
 * One message = one frame holding one packed Envelope, preceded on a ROUTER
 * by the peer's routing-id frame. A frame that does not unpack, carries
 * another protocol version or has no body still yields a wire_msg, with its
 * error code set, so the receiver can answer it with an Error and go on
 * serving. Sockets are made by wire_socket, which sets ZMQ_MAXMSGSIZE (a peer
 * cannot make us allocate more than that), a short linger and a send
 * timeout, so no call here blocks forever. */
#ifndef RELAIS_WIRE_H
#define RELAIS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "relais.pb-c.h"
#include "sampler.h"

#define WIRE_VERSION ((uint32_t)RELAIS__CONSTANTS__PROTOCOL_VERSION)
#define WIRE_KEY_BYTES 32          /* CURVE public keys, sha256 digests */
#define WIRE_ROUTING_ID_MAX 255    /* ZeroMQ's limit on a routing id */
#define WIRE_MAX_TOP 1024          /* most (id, logit) pairs a Result may carry */
#define WIRE_MAX_BATCH 65536       /* most tokens a Forward may carry */
#define WIRE_CONTROL_MAX (4 << 20) /* inbound limit of sockets that only get control messages and Results */
#define WIRE_MAX_STAGES 64         /* stages a Forward may have been through: bounds Forward.stage_seconds */
/* A peer silent this long (ZeroMQ heartbeats, answered by its I/O thread
 * even while it computes) loses its connection: a stopped or vanished
 * process, or a broken network. */
#define WIRE_HEARTBEAT_TIMEOUT_MS 10000
#define WIRE_CLUSTER_ID_MAX 64     /* bytes of Hello/Assign/Release.cluster_id (a coordinator sends 16) */
#define WIRE_SEND_TIMEOUT_MS 10000 /* a send that cannot be queued this long fails */

/* ---- sockets ---- */

/* A socket of `type` with ZMQ_MAXMSGSIZE = max_msg, linger, send timeout,
 * ZMTP heartbeats (a dead peer is noticed within seconds even while the
 * application thread computes) and, on a ROUTER, ROUTER_MANDATORY (a reply to
 * a peer that is gone fails instead of vanishing). NULL with err. */
void *wire_socket(void *zctx, int type, int64_t max_msg, char *err, size_t errlen);

/* What an Assign lets a Forward and its Result hold, with the model's
 * shape: the sizes every variable field of them is checked against. */
typedef struct {
    uint32_t max_batch;    /* tokens per Forward (Assign.max_batch) */
    uint32_t max_sessions; /* sessions a node holds (Assign.max_sessions) */
    uint32_t n_ctx;        /* positions per session (Assign.n_ctx): bounds a Sampling.history */
    uint32_t dim;          /* the model's width: activations per token */
    uint32_t n_vocab;      /* the model's vocabulary: a Sampling.allowed mask */
} wire_bounds;

/* The largest Envelope holding a Forward that passes the checks below
 * under b, in bytes: the activations in their largest dtype; one Segment
 * per token; on the sampling ones (distinct sessions: at most
 * min(max_batch, max_sessions)) a Sampling with a full allowed mask and
 * n_ctx ids of history each; a draft distribution of RL_Q_MAX ids for every
 * token; max_sessions drop_sessions; WIRE_MAX_STAGES stage times; every
 * varint at its longest. A node refuses an Assign whose Forward could exceed
 * its inbound limit, so no legal Forward is ever cut off by it. */
int64_t wire_forward_max(const wire_bounds *b);
/* The same for a Result (what the last node sends the coordinator): one
 * SegmentResult per sampling segment, WIRE_MAX_TOP top logits in all, an id
 * per token of verifying segments, WIRE_MAX_STAGES stage times. At most
 * WIRE_CONTROL_MAX for any bounds (WIRE_MAX_BATCH tokens). */
int64_t wire_result_max(const wire_bounds *b);

/* ---- messages ---- */

typedef struct wire_msg wire_msg;

/* Reads one whole message from sock (which has input: call after a poll).
 * `routed`: the socket is a ROUTER, so a routing-id frame comes first.
 * NULL only when nothing could be read (errno: EAGAIN, EINTR, ETERM).
 * Otherwise a message, valid or not (wire_msg_code). Destroy it. */
wire_msg *wire_msg_recv(void *sock, bool routed);
void wire_msg_destroy(wire_msg **m); /* NULLs *m */

/* The unpacked Envelope; NULL unless wire_msg_code is ERR_NONE. Owned by m. */
const Relais__Envelope *wire_msg_env(const wire_msg *m);
/* ERR_NONE, or ERR_MALFORMED / ERR_VERSION for a frame that is refused. */
Relais__ErrorCode wire_msg_code(const wire_msg *m);
/* Why the frame was refused ("" when it was not). */
const char *wire_msg_error(const wire_msg *m);
/* The ROUTER routing id of the sender (len 0 on other sockets). */
const uint8_t *wire_msg_routing_id(const wire_msg *m, size_t *len);
/* The ZAP User-Id the peer was authenticated as ("" when none). */
const char *wire_msg_user(const wire_msg *m);
/* The peer's CURVE public key as our ZAP handler recorded it; NULL if none. */
const uint8_t *wire_msg_peer_key(const wire_msg *m);

/* Sends env (its version is set here) as one frame, after routing_id when
 * rid_len > 0. 0, or -1 with err (send timeout, peer gone, ...). */
int wire_send(void *sock, const uint8_t *rid, size_t rid_len, Relais__Envelope *env, char *err, size_t errlen);
/* Sends an Error{code, message, session_id, step_id}. Same return. */
int wire_send_error(void *sock, const uint8_t *rid, size_t rid_len, Relais__ErrorCode code, uint64_t session_id,
                    uint64_t step_id, const char *message, char *err, size_t errlen);

/* "ERR_MALFORMED", ...; "ERR_?" for a value outside the enum. */
const char *wire_code_name(int code);
/* "forward", "heartbeat", ...: the Envelope body's field name, for logs. */
const char *wire_body_name(int body_case);

/* ---- validation: each returns ERR_NONE, or a code with err filled ---- */

/* A 32-byte key or digest. */
Relais__ErrorCode wire_check_key(const ProtobufCBinaryData *k, const char *what, char *err, size_t errlen);
/* Fields of an Assign that make sense on their own (ranges, sizes, keys,
 * endpoint); what depends on the model file is the node's to check. */
Relais__ErrorCode wire_check_assign(const Relais__Assign *a, char *err, size_t errlen);
/* A Release: its cluster_id no longer than an Assign's may be. */
Relais__ErrorCode wire_check_release(const Relais__Release *r, char *err, size_t errlen);
/* Sampling parameters: finite, in range, a history of at most n_ctx
 * non-negative ids, an allowed-ids mask of ceil(n_vocab/8) bytes or none,
 * draft distributions of 1 to RL_Q_MAX distinct ids of the vocabulary with
 * probabilities > 0 summing to 1 and their token among them. */
Relais__ErrorCode wire_check_sampling(const Relais__Sampling *s, uint32_t n_vocab, uint32_t n_ctx, char *err,
                                      size_t errlen);
/* A Segment's fields on their own: a Sampling only on one that samples, a
 * verifying one samples (Segment.verify needs Segment.sample), draft distributions come with a verifying one,
 * one per token after its first; its size and the session's state are the node's
 * to check against the micro-batch and its caches. */
Relais__ErrorCode wire_check_segment(const Relais__Segment *g, char *err, size_t errlen);

/* ---- activations ---- */

#define WIRE_I16_BLOCK 32 /* values per scale in DTYPE_I16 (see relais.proto) */

/* "f32", "f16", "i16"; NULL for a value outside the enum. */
const char *wire_dtype_name(int dtype);
/* The dtype of such a name, or -1. */
int wire_dtype_from_name(const char *name);
/* Bytes of rows x dim activations in the wire form of dtype; 0 for a dtype
 * outside the enum. A Forward whose activations have another size is
 * malformed. */
size_t wire_activations_bytes(int dtype, size_t rows, size_t dim);
/* The most any dtype takes: what a buffer for any of them needs. */
size_t wire_activations_max(size_t rows, size_t dim);
/* rows x dim floats to / from the little-endian wire form of dtype, which
 * takes wire_activations_bytes(dtype, rows, dim) at out / in. DTYPE_I16
 * scales each row's blocks on their own, so a row's encoding never depends on
 * the rows sent with it. dtype must be one of the enum (checked before). */
void wire_activations_encode(const float *x, size_t rows, size_t dim, Relais__DType dtype, uint8_t *out);
void wire_activations_decode(const uint8_t *in, size_t rows, size_t dim, Relais__DType dtype, float *x);

/* ---- sampling ---- */

/* Sampling on the wire <-> the engine's sampler parameters. The sender cuts
 * the history to the penalty window, so the receiver's sampler looks at all
 * of the history it gets (repeat_last_n -1). */
void wire_sampling_from_params(const rl_sampler_params *p, Relais__Sampling *out);
rl_sampler_params wire_sampling_to_params(const Relais__Sampling *s);
/* How many of the last ids the penalties of p look at, out of n. */
size_t wire_history_window(const rl_sampler_params *p, size_t n);

/* ---- socket monitors ---- */

/* Events of one socket (connects, disconnects, failed handshakes), read in
 * the owner's poll loop. */
typedef struct wire_monitor wire_monitor;

/* Starts monitoring sock; `name` makes the inproc endpoint unique. NULL with err. */
wire_monitor *wire_monitor_new(void *zctx, void *sock, const char *name, char *err, size_t errlen);
void wire_monitor_destroy(wire_monitor **m); /* NULLs *m; stops the monitor */
void *wire_monitor_socket(wire_monitor *m);  /* to poll for input */
/* Reads one event: 0 with *event (ZMQ_EVENT_*), *value and the endpoint, or
 * -1 when none could be read. */
int wire_monitor_read(wire_monitor *m, uint16_t *event, uint32_t *value, char *endpoint, size_t len);
/* A sentence for a handshake failure event's value, e.g. "mechanism mismatch
 * (a plaintext peer?)", or for other events their name. */
const char *wire_event_text(uint16_t event, uint32_t value);

#endif
