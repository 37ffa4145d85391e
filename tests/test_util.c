/* The engine's small shared helpers (engine/base/util.h): rl_grow doubles
 * from its first size and refuses sizes that would overflow without losing
 * the array; rl_errf formats and returns -1, with or without a buffer; the
 * clock is monotonic and its two units agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include "util.h"

static void test_grow(void **state) {
    (void)state;
    size_t cap = 0;
    int32_t *a = rl_grow(NULL, &cap, 1, sizeof *a, 4);
    assert_non_null(a);
    assert_int_equal(cap, 4);
    for (int i = 0; i < 4; i++)
        a[i] = i;
    assert_ptr_equal(rl_grow(a, &cap, 4, sizeof *a, 4), a); /* fits: unchanged */
    a = rl_grow(a, &cap, 9, sizeof *a, 4);
    assert_non_null(a);
    assert_int_equal(cap, 16);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i], i); /* kept across the move */
    size_t before = cap;
    assert_null(rl_grow(a, &cap, SIZE_MAX / 2 + 2, 1, 4)); /* doubling would wrap */
    assert_null(rl_grow(a, &cap, SIZE_MAX / 4, 8, 4));     /* the bytes would wrap */
    assert_int_equal(cap, before);
    assert_int_equal(a[3], 3); /* still ours */
    free(a);
}

static void test_errf_and_clock(void **state) {
    (void)state;
    char err[16];
    assert_int_equal(rl_errf(err, sizeof err, "bad %s %d", "key", 42), -1);
    assert_string_equal(err, "bad key 42");
    assert_int_equal(rl_errf(err, sizeof err, "%s", "a message longer than the buffer"), -1);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(rl_errf(NULL, 0, "nowhere"), -1);
    const double s0 = rl_now_s();
    const int64_t u0 = rl_now_us();
    const double s1 = rl_now_s();
    assert_true(s1 >= s0);
    assert_true(u0 >= (int64_t)(s0 * 1e6) - 1 && u0 <= (int64_t)(s1 * 1e6) + 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_errf_and_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
