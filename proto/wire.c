/* Envelope framing over ZeroMQ, validation of decoded messages, activation
 * encoding and socket monitors (see wire.h). */
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#include "curve.h"
#include "fp16.h"
#include "util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the wire carries little-endian floats as they lie in memory; a big-endian port must byte-swap them"
#endif

#define HEARTBEAT_IVL_MS 2000
#define LINGER_MS 200
#define RECONNECT_IVL_MS 100
#define RECONNECT_IVL_MAX_MS 1000 /* back off, so a refused peer is not retried ten times a second */
#define MAX_ENDPOINT 255

struct wire_msg {
    Relais__Envelope *env;            /* unpacked body; NULL when refused */
    Relais__ErrorCode code;           /* ERR_NONE or why the frame is refused */
    char error[256];                  /* the refusal in words */
    uint8_t rid[WIRE_ROUTING_ID_MAX]; /* sender's routing id (ROUTER only) */
    size_t rid_len;
    char user[64];                    /* ZAP User-Id of the connection */
    uint8_t peer_key[WIRE_KEY_BYTES]; /* from our ZAP handler's metadata */
    bool has_peer_key;
};

void *wire_socket(void *zctx, int type, int64_t max_msg, char *err, size_t errlen) {
    void *s = zmq_socket(zctx, type);
    if (!s) {
        rl_errf(err, errlen, "cannot create a socket: %s", zmq_strerror(errno));
        return NULL;
    }
    int linger = LINGER_MS, sndtimeo = WIRE_SEND_TIMEOUT_MS, ivl = HEARTBEAT_IVL_MS, hb_to = WIRE_HEARTBEAT_TIMEOUT_MS;
    int one = 1, rc_ivl = RECONNECT_IVL_MS, rc_max = RECONNECT_IVL_MAX_MS;
    int rc = zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg) |
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) |
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &rc_ivl, sizeof rc_ivl) |
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &rc_max, sizeof rc_max) |
        zmq_setsockopt(s, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo) |
        zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl) |
        zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &hb_to, sizeof hb_to);
    if (type == ZMQ_ROUTER)
        rc |= zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (rc) {
        rl_errf(err, errlen, "cannot set socket options: %s", zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* Longest encodings, for the bounds: a field's key (tag: one byte up to
 * field 15, two for Sampling.allowed) and a length prefix, a varint (a
 * negative int32 takes ten bytes), a fixed 32-bit. */
#define KEY 1
#define LEN 5
#define VARINT 10
#define FIXED 4
#define SUBMSG (KEY + LEN)

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

/* Bytes of an id of the vocabulary (a varint below n_vocab), at most. */
static int64_t id_bytes(const wire_bounds *b) {
    int64_t n = 1;
    for (uint64_t v = b->n_vocab > 0 ? b->n_vocab - 1 : 0; v >= 128; v >>= 7)
        n++;
    return n;
}

/* A Sampling with every scalar set, n_history ids and a full mask. */
static int64_t sampling_max(const wire_bounds *b) {
    const int64_t scalars = 7 * (KEY + FIXED) + 5 * (KEY + VARINT); /* 7 floats; seed, top_logits, stream, ... */
    return SUBMSG + scalars + SUBMSG + (int64_t)b->n_ctx * id_bytes(b) + 1 + SUBMSG + ((int64_t)b->n_vocab + 7) / 8;
}

int64_t wire_forward_max(const wire_bounds *b) {
    const int64_t sampling = min_u32(b->max_batch, b->max_sessions);
    const int64_t segment = SUBMSG + 4 * (KEY + VARINT) + 4 * (KEY + 1); /* ids and counts; four bools */
    const int64_t draft = SUBMSG + KEY + VARINT + SUBMSG + RL_Q_MAX * id_bytes(b) + SUBMSG + RL_Q_MAX * FIXED;
    return SUBMSG + 3 * (KEY + VARINT) /* the envelope's forward, version; dtype, step_id */
        + SUBMSG + (int64_t)wire_activations_max(b->max_batch, b->dim) + (int64_t)b->max_batch * segment +
        sampling * sampling_max(b) + (int64_t)b->max_batch * draft + SUBMSG + (int64_t)b->max_sessions * VARINT +
        SUBMSG + WIRE_MAX_STAGES * FIXED;
}

int64_t wire_result_max(const wire_bounds *b) {
    const int64_t results = min_u32(b->max_batch, b->max_sessions);
    const int64_t result = SUBMSG + 3 * (KEY + VARINT) + 2 * (KEY + FIXED) + SUBMSG; /* ids' prefix */
    const int64_t top = SUBMSG + KEY + VARINT + KEY + FIXED;
    return SUBMSG + 2 * (KEY + VARINT) + results * result + (int64_t)b->max_batch * id_bytes(b) + WIRE_MAX_TOP * top +
        SUBMSG + WIRE_MAX_STAGES * FIXED;
}

/* ---- receiving ---- */

static void refuse(wire_msg *m, Relais__ErrorCode code, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void refuse(wire_msg *m, Relais__ErrorCode code, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(m->error, sizeof m->error, f, ap);
    va_end(ap);
    m->code = code;
    if (m->env)
        relais__envelope__free_unpacked(m->env, NULL);
    m->env = NULL;
}

/* The connection's properties, which libzmq attaches to every frame. */
static void read_properties(wire_msg *m, zmq_msg_t *frame) {
    const char *user = zmq_msg_gets(frame, "User-Id");
    if (user)
        snprintf(m->user, sizeof m->user, "%s", user);
    const char *key = zmq_msg_gets(frame, CURVE_ZAP_KEY_PROPERTY);
    if (key && strlen(key) == 40 && zmq_z85_decode(m->peer_key, key))
        m->has_peer_key = true;
}

static void unpack(wire_msg *m, const zmq_msg_t *frame) {
    size_t n = zmq_msg_size(frame);
    m->env = relais__envelope__unpack(NULL, n, zmq_msg_data((zmq_msg_t *)frame));
    if (!m->env)
        refuse(m, RELAIS__ERROR_CODE__ERR_MALFORMED, "a frame of %zu bytes that is not a relais Envelope", n);
    else if (m->env->version != WIRE_VERSION)
        refuse(m, RELAIS__ERROR_CODE__ERR_VERSION, "protocol version %u, this side speaks version %u", m->env->version,
               WIRE_VERSION);
    else if (m->env->body_case == RELAIS__ENVELOPE__BODY__NOT_SET)
        refuse(m, RELAIS__ERROR_CODE__ERR_MALFORMED, "an Envelope without a (known) body");
}

wire_msg *wire_msg_recv(void *sock, bool routed) {
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (zmq_msg_recv(&frame, sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&frame);
        errno = e;
        return NULL;
    }
    wire_msg *m = calloc(1, sizeof *m);
    if (!m) { /* drain the rest of the message so the socket stays usable */
        while (zmq_msg_more(&frame) && zmq_msg_recv(&frame, sock, 0) >= 0)
            ;
        zmq_msg_close(&frame);
        errno = ENOMEM;
        return NULL;
    }
    int parts = 1;
    if (routed) {
        m->rid_len = zmq_msg_size(&frame) < WIRE_ROUTING_ID_MAX ? zmq_msg_size(&frame) : WIRE_ROUTING_ID_MAX;
        memcpy(m->rid, zmq_msg_data(&frame), m->rid_len);
        if (zmq_msg_more(&frame) && zmq_msg_recv(&frame, sock, 0) >= 0)
            parts++;
    }
    read_properties(m, &frame);
    if (routed && parts < 2)
        refuse(m, RELAIS__ERROR_CODE__ERR_MALFORMED, "a message without a body frame");
    else
        unpack(m, &frame);
    while (zmq_msg_more(&frame) && zmq_msg_recv(&frame, sock, 0) >= 0)
        parts++;
    if (m->code == RELAIS__ERROR_CODE__ERR_NONE && parts > (routed ? 2 : 1))
        refuse(m, RELAIS__ERROR_CODE__ERR_MALFORMED, "%d frames where one Envelope frame was expected",
               parts - (routed ? 1 : 0));
    zmq_msg_close(&frame);
    return m;
}

void wire_msg_destroy(wire_msg **pm) {
    wire_msg *m = pm ? *pm : NULL;
    if (!m)
        return;
    if (m->env)
        relais__envelope__free_unpacked(m->env, NULL);
    free(m);
    *pm = NULL;
}

const Relais__Envelope *wire_msg_env(const wire_msg *m) { return m->env; }
Relais__ErrorCode wire_msg_code(const wire_msg *m) { return m->code; }
const char *wire_msg_error(const wire_msg *m) { return m->error; }
const char *wire_msg_user(const wire_msg *m) { return m->user; }
const uint8_t *wire_msg_peer_key(const wire_msg *m) { return m->has_peer_key ? m->peer_key : NULL; }

const uint8_t *wire_msg_routing_id(const wire_msg *m, size_t *len) {
    *len = m->rid_len;
    return m->rid;
}

/* ---- sending ---- */

static const char *send_error_text(int e) {
    if (e == EAGAIN)
        return "the peer is not taking messages (send timed out)";
    if (e == EHOSTUNREACH)
        return "the peer is no longer connected";
    return zmq_strerror(e);
}

int wire_send(void *sock, const uint8_t *rid, size_t rid_len, Relais__Envelope *env, char *err, size_t errlen) {
    env->version = WIRE_VERSION;
    size_t n = relais__envelope__get_packed_size(env);
    zmq_msg_t frame;
    if (zmq_msg_init_size(&frame, n)) {
        rl_errf(err, errlen, "cannot allocate a message of %zu bytes", n);
        return -1;
    }
    relais__envelope__pack(env, zmq_msg_data(&frame));
    if ((rid_len && zmq_send(sock, rid, rid_len, ZMQ_SNDMORE) < 0) || zmq_msg_send(&frame, sock, 0) < 0) {
        rl_errf(err, errlen, "cannot send %s: %s", wire_body_name(env->body_case), send_error_text(errno));
        zmq_msg_close(&frame);
        return -1;
    }
    return 0;
}

int wire_send_error(void *sock, const uint8_t *rid, size_t rid_len, Relais__ErrorCode code, uint64_t session_id,
                    uint64_t step_id, const char *message, char *err, size_t errlen) {
    Relais__Error e = RELAIS__ERROR__INIT;
    e.code = code;
    e.message = (char *)message;
    e.session_id = session_id;
    e.step_id = step_id;
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_ERROR;
    env.error = &e;
    return wire_send(sock, rid, rid_len, &env, err, errlen);
}

const char *wire_code_name(int code) {
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&relais__error_code__descriptor, code);
    return v ? v->name : "ERR_?";
}

const char *wire_body_name(int body_case) {
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&relais__envelope__descriptor, (unsigned)body_case);
    return f && body_case >= RELAIS__ENVELOPE__BODY_HELLO ? f->name : "unknown message";
}

