/* Tests of the `relais synth` and `relais tokenize` commands through the
 * built binary: the file synth writes is the library's for the same options,
 * bad values are refused with a usage exit code and no file, and tokenize
 * prints the tokenizer's ids in both output formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "gguf.h"
#include "synth.h"
#include "tokenizer.h"
#include "testutil.h"

static char tmpdir[TU_DIR_MAX];

static int setup_dir(void **state) {
    (void)state;
    return tu_dir_new(tmpdir, "synth-cli");
}

static int remove_dir(void **state) {
    (void)state;
    return tu_dir_remove(tmpdir);
}

/* Runs `relais ARGS` with stderr discarded; returns the exit code and, when
 * out is given, the first line of stdout. */
static int run(const char *args, char *out, size_t outlen) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", RELAIS_BIN, args);
    static char all[1 << 16];
    const int rc = tu_run(cmd, all, sizeof all);
    const char *nl = strchr(all, '\n'); /* the first line, newline included */
    if (out)
        snprintf(out, outlen, "%.*s", nl ? (int)(nl - all + 1) : (int)strlen(all), all);
    return rc;
}

/* The file the command wrote is byte for byte the library's. */
static void assert_same_file(const char *cli, const char *lib) {
    size_t la, lb;
    unsigned char *a = tu_slurp(cli, &la), *b = tu_slurp(lib, &lb);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
}

static void test_synth_writes_the_library_file(void **state) {
    char cli[128], lib[128], args[512], out[256], err[256];
    snprintf(cli, sizeof cli, "%s/cli.gguf", tmpdir);
    snprintf(lib, sizeof lib, "%s/lib.gguf", tmpdir);
    snprintf(args, sizeof args,
             "synth --preset tiny --layers 2 --type q4_0 --vocab 600 --ctx 256 --seed 9 "
             "--swa-window 16 --swa-period 2 -o %s",
             cli);
    assert_int_equal(run(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "bytes"));

    rl_synth_spec s;
    assert_int_equal(rl_synth_preset("tiny", &s), 0);
    s.n_layer = 2;
    s.ftype = RL_SYNTH_Q4_0;
    s.n_vocab = 600;
    s.n_ctx = 256;
    s.seed = 9;
    s.swa_window = 16;
    s.swa_period = 2;
    assert_int_equal(rl_synth_write(&s, lib, NULL, NULL, err, sizeof err), 0);
    assert_same_file(cli, lib);
}

/* Every shape and rope flag overrides the preset: the file is the
 * library's for the same spec. */
static void test_synth_shape_flags(void **state) {
    char cli[128], lib[128], args[1024], out[256], err[256];
    snprintf(cli, sizeof cli, "%s/cli-m3.gguf", tmpdir);
    snprintf(lib, sizeof lib, "%s/lib-m3.gguf", tmpdir);
    snprintf(args, sizeof args,
             "synth --preset ministral3-14b --layers 2 --dim 96 --heads 4 --kv-heads 2 --head-dim 32 --ffn 256 "
             "--vocab 2048 --ctx 128 --rope-base 500000 --rope-factor 4 --rope-orig-ctx 32 --yarn-beta-fast 16 "
             "--yarn-beta-slow 2 --yarn-log-mul 0 --attn-temp 0.2 --type q8_0 -q -o %s",
             cli);
    assert_int_equal(run(args, out, sizeof out), 0);
    rl_synth_spec s;
    assert_int_equal(rl_synth_preset("ministral3-14b", &s), 0);
    s.n_layer = 2, s.dim = 96, s.n_head = 4, s.n_head_kv = 2, s.head_dim = 32, s.ffn_dim = 256, s.n_vocab = 2048;
    s.n_ctx = 128, s.rope_base = 500000, s.rope_factor = 4, s.rope_orig_ctx = 32, s.yarn_beta_fast = 16;
    s.yarn_beta_slow = 2, s.yarn_log_mul = 0, s.attn_temp_scale = 0.2f, s.ftype = RL_SYNTH_Q8_0;
    assert_int_equal(rl_synth_write(&s, lib, NULL, NULL, err, sizeof err), 0);
    assert_same_file(cli, lib);
    /* inspect reads the parameters back */
    snprintf(args, sizeof args, "inspect %s", cli);
    static char text[1 << 16];
    char cmd[1200];
    snprintf(cmd, sizeof cmd, RELAIS_BIN " %s 2>&1", args);
    assert_int_equal(tu_run(cmd, text, sizeof text), 0);
    assert_non_null(strstr(text,
                           "rope scaling   yarn: factor 4 over original context 32, beta_fast 16, beta_slow 2, "
                           "log multiplier 0"));
    assert_non_null(strstr(text, "q *= 1 + 0.2 ln(1 + floor(pos / 32))"));
    assert_non_null(strstr(text, "dim            96  (heads 4, kv heads 2, head dim 32)"));
}

