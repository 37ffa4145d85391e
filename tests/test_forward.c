/* The forward pass against a straightforward scalar reference written here
 * from the math: whole dequantized matrices, a full K/V history and an
 * explicit window mask (a query at p sees keys in (p-W, p]). The engine's ring
 * buffers, its batching (chunks longer than the window, crossing the wrap),
 * its sgemm prefill, its split into layer ranges with a cache per range, and
 * KV truncation must all give the reference's logits. The KV cache in f16
 * and q8_0 too: close to the reference (which keeps f32), and bit-identical
 * whatever the chunking, across the sliding rings' wrap. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "forward.h"
#include "quant.h"
#include "runner.h"
#include "synth.h"
#include <unistd.h>

#define MODEL_SWA RELAIS_SHARED_DIR "/models/tiny-swa.gguf"
#define MODEL_Q8 RELAIS_SHARED_DIR "/models/tiny-swa-q8_0.gguf"
#define N_TOK 40

/* ---- the reference: one token at a time, full history, explicit mask ---- */

typedef struct {
    const rl_hparams *hp;
    const rl_model *m;
    float *K, *V; /* (n_layer, N_TOK, kv_dim) */
} ref_state;

static void ref_matvec(const rl_weight *w, const float *x, float *y) {
    float *row = malloc(w->cols * sizeof *row);
    for (uint32_t r = 0; r < w->rows; r++) {
        rl_dequantize_row(w->type, (const char *)w->data + r * w->row_bytes, row, w->cols);
        double s = 0;
        for (uint32_t c = 0; c < w->cols; c++)
            s += (double)row[c] * x[c];
        y[r] = (float)s;
    }
    free(row);
}

static void ref_norm(const float *x, const float *w, float *out, uint32_t n, float eps) {
    double ss = 0;
    for (uint32_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    double sc = 1.0 / sqrt(ss / n + eps);
    for (uint32_t i = 0; i < n; i++)
        out[i] = (float)(x[i] * sc * w[i]);
}

static void ref_rope(float *v, uint32_t heads, uint32_t hd, uint32_t p, float base) {
    for (uint32_t h = 0; h < heads; h++)
        for (uint32_t i = 0; i < hd; i += 2) {
            double th = p * pow(base, -(double)i / hd), a = v[h * hd + i], b = v[h * hd + i + 1];
            v[h * hd + i] = (float)(a * cos(th) - b * sin(th));
            v[h * hd + i + 1] = (float)(a * sin(th) + b * cos(th));
        }
}

static void ref_attention(ref_state *st, uint32_t il, uint32_t p, const float *q, float *out) {
    const rl_hparams *hp = st->hp;
    const uint32_t hd = hp->head_dim, kvd = hp->n_head_kv * hd, grp = hp->n_head / hp->n_head_kv;
    double sc[N_TOK];
    for (uint32_t h = 0; h < hp->n_head; h++) {
        double mx = -1e300, sum = 0;
        for (uint32_t j = 0; j <= p; j++) {
            bool visible = !hp->sliding[il] || p - j < hp->swa_window;
            const float *k = st->K + ((size_t)il * N_TOK + j) * kvd + (h / grp) * hd;
            double s = 0;
            for (uint32_t d = 0; d < hd; d++)
                s += (double)q[h * hd + d] * k[d];
            sc[j] = visible ? s / sqrt((double)hd) : -INFINITY;
            if (sc[j] > mx)
                mx = sc[j];
        }
        for (uint32_t j = 0; j <= p; j++)
            sum += sc[j] = exp(sc[j] - mx);
        for (uint32_t d = 0; d < hd; d++) {
            double o = 0;
            for (uint32_t j = 0; j <= p; j++)
                o += sc[j] / sum * st->V[((size_t)il * N_TOK + j) * kvd + (h / grp) * hd + d];
            out[h * hd + d] = (float)o;
        }
    }
}

static void ref_token(ref_state *st, int32_t id, uint32_t p, float *logits) {
    const rl_hparams *hp = st->hp;
    const uint32_t D = hp->dim, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    float *x = calloc(D, 4), *h = calloc(D, 4), *q = calloc(qd, 4), *att = calloc(qd, 4), *o = calloc(D, 4);
    float *g = calloc(hp->ffn_dim, 4), *u = calloc(hp->ffn_dim, 4);
    const rl_weight *E = rl_model_embed(st->m);
    rl_dequantize_row(E->type, (const char *)E->data + (size_t)id * E->row_bytes, x, D);
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const rl_layer *L = rl_model_layer(st->m, il);
        float *k = st->K + ((size_t)il * N_TOK + p) * kvd, *v = st->V + ((size_t)il * N_TOK + p) * kvd;
        ref_norm(x, L->attn_norm, h, D, hp->norm_eps);
        ref_matvec(&L->wq, h, q);
        ref_matvec(&L->wk, h, k);
        ref_matvec(&L->wv, h, v);
        ref_rope(q, hp->n_head, hp->head_dim, p, hp->rope_base);
        ref_rope(k, hp->n_head_kv, hp->head_dim, p, hp->rope_base);
        ref_attention(st, il, p, q, att);
        ref_matvec(&L->wo, att, o);
        for (uint32_t i = 0; i < D; i++)
            x[i] += o[i];
        ref_norm(x, L->ffn_norm, h, D, hp->norm_eps);
        ref_matvec(&L->w_gate, h, g);
        ref_matvec(&L->w_up, h, u);
        for (uint32_t i = 0; i < hp->ffn_dim; i++)
            g[i] = (float)(g[i] / (1 + exp(-(double)g[i])) * u[i]);
        ref_matvec(&L->w_down, g, o);
        for (uint32_t i = 0; i < D; i++)
            x[i] += o[i];
    }
    ref_norm(x, rl_model_output_norm(st->m), h, D, hp->norm_eps);
    ref_matvec(rl_model_output(st->m), h, logits);
    free(x), free(h), free(q), free(att), free(o), free(g), free(u);
}

