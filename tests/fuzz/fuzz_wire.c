/* libFuzzer harness for the wire contract's receiving side (proto/wire.c):
 * the input is one frame sent over an in-process ZeroMQ pair and read back
 * through wire_msg_recv, the function both the node and the coordinator read
 * every message with (Envelope unpacking, version and body checks), then,
 * for a valid frame, the wire-level checks a node runs before acting on it:
 * wire_check_assign, wire_check_release; for a Forward (protocol 2: a micro-batch of segments)
 * wire_check_sampling on each segment's sampling and the activations decoded
 * as the node decodes them when their size matches the segments' rows. What
 * depends on the node's sessions (node_stage.c) is not reached from here. A
 * hostile frame must be refused with a code and a message, never crash or
 * leak. Seeds: corpus/wire. */
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#include "relais.pb-c.h"
#include "wire.h"

#define DIM 64
#define MAX_BATCH 8

static void *g_ctx, *g_tx, *g_rx;

static void pair_init(void) {
    if (g_ctx)
        return;
    g_ctx = zmq_ctx_new();
    g_rx = zmq_socket(g_ctx, ZMQ_PAIR);
    g_tx = zmq_socket(g_ctx, ZMQ_PAIR);
    if (!g_ctx || !g_rx || !g_tx || zmq_bind(g_rx, "inproc://fuzz-wire") || zmq_connect(g_tx, "inproc://fuzz-wire"))
        abort();
}

static void check_body(const Relais__Envelope *env) {
    char err[512];
    static float x[MAX_BATCH * DIM];
    switch (env->body_case) {
    case RELAIS__ENVELOPE__BODY_ASSIGN:
        (void)wire_check_assign(env->assign, err, sizeof err);
        break;
    case RELAIS__ENVELOPE__BODY_FORWARD: {
        const Relais__Forward *f = env->forward;
        uint64_t rows = 0;
        for (size_t i = 0; i < f->n_segments; i++) {
            rows += f->segments[i]->n_tokens;
            if (f->segments[i]->sampling &&
                wire_check_sampling(f->segments[i]->sampling, 32000, 4096, err, sizeof err) ==
                    RELAIS__ERROR_CODE__ERR_NONE) {
                rl_sampler_params p = wire_sampling_to_params(f->segments[i]->sampling);
                (void)p;
            }
        }
        /* as the node: a dtype outside the enum has no size (0) and is refused before decoding */
        const size_t want = rows > 0 && rows <= MAX_BATCH ? wire_activations_bytes(f->dtype, rows, DIM) : 0;
        if (want && f->activations.len == want)
            wire_activations_decode(f->activations.data, rows, DIM, f->dtype, x);
        break;
    }
    case RELAIS__ENVELOPE__BODY_RELEASE:
        (void)wire_check_release(env->release, err, sizeof err);
        break;
    case RELAIS__ENVELOPE__BODY_WEIGHT_CHUNK:
    default:
        (void)wire_body_name(env->body_case);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pair_init();
    if (zmq_send(g_tx, data, size, 0) != (int)size)
        abort();
    wire_msg *m = wire_msg_recv(g_rx, false);
    if (!m)
        abort(); /* a frame was sent: there is something to read */
    const Relais__Envelope *env = wire_msg_env(m);
    if ((wire_msg_code(m) == RELAIS__ERROR_CODE__ERR_NONE) != (env != NULL))
        abort(); /* an envelope exactly when the frame was accepted */
    if (env)
        check_body(env);
    else if (!*wire_msg_error(m))
        abort(); /* a refusal always says why */
    wire_msg_destroy(&m);
    return 0;
}