static void test_synth_refuses_bad_values(void **state) {
    const char *bad[] = {
        "--preset tiny --layers 0",      "--preset tiny --layers 3x",
        "--preset tiny --type q3_K",     "--preset nonesuch",
        "--preset tiny --vocab 10",      "--preset ministral-8b --vocab 1000",
        "--preset tiny --seed -1",       "--layers 2",
        "--preset tiny --what",          "--preset tiny --kv-heads 3",
        "--preset tiny --head-dim 7",    "--preset tiny --dim 0",
        "--preset tiny --rope-base 0.5", "--preset tiny --attn-temp x",
    };
    char path[128], args[512];
    snprintf(path, sizeof path, "%s/bad.gguf", tmpdir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args, "synth %s -o %s", bad[i], path);
        if (run(args, NULL, 0) != 2)
            fail_msg("'%s' was not refused with exit code 2", args);
        assert_int_equal(access(path, F_OK), -1);
    }
    assert_int_equal(run("synth --preset tiny", NULL, 0), 2); /* no -o */
    assert_int_equal(run("synth --help", NULL, 0), 0);
}

static void test_tokenize_prints_ids(void **state) {
    char model[256], args[512], out[1024], err[256];
    snprintf(model, sizeof model, "%s/models/vocab-tekken-shaped.gguf", RELAIS_SHARED_DIR);
    gguf_file *f = gguf_open(model, err, sizeof err);
    assert_non_null(f);
    rl_tokenizer *t = rl_tok_new(f, err, sizeof err);
    assert_non_null(t);
    gguf_close(&f);
    const char *text = "[INST]Hello, world[/INST]";
    int32_t *ids;
    size_t n;
    assert_int_equal(rl_tok_encode(t, text, strlen(text), true, true, &ids, &n), 0);
    char want[1024] = "{\"ids\": [";
    for (size_t i = 0; i < n; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", i ? ", " : "", ids[i]);
    strcat(want, "]}\n");
    snprintf(args, sizeof args, "tokenize -m %s --special --json '%s'", model, text);
    assert_int_equal(run(args, out, sizeof out), 0);
    assert_string_equal(out, want);
    free(ids);

    /* plain output, no BOS, control text as ordinary text */
    assert_int_equal(rl_tok_encode(t, text, strlen(text), false, false, &ids, &n), 0);
    want[0] = 0;
    for (size_t i = 0; i < n; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", i ? " " : "", ids[i]);
    strcat(want, "\n");
    snprintf(args, sizeof args, "tokenize -m %s --no-bos '%s'", model, text);
    assert_int_equal(run(args, out, sizeof out), 0);
    assert_string_equal(out, want);
    assert_int_not_equal(ids[0], rl_tok_find(t, "[INST]"));
    free(ids);
    rl_tok_destroy(&t);

    assert_int_equal(run("tokenize -m /nonexistent.gguf hello", NULL, 0), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_writes_the_library_file),
        cmocka_unit_test(test_synth_shape_flags),
        cmocka_unit_test(test_synth_refuses_bad_values),
        cmocka_unit_test(test_tokenize_prints_ids),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
