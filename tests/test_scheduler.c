/* Tests of the serving scheduler over the local executor: a request's ids
 * are the same alone and among others (greedy and seeded sampling, prompts
 * chunked differently), the queue bound, stop by the sink, cancellation,
 * shutdown with requests in flight, every cache freed at the end, and a
 * conversation's ids the same with the prompt cache as without. Also one
 * session's rewind (rl_xsession_rewind, what `relais chat` and the draft
 * model use) past a sliding window. */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "executor.h"
#include "forward.h"
#include "model.h"
#include "scheduler.h"
#include "tokenizer.h"

#define MODEL RELAIS_SHARED_DIR "/models/tiny-q8_0.gguf"
#define MODEL_SWA RELAIS_SHARED_DIR "/models/tiny-swa.gguf"
#define MAX_IDS 64

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int32_t ids[MAX_IDS];
    int n;
    int stop_after; /* sink returns false at this many ids (0 = never) */
    char tag;       /* when set, each id is logged in `order` under this tag */
    bool hold;      /* on_token blocks while set: pins a request mid-generation */
    int done;       /* on_done calls */
    int cached;     /* on_cached's count; -1 before it is called */
    rl_finish why;
    char err[256];
} sink_state;

typedef struct {
    rl_model *m;
    rl_tokenizer *tok;
    rl_executor *x;
} fixture;

/* Order in which tagged requests' tokens arrived. */
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static char order[512];
static int n_order;

static bool on_token(void *ud, int32_t id, const rl_top *top) {
    sink_state *k = ud;
    (void)top;
    if (k->tag) {
        pthread_mutex_lock(&order_lock);
        if (n_order < (int)sizeof order)
            order[n_order++] = k->tag;
        pthread_mutex_unlock(&order_lock);
    }
    pthread_mutex_lock(&k->lock);
    if (k->n < MAX_IDS)
        k->ids[k->n++] = id;
    bool go_on = k->stop_after == 0 || k->n < k->stop_after;
    pthread_cond_broadcast(&k->cond);
    while (k->hold)
        pthread_cond_wait(&k->cond, &k->lock);
    pthread_mutex_unlock(&k->lock);
    return go_on;
}

static void on_cached(void *ud, uint32_t n) {
    sink_state *k = ud;
    pthread_mutex_lock(&k->lock);
    k->cached = (int)n;
    pthread_mutex_unlock(&k->lock);
}

static void on_done(void *ud, rl_finish why, const char *err) {
    sink_state *k = ud;
    pthread_mutex_lock(&k->lock);
    k->done++;
    k->why = why;
    snprintf(k->err, sizeof k->err, "%s", err ? err : "");
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->lock);
}

static void sink_init(sink_state *k) {
    memset(k, 0, sizeof *k);
    k->cached = -1;
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->cond, NULL);
}

static void sink_fini(sink_state *k) {
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->cond);
}

/* Waits (at most 60 s) for on_done. */
static void sink_wait(sink_state *k) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&k->lock);
    while (!k->done)
        if (pthread_cond_timedwait(&k->cond, &k->lock, &until) != 0)
            break;
    int done = k->done;
    pthread_mutex_unlock(&k->lock);
    assert_int_equal(done, 1);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    char err[256];
    f->m = rl_model_load(MODEL, NULL, err, sizeof err);
    assert_non_null(f->m);
    f->tok = rl_tok_new(rl_model_gguf(f->m), err, sizeof err);
    assert_non_null(f->tok);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    rl_executor_destroy(&f->x);
    rl_tok_destroy(&f->tok);
    rl_model_destroy(&f->m);
    free(f);
    return 0;
}