/* ---- validation ---- */

static Relais__ErrorCode bad(char *err, size_t errlen, const char *f, ...) __attribute__((format(printf, 3, 4)));
static Relais__ErrorCode bad(char *err, size_t errlen, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(err, errlen, f, ap);
    va_end(ap);
    return RELAIS__ERROR_CODE__ERR_MALFORMED;
}

Relais__ErrorCode wire_check_key(const ProtobufCBinaryData *k, const char *what, char *err, size_t errlen) {
    if (k->len != WIRE_KEY_BYTES)
        return bad(err, errlen, "%s has %zu bytes, not %d", what, k->len, WIRE_KEY_BYTES);
    return RELAIS__ERROR_CODE__ERR_NONE;
}

Relais__ErrorCode wire_check_assign(const Relais__Assign *a, char *err, size_t errlen) {
    Relais__ErrorCode c;
    if ((c = wire_check_key(&a->model_sha256, "model_sha256", err, errlen)) ||
        (c = wire_check_key(&a->next_hop_public_key, "next_hop_public_key", err, errlen)) ||
        (c = wire_check_key(&a->prev_hop_public_key, "prev_hop_public_key", err, errlen)))
        return c;
    if (a->n_layer == 0 || a->layer_begin >= a->layer_end || a->layer_end > a->n_layer)
        return bad(err, errlen, "layer range [%u, %u) is not a non-empty part of %u layers", a->layer_begin,
                   a->layer_end, a->n_layer);
    if (a->n_ctx == 0 || a->max_sessions == 0 || a->max_batch == 0 || a->max_batch > WIRE_MAX_BATCH)
        return bad(err, errlen, "n_ctx %u, max_sessions %u, max_batch %u: each must be at least 1 (batch at most %d)",
                   a->n_ctx, a->max_sessions, a->max_batch, WIRE_MAX_BATCH);
    if (a->threads > 4096 || a->swa_window < -1 || !wire_dtype_name(a->wire_dtype))
        return bad(err, errlen, "threads %u, swa_window %lld or wire dtype %d out of range", a->threads,
                   (long long)a->swa_window, (int)a->wire_dtype);
    size_t hop = strlen(a->next_hop);
    if (hop == 0 || hop > MAX_ENDPOINT || !strstr(a->next_hop, "://"))
        return bad(err, errlen, "next_hop '%.64s' is not a ZeroMQ endpoint", a->next_hop);
    if (strlen(a->swa_pattern) > 4096 || strlen(a->model_name) > 4096)
        return bad(err, errlen, "swa_pattern or model_name too long");
    if (a->cluster_id.len > WIRE_CLUSTER_ID_MAX || strlen(a->coordinator_endpoint) > MAX_ENDPOINT)
        return bad(err, errlen, "cluster_id of %zu bytes (at most %d) or coordinator_endpoint too long",
                   a->cluster_id.len, WIRE_CLUSTER_ID_MAX);
    return RELAIS__ERROR_CODE__ERR_NONE;
}

