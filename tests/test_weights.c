/* The weight transfer's two ends without processes: the coordinator's
 * slice (a valid GGUF of the assigned layers, the same bytes and hash
 * however it is read, token_embd for the head of a tied model), the sender's checks of a request, and the node's
 * receiving side fed through an inproc socket pair: a whole transfer, a
 * resume after the receiver went away, a damaged cache, and every kind of
 * bad chunk (gap, oversize, changed size, wrong or missing hash, another
 * slice, a repeat), each refused with a message or ignored, never taken. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>
#include "filehash.h"
#include "gguf.h"
#include "gguf_write.h"
#include "model.h"
#include "node_weights.h"
#include "weights_send.h"
#include "weights_slice.h"
#include "testutil.h"
#include "wire.h"

#define MODEL RELAIS_SHARED_DIR "/models/tiny-q8_0.gguf" /* 4 layers, output not tied */
#define CHUNK 4096u

static char g_dir[TU_DIR_MAX];
static uint8_t g_sha[32];

static int setup(void **state) {
    (void)state;
    char err[256];
    if (tu_dir_new(g_dir, "weights") || filehash_sha256(MODEL, NULL, NULL, NULL, g_sha, err, sizeof err))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return tu_dir_remove(g_dir);
}

/* Writes the whole slice to path in pieces of `piece` bytes. */
static void write_slice(weights_slice *s, const char *path, size_t piece) {
    FILE *f = fopen(path, "wb");
    uint8_t *buf = malloc(piece);
    assert_non_null(f);
    for (uint64_t off = 0; off < weights_slice_size(s); off += piece) {
        size_t n = weights_slice_size(s) - off < piece ? (size_t)(weights_slice_size(s) - off) : piece;
        weights_slice_read(s, off, buf, n);
        assert_int_equal(fwrite(buf, 1, n, f), n);
    }
    fclose(f);
    free(buf);
}

/* ---- the slice ---- */

