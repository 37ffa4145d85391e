/* libFuzzer harness for the wire contract's receiving side (proto/wire.c):
 * the input is one frame sent over an in-process ZeroMQ pair and read back
 * through wire_msg_recv, the function both the node and the coordinator read
 * every message with (Envelope unpacking, version and body checks), then,
 * for a valid frame, the validators a node runs before acting on it:
 * wire_check_assign, wire_check_forward (and the activations decoded as the
 * node decodes them), wire_check_sampling. A hostile frame must be refused
 * with a code and a message, never crash or leak. Seeds: corpus/wire. */
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
    case RELAIS__ENVELOPE__BODY_FORWARD:
        if (wire_check_forward(env->forward, DIM, MAX_BATCH, err, sizeof err) == RELAIS__ERROR_CODE__ERR_NONE)
            wire_activations_decode(env->forward->activations.data, env->forward->n_tokens, DIM, env->forward->dtype,
                                    x);
        if (env->forward->sampling) {
            rl_sampler_params p = wire_sampling_to_params(env->forward->sampling);
            (void)p;
        }
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