static rl_sched *sched_new(fixture *f, uint32_t max_batch, uint32_t max_sessions, uint32_t max_queue, uint32_t chunk) {
    char err[256];
    rl_executor_destroy(&f->x);
    /* sgemm allowed from the engine's default: the scheduler's segments do
     * not allow it, so its micro-batches still use the quantized kernels */
    f->x = rl_executor_local_new(f->m, 2, max_batch, max_sessions, rl_gemm_min_for(false, 0), RL_KV_TYPE_DEFAULT, err,
                                 sizeof err);
    assert_non_null(f->x);
    rl_sched_opts o = {.max_sessions = max_sessions, .max_queue = max_queue, .n_ctx = 256, .prefill_chunk = chunk};
    rl_sched *s = rl_sched_new(f->x, f->tok, &o, err, sizeof err);
    assert_non_null(s);
    return s;
}

static void prompt_of(int which, int32_t *ids, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        ids[i] = (int32_t)(3 + (i * 37 + (uint32_t)which * 101) % 500);
}

static uint64_t submit(rl_sched *s, sink_state *k, int which, uint32_t n_prompt, uint32_t max_tokens, float temp) {
    int32_t ids[200];
    prompt_of(which, ids, n_prompt);
    rl_sched_req r = {.prompt = ids, .n_prompt = n_prompt, .max_tokens = max_tokens};
    r.sampling = rl_sampler_defaults();
    r.sampling.temperature = temp;
    r.sampling.seed = 1234 + (uint64_t)which;
    r.sampling.presence_penalty = temp > 0 ? 0.5f : 0.0f;
    r.sink = (rl_sched_sink){on_token, on_done, k, NULL};
    uint64_t id = 0;
    assert_int_equal(rl_sched_submit(s, &r, &id), RL_SCHED_OK);
    return id;
}

static uint32_t executor_sessions(rl_executor *x) {
    rl_xnode node;
    assert_int_equal(x->ops->nodes(x, &node, 1), 1);
    return node.sessions;
}

/* Each request alone, then all of them at once with small micro-batches and
 * prompt chunks: the ids must not change. */
static void test_independent_of_load(void **state) {
    fixture *f = *state;
    enum { N = 6 };
    const uint32_t lens[N] = {5, 40, 1, 120, 17, 64};
    const float temps[N] = {0, 0.8f, 0, 1.0f, 0, 0.7f};
    sink_state alone[N], loaded[N];
    rl_sched *s = sched_new(f, 64, 4, 16, 0);
    for (int i = 0; i < N; i++) {
        sink_init(&alone[i]);
        submit(s, &alone[i], i, lens[i], 24, temps[i]);
        sink_wait(&alone[i]);
        assert_int_equal(alone[i].why == RL_FINISH_LENGTH || alone[i].why == RL_FINISH_STOP, 1);
    }
    rl_sched_destroy(&s);
    /* smaller batches, 7-token prompt chunks, 3 slots: queueing, interleaving */
    s = sched_new(f, 12, 3, 16, 7);
    for (int i = 0; i < N; i++) {
        sink_init(&loaded[i]);
        submit(s, &loaded[i], i, lens[i], 24, temps[i]);
    }
    for (int i = 0; i < N; i++) {
        sink_wait(&loaded[i]);
        assert_int_equal(loaded[i].why, alone[i].why);
        assert_int_equal(loaded[i].n, alone[i].n);
        assert_memory_equal(loaded[i].ids, alone[i].ids, (size_t)alone[i].n * sizeof(int32_t));
        sink_fini(&alone[i]), sink_fini(&loaded[i]);
    }
    rl_sched_stats st;
    rl_sched_stats_get(s, &st);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.queued, 0);
    assert_true(st.batches > 0 && st.batch_tokens <= st.batches * 12);
    assert_int_equal(executor_sessions(f->x), 0);
    rl_sched_destroy(&s);
}

/* Waits (at most 60 s) until a held request has produced its first id: it
 * is then active, and stays so until released. */
static void wait_held(sink_state *k) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&k->lock);
    while (k->n == 0 && !k->done)
        if (pthread_cond_timedwait(&k->cond, &k->lock, &until) != 0)
            break;
    int n = k->n;
    pthread_mutex_unlock(&k->lock);
    assert_int_equal(n, 1);
}