/* Reference logits (N_TOK, n_vocab) for the fixed token sequence. */
static float *reference_logits(const char *path, const int32_t *ids) {
    char err[512];
    rl_model *m = rl_model_load(path, NULL, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    const rl_hparams *hp = rl_model_hparams(m);
    assert_true(hp->swa_window > 0 && hp->swa_window < N_TOK / 2); /* the ring must wrap */
    ref_state st = {hp, m, NULL, NULL};
    size_t kvd = (size_t)hp->n_head_kv * hp->head_dim;
    st.K = calloc(hp->n_layer * N_TOK * kvd, sizeof(float));
    st.V = calloc(hp->n_layer * N_TOK * kvd, sizeof(float));
    float *logits = malloc((size_t)N_TOK * hp->n_vocab * sizeof(float));
    for (uint32_t p = 0; p < N_TOK; p++)
        ref_token(&st, ids[p], p, logits + (size_t)p * hp->n_vocab);
    free(st.K), free(st.V);
    rl_model_destroy(&m);
    return logits;
}

/* ---- the engine, in several configurations ---- */

static void fixed_ids(int32_t *ids) {
    for (int i = 0; i < N_TOK; i++)
        ids[i] = (int32_t)((i * 37 + 11) % 500);
}

static void compare(const float *got, const float *want, uint32_t n, float tol, const char *what, uint32_t p) {
    for (uint32_t i = 0; i < n; i++)
        if (fabsf(got[i] - want[i]) > tol)
            fail_msg("%s, position %u: logit %u = %.5f, reference %.5f", what, p, i, got[i], want[i]);
}

/* Feeds ids in chunks of `chunk`, checking the logits of every position. */
static void engine_matches(const char *path, const float *ref, const int32_t *ids, uint32_t chunk, bool gemm,
                           float tol) {
    char err[512], what[96];
    snprintf(what, sizeof what, "%s chunk %u %s", path, chunk, gemm ? "sgemm" : "quantized");
    rl_runner_opts o = rl_runner_opts_default();
    o.model_path = path;
    o.n_threads = 2;
    o.n_ctx = 64;
    o.progress = false;
    o.batch = chunk;
    o.gemm_min = gemm ? 1 : 0;
    o.no_gemm = !gemm;
    o.kv_type = RL_KV_TYPE_F32; /* the reference keeps K and V in f32 */
    rl_runner *r = rl_runner_new(&o, err, sizeof err);
    assert_non_null(r);
    const uint32_t V = rl_runner_hparams(r)->n_vocab;
    float *logits = malloc(V * sizeof *logits);
    /* feed so that each chunk's last position is checked, and one-by-one positions all */
    for (uint32_t p = 0; p < N_TOK; p += chunk) {
        uint32_t n = N_TOK - p < chunk ? N_TOK - p : chunk;
        assert_int_equal(rl_runner_feed(r, ids + p, n, logits, err, sizeof err), 0);
        compare(logits, ref + (size_t)(p + n - 1) * V, V, tol, what, p + n - 1);
    }
    free(logits);
    rl_runner_destroy(&r);
}

static void test_ring_against_masked_reference(void **s) {
    (void)s;
    int32_t ids[N_TOK];
    fixed_ids(ids);
    float *ref = reference_logits(MODEL_SWA, ids);
    const uint32_t chunks[] = {1, 3, 5, 8, 13, 40};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        engine_matches(MODEL_SWA, ref, ids, chunks[i], false, 2e-3f);
        engine_matches(MODEL_SWA, ref, ids, chunks[i], true, 2e-3f);
    }
    free(ref);
}

