/* RMSNorm, RoPE, softmax, SwiGLU and the thread pool against their
 * definitions, computed here independently in double precision. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "ops.h"
#include "threadpool.h"

static void test_rmsnorm(void **s) {
    (void)s;
    float x[7] = {1, -2, 3, 0.5f, -0.25f, 4, 0}, w[7] = {1, 2, 0.5f, 1, 1, -1, 3}, out[7];
    double ss = 0;
    for (int i = 0; i < 7; i++)
        ss += (double)x[i] * x[i];
    double scale = 1.0 / sqrt(ss / 7 + 1e-5);
    rl_rmsnorm(out, x, w, 7, 1e-5f);
    for (int i = 0; i < 7; i++)
        assert_float_equal(out[i], x[i] * scale * w[i], 1e-6);
    rl_rmsnorm(x, x, w, 7, 1e-5f); /* in place */
    assert_memory_equal(x, out, sizeof out);
}

/* Plain RoPE through the table, as the forward pass applies it. */
static void rope(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t pos, float base) {
    rl_rope_params p = rl_rope_params_plain(base);
    rl_rope_table t;
    float cs[64];
    assert_int_equal(rl_rope_table_init(&t, &p, head_dim), 0);
    rl_rope_cos_sin(&t, pos, cs);
    rl_rope_apply(x, n_heads, head_dim, cs);
}

static void test_rope(void **s) {
    (void)s;
    enum { H = 3, D = 8 };
    float x[H * D], orig[H * D];
    for (int i = 0; i < H * D; i++)
        orig[i] = x[i] = (float)sin(i * 0.7) * 2;
    const uint32_t pos = 37;
    const float base = 10000.0f;
    rope(x, H, D, pos, base);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < D; i += 2) {
            double th = pos * pow(base, -(double)i / D);
            double a = orig[h * D + i], b = orig[h * D + i + 1];
            assert_float_equal(x[h * D + i], a * cos(th) - b * sin(th), 2e-4);
            assert_float_equal(x[h * D + i + 1], a * sin(th) + b * cos(th), 2e-4);
            /* a rotation keeps each pair's length */
            double n0 = a * a + b * b,
                   n1 = (double)x[h * D + i] * x[h * D + i] + (double)x[h * D + i + 1] * x[h * D + i + 1];
            assert_float_equal(n0, n1, 1e-4);
        }
    float y[D] = {1, 0, 1, 0, 1, 0, 1, 0};
    rope(y, 1, D, 0, base); /* position 0 is the identity */
    for (int i = 0; i < D; i++)
        assert_float_equal(y[i], (i % 2) ? 0.0 : 1.0, 0);
}

/* The YaRN cos/sin for pair i at pos, in double, straight from the formula
 * (../shared/models/README.md's mistral3 section, llama.cpp's YaRN). */
static void yarn_ref(const rl_rope_params *p, uint32_t d, uint32_t pos, uint32_t i, double *c, double *s) {
    const double lb = log(p->base);
    double low = floor(d * log(p->orig_ctx / (2 * M_PI * p->beta_fast)) / (2 * lb));
    double high = ceil(d * log(p->orig_ctx / (2 * M_PI * p->beta_slow)) / (2 * lb));
    low = low < 0 ? 0 : low;
    high = high > d - 1 ? d - 1 : high;
    double y = (i - low) / (high - low > 0.001 ? high - low : 0.001);
    double r = 1 - (y < 0 ? 0 : y > 1 ? 1 : y);
    double ang = pos * pow(p->base, -2.0 * i / d) * ((1 - r) / p->factor + r);
    double lf = log(p->factor);
    double m = p->factor <= 1 ? 1 : (1 + 0.1 * lf) / (1 + 0.1 * p->log_mul * lf);
    *c = cos(ang) * m * p->attn_factor;
    *s = sin(ang) * m * p->attn_factor;
}

static void check_yarn(const rl_rope_params *p, uint32_t d) {
    rl_rope_table t;
    float cs[256];
    assert_int_equal(rl_rope_table_init(&t, p, d), 0);
    const uint32_t positions[] = {0, 1, 31, 32, 64, 95, 118, 1000};
    for (size_t k = 0; k < sizeof positions / sizeof positions[0]; k++) {
        rl_rope_cos_sin(&t, positions[k], cs);
        for (uint32_t i = 0; i < d / 2; i++) {
            double c, sn;
            yarn_ref(p, d, positions[k], i, &c, &sn);
            /* angles reach ~1000 rad: float's rounding of the angle is ~1e-4 there */
            double tol = 2e-6 * (1 + positions[k]);
            if (fabs(cs[2 * i] - c) > tol || fabs(cs[2 * i + 1] - sn) > tol)
                fail_msg("d %u pos %u pair %u: cos %g sin %g, formula %g %g", d, positions[k], i, cs[2 * i],
                         cs[2 * i + 1], c, sn);
        }
    }
}