Relais__ErrorCode wire_check_release(const Relais__Release *r, char *err, size_t errlen) {
    if (r->cluster_id.len > WIRE_CLUSTER_ID_MAX)
        return bad(err, errlen, "cluster_id of %zu bytes, at most %d", r->cluster_id.len, WIRE_CLUSTER_ID_MAX);
    return RELAIS__ERROR_CODE__ERR_NONE;
}

/* A sampled draft's distribution at position i: 1 to RL_Q_MAX distinct ids
 * of the vocabulary with finite probabilities > 0 summing to 1 (within
 * float rounding), its token among them. */
static Relais__ErrorCode check_draft_dist(const Relais__DraftDist *d, size_t i, uint32_t n_vocab, char *err,
                                          size_t errlen) {
    if (d->n_ids == 0 || d->n_ids > RL_Q_MAX || d->n_probs != d->n_ids)
        return bad(err, errlen, "draft distribution %zu: %zu ids and %zu probabilities (1 to %d of each)", i, d->n_ids,
                   d->n_probs, RL_Q_MAX);
    double sum = 0;
    bool has_token = false;
    for (size_t j = 0; j < d->n_ids; j++) {
        if (d->ids[j] < 0 || (uint32_t)d->ids[j] >= n_vocab || !isfinite(d->probs[j]) || !(d->probs[j] > 0))
            return bad(err, errlen, "draft distribution %zu: id %d with probability %g (ids below %u, above 0)", i,
                       d->ids[j], d->probs[j], n_vocab);
        for (size_t k = 0; k < j; k++)
            if (d->ids[k] == d->ids[j])
                return bad(err, errlen, "draft distribution %zu: id %d twice", i, d->ids[j]);
        sum += d->probs[j];
        has_token |= d->ids[j] == d->token;
    }
    if (fabs(sum - 1.0) > 1e-3 || !has_token)
        return bad(err, errlen, "draft distribution %zu: probabilities summing to %g, token %d %s", i, sum, d->token,
                   has_token ? "among its ids" : "not among its ids");
    return RELAIS__ERROR_CODE__ERR_NONE;
}