static void release(sink_state *k) {
    pthread_mutex_lock(&k->lock);
    k->hold = false;
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->lock);
}

/* One slot, one queue place: a third request is refused; a cancelled queued
 * request ends CANCELLED without having run. */
static void test_queue_bound_and_cancel(void **state) {
    fixture *f = *state;
    sink_state a, b, c;
    sink_init(&a), sink_init(&b), sink_init(&c);
    rl_sched *s = sched_new(f, 16, 1, 1, 0);
    a.hold = true;
    uint64_t ida = submit(s, &a, 0, 100, 150, 0);
    wait_held(&a);
    rl_sched_stats st;
    rl_sched_stats_get(s, &st);
    assert_int_equal(st.active, 1);
    uint64_t idb = submit(s, &b, 1, 10, 10, 0);
    int32_t ids[4] = {5, 6, 7, 8};
    rl_sched_req r = {.prompt = ids, .n_prompt = 4, .max_tokens = 4, .sink = {on_token, on_done, &c}};
    r.sampling = rl_sampler_defaults();
    uint64_t idc;
    assert_int_equal(rl_sched_submit(s, &r, &idc), RL_SCHED_EFULL);
    rl_sched_cancel(s, idb);
    rl_sched_cancel(s, ida);
    release(&a);
    sink_wait(&b);
    assert_int_equal(b.why, RL_FINISH_CANCELLED);
    assert_int_equal(b.n, 0);
    sink_wait(&a);
    assert_int_equal(a.why, RL_FINISH_CANCELLED);
    assert_true(a.n < 150);
    rl_sched_cancel(s, 987654);  /* unknown: ignored */
    assert_int_equal(c.done, 0); /* refused: never called */
    rl_sched_destroy(&s);
    assert_int_equal(executor_sessions(f->x), 0);
    sink_fini(&a), sink_fini(&b), sink_fini(&c);
}

static void test_stop_by_sink_and_limits(void **state) {
    fixture *f = *state;
    sink_state k;
    sink_init(&k);
    k.stop_after = 3;
    rl_sched *s = sched_new(f, 16, 2, 4, 0);
    submit(s, &k, 2, 8, 50, 0);
    sink_wait(&k);
    assert_int_equal(k.why, RL_FINISH_STOP);
    assert_int_equal(k.n, 3);
    /* prompt plus max_tokens beyond the context, empty prompt, zero tokens */
    int32_t ids[1] = {5};
    rl_sched_req r = {.prompt = ids, .n_prompt = 1, .max_tokens = 256, .sink = {on_token, on_done, &k}};
    uint64_t id;
    assert_int_equal(rl_sched_submit(s, &r, &id), RL_SCHED_EINVAL);
    r.max_tokens = 0;
    assert_int_equal(rl_sched_submit(s, &r, &id), RL_SCHED_EINVAL);
    r.n_prompt = 0, r.max_tokens = 4;
    assert_int_equal(rl_sched_submit(s, &r, &id), RL_SCHED_EINVAL);
    rl_sched_shutdown(s);
    r.n_prompt = 1;
    assert_int_equal(rl_sched_submit(s, &r, &id), RL_SCHED_ESTOPPED);
    rl_sched_destroy(&s);
    assert_int_equal(k.done, 1);
    sink_fini(&k);
}

/* Shutdown with requests running and queued: each sink ends exactly once. */
static void test_shutdown_in_flight(void **state) {
    fixture *f = *state;
    enum { N = 5 };
    sink_state k[N];
    rl_sched *s = sched_new(f, 16, 2, 8, 0);
    for (int i = 0; i < N; i++) {
        sink_init(&k[i]);
        submit(s, &k[i], i, 30, 200, 0.5f);
    }
    rl_sched_destroy(&s);
    for (int i = 0; i < N; i++) {
        assert_int_equal(k[i].done, 1);
        if (k[i].why == RL_FINISH_CANCELLED)
            assert_string_equal(k[i].err, "server shutting down");
        sink_fini(&k[i]);
    }
    assert_int_equal(executor_sessions(f->x), 0);
}