/* The YaRN table against the formula computed here in double: the tiny
 * mistral3 files' parameters (ramp over pairs 0..2; log multiplier 1 and 0)
 * and the real models' (head 128, original context 16384: ramp over 20..37). */
static void test_rope_yarn(void **s) {
    (void)s;
    rl_rope_params p = rl_rope_params_plain(1e6f);
    p.yarn = true;
    p.factor = 4;
    p.orig_ctx = 32;
    p.log_mul = 1;
    check_yarn(&p, 32);
    p.log_mul = 0; /* magnitude 1 + 0.1 ln 4 */
    check_yarn(&p, 32);
    p.factor = 16;
    p.orig_ctx = 16384;
    p.attn_factor = 1.25f;
    check_yarn(&p, 128);
    /* the ramp matters: a table without YaRN differs at a scaled pair */
    rl_rope_table with, without;
    rl_rope_params plain = rl_rope_params_plain(1e6f);
    assert_int_equal(rl_rope_table_init(&with, &p, 128), 0);
    assert_int_equal(rl_rope_table_init(&without, &plain, 128), 0);
    float a[128], b[128];
    rl_rope_cos_sin(&with, 100, a);
    rl_rope_cos_sin(&without, 100, b);
    assert_true(fabsf(a[2 * 60] - b[2 * 60]) > 1e-3f);
    /* pair 0 is below the fast end: not interpolated, only scaled (log multiplier 0 here) */
    assert_float_equal(a[0], cos(100.0) * 1.25 * (1 + 0.1 * log(16.0)), 1e-4);
}

/* 1 + beta ln(1 + floor(pos / L)): 1 inside the first original context. */
static void test_attn_temp(void **s) {
    (void)s;
    assert_float_equal(rl_attn_temp(0.1f, 32, 0), 1.0, 0);
    assert_float_equal(rl_attn_temp(0.1f, 32, 31), 1.0, 0);
    assert_float_equal(rl_attn_temp(0.1f, 32, 32), 1 + 0.1 * log(2.0), 1e-7);
    assert_float_equal(rl_attn_temp(0.1f, 32, 118), 1 + 0.1 * log(4.0), 1e-7);
}

static void test_softmax(void **s) {
    (void)s;
    float x[5] = {1000, 1001, 999, -INFINITY, 1000.5f};
    double e[5], sum = 0;
    for (int i = 0; i < 5; i++)
        sum += e[i] = isinf(x[i]) ? 0 : exp((double)x[i] - 1001);
    rl_softmax(x, 5);
    double total = 0;
    for (int i = 0; i < 5; i++) {
        assert_float_equal(x[i], e[i] / sum, 1e-6);
        total += x[i];
    }
    assert_float_equal(total, 1.0, 1e-6);
    assert_float_equal(x[3], 0.0, 0);
}

static void test_swiglu(void **s) {
    (void)s;
    float g[4] = {-3, -0.5f, 0, 2}, u[4] = {1, 2, 3, -1};
    float want[4];
    for (int i = 0; i < 4; i++)
        want[i] = (float)(g[i] / (1 + exp(-(double)g[i])) * u[i]);
    rl_swiglu(g, u, 4);
    for (int i = 0; i < 4; i++)
        assert_float_equal(g[i], want[i], 1e-6);
}

typedef struct {
    atomic_long sum;
    atomic_int calls;
    int seen[8];
} pool_probe;

static void probe_task(void *arg, int ith, int nth) {
    pool_probe *p = arg;
    long b, e;
    rl_split(1000, ith, nth, &b, &e);
    for (long i = b; i < e; i++)
        atomic_fetch_add(&p->sum, i);
    p->seen[ith]++;
    atomic_fetch_add(&p->calls, 1);
}

static void test_pool(void **s) {
    (void)s;
    for (int n = 1; n <= 4; n++) {
        rl_pool *pool = rl_pool_new(n);
        assert_non_null(pool);
        assert_int_equal(rl_pool_size(pool), n);
        pool_probe p = {0};
        for (int rep = 0; rep < 2000; rep++) /* many short tasks: the decode pattern */
            rl_pool_run(pool, probe_task, &p);
        assert_int_equal(atomic_load(&p.sum), 2000L * 999 * 1000 / 2);
        assert_int_equal(atomic_load(&p.calls), 2000 * n);
        for (int i = 0; i < n; i++)
            assert_int_equal(p.seen[i], 2000);
        rl_pool_destroy(&pool);
        assert_null(pool);
    }
}

static void test_split(void **s) {
    (void)s;
    long covered = 0, prev_end = 0;
    for (int i = 0; i < 7; i++) {
        long b, e;
        rl_split(100, i, 7, &b, &e);
        assert_int_equal(b, prev_end);
        assert_true(e - b == 14 || e - b == 15);
        covered += e - b;
        prev_end = e;
    }
    assert_int_equal(covered, 100);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm),   cmocka_unit_test(test_rope),    cmocka_unit_test(test_rope_yarn),
        cmocka_unit_test(test_attn_temp), cmocka_unit_test(test_softmax), cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_pool),      cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
