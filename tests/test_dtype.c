/* Tests for the ggml type table: block geometry and names of every type id a
 * GGUF file may carry, the unused ids, the supported set, row sizes and name
 * parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>

#include "dtype.h"

static void test_dtype_table(void **state) {
    static const struct {
        rl_dtype t;
        const char *name;
        uint32_t block, bytes;
        bool supported;
    } known[] = {
        {RL_F32, "f32", 1, 4, true},
        {RL_F16, "f16", 1, 2, true},
        {RL_Q4_0, "q4_0", 32, 18, true},
        {RL_Q4_1, "q4_1", 32, 20, false},
        {RL_Q5_0, "q5_0", 32, 22, false},
        {RL_Q5_1, "q5_1", 32, 24, false},
        {RL_Q8_0, "q8_0", 32, 34, true},
        {RL_Q8_1, "q8_1", 32, 36, false},
        {RL_Q2_K, "q2_K", 256, 84, false},
        {RL_Q3_K, "q3_K", 256, 110, false},
        {RL_Q4_K, "q4_K", 256, 144, true},
        {RL_Q5_K, "q5_K", 256, 176, true},
        {RL_Q6_K, "q6_K", 256, 210, true},
        {RL_Q8_K, "q8_K", 256, 292, false},
        {RL_IQ2_XXS, "iq2_xxs", 256, 66, false},
        {RL_IQ2_XS, "iq2_xs", 256, 74, false},
        {RL_IQ3_XXS, "iq3_xxs", 256, 98, false},
        {RL_IQ1_S, "iq1_s", 256, 50, false},
        {RL_IQ4_NL, "iq4_nl", 32, 18, false},
        {RL_IQ3_S, "iq3_s", 256, 110, false},
        {RL_IQ2_S, "iq2_s", 256, 82, false},
        {RL_IQ4_XS, "iq4_xs", 256, 136, false},
        {RL_I8, "i8", 1, 1, false},
        {RL_I16, "i16", 1, 2, false},
        {RL_I32, "i32", 1, 4, false},
        {RL_I64, "i64", 1, 8, false},
        {RL_F64, "f64", 1, 8, false},
        {RL_IQ1_M, "iq1_m", 256, 56, false},
        {RL_BF16, "bf16", 1, 2, true},
        {RL_TQ1_0, "tq1_0", 256, 54, false},
        {RL_TQ2_0, "tq2_0", 256, 66, false},
        {RL_MXFP4, "mxfp4", 32, 17, false},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char upper[16];
        size_t k = 0;
        for (; known[i].name[k]; k++)
            upper[k] = (char)toupper((unsigned char)known[i].name[k]);
        upper[k] = '\0';
        assert_int_equal(rl_dtype_block(known[i].t), known[i].block);
        assert_int_equal(rl_dtype_block_bytes(known[i].t), known[i].bytes);
        assert_string_equal(rl_dtype_name(known[i].t), known[i].name);
        assert_int_equal(rl_dtype_supported(known[i].t), known[i].supported);
        assert_int_equal(rl_dtype_from_name(known[i].name), known[i].t);
        assert_int_equal(rl_dtype_from_name(upper), known[i].t);
    }
    static const int unused[] = {4, 5, 31, 32, 33, 36, 37, 38, 40, -1, 1000};
    for (size_t i = 0; i < sizeof unused / sizeof unused[0]; i++) {
        rl_dtype t = (rl_dtype)unused[i];
        assert_int_equal(rl_dtype_block(t), 0);
        assert_int_equal(rl_dtype_block_bytes(t), 0);
        assert_string_equal(rl_dtype_name(t), "unknown");
        assert_false(rl_dtype_supported(t));
        assert_int_equal(rl_dtype_row_bytes(t, 32), 0);
    }
    int n_supported = 0;
    for (int t = 0; t < RL_DTYPE_COUNT; t++)
        n_supported += rl_dtype_supported((rl_dtype)t);
    assert_int_equal(n_supported, 8);

    assert_int_equal(rl_dtype_row_bytes(RL_Q4_K, 4096), 16 * 144);
    assert_int_equal(rl_dtype_row_bytes(RL_Q4_K, 100), 0);
    assert_int_equal(rl_dtype_row_bytes(RL_Q8_0, 64), 68);
    assert_int_equal(rl_dtype_row_bytes(RL_F32, 3), 12);
    assert_int_equal(rl_dtype_row_bytes(RL_F64, (uint64_t)1 << 62), 0); /* overflows */
    assert_int_equal(rl_dtype_from_name("nope"), -1);
    assert_int_equal(rl_dtype_from_name("unknown"), -1);
    assert_int_equal(rl_dtype_from_name(NULL), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
