/* Tests of the token sampler: the deterministic paths (greedy, ties,
 * truncations that leave one token, penalty arithmetic), seeded
 * reproducibility, and statistical checks that draws follow the
 * distribution the parameters define. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "rng.h"
#include "sampler.h"

static void fill_random(float *l, uint32_t n, uint64_t seed, float scale) {
    rl_rng r;
    rl_rng_seed(&r, seed);
    for (uint32_t i = 0; i < n; i++)
        l[i] = (float)((rl_rng_uniform(&r) * 2.0 - 1.0) * scale);
}

static int32_t sample_once(const rl_sampler_params *p, const float *logits, uint32_t n) {
    float *tmp = malloc(n * sizeof *tmp);
    assert_non_null(tmp);
    memcpy(tmp, logits, n * sizeof *tmp);
    rl_sampler *s = rl_sampler_new(p, n);
    assert_non_null(s);
    int32_t id = rl_sampler_sample(s, tmp, NULL, 0);
    rl_sampler_destroy(&s);
    assert_null(s);
    free(tmp);
    return id;
}

static void test_greedy_argmax(void **state) {
    enum { N = 5000 };
    static float l[N];
    fill_random(l, N, 7, 10.0f);
    l[3171] = 11.0f;
    rl_sampler_params p = rl_sampler_defaults();
    assert_int_equal(sample_once(&p, l, N), 3171);
}

static void test_greedy_ties_lowest_id(void **state) {
    float l[] = {1.0f, 3.0f, -2.0f, 3.0f, 2.5f, 3.0f};
    rl_sampler_params p = rl_sampler_defaults();
    assert_int_equal(sample_once(&p, l, 6), 1);
    /* a NaN must not win or hide the maximum */
    float m[] = {NAN, 0.5f, 2.0f, NAN};
    assert_int_equal(sample_once(&p, m, 4), 2);
}

static void draw_sequence(const rl_sampler_params *p, const float *logits, uint32_t n, int32_t *out, int count) {
    float *tmp = malloc(n * sizeof *tmp);
    assert_non_null(tmp);
    rl_sampler *s = rl_sampler_new(p, n);
    assert_non_null(s);
    for (int i = 0; i < count; i++) {
        memcpy(tmp, logits, n * sizeof *tmp);
        out[i] = rl_sampler_sample(s, tmp, NULL, 0);
        assert_true(out[i] >= 0 && (uint32_t)out[i] < n);
    }
    rl_sampler_destroy(&s);
    free(tmp);
}

static void test_seed_repeatable(void **state) {
    enum { N = 1000, C = 200 };
    static float l[N];
    int32_t a[C], b[C], c[C];
    fill_random(l, N, 11, 2.0f);
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 1.0f;
    p.seed = 42;
    draw_sequence(&p, l, N, a, C);
    draw_sequence(&p, l, N, b, C);
    assert_memory_equal(a, b, sizeof a);
    p.seed = 43;
    draw_sequence(&p, l, N, c, C);
    int same = 0;
    for (int i = 0; i < C; i++)
        same += a[i] == c[i];
    assert_true(same < C / 4);
}

/* A sampler made anew in the middle of a stream (a re-planned cluster's new
 * head stage) and told how many ids came before goes on with the stream,
 * including past a step whose logits had nothing finite to draw from. */
static void test_skip_resumes_stream(void **state) {
    (void)state;
    enum { N = 1000, C = 60, CUT = 23 };
    static float l[N], bad[N];
    int32_t whole[C], rest[C - CUT];
    fill_random(l, N, 5, 2.0f);
    for (int i = 0; i < N; i++)
        bad[i] = -INFINITY;
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 0.8f;
    p.seed = 7;
    rl_sampler *s = rl_sampler_new(&p, N);
    assert_non_null(s);
    for (int i = 0; i < C; i++) {
        float tmp[N];
        memcpy(tmp, i == 5 ? bad : l, sizeof tmp);
        whole[i] = rl_sampler_sample(s, tmp, NULL, 0);
    }
    rl_sampler_destroy(&s);
    s = rl_sampler_new(&p, N);
    rl_sampler_skip(s, CUT);
    for (int i = 0; i < C - CUT; i++) {
        float tmp[N];
        memcpy(tmp, l, sizeof tmp);
        rest[i] = rl_sampler_sample(s, tmp, NULL, 0);
    }
    rl_sampler_destroy(&s);
    assert_memory_equal(rest, whole + CUT, sizeof rest);
    assert_null(s);
}