static void test_quantized_against_reference(void **s) {
    (void)s;
    int32_t ids[N_TOK];
    fixed_ids(ids);
    float *ref = reference_logits(MODEL_Q8, ids);
    /* 8-bit activations against an exact float reference: the golden README's quantized tolerance */
    engine_matches(MODEL_Q8, ref, ids, 1, false, 0.5f);
    engine_matches(MODEL_Q8, ref, ids, 16, true, 0.5f);
    free(ref);
}

/* What a two-node pipeline does: layers [0, 2) and [2, 4), each with its own
 * model instance and cache, the activations handed from one to the other. */
static void test_split_ranges(void **s) {
    (void)s;
    char err[512];
    int32_t ids[N_TOK];
    fixed_ids(ids);
    float *ref = reference_logits(MODEL_SWA, ids);
    rl_model_opts a = rl_model_opts_default(), b = rl_model_opts_default();
    a.l1 = 2, a.head = false;
    b.l0 = 2, b.l1 = 4, b.embed = false;
    rl_model *ma = rl_model_load(MODEL_SWA, &a, err, sizeof err), *mb = rl_model_load(MODEL_SWA, &b, err, sizeof err);
    assert_non_null(ma);
    assert_non_null(mb);
    assert_null(rl_model_layer(ma, 2));
    assert_null(rl_model_output(ma));
    assert_null(rl_model_embed(mb));
    const rl_hparams *hp = rl_model_hparams(ma);
    rl_ctx *ca = rl_ctx_new(ma, 1, 8, err, sizeof err), *cb = rl_ctx_new(mb, 2, 8, err, sizeof err);
    rl_kv *ka = rl_kv_new(hp, 0, 2, 64, RL_KV_TYPE_F32, err, sizeof err),
          *kb = rl_kv_new(hp, 2, 4, 64, RL_KV_TYPE_F32, err, sizeof err);
    float *x = malloc(7 * hp->dim * sizeof(float)), *logits = malloc(hp->n_vocab * sizeof(float));
    assert_int_not_equal(rl_forward_layers(ca, kb, x, 1, 0, err, sizeof err), 0); /* wrong range's cache */
    for (uint32_t p = 0; p < N_TOK; p += 7) {
        uint32_t n = N_TOK - p < 7 ? N_TOK - p : 7;
        assert_int_equal(rl_embed(ma, ids + p, n, x, err, sizeof err), 0);
        assert_int_equal(rl_forward_layers(ca, ka, x, n, p, err, sizeof err), 0);
        assert_int_equal(rl_forward_layers(cb, kb, x, n, p, err, sizeof err), 0);
        assert_int_equal(rl_head(cb, x + (size_t)(n - 1) * hp->dim, logits, err, sizeof err), 0);
        compare(logits, ref + (size_t)(p + n - 1) * hp->n_vocab, hp->n_vocab, 2e-3f, "split", p + n - 1);
    }
    assert_int_not_equal(rl_forward_layers(ca, ka, x, 1, 3, err, sizeof err), 0); /* wrong position */
    assert_int_not_equal(rl_head(ca, x, logits, err, sizeof err), 0);             /* no head bound */
    int32_t bad = (int32_t)hp->n_vocab;
    assert_int_not_equal(rl_embed(ma, &bad, 1, x, err, sizeof err), 0);
    free(x), free(logits), free(ref);
    rl_kv_destroy(&ka), rl_kv_destroy(&kb), rl_ctx_destroy(&ca), rl_ctx_destroy(&cb);
    rl_model_destroy(&ma), rl_model_destroy(&mb);
}