static void test_slice_is_the_layers_as_a_model(void **state) {
    (void)state;
    char err[512], path[128];
    uint8_t h1[32], h2[32], hf[32];
    snprintf(path, sizeof path, "%s/slice.gguf", g_dir);
    weights_slice *s = weights_slice_new(MODEL, 1, 3, true, err, sizeof err);
    assert_non_null(s);
    write_slice(s, path, 1000);
    assert_int_equal(weights_slice_sha256(s, h1), 0);
    assert_int_equal(filehash_sha256(path, NULL, NULL, NULL, hf, err, sizeof err), 0);
    assert_memory_equal(h1, hf, 32);
    weights_slice_destroy(&s);

    /* Read out of order (the hash then needs its own pass): the same hash. */
    s = weights_slice_new(MODEL, 1, 3, true, err, sizeof err);
    uint8_t buf[777];
    weights_slice_read(s, weights_slice_size(s) / 2, buf, sizeof buf);
    assert_int_equal(weights_slice_sha256(s, h2), 0);
    assert_memory_equal(h1, h2, 32);
    weights_slice_destroy(&s);

    /* Layers 1-2 and the head bind from it; the other layers are absent. */
    gguf_file *full = gguf_open(MODEL, err, sizeof err), *part = gguf_open(path, err, sizeof err);
    assert_non_null(part);
    assert_int_equal(gguf_n_kv(part), gguf_n_kv(full));
    assert_int_equal(gguf_n_tensors(part), 2 * 9 + 2);
    assert_null(gguf_find_tensor(part, "blk.0.attn_q.weight"));
    assert_null(gguf_find_tensor(part, "token_embd.weight"));
    const gguf_tensor *a = gguf_find_tensor(full, "blk.2.ffn_down.weight"), *b = gguf_find_tensor(part, a->name);
    assert_non_null(b);
    assert_int_equal(a->nbytes, b->nbytes);
    assert_memory_equal(a->data, b->data, a->nbytes);
    gguf_close(&full), gguf_close(&part);
    rl_model_opts o = rl_model_opts_default();
    o.l0 = 1, o.l1 = 3, o.embed = false, o.head = true;
    rl_model *m = rl_model_load(path, &o, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    rl_model_destroy(&m);
}

/* A one-layer f32 model whose head is tied to token_embd (no output.weight). */
static void write_tied_model(const char *path) {
    enum { DIM = 32, FFN = 64, VOCAB = 16 };
    static const struct {
        const char *name;
        uint64_t ne0, ne1;
    } T[] = {{"token_embd.weight", DIM, VOCAB},     {"blk.0.attn_norm.weight", DIM, 1},
             {"blk.0.attn_q.weight", DIM, DIM},     {"blk.0.attn_k.weight", DIM, DIM / 2},
             {"blk.0.attn_v.weight", DIM, DIM / 2}, {"blk.0.attn_output.weight", DIM, DIM},
             {"blk.0.ffn_norm.weight", DIM, 1},     {"blk.0.ffn_gate.weight", DIM, FFN},
             {"blk.0.ffn_up.weight", DIM, FFN},     {"blk.0.ffn_down.weight", FFN, DIM},
             {"output_norm.weight", DIM, 1}};
    char err[256];
    float row[FFN];
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", 1);
    gguf_writer_set_u32(w, "llama.embedding_length", DIM);
    gguf_writer_set_u32(w, "llama.attention.head_count", 4);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", 2);
    gguf_writer_set_u32(w, "llama.feed_forward_length", FFN);
    gguf_writer_set_u32(w, "llama.vocab_size", VOCAB);
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        gguf_writer_add_tensor(w, T[i].name, RL_F32, T[i].ne1 > 1 ? 2 : 1, (uint64_t[4]){T[i].ne0, T[i].ne1});
    assert_int_equal(gguf_writer_begin(w, path, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        for (uint64_t r = 0; r < T[i].ne1; r++) {
            for (uint64_t c = 0; c < T[i].ne0; c++)
                row[c] = (float)((i * 31 + r * 7 + c) % 13) / 13.0f - 0.5f;
            assert_int_equal(gguf_writer_write_data(w, row, T[i].ne0 * sizeof *row, err, sizeof err), 0);
        }
    assert_int_equal(gguf_writer_close(w, err, sizeof err), 0);
    gguf_writer_destroy(&w);
}

/* The head stage of a tied model gets token_embd and binds its head from
 * it; another stage does not get the embedding. */
static void test_slice_of_a_tied_head(void **state) {
    (void)state;
    char err[512], model[128], path[128];
    snprintf(model, sizeof model, "%s/tied.gguf", g_dir);
    snprintf(path, sizeof path, "%s/tied-slice.gguf", g_dir);
    write_tied_model(model);
    weights_slice *s = weights_slice_new(model, 0, 1, true, err, sizeof err);
    if (!s)
        fail_msg("%s", err);
    write_slice(s, path, 4096);
    weights_slice_destroy(&s);
    gguf_file *f = gguf_open(path, err, sizeof err);
    assert_non_null(f);
    assert_non_null(gguf_find_tensor(f, "token_embd.weight"));
    assert_null(gguf_find_tensor(f, "output.weight"));
    gguf_close(&f);
    rl_model_opts o = rl_model_opts_default();
    o.l0 = 0, o.l1 = 1, o.embed = false, o.head = true;
    rl_model *m = rl_model_load(path, &o, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    assert_true(rl_model_hparams(m)->tied_output);
    assert_non_null(rl_model_output(m));
    rl_model_destroy(&m);
    s = weights_slice_new(model, 0, 1, false, err, sizeof err);
    write_slice(s, path, 4096);
    weights_slice_destroy(&s);
    f = gguf_open(path, err, sizeof err);
    assert_null(gguf_find_tensor(f, "token_embd.weight"));
    gguf_close(&f);
}

static void test_slice_bad_range(void **state) {
    (void)state;
    char err[512];
    assert_null(weights_slice_new(MODEL, 2, 2, false, err, sizeof err));
    assert_non_null(strstr(err, "not a slice"));
    assert_null(weights_slice_new(MODEL, 0, 5, false, err, sizeof err));
    assert_null(weights_slice_new("/nonexistent.gguf", 0, 1, false, err, sizeof err));
}

/* ---- both ends through a socket pair ---- */

typedef struct {
    void *zctx, *coord, *node; /* PAIR sockets: the coordinator's end, the node's */
    weights_send *ws;
    node_weights *nw;
    Relais__Assign a;
    char cache[128];
} rig;

static void rig_open(rig *r, uint32_t l0, uint32_t l1, bool head) {
    char err[256];
    memset(r, 0, sizeof *r);
    snprintf(r->cache, sizeof r->cache, "%s/cache", g_dir);
    mkdir(r->cache, 0700);
    r->zctx = zmq_ctx_new();
    r->coord = wire_socket(r->zctx, ZMQ_PAIR, 1 << 20, err, sizeof err);
    r->node = wire_socket(r->zctx, ZMQ_PAIR, 1 << 20, err, sizeof err);
    assert_int_equal(zmq_bind(r->node, "inproc://weights"), 0);
    assert_int_equal(zmq_connect(r->coord, "inproc://weights"), 0);
    r->ws = weights_send_new(MODEL, g_sha, 1);
    r->nw = node_weights_new(r->cache, CHUNK);
    relais__assign__init(&r->a);
    r->a.model_sha256 = (ProtobufCBinaryData){32, g_sha};
    r->a.layer_begin = l0, r->a.layer_end = l1, r->a.run_head = head;
}

static void rig_close(rig *r) {
    weights_send_destroy(&r->ws);
    node_weights_destroy(&r->nw);
    zmq_close(r->coord), zmq_close(r->node);
    zmq_ctx_term(r->zctx);
}

/* The coordinator answers req; returns the chunks that arrived (at most max). */
static size_t answer(rig *r, const Relais__WeightRequest *req, wire_msg **got, size_t max) {
    char err[256];
    if (weights_send_answer(r->ws, 0, "n", r->coord, r->a.layer_begin, r->a.layer_end, r->a.run_head, req, err,
                            sizeof err))
        fail_msg("%s", err);
    size_t n = 0;
    zmq_pollitem_t it = {r->node, 0, ZMQ_POLLIN, 0};
    while (n < max && zmq_poll(&it, 1, 200) > 0)
        got[n++] = wire_msg_recv(r->node, false);
    return n;
}

/* Runs the transfer from req until done, failed or `stop_after` chunks. */
static node_weights_status transfer(rig *r, Relais__WeightRequest req, int stop_after, char *path) {
    char err[256];
    Relais__ErrorCode code;
    node_weights_status st = NODE_WEIGHTS_MORE;
    for (int taken = 0; st == NODE_WEIGHTS_MORE && taken < stop_after;) {
        wire_msg *m[NODE_WEIGHTS_WINDOW];
        size_t n = answer(r, &req, m, NODE_WEIGHTS_WINDOW);
        assert_true(n > 0);
        for (size_t i = 0; i < n; i++, taken++) {
            if (taken < stop_after)
                st = node_weights_chunk(r->nw, wire_msg_env(m[i])->weight_chunk, &req, path, 4096, &code, err,
                                        sizeof err);
            wire_msg_destroy(&m[i]);
        }
        if (st == NODE_WEIGHTS_FAILED)
            fail_msg("%s", err);
    }
    return st;
}

static void test_transfer_resume_and_damaged_cache(void **state) {
    (void)state;
    rig r;
    char err[256], path[4096], cached[4096];
    Relais__WeightRequest req;
    rig_open(&r, 0, 2, false);
    assert_false(node_weights_lookup(r.nw, &r.a, cached, sizeof cached));
    assert_int_equal(node_weights_begin(r.nw, &r.a, &req, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    assert_int_equal(req.offset, 0);
    assert_int_not_equal(transfer(&r, req, 6, path), NODE_WEIGHTS_DONE); /* then the node goes away */
    node_weights_destroy(&r.nw);

    r.nw = node_weights_new(r.cache, CHUNK);
    assert_int_equal(node_weights_begin(r.nw, &r.a, &req, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    assert_int_equal(req.offset, 6 * CHUNK); /* resumes where the file ends */
    uint64_t before = weights_send_bytes(r.ws);
    assert_int_equal(transfer(&r, req, 1 << 30, path), NODE_WEIGHTS_DONE);
    char want[128];
    weights_slice *s = weights_slice_new(MODEL, 0, 2, false, err, sizeof err);
    assert_int_equal(weights_send_bytes(r.ws) - before, weights_slice_size(s) - 6 * CHUNK);
    snprintf(want, sizeof want, "%s/whole.gguf", g_dir);
    write_slice(s, want, 65536);
    weights_slice_destroy(&s);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", want, path);
    assert_int_equal(system(cmd), 0);

    size_t n;
    Relais__CachedSlice **cs = node_weights_cached(r.nw, &n);
    assert_int_equal(n, 1);
    assert_int_equal(cs[0]->layer_end, 2);
    assert_true(node_weights_lookup(r.nw, &r.a, cached, sizeof cached));
    assert_string_equal(cached, path);

    snprintf(cmd, sizeof cmd, "printf x | dd of=%s bs=1 seek=100 conv=notrunc status=none", path);
    assert_int_equal(system(cmd), 0);
    assert_false(node_weights_lookup(r.nw, &r.a, cached, sizeof cached)); /* damaged: deleted */
    assert_int_equal(access(path, F_OK), -1);
    node_weights_cached(r.nw, &n);
    assert_int_equal(n, 0);
    rig_close(&r);
}

/* One chunk of the node's slice as the coordinator would send it, then
 * changed by the test. */
typedef struct {
    Relais__WeightChunk c;
    uint8_t data[2 * CHUNK];
    uint8_t hash[32];
} chunk_buf;

static void make_chunk(chunk_buf *b, weights_slice *s, const Relais__Assign *a, uint64_t off, size_t len) {
    relais__weight_chunk__init(&b->c);
    b->c.model_sha256 = a->model_sha256;
    b->c.layer_begin = a->layer_begin, b->c.layer_end = a->layer_end, b->c.head = a->run_head;
    b->c.offset = off;
    b->c.total = weights_slice_size(s);
    weights_slice_read(s, off, b->data, len);
    b->c.data = (ProtobufCBinaryData){len, b->data};
    if (off + len == b->c.total) {
        weights_slice_sha256(s, b->hash);
        b->c.slice_sha256 = (ProtobufCBinaryData){32, b->hash};
    }
}

static node_weights_status feed(node_weights *nw, chunk_buf *b, Relais__ErrorCode *code, char *err) {
    Relais__WeightRequest next;
    char path[4096];
    return node_weights_chunk(nw, &b->c, &next, path, sizeof path, code, err, 256);
}

static void expect_failed(node_weights *nw, const Relais__Assign *a, chunk_buf *b, Relais__ErrorCode want,
                          const char *needle) {
    char err[256];
    Relais__ErrorCode code;
    Relais__WeightRequest req;
    if (!node_weights_receiving(nw))
        assert_int_equal(node_weights_begin(nw, a, &req, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    assert_int_equal(feed(nw, b, &code, err), NODE_WEIGHTS_FAILED);
    assert_int_equal(code, want);
    if (!strstr(err, needle))
        fail_msg("expected \"%s\" in: %s", needle, err);
    assert_false(node_weights_receiving(nw));
}

static void test_bad_chunks(void **state) {
    (void)state;
    char err[256], cache[128];
    Relais__ErrorCode code;
    Relais__WeightRequest req;
    snprintf(cache, sizeof cache, "%s/bad", g_dir);
    mkdir(cache, 0700);
    node_weights *nw = node_weights_new(cache, CHUNK);
    Relais__Assign a = RELAIS__ASSIGN__INIT;
    a.model_sha256 = (ProtobufCBinaryData){32, g_sha};
    a.layer_begin = 3, a.layer_end = 4, a.run_head = true;
    weights_slice *s = weights_slice_new(MODEL, 3, 4, true, err, sizeof err);
    const uint64_t total = weights_slice_size(s);
    chunk_buf *b = malloc(sizeof *b);

    make_chunk(b, s, &a, 0, CHUNK);
    assert_int_equal(feed(nw, b, &code, err), NODE_WEIGHTS_IGNORED); /* no transfer under way */
    assert_int_equal(node_weights_begin(nw, &a, &req, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    assert_int_equal(feed(nw, b, &code, err), NODE_WEIGHTS_WAIT);
    assert_int_equal(feed(nw, b, &code, err), NODE_WEIGHTS_IGNORED); /* a repeat */
    b->c.layer_end = 5;
    assert_int_equal(feed(nw, b, &code, err), NODE_WEIGHTS_IGNORED); /* another slice */

    make_chunk(b, s, &a, 3 * CHUNK, CHUNK);
    expect_failed(nw, &a, b, RELAIS__ERROR_CODE__ERR_MALFORMED, "expected byte 4096"); /* a gap */
    make_chunk(b, s, &a, CHUNK, 2 * CHUNK);
    expect_failed(nw, &a, b, RELAIS__ERROR_CODE__ERR_MALFORMED, "at most 4096 bytes"); /* oversize */
    assert_int_equal(node_weights_begin(nw, &a, &req, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    make_chunk(b, s, &a, CHUNK, CHUNK);
    assert_int_equal(feed(nw, b, &code, err), NODE_WEIGHTS_WAIT);
    make_chunk(b, s, &a, 2 * CHUNK, CHUNK);
    b->c.total = total + 1;
    expect_failed(nw, &a, b, RELAIS__ERROR_CODE__ERR_MALFORMED, "not as the earlier ones said");
    make_chunk(b, s, &a, 2 * CHUNK, CHUNK);
    b->c.total = 0;
    expect_failed(nw, &a, b, RELAIS__ERROR_CODE__ERR_MALFORMED, "which no slice has");
    make_chunk(b, s, &a, 2 * CHUNK, CHUNK);
    b->c.slice_sha256 = (ProtobufCBinaryData){32, b->hash};
    expect_failed(nw, &a, b, RELAIS__ERROR_CODE__ERR_MALFORMED, "slice hash"); /* a hash before the end */

    /* Up to the last chunk, then a last chunk without hash, and one with a wrong hash. */
    assert_int_equal(node_weights_begin(nw, &a, &req, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    uint64_t off = req.offset;
    assert_int_equal(off, 2 * CHUNK);
    for (; off + CHUNK < total; off += CHUNK) {
        make_chunk(b, s, &a, off, CHUNK);
        node_weights_status st = feed(nw, b, &code, err);
        assert_true(st == NODE_WEIGHTS_WAIT || st == NODE_WEIGHTS_MORE);
    }
    make_chunk(b, s, &a, off, (size_t)(total - off));
    b->c.slice_sha256.len = 0;
    expect_failed(nw, &a, b, RELAIS__ERROR_CODE__ERR_MALFORMED, "the last chunk");
    make_chunk(b, s, &a, off, (size_t)(total - off));
    b->hash[0] ^= 1;
    expect_failed(nw, &a, b, RELAIS__ERROR_CODE__ERR_MODEL, "discarded");
    assert_int_equal(node_weights_begin(nw, &a, &req, err, sizeof err), RELAIS__ERROR_CODE__ERR_NONE);
    assert_int_equal(req.offset, 0); /* the bad file is gone: a new transfer starts over */

    free(b);
    weights_slice_destroy(&s);
    node_weights_destroy(&nw);
}

static void test_sender_refuses_requests(void **state) {
    (void)state;
    char err[512];
    uint8_t other[32] = {1};
    weights_send *ws = weights_send_new(MODEL, g_sha, 2);
    Relais__WeightRequest r = RELAIS__WEIGHT_REQUEST__INIT;
    r.model_sha256 = (ProtobufCBinaryData){32, other};
    r.layer_begin = 0, r.layer_end = 2;
    assert_int_equal(weights_send_answer(ws, 0, "n0", NULL, 0, 2, false, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "another model"));
    r.model_sha256.data = g_sha;
    assert_int_equal(weights_send_answer(ws, 0, "n0", NULL, 0, 3, false, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "assigned [0, 3)"));
    r.chunk_bytes = 100;
    assert_int_equal(weights_send_answer(ws, 0, "n0", NULL, 0, 2, false, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "chunks of"));
    r.chunk_bytes = 0;
    assert_int_equal(weights_send_answer(ws, 5, "n5", NULL, 0, 2, false, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "no such node"));
    assert_int_equal(weights_send_bytes(ws), 0);
    weights_send_destroy(&ws);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_is_the_layers_as_a_model),
        cmocka_unit_test(test_slice_of_a_tied_head),
        cmocka_unit_test(test_slice_bad_range),
        cmocka_unit_test(test_transfer_resume_and_damaged_cache),
        cmocka_unit_test(test_bad_chunks),
        cmocka_unit_test(test_sender_refuses_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
