/* Speculative decoding in one process (executor_session.c, draft.c): prompt
 * lookup's guesses, the draft model's vocabulary check, greedy output with
 * a draft equal to without one, and the statistical test that a seeded
 * sampled run with a draft keeps the target's distribution. The cluster's
 * side (1 to 4 nodes, a node lost) is tests/speculate_cluster.sh. */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "draft.h"
#include "executor.h"
#include "forward.h"
#include "model.h"
#include "scheduler.h"
#include "tokenizer.h"
#include "weights_slice.h"

#define MODELS RELAIS_SHARED_DIR "/models/"

typedef struct {
    rl_model *m;
    rl_tokenizer *tok;
    rl_executor *x;
} engine;

static void engine_open(engine *e, const char *path) {
    char err[256];
    rl_model_opts mo = rl_model_opts_default();
    e->m = rl_model_load(path, &mo, err, sizeof err);
    assert_non_null(e->m);
    e->tok = rl_tok_new(rl_model_gguf(e->m), err, sizeof err);
    assert_non_null(e->tok);
    e->x = rl_executor_local_new(e->m, 1, 64, 1, RL_GEMM_MIN_DEFAULT, RL_KV_TYPE_F32, err, sizeof err);
    assert_non_null(e->x);
}

static void engine_close(engine *e) {
    rl_executor_destroy(&e->x);
    rl_tok_destroy(&e->tok);
    rl_model_destroy(&e->m);
}

/* Prompt lookup proposes what followed the latest earlier occurrence of the
 * longest tail it finds again (up to 3 ids), and nothing when there is none. */
static void test_ngram(void **state) {
    (void)state;
    char err[256];
    rl_draft *d = rl_draft_new("ngram", NULL, 1, 0, err, sizeof err);
    assert_non_null(d);
    const int32_t a[] = {7, 1, 2, 3, 9, 9, 1, 2, 3, 4, 5, 1, 2, 3};
    int32_t out[RL_DRAFT_MAX];
    rl_qdist q[RL_DRAFT_MAX];
    /* tail 1 2 3: latest earlier at index 6, followed by 4 5 1 2 3 */
    assert_int_equal(rl_draft_propose(d, NULL, NULL, a, 14, out, q, 4), 4);
    assert_int_equal(out[0], 4), assert_int_equal(out[1], 5), assert_int_equal(out[2], 1);
    assert_int_equal(rl_draft_propose(d, NULL, NULL, a, 14, out, q, 16), 5); /* up to the end of what is known */
    const int32_t b[] = {1, 2, 3, 4};                                        /* no tail seen before */
    assert_int_equal(rl_draft_propose(d, NULL, NULL, b, 4, out, q, 4), 0);
    const int32_t c[] = {5, 6, 8, 6}; /* only the last id is seen before */
    assert_int_equal(rl_draft_propose(d, NULL, NULL, c, 4, out, q, 4), 2);
    assert_int_equal(out[0], 8), assert_int_equal(out[1], 6);
    rl_draft_destroy(&d);
    assert_null(d);
    assert_null(rl_draft_new("ids:1,x", NULL, 1, 0, err, sizeof err));
    assert_non_null(strstr(err, "comma-separated"));
}

/* A draft model must have the target's token list: another one is refused
 * with the first difference named; the same one drafts. */
static void test_draft_model_vocab(void **state) {
    (void)state;
    engine e;
    char err[256];
    engine_open(&e, MODELS "tiny-f32.gguf");
    rl_draft *d = rl_draft_new(MODELS "stories260K.gguf", e.tok, 1, 64, err, sizeof err);
    assert_null(d);
    assert_non_null(strstr(err, "the vocabularies differ"));
    assert_non_null(strstr(err, "token "));
    d = rl_draft_new(MODELS "small-q6_k.gguf", e.tok, 1, 64, err, sizeof err);
    assert_null(d);
    assert_non_null(strstr(err, "vocabularies differ"));
    d = rl_draft_new(MODELS "tiny-q8_0.gguf", e.tok, 1, 64, err, sizeof err);
    assert_non_null(d);
    const int32_t ids[] = {1, 300, 301, 302};
    int32_t out[RL_DRAFT_MAX];
    rl_qdist q[RL_DRAFT_MAX];
    assert_int_equal(rl_draft_propose(d, NULL, NULL, ids, 4, out, q, 3), 3);
    for (int i = 0; i < 3; i++)
        assert_true(out[i] >= 0 && out[i] < 512);
    rl_draft_destroy(&d);
    engine_close(&e);
}

