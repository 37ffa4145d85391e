/* The node's server loop and message dispatch (see node_server.h). One
 * thread: the ZAP handler, the socket monitors and the ROUTER are polled
 * together, so the allow list needs no lock; the compute threads live in the
 * engine's pool. */
#include "node_server.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#include "beacon.h"
#include "curve.h"
#include "io_pin.h"
#include "log.h"
#include "node_caps.h"
#include "node_models.h"
#include "node_stage.h"
#include "node_weights.h"
#include "util.h"
#include "wire.h"

#define ROLE_COORDINATOR "coordinator"
#define ROLE_NEIGHBOUR "neighbour"
#define POLL_MS 500
#define PROGRESS_EVERY_MS 200

/* The coordinator process a node serves: the one whose Assign it took
 * last. Another process's Assign (even with the same key) is refused while
 * this one is connected (its routing id is s->coord) and has not sent
 * Release; a connection silent past the heartbeat timeout is dropped by
 * ZeroMQ, so a stopped or vanished holder frees the node by itself. */
typedef struct {
    bool held;
    uint8_t id[WIRE_CLUSTER_ID_MAX]; /* Assign.cluster_id (random per coordinator process) */
    size_t id_len;
    char key[CURVE_FP_LEN]; /* its key's fingerprint */
    char endpoint[256];     /* where it takes results */
    time_t since;           /* its first Assign */
} node_owner;

struct node_server {
    void *zctx;            /* ZeroMQ context (I/O threads) */
    io_pin *pin;           /* the CPU that handles messages */
    void *router;          /* the listening socket */
    curve_zap *zap;        /* who may connect */
    wire_monitor *mon;     /* failed handshakes on the router */
    curve_keys keys;       /* the node's key pair */
    node_models *models;   /* model files by hash */
    node_caps *caps;       /* machine description and benchmark */
    node_stage *stage;     /* the current assignment; NULL when none */
    node_weights *weights; /* slices received from coordinators, and the transfer under way */
    uint8_t *pending;      /* (pending_len) the packed Assign waiting for its slice; NULL when none */
    size_t pending_len;
    uint8_t coord[WIRE_ROUTING_ID_MAX]; /* routing id of the coordinator that assigned the stage */
    size_t coord_len;                   /* 0 when none */
    int threads;                        /* --threads */
    int64_t max_message;                /* inbound limit */
    uint64_t progress_ms;               /* when the last LoadProgress went out */
    bool ready_pending;                 /* the slice is loaded; Ready waits for the link to the next hop */
    char endpoint[256];                 /* the bound endpoint */
    beacon *beacon;                     /* announces this node on the LAN; NULL when off */
    beacon_info announced;              /* what it announces */
    double announced_s;                 /* when its free memory was last read (rl_now_s) */
    node_owner owner;                   /* the coordinator process this node serves */
};

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* "coordinator 0123abcd..." for logs. */
static const char *who(const wire_msg *m, char *buf, size_t len) {
    const uint8_t *key = wire_msg_peer_key(m);
    char fp[CURVE_FP_LEN] = "unknown key";
    if (key)
        curve_fingerprint(key, fp);
    snprintf(buf, len, "%s %s", *wire_msg_user(m) ? wire_msg_user(m) : "peer", fp);
    return buf;
}

/* ---- replies ---- */

static void reply(node_server *s, const uint8_t *rid, size_t rid_len, Relais__Envelope *env) {
    char err[256];
    if (wire_send(s->router, rid, rid_len, env, err, sizeof err))
        rl_log(RL_LOG_WARN, "%s", err);
}

static void reply_to(node_server *s, const wire_msg *m, Relais__Envelope *env) {
    size_t len;
    const uint8_t *rid = wire_msg_routing_id(m, &len);
    reply(s, rid, len, env);
}

static void send_error(node_server *s, const uint8_t *rid, size_t rid_len, Relais__ErrorCode code, uint64_t session,
                       uint64_t step, const char *text) {
    char err[256];
    if (wire_send_error(s->router, rid, rid_len, code, session, step, text, err, sizeof err))
        rl_log(RL_LOG_WARN, "%s", err);
}

/* Logs a refused message and answers its sender. */
static void refuse(node_server *s, const wire_msg *m, Relais__ErrorCode code, const char *text) {
    char w[64];
    size_t len;
    const uint8_t *rid = wire_msg_routing_id(m, &len);
    rl_log(RL_LOG_WARN, "refused a message from %s: %s: %s", who(m, w, sizeof w), wire_code_name(code), text);
    send_error(s, rid, len, code, 0, 0, text);
}