static void test_truncate(void **s) {
    (void)s;
    char err[512];
    int32_t ids[N_TOK];
    fixed_ids(ids);
    float *ref = reference_logits(MODEL_SWA, ids);
    rl_runner_opts o = rl_runner_opts_default();
    o.model_path = MODEL_SWA, o.n_threads = 2, o.n_ctx = 64, o.progress = false, o.kv_type = RL_KV_TYPE_F32;
    rl_runner *r = rl_runner_new(&o, err, sizeof err);
    const uint32_t V = rl_runner_hparams(r)->n_vocab, W = rl_runner_hparams(r)->swa_window;
    float *logits = malloc(V * sizeof *logits);
    /* before the ring wraps, any truncation is exact */
    assert_int_equal(rl_runner_feed(r, ids, W - 2, logits, err, sizeof err), 0);
    assert_int_equal(rl_runner_truncate(r, 3), 3);
    assert_int_equal(rl_runner_feed(r, ids + 3, 17, logits, err, sizeof err), 0);
    compare(logits, ref + 19 * V, V, 2e-3f, "after truncate to 3", 19);
    /* after it wraps, taking back the last token is exact, and so is taking
     * back up to RL_KV_SLACK + 1 (the ring's slack: a rejected draft)... */
    assert_int_equal(rl_runner_truncate(r, 19), 19);
    assert_int_equal(rl_runner_feed(r, ids + 19, 1, logits, err, sizeof err), 0);
    compare(logits, ref + 19 * V, V, 2e-3f, "after truncate to 19", 19);
    assert_int_equal(rl_runner_feed(r, ids + 20, 10, logits, err, sizeof err), 0);
    assert_true(30 > W + RL_KV_SLACK); /* wrapped */
    assert_int_equal(rl_runner_truncate(r, 30 - RL_KV_SLACK - 1), 30 - RL_KV_SLACK - 1);
    assert_int_equal(rl_runner_feed(r, ids + 13, 1, logits, err, sizeof err), 0);
    compare(logits, ref + 13 * V, V, 2e-3f, "after truncate to 13", 13);
    /* ...going further back clears the session, and says so */
    assert_int_equal(rl_runner_feed(r, ids + 14, 20, logits, err, sizeof err), 0);
    assert_int_equal(rl_runner_truncate(r, 34 - RL_KV_SLACK - 2), 0);
    assert_int_equal(rl_runner_pos(r), 0);
    assert_int_equal(rl_runner_feed(r, ids, 25, logits, err, sizeof err), 0);
    compare(logits, ref + 24 * V, V, 2e-3f, "after a cleared truncate", 24);
    /* the context is a hard limit */
    int32_t many[64] = {0};
    assert_int_not_equal(rl_runner_feed(r, many, 64, logits, err, sizeof err), 0);
    assert_non_null(strstr(err, "context"));
    free(logits), free(ref);
    rl_runner_destroy(&r);
}

/* Serving batches tokens of many sessions into one pass: with the quantized
 * kernels a session's logits must be bit-identical whatever else shares the
 * batch, or greedy output under load would differ from greedy output alone.
 * Every other step a fourth session's 12-token chunk joins, so that the batch
 * (20 tokens) takes the tile path while the session alone (5) takes the
 * few-token product straight from the weights. */