/* n greedy ids after prompt, with draft d (NULL: none) of up to k per pass. */
static void greedy(engine *e, rl_draft *d, uint32_t k, const int32_t *prompt, uint32_t n_prompt, int32_t *out,
                   uint32_t n) {
    char err[256];
    rl_xsession *s = rl_xsession_new(e->x, 256, false);
    rl_sampler_params p = rl_sampler_defaults();
    rl_xsession_begin(s, &p, 0);
    rl_xsession_set_draft(s, d, k);
    assert_int_equal(rl_xsession_step(s, prompt, n_prompt, &out[0], NULL, err, sizeof err), 0);
    for (uint32_t got = 1; got < n;) {
        uint32_t m;
        assert_int_equal(rl_xsession_next(s, out[got - 1], out + got, n - got, &m, NULL, err, sizeof err), 0);
        assert_true(m >= 1 && m <= n - got && m <= k + 1);
        got += m;
    }
    rl_xsession_destroy(&s);
}

/* Greedy output with a draft is that without one, id for id: prompt lookup,
 * the model itself as its own draft (all accepted) and a spoiled draft, on a
 * quantized model and a sliding-window one whose ring a rollback outruns. */
static void test_greedy_equal(void **state) {
    (void)state;
    const char *models[] = {MODELS "tiny-q4_0.gguf", MODELS "tiny-swa.gguf", MODELS "stories260K.gguf"};
    const int32_t prompt[] = {1, 300, 301, 302, 303, 300, 301, 302, 303, 300};
    enum { N = 60 };
    for (size_t mi = 0; mi < sizeof models / sizeof *models; mi++) {
        engine e;
        engine_open(&e, models[mi]);
        int32_t base[N], got[N];
        greedy(&e, NULL, 0, prompt, 10, base, N);
        char spec[2048] = "ids:", bad[2048] = "ids:", err[256];
        for (int i = 0; i < 10 + N; i++) {
            int32_t v = i < 10 ? prompt[i] : base[i - 10];
            snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%s%d", i ? "," : "", v);
            snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "%s%d", i ? "," : "", i % 4 ? v : (v + 1) % 500);
        }
        const char *drafts[] = {"ngram", spec, bad};
        for (size_t di = 0; di < 3; di++)
            for (uint32_t k = 1; k <= 8; k *= 2) {
                rl_draft *d = rl_draft_new(drafts[di], e.tok, 1, 256, err, sizeof err);
                assert_non_null(d);
                memset(got, 0xff, sizeof got);
                greedy(&e, d, k, prompt, 10, got, N);
                assert_memory_equal(base, got, sizeof base);
                rl_draft_destroy(&d);
            }
        engine_close(&e);
    }
}

/* softmax of the top logits at temperature t. */
static void probs_of(const rl_top *top, float t, double *p) {
    double z = 0;
    for (uint32_t i = 0; i < top->n; i++)
        z += p[i] = exp((top->vals[i] - top->vals[0]) / t);
    for (uint32_t i = 0; i < top->n; i++)
        p[i] /= z;
}

/* Total variation distance between counts (of n draws) and p over top's ids;
 * a count outside them adds its whole share. */
static double tv_of(const uint32_t *counts, uint32_t n, const rl_top *top, const double *p, uint32_t n_vocab) {
    double tv = 0, in = 0;
    for (uint32_t i = 0; i < top->n; i++) {
        tv += fabs((double)counts[top->ids[i]] / n - p[i]);
        in += counts[top->ids[i]];
    }
    (void)n_vocab;
    return 0.5 * (tv + (n - in) / n);
}

/* The exact distributions the statistical tests compare with: the prompt's
 * ids (*prompt, owned by the caller), the target's two greedy ids after it
 * (d1, d2) and the probabilities at temperature 1 of the top K ids at each
 * (p1 after the prompt, p2 after the prompt and d1). */
typedef struct {
    int32_t *prompt;
    size_t n_prompt;
    int32_t d1, d2;
    rl_top top1, top2;
} exact_two;