Relais__ErrorCode wire_check_sampling(const Relais__Sampling *s, uint32_t n_vocab, uint32_t n_ctx, char *err,
                                      size_t errlen) {
    const float vals[] = {s->temperature,       s->top_p,           s->min_p, s->repeat_penalty,
                          s->frequency_penalty, s->presence_penalty};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        if (!isfinite(vals[i]))
            return bad(err, errlen, "sampling parameter %zu is not a finite number", i + 1);
    if (s->temperature < 0 || s->top_k < 0 || s->top_p < 0 || s->top_p > 1 || s->min_p < 0 || s->min_p > 1 ||
        s->repeat_penalty < 0)
        return bad(err, errlen,
                   "sampling parameters out of range (temperature %g, top_k %d, top_p %g, min_p %g, "
                   "repeat_penalty %g)",
                   s->temperature, s->top_k, s->top_p, s->min_p, s->repeat_penalty);
    if (s->top_logits > WIRE_MAX_TOP)
        return bad(err, errlen, "%u top logits asked, at most %d", s->top_logits, WIRE_MAX_TOP);
    if (s->n_history > n_ctx)
        return bad(err, errlen, "a sampling history of %zu ids, more than the context of %u", s->n_history, n_ctx);
    for (size_t i = 0; i < s->n_history; i++)
        if (s->history[i] < 0)
            return bad(err, errlen, "negative id %d in the sampling history", s->history[i]);
    for (size_t i = 0; i < s->n_draft; i++) {
        Relais__ErrorCode code = check_draft_dist(s->draft[i], i, n_vocab, err, errlen);
        if (code)
            return code;
    }
    if (s->allowed.len && s->allowed.len != ((size_t)n_vocab + 7) / 8)
        return bad(err, errlen, "allowed-ids mask of %zu bytes, the vocabulary of %u ids needs %zu", s->allowed.len,
                   n_vocab, ((size_t)n_vocab + 7) / 8);
    return RELAIS__ERROR_CODE__ERR_NONE;
}