static void batch_independence(rl_kv_type kt) {
    char err[512];
    int32_t ids[N_TOK];
    fixed_ids(ids);
    rl_model *m = rl_model_load(MODEL_Q8, NULL, err, sizeof err);
    assert_non_null(m);
    const rl_hparams *hp = rl_model_hparams(m);
    rl_ctx *c = rl_ctx_new(m, 2, 32, err, sizeof err);
    rl_ctx_set_gemm_min(c, 0);
    rl_kv *alone = rl_kv_new(hp, 0, 4, 64, kt, err, sizeof err);
    rl_kv *a = rl_kv_new(hp, 0, 4, 64, kt, err, sizeof err), *b = rl_kv_new(hp, 0, 4, 64, kt, err, sizeof err);
    rl_kv *d = rl_kv_new(hp, 0, 4, 64, kt, err, sizeof err), *e = rl_kv_new(hp, 0, 4, 64, kt, err, sizeof err);
    float *x = malloc(32 * hp->dim * sizeof(float)), *x1 = malloc(32 * hp->dim * sizeof(float));
    float *want = malloc(hp->n_vocab * sizeof(float)), *got = malloc(3 * hp->n_vocab * sizeof(float));
    /* b and d already hold some positions: decode tokens next to a's prompt chunks */
    assert_int_equal(rl_embed(m, ids + 20, 9, x, err, sizeof err), 0);
    assert_int_equal(rl_forward_layers(c, b, x, 9, 0, err, sizeof err), 0);
    assert_int_equal(rl_embed(m, ids + 5, 3, x, err, sizeof err), 0);
    assert_int_equal(rl_forward_layers(c, d, x, 3, 0, err, sizeof err), 0);
    for (uint32_t p = 0; p + 5 <= N_TOK - 10; p += 5) {
        /* alone */
        assert_int_equal(rl_embed(m, ids + p, 5, x1, err, sizeof err), 0);
        assert_int_equal(rl_forward_layers(c, alone, x1, 5, p, err, sizeof err), 0);
        assert_int_equal(rl_head(c, x1 + 4 * hp->dim, want, err, sizeof err), 0);
        /* in company: [b: 1 token][a: 5 tokens][d: 2 tokens], then [e: 12 tokens] on odd steps */
        const bool wide = p / 5 % 2 == 1;
        rl_segment segs[4] = {{b, rl_kv_len(b), 1}, {a, p, 5}, {d, rl_kv_len(d), 2}, {e, 0, 12}};
        assert_int_equal(rl_embed(m, ids + (p % 7), 1, x, err, sizeof err), 0);
        assert_int_equal(rl_embed(m, ids + p, 5, x + hp->dim, err, sizeof err), 0);
        assert_int_equal(rl_embed(m, ids + 30, 2, x + 6 * hp->dim, err, sizeof err), 0);
        assert_int_equal(rl_embed(m, ids + 10, 12, x + 8 * hp->dim, err, sizeof err), 0);
        assert_int_equal(rl_forward_batch(c, segs, wide ? 4 : 3, x, err, sizeof err), 0);
        rl_kv_truncate(e, 0);
        float rows[3 * 64];
        assert_true(hp->dim <= 64);
        memcpy(rows, x, hp->dim * sizeof(float));
        memcpy(rows + hp->dim, x + 5 * hp->dim, hp->dim * sizeof(float));
        memcpy(rows + 2 * hp->dim, x + 7 * hp->dim, hp->dim * sizeof(float));
        assert_int_equal(rl_head_rows(c, rows, 3, got, err, sizeof err), 0);
        assert_memory_equal(got + hp->n_vocab, want, hp->n_vocab * sizeof(float));
        assert_int_equal(rl_kv_len(a), p + 5);
    }
    /* a cache may appear once per batch, at its own position */
    rl_segment twice[2] = {{a, rl_kv_len(a), 1}, {a, rl_kv_len(a), 1}};
    assert_int_not_equal(rl_forward_batch(c, twice, 2, x, err, sizeof err), 0);
    assert_non_null(strstr(err, "share"));
    rl_segment wrong = {b, rl_kv_len(b) + 1, 1};
    assert_int_not_equal(rl_forward_batch(c, &wrong, 1, x, err, sizeof err), 0);
    free(x), free(x1), free(want), free(got);
    rl_kv_destroy(&alone), rl_kv_destroy(&a), rl_kv_destroy(&b), rl_kv_destroy(&d), rl_kv_destroy(&e);
    rl_ctx_destroy(&c);
    rl_model_destroy(&m);
}

/* The same in f32 (the goldens' numerics) and in f16, whose attention runs
 * its own kernels over tiles of rows. */
