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
    rl_rmsnorm(x, x, w, 7, 1e-5f);   /* in place */
    assert_memory_equal(x, out, sizeof out);
}

static void test_rope(void **s) {
    (void)s;
    enum { H = 3, D = 8 };
    float x[H * D], orig[H * D];
    for (int i = 0; i < H * D; i++)
        orig[i] = x[i] = (float)sin(i * 0.7) * 2;
    const uint32_t pos = 37;
    const float base = 10000.0f;
    rl_rope(x, H, D, pos, base);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < D; i += 2) {
            double th = pos * pow(base, -(double)i / D);
            double a = orig[h * D + i], b = orig[h * D + i + 1];
            assert_float_equal(x[h * D + i], a * cos(th) - b * sin(th), 2e-4);
            assert_float_equal(x[h * D + i + 1], a * sin(th) + b * cos(th), 2e-4);
            /* a rotation keeps each pair's length */
            double n0 = a * a + b * b, n1 = (double)x[h * D + i] * x[h * D + i] + (double)x[h * D + i + 1] * x[h * D + i + 1];
            assert_float_equal(n0, n1, 1e-4);
        }
    float y[D] = {1, 0, 1, 0, 1, 0, 1, 0};
    rl_rope(y, 1, D, 0, base);   /* position 0 is the identity */
    for (int i = 0; i < D; i++)
        assert_float_equal(y[i], (i % 2) ? 0.0 : 1.0, 0);
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
        for (int rep = 0; rep < 2000; rep++)   /* many short tasks: the decode pattern */
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
        cmocka_unit_test(test_rmsnorm), cmocka_unit_test(test_rope), cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_swiglu), cmocka_unit_test(test_pool), cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