Relais__ErrorCode wire_check_segment(const Relais__Segment *g, char *err, size_t errlen) {
    if (g->sampling && !g->sample) /* wire_forward_max counts a Sampling only where one is sampled */
        return bad(err, errlen, "session %llu carries a Sampling but does not sample",
                   (unsigned long long)g->session_id);
    if (g->verify && !g->sample)
        return bad(err, errlen, "session %llu verifies a draft but does not sample", (unsigned long long)g->session_id);
    const size_t n_draft = g->sampling ? g->sampling->n_draft : 0;
    if (n_draft && (!g->verify || n_draft + 1 != g->n_tokens))
        return bad(err, errlen, "session %llu: %zu draft distributions for %s of %u tokens",
                   (unsigned long long)g->session_id, n_draft, g->verify ? "a verifying segment" : "a segment",
                   g->n_tokens);
    return RELAIS__ERROR_CODE__ERR_NONE;
}

/* ---- activations ---- */

static const char *const DTYPE_NAMES[] = {
    [RELAIS__DTYPE__DTYPE_F32] = "f32", [RELAIS__DTYPE__DTYPE_F16] = "f16", [RELAIS__DTYPE__DTYPE_I16] = "i16"};
#define N_DTYPES (sizeof DTYPE_NAMES / sizeof DTYPE_NAMES[0])

const char *wire_dtype_name(int dtype) { return dtype >= 0 && (size_t)dtype < N_DTYPES ? DTYPE_NAMES[dtype] : NULL; }

int wire_dtype_from_name(const char *name) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (!strcmp(name, DTYPE_NAMES[i]))
            return (int)i;
    return -1;
}

size_t wire_activations_bytes(int dtype, size_t rows, size_t dim) {
    switch (dtype) {
    case RELAIS__DTYPE__DTYPE_F32:
        return rows * dim * sizeof(float);
    case RELAIS__DTYPE__DTYPE_F16:
        return rows * dim * sizeof(rl_fp16);
    case RELAIS__DTYPE__DTYPE_I16: {
        const size_t blocks = (dim + WIRE_I16_BLOCK - 1) / WIRE_I16_BLOCK;
        return rows * (blocks * sizeof(float) + dim * sizeof(int16_t));
    }
    default:
        return 0;
    }
}