/* A long prompt is prefilled in chunks between the decode steps of a
 * request already generating: that request keeps getting tokens. */
static void test_long_prompt_does_not_freeze_decode(void **state) {
    fixture *f = *state;
    sink_state a, b;
    sink_init(&a), sink_init(&b);
    a.tag = 'a', b.tag = 'b';
    rl_sched *s = sched_new(f, 16, 2, 2, 8);
    int32_t ids[200];
    rl_sched_req r = {.n_prompt = 4, .max_tokens = 60, .sink = {on_token, on_done, &a}};
    r.sampling = rl_sampler_defaults();
    prompt_of(7, ids, 4);
    r.prompt = ids;
    uint64_t id;
    assert_int_equal(rl_sched_submit(s, &r, &id), RL_SCHED_OK);
    for (int i = 0; i < 6000 && a.n < 3; i++) /* a is decoding */
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    prompt_of(8, ids, 190);
    r = (rl_sched_req){.prompt = ids, .n_prompt = 190, .max_tokens = 4, .sink = {on_token, on_done, &b}};
    r.sampling = rl_sampler_defaults();
    assert_int_equal(rl_sched_submit(s, &r, &id), RL_SCHED_OK);
    sink_wait(&a), sink_wait(&b);
    /* 190 prompt tokens in chunks of 8 take 24 micro-batches: a decodes in each */
    const char *first_b = memchr(order, 'b', (size_t)n_order);
    assert_non_null(first_b);
    int a_before = 0;
    for (const char *p = order; p < first_b; p++)
        a_before += *p == 'a';
    assert_true(a_before >= 3 + 20);
    rl_sched_destroy(&s);
    sink_fini(&a), sink_fini(&b);
}

/* ---- the prompt cache ---- */

enum { TURNS = 6, TURN_TOKENS = 10 };

typedef struct {
    int32_t ids[TURNS][TURN_TOKENS];
    int n[TURNS];
    int cached[TURNS];
    int expect_cached[TURNS]; /* what the turn's prompt shares with the previous session's fed ids */
} chat_log;

/* A conversation of TURNS requests on model m: each prompt is the previous
 * one, its answer and 6 new ids, except turn 3, which asks turn 2's prompt
 * again (a regenerated answer: the cached session must be cut back inside
 * what it holds). Greedy and seeded turns alternate. */