/* ---- hello ---- */

static void hello(node_server *s, const wire_msg *m, const Relais__Hello *h) {
    char err[256], w[64];
    rl_log(RL_LOG_INFO, "hello from %s (%s)", who(m, w, sizeof w), *h->coordinator_name ? h->coordinator_name : "-");
    if (node_models_scan(s->models, err, sizeof err))
        rl_log(RL_LOG_WARN, "%s", err);
    size_t n = node_models_count(s->models);
    Relais__ModelFile *files = calloc(n ? n : 1, sizeof *files);
    Relais__ModelFile **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    if (!files || !ptrs) {
        free(files), free(ptrs);
        refuse(s, m, RELAIS__ERROR_CODE__ERR_MEMORY, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const node_model_file *f = node_models_at(s->models, i);
        relais__model_file__init(&files[i]);
        files[i].sha256 = (ProtobufCBinaryData){32, (uint8_t *)f->sha256};
        files[i].name = (char *)f->name;
        files[i].size = f->size;
        ptrs[i] = &files[i];
    }
    Relais__Capabilities c = RELAIS__CAPABILITIES__INIT;
    node_caps_fill(s->caps, &c);
    c.models = ptrs;
    c.n_models = n;
    c.slices = node_weights_cached(s->weights, &c.n_slices);
    c.public_key = (ProtobufCBinaryData){CURVE_KEY_BYTES, s->keys.public_key};
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_CAPABILITIES;
    env.capabilities = &c;
    reply_to(s, m, &env);
    free(files), free(ptrs);
}

/* ---- assignment ---- */

/* phase: "map" while the slice is read in, "receive" while it arrives. */
static void send_progress(node_server *s, const char *phase, uint64_t done, uint64_t total) {
    Relais__LoadProgress p = RELAIS__LOAD_PROGRESS__INIT;
    p.phase = (char *)phase;
    p.done = done;
    p.total = total;
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_LOAD_PROGRESS;
    env.load_progress = &p;
    reply(s, s->coord, s->coord_len, &env);
    s->progress_ms = now_ms();
}

static void progress(node_server *s, const char *phase, uint64_t done, uint64_t total) {
    if (done >= total || now_ms() - s->progress_ms >= PROGRESS_EVERY_MS)
        send_progress(s, phase, done, total);
}

static void on_progress(void *ud, uint64_t done, uint64_t total) { progress(ud, "map", done, total); }

/* Ready means the slice is loaded and the link to the next hop is
 * authenticated, so the first step cannot meet a refused handshake. */
static void send_ready(node_server *s) {
    s->ready_pending = !node_stage_link_up(s->stage);
    if (s->ready_pending)
        return;
    Relais__Ready r = RELAIS__READY__INIT;
    r.weight_bytes = node_stage_weight_bytes(s->stage);
    r.kv_bytes_per_session = node_stage_kv_bytes(s->stage);
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_READY;
    env.ready = &r;
    reply(s, s->coord, s->coord_len, &env);
}

/* ---- ownership (see node_owner) ---- */

static bool same_owner(const node_owner *o, const ProtobufCBinaryData *id) {
    return o->id_len == id->len && (id->len == 0 || !memcmp(o->id, id->data, id->len));
}

/* Whether the holder's connection is still there: a heartbeat to it, which
 * ROUTER_MANDATORY refuses for a routing id whose peer is gone (and which
 * a coordinator ignores). */
static bool owner_connected(node_server *s) {
    Relais__Heartbeat h = RELAIS__HEARTBEAT__INIT;
    h.unix_ms = now_ms();
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &h;
    char err[256];
    return s->coord_len && wire_send(s->router, s->coord, s->coord_len, &env, err, sizeof err) == 0;
}

/* Whether an Assign from another coordinator process than the holder must
 * be refused: text says who holds the node and since when. */
static bool held_by_another(node_server *s, const Relais__Assign *a, char *text, size_t len) {
    if (!s->owner.held || same_owner(&s->owner, &a->cluster_id))
        return false;
    if (!owner_connected(s)) {
        rl_log(RL_LOG_INFO, "the coordinator %s (results at %s) is gone: the node is free", s->owner.key,
               *s->owner.endpoint ? s->owner.endpoint : "an unknown endpoint");
        s->owner.held = false;
        return false;
    }
    char since[32];
    struct tm tm;
    gmtime_r(&s->owner.since, &tm);
    strftime(since, sizeof since, "%Y-%m-%d %H:%M:%S UTC", &tm);
    snprintf(text, len,
             "this node serves another coordinator process (key %s, results at %s) since %s; it is free again "
             "when that one exits or has been unreachable for %d s",
             s->owner.key, *s->owner.endpoint ? s->owner.endpoint : "an unknown endpoint", since,
             WIRE_HEARTBEAT_TIMEOUT_MS / 1000);
    return true;
}

static void set_owner(node_server *s, const wire_msg *m, const Relais__Assign *a) {
    node_owner *o = &s->owner;
    if (!o->held || !same_owner(o, &a->cluster_id)) {
        o->held = true;
        o->since = time(NULL);
        o->id_len = a->cluster_id.len;
        if (o->id_len)
            memcpy(o->id, a->cluster_id.data, o->id_len);
        const uint8_t *key = wire_msg_peer_key(m);
        snprintf(o->key, sizeof o->key, "unknown");
        if (key)
            curve_fingerprint(key, o->key);
    }
    snprintf(o->endpoint, sizeof o->endpoint, "%s", a->coordinator_endpoint);
}

static void release(node_server *s, const wire_msg *m, const Relais__Release *r) {
    char err[256];
    Relais__ErrorCode code = wire_check_release(r, err, sizeof err);
    if (code) {
        refuse(s, m, code, err);
        return;
    }
    if (!s->owner.held || !same_owner(&s->owner, &r->cluster_id))
        return; /* not the holder's: another process's exit frees nothing here */
    rl_log(RL_LOG_INFO, "released by the coordinator %s: the node is free", s->owner.key);
    s->owner.held = false;
}

/* The previous hop may connect from now on; the stage it replaces is gone. */
static void take_assignment(node_server *s, const wire_msg *m, const Relais__Assign *a) {
    size_t len;
    const uint8_t *rid = wire_msg_routing_id(m, &len);
    memcpy(s->coord, rid, len);
    s->coord_len = len;
    set_owner(s, m, a);
    curve_zap_forget_role(s->zap, ROLE_NEIGHBOUR);
    if (curve_zap_allow(s->zap, a->prev_hop_public_key.data, ROLE_NEIGHBOUR))
        rl_log(RL_LOG_ERROR, "out of memory admitting the previous hop");
    char prev[CURVE_FP_LEN], next[CURVE_FP_LEN], w[64];
    curve_fingerprint(a->prev_hop_public_key.data, prev);
    curve_fingerprint(a->next_hop_public_key.data, next);
    rl_log(RL_LOG_INFO,
           "assignment from %s: %s layers %u-%u of %u%s, context %u, batch %u, %s wire; "
           "previous hop %s, next hop %s (%s)",
           who(m, w, sizeof w), *a->model_name ? a->model_name : "model", a->layer_begin, a->layer_end - 1, a->n_layer,
           a->run_head ? " and the head" : "", a->n_ctx, a->max_batch, wire_dtype_name(a->wire_dtype), prev,
           a->next_hop, next);
    send_progress(s, "map", 0, 0); /* the coordinator shows the node as loading */
}

/* Loads the slice at path as the assigned stage and says Ready, or tells
 * the coordinator why not. */
static void load_stage(node_server *s, const Relais__Assign *a, const char *path) {
    char err[512];
    Relais__ErrorCode code;
    node_stage_env env = {.zctx = s->zctx,
                          .keys = &s->keys,
                          .threads = s->threads,
                          .max_message = s->max_message,
                          .progress = on_progress,
                          .progress_ud = s};
    if (!(s->stage = node_stage_new(a, path, &env, &code, err, sizeof err))) {
        rl_log(RL_LOG_WARN, "assignment failed: %s: %s", wire_code_name(code), err);
        send_error(s, s->coord, s->coord_len, code, 0, 0, err);
        return;
    }
    rl_log(RL_LOG_INFO, "ready: %.1f MiB of weights, %.1f MiB of KV per session",
           node_stage_weight_bytes(s->stage) / 1048576.0, node_stage_kv_bytes(s->stage) / 1048576.0);
    send_ready(s);
}

/* ---- weight transfer (see node_weights.h) ---- */

static void drop_pending(node_server *s) {
    node_weights_stop(s->weights);
    free(s->pending);
    s->pending = NULL;
    s->pending_len = 0;
}

static void send_request(node_server *s, Relais__WeightRequest *r) {
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_WEIGHT_REQUEST;
    env.weight_request = r;
    reply(s, s->coord, s->coord_len, &env);
}

/* Asks the coordinator for the slice; the Assign waits, packed, until it is in. */
static void fetch_slice(node_server *s, const Relais__Assign *a) {
    char err[512];
    Relais__WeightRequest req;
    Relais__ErrorCode code = node_weights_begin(s->weights, a, &req, err, sizeof err);
    size_t n = relais__assign__get_packed_size(a);
    if (!code && !(s->pending = malloc(n ? n : 1))) {
        code = RELAIS__ERROR_CODE__ERR_MEMORY;
        snprintf(err, sizeof err, "out of memory");
    }
    if (code) {
        rl_log(RL_LOG_WARN, "assignment failed: %s: %s", wire_code_name(code), err);
        drop_pending(s);
        send_error(s, s->coord, s->coord_len, code, 0, 0, err);
        return;
    }
    s->pending_len = relais__assign__pack(a, s->pending);
    send_request(s, &req);
}

static void weight_chunk(node_server *s, const Relais__WeightChunk *c) {
    char err[512], path[4096];
    Relais__WeightRequest next;
    Relais__ErrorCode code;
    uint64_t done, total;
    node_weights_status st = node_weights_chunk(s->weights, c, &next, path, sizeof path, &code, err, sizeof err);
    node_weights_progress(s->weights, &done, &total);
    if (st == NODE_WEIGHTS_WAIT || st == NODE_WEIGHTS_MORE || st == NODE_WEIGHTS_DONE)
        progress(s, "receive", done, total);
    if (st == NODE_WEIGHTS_MORE)
        send_request(s, &next);
    if (st == NODE_WEIGHTS_FAILED) {
        rl_log(RL_LOG_WARN, "weight transfer failed: %s: %s", wire_code_name(code), err);
        drop_pending(s);
        send_error(s, s->coord, s->coord_len, code, 0, 0, err);
    }
    if (st != NODE_WEIGHTS_DONE)
        return;
    Relais__Assign *a = relais__assign__unpack(NULL, s->pending_len, s->pending);
    drop_pending(s);
    if (a)
        load_stage(s, a, path);
    else
        send_error(s, s->coord, s->coord_len, RELAIS__ERROR_CODE__ERR_MEMORY, 0, 0, "out of memory");
    relais__assign__free_unpacked(a, NULL);
}

static void assign(node_server *s, const wire_msg *m, const Relais__Assign *a) {
    char err[512], path[4096];
    Relais__ErrorCode code = wire_check_assign(a, err, sizeof err);
    if (code || held_by_another(s, a, err, sizeof err)) {
        refuse(s, m, code ? code : RELAIS__ERROR_CODE__ERR_STATE, err);
        return;
    }
    take_assignment(s, m, a);
    s->ready_pending = false; /* a new assignment starts over */
    drop_pending(s);
    if (s->stage && node_stage_matches(s->stage, a)) {
        node_stage_reset(s->stage);
        rl_log(RL_LOG_INFO, "the same assignment as before: slice kept, sessions dropped");
        if (!node_stage_link_up(s->stage) && (code = node_stage_relink(s->stage, err, sizeof err))) {
            node_stage_destroy(&s->stage);
            send_error(s, s->coord, s->coord_len, code, 0, 0, err);
            return;
        }
        send_ready(s);
        return;
    }
    node_stage_destroy(&s->stage);
    code = node_models_resolve(s->models, a->model_sha256.data, a->model_name, path, sizeof path, err, sizeof err);
    if (code) {
        send_error(s, s->coord, s->coord_len, code, 0, 0, err);
        return;
    }
    if (!*path && !node_weights_lookup(s->weights, a, path, sizeof path))
        fetch_slice(s, a); /* the stage is loaded when the slice is in */
    else
        load_stage(s, a, path);
}

/* ---- data path and sessions ---- */

static void forward(node_server *s, const wire_msg *m, const Relais__Forward *f, const node_arrival *in) {
    char err[512], w[64];
    if (!s->stage) {
        refuse(s, m, RELAIS__ERROR_CODE__ERR_STATE, "Forward before any assignment");
        return;
    }
    const uint8_t *key = wire_msg_peer_key(m);
    if (!key || memcmp(key, node_stage_prev_key(s->stage), CURVE_KEY_BYTES)) {
        refuse(s, m, RELAIS__ERROR_CODE__ERR_UNAUTHORIZED, "Forward from a peer that is not this stage's previous hop");
        return;
    }
    Relais__ErrorCode code = node_stage_forward(s->stage, f, in, err, sizeof err);
    if (!code)
        return;
    rl_log(RL_LOG_WARN, "Forward from %s (step %llu, %zu segments) failed: %s: %s", who(m, w, sizeof w),
           (unsigned long long)f->step_id, f->n_segments, wire_code_name(code), err);
    /* A coordinator hears of its own Forward; a neighbour's failure goes to
     * the coordinator of the assignment, which is waiting for that step. */
    size_t len;
    const uint8_t *rid = wire_msg_routing_id(m, &len);
    if (strcmp(wire_msg_user(m), ROLE_COORDINATOR))
        rid = s->coord, len = s->coord_len;
    send_error(s, rid, len, code, f->n_segments == 1 ? f->segments[0]->session_id : 0, f->step_id, err);
}

static void heartbeat(node_server *s, const wire_msg *m, const Relais__Heartbeat *h) {
    Relais__Heartbeat r = RELAIS__HEARTBEAT__INIT;
    r.seq = h->seq;
    r.unix_ms = now_ms();
    r.sessions = s->stage ? node_stage_sessions(s->stage) : 0;
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &r;
    reply_to(s, m, &env);
}

static void dispatch(node_server *s, const wire_msg *m, const node_arrival *in) {
    if (wire_msg_code(m)) {
        refuse(s, m, wire_msg_code(m), wire_msg_error(m));
        return;
    }
    const Relais__Envelope *e = wire_msg_env(m);
    if (e->body_case != RELAIS__ENVELOPE__BODY_FORWARD && strcmp(wire_msg_user(m), ROLE_COORDINATOR)) {
        char text[128];
        snprintf(text, sizeof text, "a neighbour may only send forward, not %s", wire_body_name(e->body_case));
        refuse(s, m, RELAIS__ERROR_CODE__ERR_UNAUTHORIZED, text);
        return;
    }
    switch (e->body_case) {
    case RELAIS__ENVELOPE__BODY_HELLO:
        hello(s, m, e->hello);
        break;
    case RELAIS__ENVELOPE__BODY_ASSIGN:
        assign(s, m, e->assign);
        break;
    case RELAIS__ENVELOPE__BODY_FORWARD:
        forward(s, m, e->forward, in);
        break;
    case RELAIS__ENVELOPE__BODY_HEARTBEAT:
        heartbeat(s, m, e->heartbeat);
        break;
    case RELAIS__ENVELOPE__BODY_WEIGHT_CHUNK:
        weight_chunk(s, e->weight_chunk);
        break;
    case RELAIS__ENVELOPE__BODY_RELEASE:
        release(s, m, e->release);
        break;
    default: {
        char text[128];
        snprintf(text, sizeof text, "a node does not take %s messages", wire_body_name(e->body_case));
        refuse(s, m, RELAIS__ERROR_CODE__ERR_STATE, text);
    }
    }
}

/* ---- events ---- */

/* Handshake failures on the listening socket: a plaintext peer never reaches
 * ZAP, so this is where it is seen: as a mechanism mismatch, or, when the
 * peer noticed first and hung up, as an abandoned handshake. (ZAP refusals
 * are logged by curve.c, with the key.) */
static void router_events(node_server *s) {
    uint16_t ev;
    uint32_t val;
    char ep[256];
    while (wire_monitor_read(s->mon, &ev, &val, ep, sizeof ep) == 0)
        if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
            rl_log(RL_LOG_WARN, "refused a connection on %s: %s", ep, wire_event_text(ev, val));
        else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            rl_log(RL_LOG_WARN,
                   "refused a connection on %s: the peer hung up during the handshake (a plaintext "
                   "peer, or one with another idea of this node's key?)",
                   ep);
}

/* The next-hop link: its first success completes a pending Ready; a failure
 * before that fails the assignment (the coordinator assigns the next hop
 * first, so a refusal is not a race but a wrong key or trust list). */
static void link_events(node_server *s) {
    node_link ev;
    while (s->stage && (ev = node_stage_link_event(s->stage)) != NODE_LINK_NONE) {
        if (ev == NODE_LINK_UP && s->ready_pending)
            send_ready(s);
        if (ev != NODE_LINK_FAILED)
            continue;
        rl_log(RL_LOG_WARN, "%s", node_stage_link_error(s->stage));
        if (!s->ready_pending)
            continue;
        send_error(s, s->coord, s->coord_len, RELAIS__ERROR_CODE__ERR_STATE, 0, 0, node_stage_link_error(s->stage));
        rl_log(RL_LOG_WARN, "assignment dropped");
        node_stage_destroy(&s->stage);
        s->ready_pending = false;
    }
}

/* The free memory a beacon announces, read again every BEACON_REFRESH_S. */
#define BEACON_REFRESH_S 10.0
static void refresh_beacon(node_server *s) {
    if (!s->beacon || rl_now_s() - s->announced_s < BEACON_REFRESH_S)
        return;
    char err[256];
    s->announced.free_ram = node_mem_available(NULL);
    s->announced_s = rl_now_s();
    if (beacon_announce_update(s->beacon, &s->announced, err, sizeof err))
        rl_log(RL_LOG_WARN, "%s", err);
}

int node_server_run(node_server *s, volatile sig_atomic_t *stop) {
    while (!*stop) {
        zmq_pollitem_t items[4] = {{curve_zap_socket(s->zap), 0, ZMQ_POLLIN, 0},
                                   {wire_monitor_socket(s->mon), 0, ZMQ_POLLIN, 0},
                                   {s->router, 0, ZMQ_POLLIN, 0},
                                   {s->stage ? node_stage_link_socket(s->stage) : NULL, 0, ZMQ_POLLIN, 0}};
        if (io_pin_poll(s->pin, items, s->stage ? 4 : 3, POLL_MS) < 0) {
            if (errno == EINTR)
                continue;
            rl_log(RL_LOG_ERROR, "poll: %s", zmq_strerror(errno));
            return -1;
        }
        node_arrival in = {rl_trace_on() ? rl_now_us() : 0, 0};
        refresh_beacon(s);
        while (items[0].revents && curve_zap_handle(s->zap)) /* first: connecting peers wait for it */
            ;
        if (items[1].revents)
            router_events(s);
        if (s->stage && items[3].revents)
            link_events(s);
        if (items[2].revents) {
            wire_msg *m = wire_msg_recv(s->router, true);
            in.read_us = rl_trace_on() ? rl_now_us() : 0;
            if (m)
                dispatch(s, m, &in);
            wire_msg_destroy(&m);
        }
    }
    rl_log(RL_LOG_INFO, "stopping");
    return 0;
}

/* ---- setup ---- */

static int setup_security(node_server *s, const node_config *cfg, char *err, size_t errlen) {
    if (curve_keys_load(cfg->key, true, &s->keys, err, errlen))
        return -1;
    if (!(s->zap = curve_zap_new(s->zctx,
                                 "not a trusted coordinator (--trust) nor the previous hop a coordinator "
                                 "introduced",
                                 err, errlen)))
        return -1;
    int n = curve_zap_allow_dir(s->zap, cfg->trust, ROLE_COORDINATOR, err, errlen);
    if (n < 0)
        return -1;
    if (n == 0)
        rl_log(RL_LOG_WARN, "no coordinator certificates (*.pub) in %s: every coordinator will be refused", cfg->trust);
    return 0;
}

static int bind_router(node_server *s, const node_config *cfg, char *err, size_t errlen) {
    char why[256];
    if (!(s->router = wire_socket(s->zctx, ZMQ_ROUTER, cfg->max_message, why, sizeof why)) ||
        curve_apply_server(s->router, &s->keys, why, sizeof why) ||
        !(s->mon = wire_monitor_new(s->zctx, s->router, "listen", why, sizeof why))) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (zmq_bind(s->router, cfg->listen)) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, zmq_strerror(errno));
        return -1;
    }
    size_t len = sizeof s->endpoint;
    zmq_getsockopt(s->router, ZMQ_LAST_ENDPOINT, s->endpoint, &len);
    return 0;
}