size_t wire_activations_max(size_t rows, size_t dim) {
    size_t most = 0;
    for (size_t i = 0; i < N_DTYPES; i++) {
        const size_t b = wire_activations_bytes((int)i, rows, dim);
        most = b > most ? b : most;
    }
    return most;
}

/* One DTYPE_I16 block of n values: its scale, then the values in units of
 * it, rounded to nearest (even on a tie). The quotient is taken in double so
 * the rounding is that of the exact x / scale. */
static uint8_t *i16_encode_block(const float *x, size_t n, uint8_t *out) {
    float amax = 0;
    bool finite = true;
    for (size_t i = 0; i < n; i++) {
        finite = finite && isfinite(x[i]);
        amax = fmaxf(amax, fabsf(x[i]));
    }
    const float scale = finite ? amax / 32767.0f : NAN;
    memcpy(out, &scale, sizeof scale);
    out += sizeof scale;
    for (size_t i = 0; i < n; i++) {
        /* scale 0: all zeros, or values so small that max/32767 underflowed */
        double q = finite && scale > 0 ? nearbyint((double)x[i] / scale) : 0;
        q = q > 32767 ? 32767 : q < -32767 ? -32767 : q; /* a subnormal scale lost bits */
        const int16_t v = (int16_t)q;
        memcpy(out + 2 * i, &v, sizeof v);
    }
    return out + 2 * n;
}

static const uint8_t *i16_decode_block(const uint8_t *in, size_t n, float *x) {
    float scale;
    memcpy(&scale, in, sizeof scale);
    in += sizeof scale;
    for (size_t i = 0; i < n; i++) {
        int16_t v;
        memcpy(&v, in + 2 * i, sizeof v);
        x[i] = (float)v * scale;
    }
    return in + 2 * n;
}

void wire_activations_encode(const float *x, size_t rows, size_t dim, Relais__DType dtype, uint8_t *out) {
    const size_t n = rows * dim;
    switch (dtype) {
    case RELAIS__DTYPE__DTYPE_F32:
        memcpy(out, x, n * sizeof(float));
        return;
    case RELAIS__DTYPE__DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            const rl_fp16 h = rl_f32_to_fp16(x[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        return;
    case RELAIS__DTYPE__DTYPE_I16:
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < dim; j += WIRE_I16_BLOCK)
                out = i16_encode_block(x + r * dim + j, dim - j < WIRE_I16_BLOCK ? dim - j : WIRE_I16_BLOCK, out);
        return;
    default:
        assert(!"wire dtype outside the enum");
    }
}

void wire_activations_decode(const uint8_t *in, size_t rows, size_t dim, Relais__DType dtype, float *x) {
    const size_t n = rows * dim;
    switch (dtype) {
    case RELAIS__DTYPE__DTYPE_F32:
        memcpy(x, in, n * sizeof(float)); /* protobuf bytes need not be aligned for floats */
        return;
    case RELAIS__DTYPE__DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            rl_fp16 h;
            memcpy(&h, in + 2 * i, 2);
            x[i] = rl_fp16_to_f32(h);
        }
        return;
    case RELAIS__DTYPE__DTYPE_I16:
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < dim; j += WIRE_I16_BLOCK)
                in = i16_decode_block(in, dim - j < WIRE_I16_BLOCK ? dim - j : WIRE_I16_BLOCK, x + r * dim + j);
        return;
    default:
        assert(!"wire dtype outside the enum");
    }
}

/* ---- sampling ---- */

void wire_sampling_from_params(const rl_sampler_params *p, Relais__Sampling *out) {
    out->temperature = p->temperature;
    out->top_k = p->top_k;
    out->top_p = p->top_p;
    out->min_p = p->min_p;
    out->repeat_penalty = p->repeat_penalty;
    out->frequency_penalty = p->frequency_penalty;
    out->presence_penalty = p->presence_penalty;
    out->seed = p->seed;
}