static void converse(rl_model *m, const rl_tokenizer *tok, uint64_t cache_mem, chat_log *log, rl_sched_stats *st) {
    char err[256];
    rl_executor *x = rl_executor_local_new(m, 2, 16, 2, rl_gemm_min_for(false, 0), RL_KV_TYPE_DEFAULT, err, sizeof err);
    assert_non_null(x);
    rl_sched_opts o = {.max_sessions = 2,
                       .max_queue = 4,
                       .n_ctx = 256,
                       .prefill_chunk = 7,
                       .cache_mem = cache_mem,
                       .hp = rl_model_hparams(m),
                       .kv_type = RL_KV_TYPE_DEFAULT};
    rl_sched *s = rl_sched_new(x, tok, &o, err, sizeof err);
    assert_non_null(s);
    int32_t prompt[256], prev[256];
    uint32_t n = 24, n_prev = 0, fed_prev = 0;
    prompt_of(1, prompt, n);
    for (int t = 0; t < TURNS; t++) {
        sink_state k;
        sink_init(&k);
        rl_sched_req r = {.prompt = prompt, .n_prompt = n, .max_tokens = TURN_TOKENS};
        r.sampling = rl_sampler_defaults();
        r.sampling.temperature = t % 2 ? 0.9f : 0.0f;
        r.sampling.seed = 77 + (uint64_t)t;
        r.sink = (rl_sched_sink){on_token, on_done, &k, on_cached};
        uint64_t id;
        assert_int_equal(rl_sched_submit(s, &r, &id), RL_SCHED_OK);
        sink_wait(&k);
        assert_true(k.why == RL_FINISH_LENGTH || k.why == RL_FINISH_STOP);
        log->n[t] = k.n, log->cached[t] = k.cached;
        memcpy(log->ids[t], k.ids, (size_t)k.n * sizeof *k.ids);
        /* the previous session was fed its prompt and every id but the last sampled (an end one included) */
        uint32_t shared = 0;
        while (t > 0 && shared < fed_prev && shared < n && prev[shared] == prompt[shared])
            shared++;
        log->expect_cached[t] = (int)(shared < n ? shared : n - 1);
        memcpy(prev, prompt, n * sizeof *prompt);
        memcpy(prev + n, k.ids, (size_t)k.n * sizeof *k.ids);
        n_prev = n;
        fed_prev = n + (uint32_t)k.n - (k.why == RL_FINISH_LENGTH);
        sink_fini(&k);
        if (t == 2)
            continue; /* turn 3 asks this prompt again */
        n = n_prev + (uint32_t)log->n[t];
        memcpy(prompt, prev, n * sizeof *prompt);
        prompt_of(10 + t, prompt + n, 6);
        n += 6;
    }
    rl_sched_stats_get(s, st);
    rl_sched_destroy(&s);
    assert_int_equal(executor_sessions(x), 0); /* the cached sessions went with the scheduler */
    rl_executor_destroy(&x);
}

/* A conversation with the prompt cache gives the ids it gives without, on a
 * model with full attention and on one whose sliding window (6) every turn
 * has wrapped; each turn reports what it reused; a budget too small for any
 * session keeps none. */
static void test_prompt_cache_same_output(void **state) {
    fixture *f = *state;
    const char *models[2] = {MODEL, RELAIS_SHARED_DIR "/models/tiny-swa-q8_0.gguf"};
    for (int mi = 0; mi < 2; mi++) {
        char err[256];
        rl_model *m = mi == 0 ? f->m : rl_model_load(models[mi], NULL, err, sizeof err);
        assert_non_null(m);
        chat_log without, with, tight;
        rl_sched_stats st0, st1, st2;
        converse(m, f->tok, 0, &without, &st0);
        converse(m, f->tok, 64u << 20, &with, &st1);
        const rl_hparams *hp = rl_model_hparams(m);
        converse(m, f->tok, rl_kv_bytes_for(hp, 0, hp->n_layer, 20, RL_KV_TYPE_DEFAULT), &tight, &st2);
        uint64_t reused = 0, hits = 0;
        for (int t = 0; t < TURNS; t++) {
            assert_int_equal(with.n[t], without.n[t]);
            assert_memory_equal(with.ids[t], without.ids[t], (size_t)without.n[t] * sizeof(int32_t));
            assert_int_equal(tight.n[t], without.n[t]);
            assert_memory_equal(tight.ids[t], without.ids[t], (size_t)without.n[t] * sizeof(int32_t));
            assert_int_equal(without.cached[t], 0);
            assert_int_equal(tight.cached[t], 0);
            /* a regenerated turn cuts the session back 9 positions: within the
             * RL_KV_SLACK slots a sliding ring keeps beyond its window, so the
             * sliding model keeps its prefix too (serve_cache covers a cut past
             * the slack, which starts afresh) */
            int want = t == 0 ? 0 : with.expect_cached[t];
            assert_int_equal(with.cached[t], want);
            reused += (uint64_t)want, hits += want > 0;
        }
        assert_int_equal(st1.cache.hits, hits);
        assert_int_equal(st1.cache.tokens, reused);
        assert_int_equal(st0.cache.hits, 0);
        assert_int_equal(st2.cache.hits, 0);
        assert_int_equal(st2.cache.evictions, TURNS); /* each session alone is over the budget */
        assert_true(hits >= TURNS - 2);
        if (m != f->m)
            rl_model_destroy(&m);
    }
}