/* The name a beacon carries: --name, else the host name cut to what a
 * beacon takes (its first label, characters outside [A-Za-z0-9._-] as '-'). */
static int beacon_name(const node_config *cfg, char *out, size_t len, char *err, size_t errlen) {
    if (cfg->name) {
        if (!beacon_name_ok(cfg->name))
            return rl_errf(err, errlen, "--name '%s': 1 to %d of letters, digits, '.', '_' and '-'", cfg->name,
                           BEACON_NAME_MAX);
        snprintf(out, len, "%s", cfg->name);
        return 0;
    }
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) || !*host)
        snprintf(host, sizeof host, "node");
    host[BEACON_NAME_MAX] = '\0';
    for (char *p = host; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
            *p = '-';
    snprintf(out, len, "%s", host);
    return 0;
}

/* Starts the beacon (cfg->beacon_port): this node's port, key, name and
 * free memory, on the LAN every second. */
static int start_beacon(node_server *s, const node_config *cfg, char *err, size_t errlen) {
    beacon_info *b = &s->announced;
    const char *colon = strrchr(s->endpoint, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (port <= 0 || port > 65535)
        return rl_errf(err, errlen, "--beacon: the listen endpoint %s has no TCP port to announce", s->endpoint);
    b->protocol = (uint16_t)WIRE_VERSION;
    b->port = (uint16_t)port;
    memcpy(b->key, s->keys.public_key, CURVE_KEY_BYTES);
    b->free_ram = node_mem_available(NULL);
    s->announced_s = rl_now_s();
    if (beacon_name(cfg, b->name, sizeof b->name, err, errlen))
        return -1;
    if (!(s->beacon = beacon_announce_new(cfg->beacon_port, b, err, errlen)))
        return -1;
    rl_log(RL_LOG_INFO, "announcing '%s' (TCP port %ld) by beacon on UDP port %d", b->name, port, cfg->beacon_port);
    return 0;
}

node_server *node_server_new(const node_config *cfg, char *err, size_t errlen) {
    node_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->threads = cfg->threads;
    s->max_message = cfg->max_message;
    if (mkdir(cfg->cache, 0700) && errno != EEXIST) {
        snprintf(err, errlen, "cache directory %s: %s", cfg->cache, strerror(errno));
        goto fail;
    }
    if (!(s->zctx = zmq_ctx_new())) {
        snprintf(err, errlen, "cannot create a ZeroMQ context: %s", zmq_strerror(errno));
        goto fail;
    }
    if (!(s->pin = io_pin_new(s->zctx, cfg->io_cpu, err, errlen)))
        goto fail;
    if (setup_security(s, cfg, err, errlen) || !(s->models = node_models_new(cfg->models, cfg->cache, err, errlen)))
        goto fail;
    node_mem_set_limit(cfg->max_memory);
    if (!(s->caps = node_caps_new(cfg->cache, cfg->threads)) ||
        !(s->weights = node_weights_new(cfg->cache, cfg->chunk_bytes))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (bind_router(s, cfg, err, errlen) || (cfg->beacon_port && start_beacon(s, cfg, err, errlen)))
        goto fail;
    char fp[CURVE_FP_LEN];
    curve_fingerprint(s->keys.public_key, fp);
    char where[32] = "any CPU";
    if (io_pin_cpu(s->pin) != IO_PIN_NONE)
        snprintf(where, sizeof where, "CPU %d", io_pin_cpu(s->pin));
    rl_log(RL_LOG_INFO, "listening on %s, key %s, %zu model files, matvec %.2f GB/s, messages on %s", s->endpoint, fp,
           node_models_count(s->models), node_caps_matvec(s->caps) / 1e9, where);
    return s;
fail:
    node_server_destroy(&s);
    return NULL;
}

void node_server_destroy(node_server **ps) {
    node_server *s = ps ? *ps : NULL;
    if (!s)
        return;
    beacon_destroy(&s->beacon);
    node_stage_destroy(&s->stage);
    free(s->pending);
    node_weights_destroy(&s->weights);
    wire_monitor_destroy(&s->mon);
    if (s->router)
        zmq_close(s->router);
    curve_zap_destroy(&s->zap);
    node_models_destroy(&s->models);
    node_caps_destroy(&s->caps);
    if (s->zctx)
        zmq_ctx_term(s->zctx);
    io_pin_destroy(&s->pin);
    sodium_memzero(&s->keys, sizeof s->keys);
    free(s);
    *ps = NULL;
}