static void test_top_k1_and_tiny_top_p_are_greedy(void **state) {
    enum { N = 4096 };
    static float l[N];
    rl_sampler_params greedy = rl_sampler_defaults();
    for (uint64_t seed = 1; seed <= 20; seed++) {
        fill_random(l, N, seed, 3.0f);
        int32_t want = sample_once(&greedy, l, N);
        rl_sampler_params p = rl_sampler_defaults();
        p.temperature = 1.5f;
        p.seed = seed;
        p.top_k = 1;
        assert_int_equal(sample_once(&p, l, N), want);
        p.top_k = 0;
        p.top_p = 1e-6f;
        assert_int_equal(sample_once(&p, l, N), want);
        p.top_p = 1.0f;
        p.min_p = 1.0f;
        assert_int_equal(sample_once(&p, l, N), want);
    }
}

/* Chi-square statistic of `counts` against probabilities `prob` over n bins. */
static double chi_square(const int *counts, const double *prob, int n, int total) {
    double chi = 0.0;
    for (int i = 0; i < n; i++) {
        double e = prob[i] * total;
        if (e == 0.0) {
            assert_int_equal(counts[i], 0);
            continue;
        }
        chi += (counts[i] - e) * (counts[i] - e) / e;
    }
    return chi;
}

static void histogram(const rl_sampler_params *p, const float *logits, int n, int draws, int *counts) {
    int32_t *ids = malloc((size_t)draws * sizeof *ids);
    assert_non_null(ids);
    draw_sequence(p, logits, (uint32_t)n, ids, draws);
    memset(counts, 0, (size_t)n * sizeof *counts);
    for (int i = 0; i < draws; i++)
        counts[ids[i]]++;
    free(ids);
}

enum { NB = 5, DRAWS = 20000 };
static const double BASE[NB] = {0.4, 0.25, 0.2, 0.1, 0.05};

/* 4 degrees of freedom: P(chi2 > 25) is about 5e-5, while a distribution off
 * by a few percent of mass over 20000 draws scores in the hundreds. */
#define CHI_BOUND 25.0

static void base_logits(float *l) {
    for (int i = 0; i < NB; i++)
        l[i] = (float)log(BASE[i]) + 3.0f; /* an offset changes nothing */
}

static void test_temperature_matches_distribution(void **state) {
    float l[NB];
    int counts[NB];
    double want[NB];
    base_logits(l);
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 1.0f;
    p.seed = 1234;
    histogram(&p, l, NB, DRAWS, counts);
    assert_true(chi_square(counts, BASE, NB, DRAWS) < CHI_BOUND);
    /* the same draws judged against a flatter distribution must fail */
    double flat[NB] = {0.2, 0.2, 0.2, 0.2, 0.2};
    assert_true(chi_square(counts, flat, NB, DRAWS) > 1000.0);

    /* temperature 2: p_i proportional to sqrt(BASE_i) */
    double z = 0.0;
    for (int i = 0; i < NB; i++)
        z += want[i] = sqrt(BASE[i]);
    for (int i = 0; i < NB; i++)
        want[i] /= z;
    p.temperature = 2.0f;
    histogram(&p, l, NB, DRAWS, counts);
    assert_true(chi_square(counts, want, NB, DRAWS) < CHI_BOUND);
}

static void test_truncations_renormalize(void **state) {
    float l[NB];
    int counts[NB];
    base_logits(l);
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 1.0f;
    p.seed = 99;

    p.top_k = 2;
    histogram(&p, l, NB, DRAWS, counts);
    double k2[NB] = {0.4 / 0.65, 0.25 / 0.65, 0, 0, 0};
    assert_true(chi_square(counts, k2, NB, DRAWS) < CHI_BOUND);

    /* 0.4 + 0.25 < 0.7 <= 0.4 + 0.25 + 0.2: three tokens stay */
    p.top_k = 0;
    p.top_p = 0.7f;
    histogram(&p, l, NB, DRAWS, counts);
    double p3[NB] = {0.4 / 0.85, 0.25 / 0.85, 0.2 / 0.85, 0, 0};
    assert_true(chi_square(counts, p3, NB, DRAWS) < CHI_BOUND);

    /* min-p 0.3: threshold 0.12 keeps 0.4, 0.25 and 0.2 */
    p.top_p = 1.0f;
    p.min_p = 0.3f;
    histogram(&p, l, NB, DRAWS, counts);
    assert_true(chi_square(counts, p3, NB, DRAWS) < CHI_BOUND);

    /* min-p 0.6: threshold 0.24 keeps 0.4 and 0.25 */
    p.min_p = 0.6f;
    histogram(&p, l, NB, DRAWS, counts);
    assert_true(chi_square(counts, k2, NB, DRAWS) < CHI_BOUND);
}