/* The top logits after feeding ids[0, n) to a new session of x (the one
 * rl_xsession uses, dropped again). */
static rl_top fresh_top(rl_executor *x, const rl_sampler_params *p, const int32_t *ids, uint32_t n) {
    char err[256];
    rl_xsession *s = rl_xsession_new(x, 64, false);
    rl_xsession_begin(s, p, 4);
    int32_t id;
    rl_top top;
    if (rl_xsession_step(s, ids, n, &id, &top, err, sizeof err))
        fail_msg("%s", err);
    rl_xsession_destroy(&s);
    return top;
}

static void same_top(const rl_top *a, const rl_top *b) {
    assert_int_equal(a->n, b->n);
    assert_memory_equal(a->ids, b->ids, a->n * sizeof *a->ids);
    assert_memory_equal(a->vals, b->vals, a->n * sizeof *a->vals);
}

/* rl_xsession_rewind on tiny-swa (layer 0 full, 1-3 sliding over W = 8 in
 * rings of W + RL_KV_SLACK = 24 slots): back within what the rings keep,
 * the session goes on from there; further back, from 0 (its next segment
 * forgets everything and all is fed again), decided without asking the
 * executor; either way the logits are those of a session that never went
 * further. The quantized kernels only (gemm_min 0): a row's result does not
 * depend on its batch, so the comparison is bit for bit. */
static void test_session_rewind(void **state) {
    (void)state;
    char err[256];
    rl_model *m = rl_model_load(MODEL_SWA, NULL, err, sizeof err);
    assert_non_null(m);
    rl_executor *x = rl_executor_local_new(m, 1, 64, 1, 0, RL_KV_TYPE_F32, err, sizeof err);
    assert_non_null(x);
    int32_t ids[40];
    for (uint32_t i = 0; i < 40; i++)
        ids[i] = (int32_t)(1 + (i * 37) % (rl_model_hparams(m)->n_vocab - 1));
    const rl_sampler_params greedy = rl_sampler_defaults();
    const rl_top at31 = fresh_top(x, &greedy, ids, 31), at12 = fresh_top(x, &greedy, ids, 12);
    rl_xsession *s = rl_xsession_new(x, 64, false);
    rl_xsession_begin(s, &greedy, 4);
    int32_t id;
    rl_top top;
    assert_int_equal(rl_xsession_step(s, ids, 40, &id, &top, err, sizeof err), 0);
    assert_int_equal(rl_xsession_rewind(s, 30), 30); /* 40 + 8 <= 30 + 24 + 1: the rings hold it */
    assert_int_equal(rl_xsession_step(s, ids + 30, 1, &id, &top, err, sizeof err), 0);
    same_top(&top, &at31);
    assert_int_equal(rl_xsession_rewind(s, 11), 0); /* wrapped past what position 11 needs */
    assert_int_equal(rl_xsession_step(s, ids, 12, &id, &top, err, sizeof err), 0);
    same_top(&top, &at12);
    assert_int_equal(rl_xsession_rewind(s, 20), 12); /* nothing past 12 to forget */
    assert_int_equal(executor_sessions(x), 1);
    rl_xsession_destroy(&s);
    assert_int_equal(executor_sessions(x), 0);
    rl_executor_destroy(&x);
    rl_model_destroy(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_independent_of_load),
        cmocka_unit_test(test_queue_bound_and_cancel),
        cmocka_unit_test(test_stop_by_sink_and_limits),
        cmocka_unit_test(test_shutdown_in_flight),
        cmocka_unit_test(test_long_prompt_does_not_freeze_decode),
        cmocka_unit_test(test_prompt_cache_same_output),
        cmocka_unit_test(test_session_rewind),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