static void exact_two_of(engine *e, uint32_t K, exact_two *x, double *p1, double *p2) {
    char err[256];
    const char *text = "Once upon a time, there was a little";
    assert_int_equal(rl_tok_encode(e->tok, text, strlen(text), true, false, &x->prompt, &x->n_prompt), 0);
    rl_sampler_params g = rl_sampler_defaults();
    rl_xsession *s = rl_xsession_new(e->x, 256, false);
    rl_xsession_begin(s, &g, K);
    assert_int_equal(rl_xsession_step(s, x->prompt, (uint32_t)x->n_prompt, &x->d1, &x->top1, err, sizeof err), 0);
    assert_int_equal(rl_xsession_step(s, &x->d1, 1, &x->d2, &x->top2, err, sizeof err), 0);
    rl_xsession_destroy(&s);
    probs_of(&x->top1, 1.0f, p1);
    probs_of(&x->top2, 1.0f, p2);
}

/* The statistical test: seeded sampling (temperature 1, top-k 8) of the two
 * ids after a prompt, with a draft of the target's two likeliest ids, over
 * N seeds. The first id must follow p(.|prompt); the second, when the first
 * was the draft's (so it came from the same verifying pass), p(.|prompt,
 * draft). Exact distributions from the target's own top logits; the bound:
 * total variation <= 0.05 (its expectation for N = 4000 draws over 8 ids is
 * below 0.02; a sampler that kept every drafted id would be off by
 * 1 - p(draft), here over 0.3). The seeds are fixed: the test is
 * deterministic. */
static void test_sampled_distribution(void **state) {
    (void)state;
    enum { N = 4000, K = 8 };
    engine e;
    char err[256];
    engine_open(&e, MODELS "stories260K.gguf");
    const uint32_t V = e.x->n_vocab;
    /* the exact distributions, from the top logits of greedy steps */
    exact_two x;
    double p1[K], p2[K];
    exact_two_of(&e, K, &x, p1, p2);
    int32_t *prompt = x.prompt, d1 = x.d1, d2 = x.d2;
    const size_t n_prompt = x.n_prompt;
    const rl_top top1 = x.top1, top2 = x.top2;
    assert_true(p1[0] < 0.7); /* a real choice: the draft is often rejected */
    /* the draft: the prompt and the two likeliest ids */
    char spec[1024] = "ids:";
    for (size_t i = 0; i < n_prompt; i++)
        snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%d,", prompt[i]);
    snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%d,%d", d1, d2);
    rl_draft *d = rl_draft_new(spec, e.tok, 1, 256, err, sizeof err);
    assert_non_null(d);
    uint32_t *c1 = calloc(V, sizeof *c1), *c2 = calloc(V, sizeof *c2), n2 = 0, accepted = 0;
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 1.0f, p.top_k = K;
    for (uint32_t seed = 1; seed <= N; seed++) {
        p.seed = seed;
        rl_xsession *s = rl_xsession_new(e.x, 256, false);
        rl_xsession_begin(s, &p, 0);
        rl_xsession_set_draft(s, d, 2);
        int32_t last, out[3];
        uint32_t m;
        /* the prompt but its last id, which the verifying pass feeds before the draft */
        assert_int_equal(rl_xsession_step(s, prompt, (uint32_t)n_prompt - 1, &last, NULL, err, sizeof err), 0);
        assert_int_equal(rl_xsession_next(s, prompt[n_prompt - 1], out, 3, &m, NULL, err, sizeof err), 0);
        c1[out[0]]++;
        if (out[0] == d1) {
            assert_true(m >= 2); /* the draft's second id was verified in the same pass */
            c2[out[1]]++, n2++;
        }
        accepted += rl_xsession_spec_stats(s).accepted;
        rl_xsession_destroy(&s);
    }
    const double tv1 = tv_of(c1, N, &top1, p1, V), tv2 = tv_of(c2, n2, &top2, p2, V);
    printf("first id: TV %.4f over %d seeds; second id after the draft's first: TV %.4f over %u; %u drafted ids "
           "accepted\n",
           tv1, N, tv2, n2, accepted);
    assert_true(tv1 <= 0.05);
    assert_true(n2 > N / 4);
    assert_true(tv2 <= 0.05 * sqrt((double)N / n2));
    assert_true(accepted > N / 4 && accepted < 2 * N); /* both acceptance and rejection happened */
    free(c1), free(c2), free(prompt);
    rl_draft_destroy(&d);
    engine_close(&e);
}

/* Writes the first `layers` layers of stories260K as a draft model (`relais
 * synth --cut-from`) to path, a mkstemp template. */