static void test_batch_independence(void **s) {
    (void)s;
    batch_independence(RL_KV_TYPE_F32);
    batch_independence(RL_KV_TYPE_DEFAULT);
}

static void test_kv_memory(void **s) {
    (void)s;
    char err[512];
    rl_model *m = rl_model_load(MODEL_SWA, NULL, err, sizeof err);
    const rl_hparams *hp = rl_model_hparams(m);
    const size_t row = 2 * (size_t)hp->n_head_kv * hp->head_dim * sizeof(float);
    /* layer 0 is full, layers 1-3 slide with W = 8 in rings of W + RL_KV_SLACK */
    rl_kv *kv = rl_kv_new(hp, 0, 4, 100, RL_KV_TYPE_F32, err, sizeof err);
    assert_int_equal(rl_kv_bytes(kv), row * (100 + 3 * (hp->swa_window + RL_KV_SLACK)));
    assert_int_equal(rl_kv_bytes_for(hp, 0, 4, 100, RL_KV_TYPE_F32), rl_kv_bytes(kv));
    rl_kv_destroy(&kv);
    assert_null(kv);
    assert_null(rl_kv_new(hp, 3, 5, 100, RL_KV_TYPE_F32, err, sizeof err));
    assert_non_null(strstr(err, "layer range"));
    rl_model_destroy(&m);
}

/* The coordinator's decision of where a rewind leaves a session
 * (rl_kv_truncate_for: the model's layout, the session's length, the
 * target) is what the engine's cache of every layer does, for every length
 * and target at a context whose sliding rings wrap (W + RL_KV_SLACK slots of
 * 64) and at one where they hold it all; every node's slice (full layer 0,
 * sliding 1-3, or both) keeps at least as much, so a rewind so chosen is
 * never refused. Both outcomes occur, exact ones past the wrap included. */
static void test_truncate_decision(void **s) {
    (void)s;
    char err[512];
    rl_model *m = rl_model_load(MODEL_SWA, NULL, err, sizeof err);
    const rl_hparams *hp = rl_model_hparams(m);
    const uint32_t ctxs[] = {64, 20}, slices[][2] = {{0, 1}, {1, 4}, {0, 2}, {2, 4}};
    uint32_t clears = 0, wrapped_exact = 0;
    for (size_t c = 0; c < sizeof ctxs / sizeof ctxs[0]; c++) {
        rl_kv *all = rl_kv_new(hp, 0, hp->n_layer, ctxs[c], RL_KV_TYPE_F32, err, sizeof err), *part[4];
        assert_non_null(all);
        for (size_t k = 0; k < 4; k++)
            assert_non_null(part[k] =
                                rl_kv_new(hp, slices[k][0], slices[k][1], ctxs[c], RL_KV_TYPE_F32, err, sizeof err));
        for (uint32_t len = 0; len <= ctxs[c]; len++)
            for (uint32_t pos = 0; pos <= len + 1; pos++) {
                const uint32_t decided = rl_kv_truncate_for(hp, ctxs[c], len, pos);
                rl_kv_set_len(all, len);
                if (decided != rl_kv_truncate(all, pos))
                    fail_msg("context %u, len %u, rewind to %u: decided %u, the engine keeps %u", ctxs[c], len, pos,
                             decided, rl_kv_len(all));
                for (size_t k = 0; k < 4; k++) {
                    rl_kv_set_len(part[k], len);
                    if (decided == pos && !rl_kv_truncate_exact(part[k], pos))
                        fail_msg("layers %u-%u refuse a rewind from %u to %u", slices[k][0], slices[k][1] - 1, len,
                                 pos);
                }
                clears += decided == 0 && pos > 0 && pos < len;
                wrapped_exact += decided == pos && pos > 0 && len > hp->swa_window + RL_KV_SLACK && ctxs[c] == 64;
            }
        for (size_t k = 0; k < 4; k++)
            rl_kv_destroy(&part[k]);
        rl_kv_destroy(&all);
    }
    assert_true(clears > 0);
    assert_true(wrapped_exact > 0);
    /* a full layer alone always goes back exactly */
    rl_kv *full = rl_kv_new(hp, 0, 1, 64, RL_KV_TYPE_F32, err, sizeof err);
    rl_kv_set_len(full, 64);
    assert_true(rl_kv_truncate_exact(full, 1));
    rl_kv_destroy(&full);
    rl_model_destroy(&m);
}

