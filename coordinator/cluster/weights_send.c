/* The coordinator's side of a weight transfer (see weights_send.h). */
#include "weights_send.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "util.h"
#include "weights_slice.h"
#include "wire.h"

typedef struct {
    weights_slice *slice; /* laid out on the node's first request */
    uint32_t l0, l1;      /* what the slice was laid out for */
    bool head;
    uint64_t sent; /* bytes sent to this node */
    double t0;     /* when its transfer (or resume) began */
} node_transfer;

struct weights_send {
    char *model_path;
    uint8_t sha256[32];
    uint32_t n;
    node_transfer *nodes; /* (n) */
    uint8_t *buf;         /* (buf_len) one chunk, as large as the largest asked for */
    size_t buf_len;
    uint64_t sent; /* to all nodes */
};

weights_send *weights_send_new(const char *model_path, const uint8_t sha256[32], uint32_t n_nodes) {
    weights_send *w = calloc(1, sizeof *w);
    if (!w || !(w->model_path = strdup(model_path)) || !(w->nodes = calloc(n_nodes, sizeof *w->nodes))) {
        weights_send_destroy(&w);
        return NULL;
    }
    memcpy(w->sha256, sha256, 32);
    w->n = n_nodes;
    return w;
}

void weights_send_destroy(weights_send **pw) {
    weights_send *w = pw ? *pw : NULL;
    if (!w)
        return;
    for (uint32_t i = 0; w->nodes && i < w->n; i++)
        weights_slice_destroy(&w->nodes[i].slice);
    free(w->nodes), free(w->model_path), free(w->buf);
    free(w);
    *pw = NULL;
}

uint64_t weights_send_bytes(const weights_send *w) { return w->sent; }

/* The request against the assignment: the same model and slice, a sane
 * window. 0, or -1 with err. */
static int check_request(const Relais__WeightRequest *r, const uint8_t sha[32], uint32_t l0, uint32_t l1, bool head,
                         uint32_t *chunk, uint32_t *chunks, char *err, size_t errlen) {
    *chunk = r->chunk_bytes ? r->chunk_bytes : WEIGHTS_DEFAULT_CHUNK;
    *chunks = r->chunks ? r->chunks : WEIGHTS_DEFAULT_WINDOW;
    if (r->model_sha256.len != 32 || memcmp(r->model_sha256.data, sha, 32))
        snprintf(err, errlen, "asked for the weights of another model");
    else if (r->layer_begin != l0 || r->layer_end != l1 || r->head != head)
        snprintf(err, errlen, "asked for layers [%u, %u)%s, assigned [%u, %u)%s", r->layer_begin, r->layer_end,
                 r->head ? " and the head" : "", l0, l1, head ? " and the head" : "");
    else if (*chunk < WEIGHTS_MIN_CHUNK || *chunk > WEIGHTS_MAX_CHUNK ||
             (uint64_t)*chunk * *chunks > WEIGHTS_MAX_WINDOW_BYTES)
        snprintf(err, errlen, "asked for %u chunks of %u bytes (chunks of %u to %u bytes, at most %u MiB a window)",
                 *chunks, *chunk, WEIGHTS_MIN_CHUNK, WEIGHTS_MAX_CHUNK, WEIGHTS_MAX_WINDOW_BYTES >> 20);
    else
        return 0;
    return -1;
}

/* The node's slice, laid out once per assignment. NULL with err. */
static weights_slice *slice_for(weights_send *w, node_transfer *t, uint32_t l0, uint32_t l1, bool head, char *err,
                                size_t errlen) {
    if (t->slice && (t->l0 != l0 || t->l1 != l1 || t->head != head))
        weights_slice_destroy(&t->slice);
    if (!t->slice && (t->slice = weights_slice_new(w->model_path, l0, l1, head, err, errlen)))
        t->l0 = l0, t->l1 = l1, t->head = head;
    return t->slice;
}

static int send_chunk(weights_send *w, node_transfer *t, void *sock, uint64_t off, size_t len, char *err,
                      size_t errlen) {
    const uint64_t total = weights_slice_size(t->slice);
    uint8_t digest[32];
    Relais__WeightChunk c = RELAIS__WEIGHT_CHUNK__INIT;
    c.model_sha256 = (ProtobufCBinaryData){32, w->sha256};
    c.layer_begin = t->l0;
    c.layer_end = t->l1;
    c.head = t->head;
    c.offset = off;
    c.total = total;
    weights_slice_read(t->slice, off, w->buf, len);
    c.data = (ProtobufCBinaryData){len, w->buf};
    if (off + len == total) {
        if (weights_slice_sha256(t->slice, digest)) {
            snprintf(err, errlen, "out of memory hashing the slice");
            return -1;
        }
        c.slice_sha256 = (ProtobufCBinaryData){32, digest};
    }
    Relais__Envelope env = RELAIS__ENVELOPE__INIT;
    env.body_case = RELAIS__ENVELOPE__BODY_WEIGHT_CHUNK;
    env.weight_chunk = &c;
    if (wire_send(sock, NULL, 0, &env, err, errlen))
        return -1;
    t->sent += len;
    w->sent += len;
    return 0;
}

int weights_send_answer(weights_send *w, uint32_t i, const char *name, void *sock, uint32_t l0, uint32_t l1, bool head,
                        const Relais__WeightRequest *r, char *err, size_t errlen) {
    uint32_t chunk, chunks;
    char why[256];
    node_transfer *t = i < w->n ? &w->nodes[i] : NULL;
    if (!t || check_request(r, w->sha256, l0, l1, head, &chunk, &chunks, why, sizeof why) ||
        !slice_for(w, t, l0, l1, head, why, sizeof why)) {
        snprintf(err, errlen, "node %s: weight transfer: %s", name, t ? why : "no such node");
        return -1;
    }
    const uint64_t total = weights_slice_size(t->slice);
    if (chunk > w->buf_len) {
        uint8_t *b = realloc(w->buf, chunk);
        if (!b) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        w->buf = b, w->buf_len = chunk;
    }
    if (t->sent == 0) {
        t->t0 = rl_now_s();
        rl_log(RL_LOG_INFO, "node %s does not hold the model: sending layers %u-%u%s, %.1f MiB%s", name, l0, l1 - 1,
               head ? " and the head" : "", total / 1048576.0, r->offset ? ", resuming" : "");
        if (r->offset)
            rl_log(RL_LOG_INFO, "node %s resumes its slice at %.1f MiB", name, r->offset / 1048576.0);
    }
    /* A partial file longer than the slice gets the last chunk, at the end:
     * the node sees the mismatch, drops its file and says so. */
    uint64_t off = r->offset < total ? r->offset : total;
    for (uint32_t k = 0; k < chunks && (off < total || k == 0); k++) { /* an empty last chunk when all is there */
        size_t len = total - off < chunk ? (size_t)(total - off) : chunk;
        if (send_chunk(w, t, sock, off, len, why, sizeof why)) {
            snprintf(err, errlen, "node %s: weight transfer: %s", name, why);
            return -1;
        }
        off += len;
    }
    if (off == total) {
        double dt = rl_now_s() - t->t0;
        rl_log(RL_LOG_INFO, "sent node %s %.1f MiB of weights in %.1f s (%.1f MiB/s)", name, t->sent / 1048576.0, dt,
               dt > 0 ? t->sent / 1048576.0 / dt : 0.0);
    }
    return 0;
}