static void write_cut(char *path, uint32_t layers) {
    char err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    weights_slice *w = weights_slice_draft(MODELS "stories260K.gguf", layers, err, sizeof err);
    assert_non_null(w);
    uint8_t *buf = malloc(weights_slice_size(w));
    weights_slice_read(w, 0, buf, weights_slice_size(w));
    assert_int_equal(write(fd, buf, weights_slice_size(w)), (ssize_t)weights_slice_size(w));
    close(fd);
    free(buf);
    weights_slice_destroy(&w);
}

/* A draft cut from the target (its first 4 of 5 layers, `relais synth
 * --cut-from`): a valid model with the target's vocabulary, whose greedy
 * drafts the target accepts often, and the output stays the target's. */
static void test_cut_draft(void **state) {
    (void)state;
    char err[256], path[] = "/tmp/relais-test-draft-XXXXXX";
    write_cut(path, 4);
    engine e;
    engine_open(&e, MODELS "stories260K.gguf");
    rl_draft *d = rl_draft_new(path, e.tok, 1, 256, err, sizeof err);
    assert_non_null(d);
    int32_t *prompt;
    size_t n_prompt;
    const char *text = "Once upon a time, there was a little dog. The dog liked to";
    assert_int_equal(rl_tok_encode(e.tok, text, strlen(text), true, false, &prompt, &n_prompt), 0);
    enum { N = 60 };
    int32_t base[N], got[N];
    greedy(&e, NULL, 0, prompt, (uint32_t)n_prompt, base, N);
    rl_xsession *s = rl_xsession_new(e.x, 256, false);
    rl_sampler_params p = rl_sampler_defaults();
    rl_xsession_begin(s, &p, 0);
    rl_xsession_set_draft(s, d, 4);
    assert_int_equal(rl_xsession_step(s, prompt, (uint32_t)n_prompt, &got[0], NULL, err, sizeof err), 0);
    for (uint32_t have = 1, m; have < N; have += m)
        assert_int_equal(rl_xsession_next(s, got[have - 1], got + have, N - have, &m, NULL, err, sizeof err), 0);
    assert_memory_equal(base, got, sizeof base);
    rl_xspec_stats st = rl_xsession_spec_stats(s);
    printf("cut draft (4 of 5 layers): %llu of %llu drafted ids accepted\n", (unsigned long long)st.accepted,
           (unsigned long long)st.drafted);
    assert_true(st.accepted * 5 > st.drafted); /* more than a fifth: a real draft, not noise */
    rl_xsession_destroy(&s);
    rl_draft_destroy(&d);
    free(prompt);
    engine_close(&e);
    unlink(path);
}

/* One pass of a sampled run per seed 1..n with draft spec: the first id
 * counted in c1, the second in c2 when the first was d1 and the draft's
 * first (so the second came from the same pass); *acc of *drafted kept. */
static void sampled_first_ids(engine *e, const char *spec, const rl_sampler_params *base, const int32_t *prompt,
                              uint32_t n_prompt, int32_t d1, uint32_t n, uint32_t *c1, uint32_t *c2, uint32_t *n2,
                              uint64_t *acc, uint64_t *drafted) {
    char err[256];
    rl_draft *d = rl_draft_new(spec, e->tok, 1, 256, err, sizeof err);
    assert_non_null(d);
    rl_sampler_params p = *base;
    for (uint32_t seed = 1; seed <= n; seed++) {
        p.seed = seed;
        rl_xsession *s = rl_xsession_new(e->x, 256, false);
        rl_xsession_begin(s, &p, 0);
        rl_xsession_set_draft(s, d, 2);
        int32_t last, out[3];
        uint32_t m;
        assert_int_equal(rl_xsession_step(s, prompt, n_prompt - 1, &last, NULL, err, sizeof err), 0);
        assert_int_equal(rl_xsession_next(s, prompt[n_prompt - 1], out, 3, &m, NULL, err, sizeof err), 0);
        const rl_xspec_stats st = rl_xsession_spec_stats(s);
        c1[out[0]]++;
        if (out[0] == d1 && m >= 2)
            c2[out[1]]++, (*n2)++;
        *acc += st.accepted, *drafted += st.drafted;
        rl_xsession_destroy(&s);
    }
    rl_draft_destroy(&d);
}