/* A sliding-window model whose heads are whole q8_0 blocks (head dim 32):
 * layers 1-3 slide over 8 positions. Written once, removed at exit. */
static char g_synth32[64];
static void remove_synth32(void) { unlink(g_synth32); }
static const char *synth32(void) {
    if (g_synth32[0])
        return g_synth32;
    char err[512];
    rl_synth_spec s;
    assert_int_equal(rl_synth_preset("tiny", &s), 0);
    s.dim = 128, s.n_head = 4, s.n_head_kv = 2, s.head_dim = 32, s.ffn_dim = 256;
    s.swa_window = 8, s.swa_period = 4, s.seed = 7;
    snprintf(g_synth32, sizeof g_synth32, "/tmp/relais-test-forward-%d.gguf", (int)getpid());
    if (rl_synth_write(&s, g_synth32, NULL, NULL, err, sizeof err))
        fail_msg("%s", err);
    atexit(remove_synth32);
    return g_synth32;
}

/* Feeds ids in chunks through the quantized kernels with the cache in kv:
 * every checked position within tol of the reference; returns the logits of
 * the last position (malloc'd). */
static float *typed_run(const char *path, const float *ref, const int32_t *ids, uint32_t chunk, rl_kv_type kv,
                        float tol, double *worst, uint32_t *n_vocab) {
    char err[512], what[96], kvs[32];
    snprintf(what, sizeof what, "%s KV %s chunk %u", path, rl_kv_type_str(kv, kvs, sizeof kvs), chunk);
    rl_runner_opts o = rl_runner_opts_default();
    o.model_path = path, o.n_threads = 2, o.n_ctx = 64, o.progress = false, o.batch = chunk, o.no_gemm = true;
    o.kv_type = kv;
    rl_runner *r = rl_runner_new(&o, err, sizeof err);
    if (!r)
        fail_msg("%s: %s", what, err);
    const uint32_t V = *n_vocab = rl_runner_hparams(r)->n_vocab;
    float *logits = malloc(V * sizeof *logits);
    for (uint32_t p = 0; p < N_TOK; p += chunk) {
        uint32_t n = N_TOK - p < chunk ? N_TOK - p : chunk;
        assert_int_equal(rl_runner_feed(r, ids + p, n, logits, err, sizeof err), 0);
        compare(logits, ref + (size_t)(p + n - 1) * V, V, tol, what, p + n - 1);
        for (uint32_t i = 0; i < V; i++) {
            double d = fabs(logits[i] - ref[(size_t)(p + n - 1) * V + i]);
            *worst = d > *worst ? d : *worst;
        }
    }
    rl_runner_destroy(&r);
    return logits;
}

/* Every KV type across the rings' wrap (40 positions, W = 8): near the
 * reference, and the same bits in one chunk as token by token, because the
 * batch's own keys are converted to the cache's type before it attends. */
static void test_kv_types_across_the_wrap(void **s) {
    (void)s;
    int32_t ids[N_TOK];
    fixed_ids(ids);
    static const struct {
        rl_kv_type kv;
        bool heads32; /* q8_0: only a model with heads of whole blocks */
        float tol;
    } cases[] = {
        {{RL_F16, RL_F16}, false, 0.02f}, {{RL_F32, RL_F16}, false, 0.02f}, {{RL_F16, RL_F32}, false, 0.02f},
        {{RL_F16, RL_F16}, true, 0.02f},  {{RL_Q8_0, RL_Q8_0}, true, 0.2f}, {{RL_F16, RL_Q8_0}, true, 0.2f},
        {{RL_Q8_0, RL_F32}, true, 0.2f},
    };
    const char *paths[2] = {MODEL_SWA, synth32()};
    float *refs[2] = {reference_logits(paths[0], ids), reference_logits(paths[1], ids)};
    const uint32_t chunks[] = {3, 8, 13, 40};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int m = cases[c].heads32;
        char kvs[32];
        double worst = 0;
        uint32_t V;
        float *one = typed_run(paths[m], refs[m], ids, 1, cases[c].kv, cases[c].tol, &worst, &V);
        for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
            float *got = typed_run(paths[m], refs[m], ids, chunks[k], cases[c].kv, cases[c].tol, &worst, &V);
            if (memcmp(got, one, V * sizeof(float)))
                fail_msg("KV %s on %s: chunks of %u give other logits than one by one",
                         rl_kv_type_str(cases[c].kv, kvs, sizeof kvs), paths[m], chunks[k]);
            free(got);
        }
        print_message("KV %-9s %s: max logit deviation from the f32 reference %.5f\n",
                      rl_kv_type_str(cases[c].kv, kvs, sizeof kvs), m ? "head dim 32" : "tiny-swa", worst);
        free(one);
    }
    free(refs[0]), free(refs[1]);
}