/* Speculative sampling at one position (rl_sampler_verify): drafted ids
 * drawn from a q that differs from p (holding an id p's top-k leaves out and
 * missing one p keeps) come out as draws of p (chi-square), kept at the rate
 * sum(min(p, q)) that the rule promises (the equality rule's sum(p q) is far
 * below), a rejected id is never returned, and every call spends one draw. */
static void test_verify_speculative(void **state) {
    (void)state;
    float l[NB], row[NB];
    int counts[NB] = {0}, kept = 0;
    base_logits(l);
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 1.0f, p.top_k = 4, p.seed = 5;
    const double want[NB] = {0.4 / 0.95, 0.25 / 0.95, 0.2 / 0.95, 0.1 / 0.95, 0};
    const int32_t q_ids[] = {0, 2, 3, 4};
    const float q_p[] = {0.1f, 0.5f, 0.2f, 0.2f};
    double min_sum = 0;
    for (int j = 0; j < 4; j++)
        min_sum += fmin(want[q_ids[j]], q_p[j]);
    rl_sampler *s = rl_sampler_new(&p, NB);
    rl_rng draft;
    rl_rng_seed(&draft, 77);
    for (int i = 0; i < DRAWS; i++) {
        double u = rl_rng_uniform(&draft), cum = 0;
        int32_t x = q_ids[3];
        for (int j = 0; j < 4; j++)
            if (u < (cum += q_p[j])) {
                x = q_ids[j];
                break;
            }
        memcpy(row, l, sizeof row);
        const int32_t id = rl_sampler_verify(s, row, NULL, 0, x, q_ids, q_p, 4);
        counts[id]++;
        kept += id == x;
    }
    assert_true(chi_square(counts, want, NB, DRAWS) < CHI_BOUND);
    const double rate = (double)kept / DRAWS;
    assert_true(fabs(rate - min_sum) < 0.015); /* 0.416; its standard deviation here is 0.0035 */
    assert_true(rate > 0.3);                   /* the equality rule would keep sum(p q) = 0.168 */
    /* one draw per call: the stream goes on as after DRAWS samples */
    rl_sampler *t = rl_sampler_new(&p, NB);
    rl_sampler_skip(t, DRAWS);
    for (int i = 0; i < 50; i++) {
        float a[NB], b[NB];
        memcpy(a, l, sizeof a), memcpy(b, l, sizeof b);
        assert_int_equal(rl_sampler_sample(s, a, NULL, 0), rl_sampler_sample(t, b, NULL, 0));
    }
    rl_sampler_destroy(&t);
    rl_sampler_destroy(&s);
    /* greedy, or no q: the target's own choice whatever the draft */
    p.temperature = 0.0f;
    s = rl_sampler_new(&p, NB);
    memcpy(row, l, sizeof row);
    assert_int_equal(rl_sampler_verify(s, row, NULL, 0, 2, q_ids, q_p, 4), 0);
    rl_sampler_destroy(&s);
}

/* A draft's q (rl_sampler_draft_q): the request's parameters over the
 * draft's candidates, renormalised, and the draw lands where u says. */