/* Speculative sampling with a draft model that samples (a cut of the
 * target's first 3 layers, drafting 2 ids): over N seeds at temperature 1,
 * top-k 16, the first id follows p(.|prompt) and the second, after the
 * likeliest first, p(.|prompt, it): total variation <= 0.05 (measured
 * 0.024 and 0.008; a residual drawn from p instead of max(0, p - q) gives
 * 0.16, keeping every drafted id more). And the p/q rule keeps more drafted
 * ids than the equality rule on the same sampled draft ("eq:"; 40% against
 * 15%), whose distribution is checked too. The seeds are fixed: the test
 * is deterministic. */
static void test_sampled_draft_model(void **state) {
    (void)state;
    enum { N = 2500, K = 16 };
    char path[] = "/tmp/relais-test-draft-XXXXXX", eq[64];
    write_cut(path, 3);
    snprintf(eq, sizeof eq, "eq:%s", path);
    engine e;
    engine_open(&e, MODELS "stories260K.gguf");
    const uint32_t V = e.x->n_vocab;
    exact_two x;
    double p1[K], p2[K];
    exact_two_of(&e, K, &x, p1, p2);
    int32_t *prompt = x.prompt, d1 = x.d1;
    const size_t n_prompt = x.n_prompt;
    const rl_top top1 = x.top1, top2 = x.top2;
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 1.0f, p.top_k = K;
    const char *specs[] = {path, eq};
    double rate[2], tv1[2], tv2[2];
    uint32_t n2[2];
    for (int r = 0; r < 2; r++) {
        uint32_t *c1 = calloc(V, sizeof *c1), *c2 = calloc(V, sizeof *c2);
        uint64_t acc = 0, drafted = 0;
        n2[r] = 0;
        sampled_first_ids(&e, specs[r], &p, prompt, (uint32_t)n_prompt, d1, N, c1, c2, &n2[r], &acc, &drafted);
        tv1[r] = tv_of(c1, N, &top1, p1, V), tv2[r] = tv_of(c2, n2[r], &top2, p2, V);
        rate[r] = (double)acc / (double)drafted;
        printf("%s rule: first id TV %.4f over %d seeds; second after the likeliest first TV %.4f over %u; "
               "%.1f%% of %llu drafted ids kept\n",
               r ? "equality" : "p/q", tv1[r], N, tv2[r], n2[r], 100 * rate[r], (unsigned long long)drafted);
        free(c1), free(c2);
    }
    for (int r = 0; r < 2; r++) {
        assert_true(tv1[r] <= 0.05);
        assert_true(n2[r] > N / 10);
        assert_true(tv2[r] <= 0.05 * sqrt((double)N / n2[r]));
    }
    assert_true(rate[0] > rate[1] + 0.05); /* sum(min(p, q)) against sum(p q) */
    free(prompt);
    engine_close(&e);
    unlink(path);
}

/* ---- serving: the scheduler with a draft ---- */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int32_t ids[128];
    uint32_t n;
    bool done;
} collect;

static bool collect_token(void *ud, int32_t id, const rl_top *top) {
    (void)top;
    collect *c = ud;
    pthread_mutex_lock(&c->lock);
    if (c->n < 128)
        c->ids[c->n++] = id;
    pthread_mutex_unlock(&c->lock);
    return true;
}