rl_sampler_params wire_sampling_to_params(const Relais__Sampling *s) {
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = s->temperature;
    p.top_k = s->top_k;
    p.top_p = s->top_p;
    p.min_p = s->min_p;
    p.repeat_penalty = s->repeat_penalty;
    p.repeat_last_n = -1; /* the history sent is the window */
    p.frequency_penalty = s->frequency_penalty;
    p.presence_penalty = s->presence_penalty;
    p.seed = s->seed;
    return p;
}

size_t wire_history_window(const rl_sampler_params *p, size_t n) {
    if (p->repeat_last_n < 0)
        return n;
    return (size_t)p->repeat_last_n < n ? (size_t)p->repeat_last_n : n;
}

/* ---- monitors ---- */

struct wire_monitor {
    void *watched; /* the monitored socket (not owned) */
    void *pair;    /* our end of the monitor's inproc pipe */
};

wire_monitor *wire_monitor_new(void *zctx, void *sock, const char *name, char *err, size_t errlen) {
    char ep[128];
    snprintf(ep, sizeof ep, "inproc://relais-monitor-%s-%p", name, sock);
    wire_monitor *m = calloc(1, sizeof *m);
    if (!m || zmq_socket_monitor(sock, ep, ZMQ_EVENT_ALL) || !(m->pair = zmq_socket(zctx, ZMQ_PAIR)) ||
        zmq_connect(m->pair, ep)) {
        rl_errf(err, errlen, "cannot monitor the %s socket: %s", name, m ? zmq_strerror(errno) : "out of memory");
        if (m && m->pair)
            zmq_close(m->pair);
        if (m)
            zmq_socket_monitor(sock, NULL, 0);
        free(m);
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(m->pair, ZMQ_LINGER, &linger, sizeof linger);
    m->watched = sock;
    return m;
}

void wire_monitor_destroy(wire_monitor **pm) {
    wire_monitor *m = pm ? *pm : NULL;
    if (!m)
        return;
    zmq_socket_monitor(m->watched, NULL, 0);
    zmq_close(m->pair);
    free(m);
    *pm = NULL;
}

void *wire_monitor_socket(wire_monitor *m) { return m->pair; }

int wire_monitor_read(wire_monitor *m, uint16_t *event, uint32_t *value, char *endpoint, size_t len) {
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, m->pair, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f);
        return -1;
    }
    int ok = zmq_msg_size(&f) == 6 && zmq_msg_more(&f);
    if (ok) {
        memcpy(event, zmq_msg_data(&f), 2);
        memcpy(value, (uint8_t *)zmq_msg_data(&f) + 2, 4);
    }
    endpoint[0] = '\0';
    if (zmq_msg_more(&f) && zmq_msg_recv(&f, m->pair, 0) >= 0) {
        size_t n = zmq_msg_size(&f) < len - 1 ? zmq_msg_size(&f) : len - 1;
        memcpy(endpoint, zmq_msg_data(&f), n);
        endpoint[n] = '\0';
    }
    while (zmq_msg_more(&f) && zmq_msg_recv(&f, m->pair, 0) >= 0)
        ;
    zmq_msg_close(&f);
    return ok ? 0 : -1;
}

const char *wire_event_text(uint16_t event, uint32_t value) {
    switch (event) {
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            return "security mechanism mismatch (a plaintext peer, or one without our CURVE settings)";
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
            return "CURVE handshake failed (wrong server key, or garbage from the peer)";
        return "handshake protocol error";
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        return "authentication refused by the peer";
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        return "handshake failed";
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        return "handshake succeeded";
    case ZMQ_EVENT_CONNECTED:
        return "connected";
    case ZMQ_EVENT_ACCEPTED:
        return "accepted";
    case ZMQ_EVENT_DISCONNECTED:
        return "disconnected";
    case ZMQ_EVENT_CLOSED:
        return "closed";
    default:
        return "socket event";
    }
}