static void test_draft_q(void **state) {
    (void)state;
    const int32_t ids[] = {7, 3, 9, 4};
    const float logits[] = {2.0f, 1.0f, 0.0f, -INFINITY};
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 1.0f;
    rl_qdist q;
    assert_int_equal(rl_sampler_draft_q(&p, ids, logits, 4, NULL, 0, 0.0, &q), 7);
    assert_int_equal(q.n, 3); /* the impossible id is left out */
    const double z = exp(2.0) + exp(1.0) + 1.0;
    for (uint32_t i = 0; i < q.n; i++) {
        const double e = q.ids[i] == 7 ? exp(2.0) / z : q.ids[i] == 3 ? exp(1.0) / z : 1.0 / z;
        assert_true(fabs(q.p[i] - e) < 1e-6);
    }
    assert_int_equal(rl_sampler_draft_q(&p, ids, logits, 4, NULL, 0, 0.9999, &q), q.ids[q.n - 1]);
    assert_int_equal(q.token, q.ids[q.n - 1]);
    /* top-k 2 and a repeat penalty on 7 (logit 2 -> 1): 7 and 3 tie at 1/2 */
    p.top_k = 2, p.repeat_penalty = 2.0f;
    const int32_t hist[] = {7};
    rl_sampler_draft_q(&p, ids, logits, 4, hist, 1, 0.3, &q);
    assert_int_equal(q.n, 2);
    assert_true(fabs(q.p[0] - 0.5f) < 1e-6 && fabs(q.p[1] - 0.5f) < 1e-6);
    assert_true((q.ids[0] == 7 && q.ids[1] == 3) || (q.ids[0] == 3 && q.ids[1] == 7));
    assert_int_equal(q.token, q.ids[0]);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* On a full-size vocabulary, every draw stays inside the truncated set as a
 * full sort of the vocabulary defines it. */
static void test_large_vocab_truncation_sets(void **state) {
    enum { N = 131072, C = 300 };
    float *l = malloc(N * sizeof *l), *sorted = malloc(N * sizeof *sorted);
    int32_t *ids = malloc(C * sizeof *ids);
    assert_true(l && sorted && ids);
    fill_random(l, N, 5, 8.0f);
    memcpy(sorted, l, N * sizeof *l);
    qsort(sorted, N, sizeof *sorted, cmp_desc);

    double z = 0.0, cum = 0.0;
    for (int i = 0; i < N; i++)
        z += exp((double)sorted[i] - sorted[0]);
    int nucleus = 0;
    while (cum < 0.9 * z)
        cum += exp((double)sorted[nucleus++] - sorted[0]);
    float p_cut = sorted[nucleus - 1];
    assert_true(nucleus > 1000 && nucleus < N / 2); /* a large nucleus, cut mid-vocabulary */

    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 1.0f;
    p.top_p = 0.9f;
    p.seed = 3;
    draw_sequence(&p, l, N, ids, C);
    for (int i = 0; i < C; i++)
        assert_true(l[ids[i]] >= p_cut);

    p.top_p = 1.0f;
    p.top_k = 40;
    draw_sequence(&p, l, N, ids, C);
    int distinct = 0;
    for (int i = 0; i < C; i++) {
        assert_true(l[ids[i]] >= sorted[39]);
        int first = 1;
        for (int j = 0; j < i; j++)
            first &= ids[j] != ids[i];
        distinct += first;
    }
    assert_true(distinct > 20); /* it samples, it does not collapse to greedy */
    free(l);
    free(sorted);
    free(ids);
}

static void test_penalties_arithmetic(void **state) {
    const float base[5] = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f};
    const int32_t hist[] = {3, 0, 1, 1, 4, 77, -5}; /* ids out of range are ignored */
    float l[5];
    rl_sampler_params p = rl_sampler_defaults();
    p.repeat_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    p.repeat_last_n = 6; /* window: 0, 1, 1, 4, 77, -5 */
    rl_sampler *s = rl_sampler_new(&p, 5);
    assert_non_null(s);
    memcpy(l, base, sizeof l);
    assert_int_equal(rl_sampler_sample(s, l, hist, 7), 3);
    assert_float_equal(l[0], 2.0f / 2.0f - 0.5f - 0.25f, 1e-6);
    assert_float_equal(l[1], -1.0f * 2.0f - 2 * 0.5f - 0.25f, 1e-6);
    assert_float_equal(l[2], 0.5f, 0.0);
    assert_float_equal(l[3], 3.0f, 0.0);
    assert_float_equal(l[4], 0.0f - 0.5f - 0.25f, 1e-6);
    /* a second call starts from clean counts */
    memcpy(l, base, sizeof l);
    rl_sampler_sample(s, l, hist, 7);
    assert_float_equal(l[1], -3.25f, 1e-6);
    rl_sampler_destroy(&s);

    /* the whole history: token 3 is penalized too and loses the argmax */
    p.repeat_last_n = -1;
    s = rl_sampler_new(&p, 5);
    memcpy(l, base, sizeof l);
    assert_int_equal(rl_sampler_sample(s, l, hist, 7), 3);
    assert_float_equal(l[3], 3.0f / 2.0f - 0.75f, 1e-6);
    p.presence_penalty = 1.0f;
    rl_sampler_destroy(&s);
    s = rl_sampler_new(&p, 5);
    memcpy(l, base, sizeof l);
    assert_int_equal(rl_sampler_sample(s, l, hist, 7), 2);
    rl_sampler_destroy(&s);

    /* window 0: nothing changes */
    p.repeat_last_n = 0;
    s = rl_sampler_new(&p, 5);
    memcpy(l, base, sizeof l);
    rl_sampler_sample(s, l, hist, 7);
    assert_memory_equal(l, base, sizeof l);
    rl_sampler_destroy(&s);
}