static void collect_done(void *ud, rl_finish why, const char *err) {
    collect *c = ud;
    (void)why, (void)err;
    pthread_mutex_lock(&c->lock);
    c->done = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Requests r[0..n) through a scheduler of x with draft d (NULL: none); the
 * odd ones opt out ("speculative": false); all sample with sp. Their ids
 * in c; the stats in *st. */
static void serve_all(engine *e, rl_draft *d, const rl_sampler_params *sp, const int32_t (*prompts)[12], uint32_t n,
                      collect *c, rl_sched_stats *st) {
    char err[256];
    rl_sched_opts o = {.max_sessions = 4, .max_queue = 8, .n_ctx = 256, .draft = d, .draft_max = 6};
    rl_sched *s = rl_sched_new(e->x, e->tok, &o, err, sizeof err);
    assert_non_null(s);
    for (uint32_t i = 0; i < n; i++) {
        memset(&c[i], 0, sizeof c[i]);
        pthread_mutex_init(&c[i].lock, NULL), pthread_cond_init(&c[i].cond, NULL);
        rl_sched_req r = {.prompt = prompts[i],
                          .n_prompt = 12,
                          .max_tokens = 90,
                          .sampling = *sp,
                          .sink = {collect_token, collect_done, &c[i]},
                          .no_draft = i % 2 == 1};
        uint64_t id;
        assert_int_equal(rl_sched_submit(s, &r, &id), RL_SCHED_OK);
    }
    for (uint32_t i = 0; i < n; i++) {
        pthread_mutex_lock(&c[i].lock);
        while (!c[i].done)
            pthread_cond_wait(&c[i].cond, &c[i].lock);
        pthread_mutex_unlock(&c[i].lock);
    }
    rl_sched_stats_get(s, st);
    rl_sched_destroy(&s);
}

/* stories260K with an executor for four sessions (f32 KV), and four
 * prompts of 12 ids that repeat with different periods. */
static void serve_setup(engine *e, int32_t prompts[4][12]) {
    char err[256];
    engine_open(e, MODELS "stories260K.gguf");
    rl_executor_destroy(&e->x);
    e->x = rl_executor_local_new(e->m, 1, 64, 4, RL_GEMM_MIN_DEFAULT, RL_KV_TYPE_F32, err, sizeof err);
    assert_non_null(e->x);
    for (uint32_t i = 0; i < 4; i++)
        for (uint32_t j = 0; j < 12; j++)
            prompts[i][j] = j == 0 ? 1 : (int32_t)(300 + (j % (3 + i)) * 7 + i);
}

/* Served greedy requests, four at once in the same micro-batches, half of
 * them speculating with prompt lookup: each gets the ids it gets without
 * any draft, and drafted ids were verified and accepted. */
static void test_serve_greedy_equal(void **state) {
    (void)state;
    engine e;
    char err[256];
    int32_t prompts[4][12];
    serve_setup(&e, prompts);
    collect base[4], spec[4];
    rl_sched_stats st0, st;
    const rl_sampler_params greedy = rl_sampler_defaults();
    serve_all(&e, NULL, &greedy, prompts, 4, base, &st0);
    rl_draft *d = rl_draft_new("ngram", NULL, 1, 0, err, sizeof err);
    serve_all(&e, d, &greedy, prompts, 4, spec, &st);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(base[i].n, spec[i].n);
        assert_memory_equal(base[i].ids, spec[i].ids, base[i].n * sizeof *base[i].ids);
    }
    printf("served: %llu ids drafted, %llu accepted; %llu micro-batches against %llu without a draft\n",
           (unsigned long long)st.drafted, (unsigned long long)st.accepted, (unsigned long long)st.batches,
           (unsigned long long)st0.batches);
    assert_int_equal(st0.drafted, 0);
    assert_true(st.drafted > 0 && st.accepted > 0 && st.accepted <= st.drafted);
    assert_int_equal(st.generated, st0.generated);
    rl_draft_destroy(&d);
    engine_close(&e);
}

/* Served sampled requests with a draft model that samples: a seeded
 * request's ids do not depend on what else is served (its draft draws from
 * its own stream), and drafted ids are kept. */
static void test_serve_sampled_draft(void **state) {
    (void)state;
    engine e;
    char err[256], path[] = "/tmp/relais-test-draft-XXXXXX";
    write_cut(path, 4);
    int32_t prompts[4][12];
    serve_setup(&e, prompts);
    rl_sampler_params sp = rl_sampler_defaults();
    sp.temperature = 0.8f, sp.seed = 42;
    rl_draft *d = rl_draft_new(path, e.tok, 1, 256, err, sizeof err);
    assert_non_null(d);
    collect all[4], alone[1];
    rl_sched_stats st, st1;
    serve_all(&e, d, &sp, prompts, 4, all, &st);
    serve_all(&e, d, &sp, prompts, 1, alone, &st1);
    assert_int_equal(all[0].n, alone[0].n);
    assert_memory_equal(all[0].ids, alone[0].ids, alone[0].n * sizeof *alone[0].ids);
    printf("served sampled: %llu ids drafted, %llu accepted\n", (unsigned long long)st.drafted,
           (unsigned long long)st.accepted);
    assert_true(st1.drafted > 0 && st1.accepted > 0);
    rl_draft_destroy(&d);
    engine_close(&e);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ngram),
        cmocka_unit_test(test_draft_model_vocab),
        cmocka_unit_test(test_greedy_equal),
        cmocka_unit_test(test_sampled_distribution),
        cmocka_unit_test(test_serve_greedy_equal),
        cmocka_unit_test(test_cut_draft),
        cmocka_unit_test(test_sampled_draft_model),
        cmocka_unit_test(test_serve_sampled_draft),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