/* Bytes per type, the names --kv-type takes, and what a cache refuses. */
static void test_kv_type_bytes_and_names(void **s) {
    (void)s;
    char err[512], buf[32];
    rl_model *m = rl_model_load(MODEL_SWA, NULL, err, sizeof err);
    const rl_hparams *hp = rl_model_hparams(m);
    const uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim,
                   f32 = rl_kv_bytes_for(hp, 0, 4, 100, RL_KV_TYPE_F32);
    assert_int_equal(rl_kv_bytes_for(hp, 0, 4, 100, (rl_kv_type){RL_F16, RL_F16}), f32 / 2);
    assert_int_equal(rl_kv_bytes_for(hp, 0, 4, 100, (rl_kv_type){RL_F32, RL_F16}), f32 * 3 / 4);
    assert_int_equal(rl_kv_bytes_per_token(hp, (rl_kv_type){RL_F16, RL_F16}), hp->n_layer * kv_dim * 4);
    rl_kv *kv = rl_kv_new(hp, 0, 4, 100, (rl_kv_type){RL_F16, RL_F32}, err, sizeof err);
    assert_non_null(kv);
    assert_int_equal(rl_kv_bytes(kv), f32 * 3 / 4);
    rl_kv_destroy(&kv);
    /* heads of 16: q8_0 cannot hold them (a head's dot reads whole blocks of 32) */
    assert_null(rl_kv_new(hp, 0, 4, 100, (rl_kv_type){RL_F16, RL_Q8_0}, err, sizeof err));
    assert_non_null(strstr(err, "multiple of 32"));
    assert_null(rl_kv_new(hp, 0, 4, 100, (rl_kv_type){RL_Q4_0, RL_Q4_0}, err, sizeof err));
    assert_non_null(strstr(err, "f32, f16 or q8_0"));
    rl_model_destroy(&m);
    m = rl_model_load(synth32(), NULL, err, sizeof err);
    hp = rl_model_hparams(m);
    /* q8_0: 34 bytes per 32 elements */
    assert_int_equal(rl_kv_bytes_per_token(hp, (rl_kv_type){RL_Q8_0, RL_Q8_0}),
                     hp->n_layer * 2 * (hp->n_head_kv * hp->head_dim / 32) * 34);
    rl_model_destroy(&m);
    rl_kv_type t;
    assert_int_equal(rl_kv_type_parse("q8_0", &t, err, sizeof err), 0);
    assert_true(t.k == RL_Q8_0 && t.v == RL_Q8_0);
    assert_int_equal(rl_kv_type_parse("F16,q8_0", &t, err, sizeof err), 0);
    assert_true(t.k == RL_F16 && t.v == RL_Q8_0);
    assert_string_equal(rl_kv_type_str(t, buf, sizeof buf), "f16,q8_0");
    assert_string_equal(rl_kv_type_str(RL_KV_TYPE_DEFAULT, buf, sizeof buf), "f16");
    const char *bad[] = {"", "f8", "q4_0", "f16,", ",f16", "f16,q8_0,f32", "f16 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rl_kv_type_parse(bad[i], &t, err, sizeof err), -1);
        assert_non_null(strstr(err, "expected f32, f16 or q8_0"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_against_masked_reference),
        cmocka_unit_test(test_quantized_against_reference),
        cmocka_unit_test(test_split_ranges),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_truncate_decision),
        cmocka_unit_test(test_kv_memory),
        cmocka_unit_test(test_batch_independence),
        cmocka_unit_test(test_kv_types_across_the_wrap),
        cmocka_unit_test(test_kv_type_bytes_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