static void test_top_logits(void **state) {
    enum { N = 10000, K = 50 };
    static float l[N], sorted[N];
    int32_t ids[K];
    float vals[K];
    fill_random(l, N, 17, 5.0f);
    memcpy(sorted, l, sizeof l);
    qsort(sorted, N, sizeof *sorted, cmp_desc);
    rl_top_logits(l, N, K, ids, vals);
    for (int i = 0; i < K; i++) {
        assert_float_equal(vals[i], sorted[i], 0.0);
        assert_float_equal(l[ids[i]], vals[i], 0.0);
    }

    const float t[] = {1.0f, 4.0f, 4.0f, -1.0f, 4.0f};
    int32_t ti[7];
    float tv[7];
    rl_top_logits(t, 5, 7, ti, tv);
    const int32_t want[] = {1, 2, 4, 0, 3, -1, -1};
    assert_memory_equal(ti, want, sizeof want);
    assert_true(isinf(tv[6]) && tv[6] < 0);
}

/* The normalizer against a direct sum, without overflow for large logits,
 * and -inf for a row with nothing possible. */
static void test_logsumexp(void **state) {
    (void)state;
    const float a[] = {1.0f, 2.0f, 3.0f, -INFINITY, NAN};
    assert_float_equal(rl_logsumexp(a, 5), log(exp(1.0) + exp(2.0) + exp(3.0)), 1e-5);
    const float big[] = {1000.0f, 1000.0f};
    assert_float_equal(rl_logsumexp(big, 2), 1000.0 + log(2.0), 1e-3);
    const float none[] = {-INFINITY, NAN};
    assert_true(isinf(rl_logsumexp(none, 2)) && rl_logsumexp(none, 2) < 0);
}

/* rl_sampler_sample_top reports the row as it came: the same id as
 * rl_sampler_sample, the top logits, the normalizer, and the sampled id's
 * logit before the penalties lowered it. */
static void test_sample_top_raw(void **state) {
    (void)state;
    enum { N = 6, K = 3 };
    const float row[N] = {0.5f, 3.0f, 2.9f, -1.0f, 0.0f, 1.0f};
    float a[N], b[N], vals[K], lse, chosen;
    int32_t ids[K];
    rl_sampler_params p = rl_sampler_defaults();
    p.presence_penalty = 0.5f; /* id 1 seen: 2.5 < 2.9, so greedy picks 2 */
    const int32_t hist[] = {1, 2};
    rl_sampler *s1 = rl_sampler_new(&p, N), *s2 = rl_sampler_new(&p, N);
    memcpy(a, row, sizeof row);
    memcpy(b, row, sizeof row);
    int32_t want = rl_sampler_sample(s1, a, hist, 1);
    int32_t got = rl_sampler_sample_top(s2, b, hist, 1, K, ids, vals, &lse, &chosen);
    assert_int_equal(got, want);
    assert_int_equal(got, 2);
    assert_float_equal(chosen, 2.9f, 0.0);
    assert_int_equal(ids[0], 1);
    assert_float_equal(vals[0], 3.0f, 0.0);
    assert_float_equal(lse, rl_logsumexp(row, N), 1e-6);
    /* a penalized id sampled: its logit as it came, not as penalized */
    memcpy(b, row, sizeof row);
    got = rl_sampler_sample_top(s2, b, hist + 1, 1, K, ids, vals, &lse, &chosen);
    assert_int_equal(got, 1);
    assert_float_equal(chosen, 3.0f, 0.0);
    memcpy(b, row, sizeof row);
    got = rl_sampler_sample_top(s2, b, hist, 2, K, ids, vals, &lse, &chosen); /* both lowered: 2.5, 2.4 */
    assert_int_equal(got, 1);
    assert_float_equal(chosen, 3.0f, 0.0);
    rl_sampler_destroy(&s1);
    rl_sampler_destroy(&s2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logsumexp),
        cmocka_unit_test(test_sample_top_raw),
        cmocka_unit_test(test_greedy_argmax),
        cmocka_unit_test(test_greedy_ties_lowest_id),
        cmocka_unit_test(test_seed_repeatable),
        cmocka_unit_test(test_skip_resumes_stream),
        cmocka_unit_test(test_top_k1_and_tiny_top_p_are_greedy),
        cmocka_unit_test(test_temperature_matches_distribution),
        cmocka_unit_test(test_truncations_renormalize),
        cmocka_unit_test(test_large_vocab_truncation_sets),
        cmocka_unit_test(test_penalties_arithmetic),
        cmocka_unit_test(test_top_logits),
        cmocka_unit_test(test_verify_speculative),
        cmocka_unit_test(test_draft_q),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
