/* A node's matvec figure stays true (node/node_caps.h): without a cached
 * figure one is measured and cached; with one, it is used at once and
 * measured again in the background, and a cached figure off by far more
 * than a third (100 times too small, then 100 times too large: no load on
 * a shared machine moves a measurement that far) is replaced, in the
 * process and in the cache file, which keeps its key line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "node_caps.h"
#include "testutil.h"

static char g_dir[TU_DIR_MAX];
static char g_path[TU_DIR_MAX + 32];

/* The cache file's key line and figure. */
static double read_figure(char *key, size_t len) {
    FILE *f = fopen(g_path, "r");
    assert_non_null(f);
    double v = 0;
    assert_non_null(fgets(key, (int)len, f));
    assert_int_equal(fscanf(f, "%lf", &v), 1);
    fclose(f);
    return v;
}

static void write_figure(const char *key, double v) {
    FILE *f = fopen(g_path, "w");
    assert_non_null(f);
    fprintf(f, "%s%.6g\n", key, v);
    fclose(f);
}

/* A cached figure `factor` times the measured one is replaced by a new
 * measurement within a factor of 10 of the first. */
static void check_replaced(const char *key, double measured, double factor) {
    write_figure(key, measured * factor);
    node_caps *c = node_caps_new(g_dir, 1);
    assert_non_null(c);
    assert_true(fabs(node_caps_matvec(c) / (measured * factor) - 1) < 1e-5); /* the cached figure, at once */
    assert_true(node_caps_settle(c));
    double now = node_caps_matvec(c);
    assert_true(now > measured / 10 && now < measured * 10);
    node_caps_destroy(&c);
    char key2[4700];
    double cached = read_figure(key2, sizeof key2);
    assert_string_equal(key2, key);
    assert_true(fabs(cached / now - 1) < 1e-5);
}

static void test_remeasured(void **state) {
    (void)state;
    assert_int_equal(tu_dir_new(g_dir, "node_caps"), 0);
    snprintf(g_path, sizeof g_path, "%s/matvec-benchmark", g_dir);
    node_caps *c = node_caps_new(g_dir, 1); /* no cache: measured now */
    assert_non_null(c);
    double measured = node_caps_matvec(c);
    assert_true(measured > 0);
    assert_false(node_caps_settle(c)); /* nothing ran in the background */
    node_caps_destroy(&c);
    char key[4700];
    assert_true(fabs(read_figure(key, sizeof key) / measured - 1) < 1e-5);
    check_replaced(key, measured, 0.01);
    check_replaced(key, measured, 100);
    tu_dir_remove(g_dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_remeasured)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
