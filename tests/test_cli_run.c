/* `relais run`, `relais inspect` through the binary, as users and other
 * tools drive them: the --json / --prompt-ids / --force-ids interface against
 * the golden outputs, the window overrides and the Ministral-8B layout
 * inference, and clear errors (never a crash) for bad files and arguments. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "gguf_write.h"
#include "runner.h"
#include "sampler.h"
#include "testutil.h"

#define MODELS RELAIS_SHARED_DIR "/models/"
#define GOLDEN RELAIS_SHARED_DIR "/golden/"

static char tmpdir[TU_DIR_MAX];

static int setup(void **s) {
    (void)s;
    return tu_dir_new(tmpdir, "cli");
}

static int teardown(void **s) {
    (void)s;
    return tu_dir_remove(tmpdir);
}

/* Runs `relais ARGS`, stdout (and stderr when merge) into out. Returns the
 * exit code, or -1000 - signal when it died of a signal. */
static int run(const char *args, bool merge, char *out, size_t cap) {
    char cmd[16384];
    if (snprintf(cmd, sizeof cmd, "%s %s%s", RELAIS_BIN, args, merge ? " 2>&1" : " 2>/dev/null") >= (int)sizeof cmd)
        fail_msg("command line too long: %.80s...", args);
    return tu_run(cmd, out, cap);
}

static char *ids_csv(const json_t *arr) {
    static char buf[8192];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < json_array_size(arr); i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%lld", i ? "," : "",
                              (long long)json_integer_value(json_array_get(arr, i)));
    return buf;
}

static json_t *golden(const char *name) {
    char path[512];
    snprintf(path, sizeof path, GOLDEN "%s", name);
    json_t *g = json_load_file(path, 0, NULL);
    assert_non_null(g);
    return g;
}

/* Max |ours - reference| over each step's reference top-8 ids. */
static double top_error(const json_t *ours, const json_t *ref) {
    double worst = 0;
    assert_int_equal(json_array_size(ours), json_array_size(ref));
    for (size_t t = 0; t < json_array_size(ref); t++) {
        const json_t *o = json_array_get(ours, t), *r = json_array_get(ref, t);
        for (size_t i = 0; i < json_array_size(r); i++) {
            json_int_t id = json_integer_value(json_array_get(json_array_get(r, i), 0));
            double want = json_number_value(json_array_get(json_array_get(r, i), 1)), got = NAN;
            for (size_t j = 0; j < json_array_size(o); j++)
                if (json_integer_value(json_array_get(json_array_get(o, j), 0)) == id)
                    got = json_number_value(json_array_get(json_array_get(o, j), 1));
            if (isnan(got))
                return INFINITY; /* a reference top id missing from our top list */
            if (fabs(got - want) > worst)
                worst = fabs(got - want);
        }
    }
    return worst;
}

static json_t *run_json(const char *model, const char *extra, const json_t *g, bool force) {
    static char out[1 << 20];
    char args[16384];
    /* the goldens were made with f32 KV */
    int n = snprintf(args, sizeof args,
                     "run -m " MODELS "%s --kv-type f32 --prompt-ids %s --temp 0 --top-logits 16 --json %s", model,
                     ids_csv(json_object_get(g, "prompt_ids")), extra);
    if (force)
        snprintf(args + n, sizeof args - (size_t)n, " --force-ids %s", ids_csv(json_object_get(g, "greedy_ids")));
    else
        snprintf(args + n, sizeof args - (size_t)n, " -n %zu", json_array_size(json_object_get(g, "greedy_ids")));
    assert_int_equal(run(args, false, out, sizeof out), 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    return j;
}

static void test_json_greedy_f32(void **s) {
    (void)s;
    json_t *g = golden("tiny-f32.p1.json");
    json_t *j = run_json("tiny-f32.gguf", "", g, false);
    assert_true(json_equal(json_object_get(j, "prompt_ids"), json_object_get(g, "prompt_ids")));
    assert_true(json_equal(json_object_get(j, "greedy_ids"), json_object_get(g, "greedy_ids")));
    assert_true(top_error(json_object_get(j, "top"), json_object_get(g, "top")) < 2e-3);
    json_decref(j);
    json_decref(g);
}

static void test_json_force_ids_quantized(void **s) {
    (void)s;
    json_t *g = golden("small-q4_k_m.p2.json");
    json_t *j = run_json("small-q4_k_m.gguf", "", g, true);
    assert_int_equal(json_array_size(json_object_get(j, "greedy_ids")),
                     json_array_size(json_object_get(g, "greedy_ids")));
    assert_true(top_error(json_object_get(j, "top"), json_object_get(g, "top")) < 0.5);
    json_decref(j);
    json_decref(g);
}

static void test_window_overrides(void **s) {
    (void)s;
    json_t *g = golden("tiny-swa.p1.json");
    json_t *same = run_json("tiny-swa.gguf", "--swa-window 8 --swa-pattern FSSS", g, true);
    json_t *none = run_json("tiny-swa.gguf", "--swa-window 0", g, true);
    json_t *period = run_json("tiny-swa.gguf", "--swa-pattern 4", g, true); /* period 4 = FSSS again */
    assert_true(top_error(json_object_get(same, "top"), json_object_get(g, "top")) < 2e-3);
    assert_true(top_error(json_object_get(period, "top"), json_object_get(g, "top")) < 2e-3);
    assert_true(top_error(json_object_get(none, "top"), json_object_get(g, "top")) > 1e-2);
    json_decref(same), json_decref(none), json_decref(period), json_decref(g);
    char out[4096];
    assert_int_not_equal(run("run -m " MODELS "tiny-swa.gguf --prompt-ids 1 --swa-pattern FSX", true, out, sizeof out),
                         0);
    assert_non_null(strstr(out, "pattern"));
}

static void test_ministral_layout_inferred(void **s) {
    (void)s;
    char args[1024], out[1 << 16];
    snprintf(args, sizeof args, "synth --preset tiny --swa-window 0 -q -o %s/Ministral-8B-Instruct-2410-test.gguf",
             tmpdir);
    assert_int_equal(run(args, true, out, sizeof out), 0);
    snprintf(args, sizeof args, "inspect %s/Ministral-8B-Instruct-2410-test.gguf", tmpdir);
    assert_int_equal(run(args, true, out, sizeof out), 0);
    assert_non_null(strstr(out, "sliding window 32768"));
    assert_non_null(strstr(out, "inferred"));
    assert_non_null(strstr(out, "layout         FSSS"));
    snprintf(args, sizeof args, "run -m %s/Ministral-8B-Instruct-2410-test.gguf --prompt-ids 1,2,3 -n 2 --temp 0",
             tmpdir);
    assert_int_equal(run(args, true, out, sizeof out), 0);
    assert_non_null(strstr(out, "published layout"));
    /* its published context of 131072, though the file declares 512 */
    snprintf(args, sizeof args, "inspect %s/Ministral-8B-Instruct-2410-test.gguf", tmpdir);
    assert_int_equal(run(args, true, out, sizeof out), 0);
    assert_non_null(
        strstr(out, "context        131072 (Ministral-8B-2410's published context; the file declares 512)"));
    snprintf(args, sizeof args,
             "run -m %s/Ministral-8B-Instruct-2410-test.gguf --ctx 131072 --prompt-ids 1,2,3 -n 2 "
             "--temp 0",
             tmpdir);
    assert_int_equal(run(args, true, out, sizeof out), 0);
    assert_non_null(strstr(out, "maximum context 131072, as published (the file declares 512)"));
    snprintf(args, sizeof args, "run -m %s/Ministral-8B-Instruct-2410-test.gguf --ctx 131073 --prompt-ids 1 -n 1",
             tmpdir);
    assert_int_not_equal(run(args, true, out, sizeof out), 0);
    assert_non_null(strstr(out, "exceeds this model's context of 131072"));
}

/* Memory checked before it runs out: on a machine stated to have 72 MiB, the
 * Ministral-named file at 131072 positions is refused at start with the
 * figures and the largest --ctx that fits; that context then runs, one more
 * position is refused, and q8_0 KV is offered when the heads allow it. */
static void test_memory_checked_at_start(void **s) {
    (void)s;
    char args[1024], out[1 << 14], path[512];
    snprintf(path, sizeof path, "%s/Ministral-8B-Instruct-2410-test.gguf", tmpdir);
    snprintf(args, sizeof args, "synth --preset tiny --swa-window 0 -q -o %s", path);
    assert_int_equal(run(args, true, out, sizeof out), 0);
    setenv("RELAIS_MEM_AVAILABLE", "72M", 1);
    snprintf(args, sizeof args, "run -m %s --ctx 131072 --prompt-ids 1 -n 1", path);
    assert_int_not_equal(run(args, true, out, sizeof out), 0);
    const char *want[] = {"not enough memory", "f16, context 131072, 1 session", "72 MiB is available",
                          "RELAIS_MEM_AVAILABLE", "more nodes"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i]))
            fail_msg("lacks '%s':\n%s", want[i], out);
    const char *at = strstr(out, "What would fit: --ctx ");
    unsigned fit = 0;
    assert_non_null(at);
    assert_int_equal(sscanf(at, "What would fit: --ctx %u at most", &fit), 1);
    assert_true(fit > 512 && fit < 131072);
    snprintf(args, sizeof args, "run -m %s --ctx %u --prompt-ids 1 -n 1", path, fit);
    assert_int_equal(run(args, true, out, sizeof out), 0);
    snprintf(args, sizeof args, "run -m %s --ctx %u --prompt-ids 1 -n 1", path, fit + 1);
    assert_int_not_equal(run(args, true, out, sizeof out), 0);
    assert_non_null(strstr(out, "not enough memory"));
    /* heads of 32: q8_0 is offered, with what it needs */
    setenv("RELAIS_MEM_AVAILABLE", "66M", 1);
    assert_int_not_equal(
        run("run -m " MODELS "small-q4_k_m.gguf --ctx 2048 --kv-type f32 --prompt-ids 1 -n 1", true, out, sizeof out),
        0);
    assert_non_null(strstr(out, "--kv-type q8_0 at this context needs 67 MiB"));
    /* serve counts every session's KV at the full context */
    setenv("RELAIS_MEM_AVAILABLE", "70M", 1);
    assert_int_not_equal(
        run("serve -m " MODELS "stories260K.gguf --port 0 --max-sessions 64 --ctx 512", true, out, sizeof out), 0);
    assert_non_null(strstr(out, "(f16, context 512, 64 sessions)"));
    assert_non_null(strstr(out, "15 sessions at this context"));
    /* a stated figure that is not a size is an error, not a silent pass */
    setenv("RELAIS_MEM_AVAILABLE", "lots", 1);
    assert_int_not_equal(run("run -m " MODELS "tiny-f32.gguf --prompt-ids 1 -n 1", true, out, sizeof out), 0);
    assert_non_null(strstr(out, "RELAIS_MEM_AVAILABLE='lots' is not a size"));
    unsetenv("RELAIS_MEM_AVAILABLE");
}

/* relais bench --depth: decode and prefill timed after a cache filled to the
 * depth, in the KV type asked; a depth the context cannot hold is refused. */
static void test_bench_depth(void **s) {
    (void)s;
    static char out[1 << 14];
    assert_int_equal(run("bench -m " MODELS "small-q4_k_m.gguf -t 1 -p 0 -n 4 -r 1 --depth 100 --kv-type q8_0,f16 "
                         "--json",
                         false, out, sizeof out),
                     0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "depth")), 100);
    assert_string_equal(json_string_value(json_object_get(j, "kv_type")), "q8_0,f16");
    assert_true(json_number_value(json_object_get(j, "tg_tps")) > 0);
    assert_int_equal(json_integer_value(json_object_get(j, "pp_depth")), 0); /* no prefill asked */
    json_decref(j);
    assert_int_equal(
        run("bench -m " MODELS "small-q4_k_m.gguf -t 1 -p 20 -n 0 -r 1 --depth 100 --json", false, out, sizeof out), 0);
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "pp_depth")), 100);
    assert_true(json_number_value(json_object_get(j, "pp_tps")) > 0);
    json_decref(j);
    assert_int_not_equal(
        run("bench -m " MODELS "small-q4_k_m.gguf -p 0 -n 4 -r 1 --depth 5000 --ctx 4096", true, out, sizeof out), 0);
    assert_non_null(strstr(out, "depth 5000 leaves no room in the context of 4096"));
}

/* Other models: a --ctx above the file's context is refused with the reason
 * unless --ctx-beyond-file accepts it; the default stays within it. */
static void test_ctx_beyond_file(void **s) {
    (void)s;
    char out[1 << 14];
    assert_int_not_equal(run("run -m " MODELS "tiny-f32.gguf --ctx 4097 --prompt-ids 1 -n 1", true, out, sizeof out),
                         0);
    assert_non_null(strstr(out, "--ctx 4097 exceeds this model's context of 4096"));
    assert_non_null(strstr(out, "--ctx-beyond-file"));
    assert_int_equal(
        run("run -m " MODELS "tiny-f32.gguf --ctx 4097 --ctx-beyond-file --prompt-ids 1,2 -n 1", true, out, sizeof out),
        0);
    assert_int_equal(run("run -m " MODELS "tiny-f32.gguf --ctx 4096 --prompt-ids 1,2 -n 1", true, out, sizeof out), 0);
    assert_int_equal(run("run -m " MODELS "stories260K.gguf --prompt-ids 1,2 -n 1", true, out, sizeof out), 0);
}

static void test_inspect(void **s) {
    (void)s;
    static char out[1 << 16];
    assert_int_equal(run("inspect " MODELS "tiny-swa.gguf", true, out, sizeof out), 0);
    const char *want[] = {"architecture   llama",       "layers         4",    "kv heads 2",
                          "sliding window 8 on 3 of 4", "layout         FSSS", "bytes/layer",
                          "blk.0.attn_q.weight",        "token_embd.weight",   "f32"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i]))
            fail_msg("inspect output lacks '%s':\n%s", want[i], out);
    assert_int_equal(run("inspect " MODELS "vocab-tekken-shaped.gguf", true, out, sizeof out), 0);
    assert_non_null(strstr(out, "vocab-only"));
    assert_non_null(strstr(out, "tekken"));
    assert_int_equal(run("inspect " MODELS "tiny-mistral3-q8_0.gguf", true, out, sizeof out), 0);
    const char *m3[] = {"architecture   mistral3", "head dim 32",
                        "rope scaling   yarn: factor 4 over original context 32, beta_fast 32, beta_slow 1, "
                        "log multiplier 0, attn_factor 1",
                        "attention temp q *= 1 + 0.1 ln(1 + floor(pos / 32))"};
    for (size_t i = 0; i < sizeof m3 / sizeof m3[0]; i++)
        if (!strstr(out, m3[i]))
            fail_msg("inspect output lacks '%s':\n%s", m3[i], out);
    assert_int_equal(run("inspect " MODELS "tiny-f32.gguf", true, out, sizeof out), 0);
    assert_non_null(strstr(out, "rope scaling   none"));
    assert_null(strstr(out, "attention temp"));
}

/* A copy of a shared model with one metadata key renamed (same length). */
static void rekey_copy(const char *model, const char *key, const char *renamed, const char *dst) {
    char src[512];
    snprintf(src, sizeof src, MODELS "%s", model);
    size_t len, kl = strlen(key);
    assert_int_equal(strlen(renamed), kl);
    unsigned char *b = tu_slurp(src, &len);
    assert_non_null(b);
    size_t at = 0;
    for (size_t i = 8; i + kl < len && !at; i++) /* the key, preceded by its u64 length */
        if (!memcmp(b + i, key, kl) && b[i - 8] == kl)
            at = i;
    assert_true(at > 0);
    memcpy(b + at, renamed, kl);
    FILE *out = fopen(dst, "wb");
    fwrite(b, 1, len, out);
    fclose(out);
    free(b);
}

/* mistral3 files: a key llama.cpp requires is a load error naming it; a
 * vision encoder (mmproj) file given as the model says that it is one. */
static void test_mistral3_load_errors(void **s) {
    (void)s;
    char path[256], args[1024], err[256];
    static char out[1 << 16];
    snprintf(path, sizeof path, "%s/no-eps.gguf", tmpdir);
    rekey_copy("tiny-mistral3.gguf", "mistral3.attention.layer_norm_rms_epsilon",
               "mistral3.attention.layer_norm_rms_epsilom", path);
    snprintf(args, sizeof args, "run -m %s --prompt-ids 1,2", path);
    assert_int_equal(run(args, true, out, sizeof out), 1);
    if (!strstr(out, "required key mistral3.attention.layer_norm_rms_epsilon is missing"))
        fail_msg("no clear error for a missing key:\n%s", out);
    snprintf(path, sizeof path, "%s/bad-rope.gguf", tmpdir);
    rekey_copy("tiny-mistral3.gguf", "mistral3.attention.key_length", "mistral3.attention.key_lengtX", path);
    snprintf(args, sizeof args, "run -m %s --prompt-ids 1,2", path); /* head dim 96/4 = 24: value_length 32 */
    assert_int_equal(run(args, true, out, sizeof out), 1);
    assert_non_null(strstr(out, "value_length"));

    snprintf(path, sizeof path, "%s/mmproj-test.gguf", tmpdir);
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "clip");
    gguf_writer_set_bool(w, "clip.has_vision_encoder", true);
    gguf_writer_set_str(w, "clip.projector_type", "pixtral");
    assert_int_equal(gguf_writer_begin(w, path, err, sizeof err), 0);
    assert_int_equal(gguf_writer_close(w, err, sizeof err), 0);
    gguf_writer_destroy(&w);
    snprintf(args, sizeof args, "run -m %s --prompt-ids 1,2", path);
    assert_int_equal(run(args, true, out, sizeof out), 1);
    if (!strstr(out, "vision encoder (mmproj) is not supported"))
        fail_msg("no clear error for an mmproj file:\n%s", out);
}

/* Copies the first `keep` bytes of a shared model into the temp dir. */
static void truncated_copy(const char *model, size_t keep, const char *dst) {
    char src[512];
    snprintf(src, sizeof src, MODELS "%s", model);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char *buf = malloc(keep);
    assert_int_equal(fread(buf, 1, keep, in), keep);
    fwrite(buf, 1, keep, out);
    free(buf);
    fclose(in);
    fclose(out);
}

/* Rewrites the type field of a tensor's info in a copy of a model. */
static void retype_copy(const char *model, const char *tensor, uint32_t type, const char *dst) {
    char src[512];
    snprintf(src, sizeof src, MODELS "%s", model);
    size_t len;
    unsigned char *b = tu_slurp(src, &len);
    assert_non_null(b);
    size_t nl = strlen(tensor), at = 0;
    for (size_t i = 8; i + nl < len && !at; i++) /* name, preceded by its u64 length */
        if (!memcmp(b + i, tensor, nl) && b[i - 8] == nl)
            at = i + nl;
    assert_true(at > 0);
    uint32_t n_dims;
    memcpy(&n_dims, b + at, 4);
    memcpy(b + at + 4 + 8 * n_dims, &type, 4);
    FILE *out = fopen(dst, "wb");
    fwrite(b, 1, len, out);
    fclose(out);
    free(b);
}

static void test_bad_input_errors(void **s) {
    (void)s;
    char path[256], args[1024];
    static char out[1 << 16];
    int rc = run("run -m /nonexistent/model.gguf -p hi", true, out, sizeof out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "/nonexistent/model.gguf"));

    snprintf(path, sizeof path, "%s/truncated.gguf", tmpdir);
    const size_t cuts[] = {3, 20, 700, 5000, 600000};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        truncated_copy("tiny-f32.gguf", cuts[i], path);
        snprintf(args, sizeof args, "run -m %s -p hi", path);
        rc = run(args, true, out, sizeof out);
        if (rc != 1)
            fail_msg("truncated at %zu: exit %d:\n%s", cuts[i], rc, out);
        assert_true(strlen(out) > 20);
    }

    snprintf(path, sizeof path, "%s/q4_1.gguf", tmpdir);
    retype_copy("tiny-q8_0.gguf", "blk.2.ffn_up.weight", 3 /* Q4_1 */, path);
    snprintf(args, sizeof args, "run -m %s -p hi", path);
    assert_int_equal(run(args, true, out, sizeof out), 1);
    assert_non_null(strstr(out, "blk.2.ffn_up.weight"));
    assert_non_null(strstr(out, "q4_1"));

    assert_int_equal(
        run("run -m " MODELS "tiny-f32.gguf --ctx 8 --prompt-ids 1,2,3,4,5,6,7,8,9,10", true, out, sizeof out), 1);
    assert_non_null(strstr(out, "context"));
    assert_int_equal(run("run -m " MODELS "tiny-f32.gguf --prompt-ids 1,99999", true, out, sizeof out), 1);
    assert_non_null(strstr(out, "99999"));
    assert_int_not_equal(run("run -m " MODELS "tiny-f32.gguf --prompt-ids 1,x", true, out, sizeof out), 0);
    assert_non_null(strstr(out, "--prompt-ids"));
    assert_int_not_equal(run("run -m " MODELS "tiny-f32.gguf -p hi --temp -1", true, out, sizeof out), 0);
    assert_non_null(strstr(out, "--temp"));
    assert_int_not_equal(run("run -p hi", true, out, sizeof out), 0);
    assert_non_null(strstr(out, "RELAIS_MODEL"));
    assert_int_not_equal(run("frobnicate", true, out, sizeof out), 0);
    assert_non_null(strstr(out, "unknown command"));
}

/* --kv-type: names checked, a type the model's heads cannot take refused
 * with the reason, and the default (f16) close to the f32 golden. */
static void test_kv_type_option(void **s) {
    (void)s;
    char out[4096];
    assert_int_not_equal(run("run -m " MODELS "tiny-f32.gguf --prompt-ids 1 -n 1 --kv-type f8", true, out, sizeof out),
                         0);
    assert_non_null(strstr(out, "--kv-type"));
    assert_non_null(strstr(out, "expected f32, f16 or q8_0"));
    assert_int_not_equal(
        run("run -m " MODELS "tiny-f32.gguf --prompt-ids 1 -n 1 --kv-type q8_0", true, out, sizeof out), 0);
    assert_non_null(strstr(out, "multiple of 32"));
    json_t *g = golden("tiny-f32.p1.json");
    json_t *f16 = run_json("tiny-f32.gguf", "--kv-type f16", g, true); /* the later option wins */
    const double e = top_error(json_object_get(f16, "top"), json_object_get(g, "top"));
    assert_true(e > 0 && e < 0.05);
    json_t *gq = golden("small-q4_k_m.p1.json");
    json_t *q = run_json("small-q4_k_m.gguf", "--kv-type f16,q8_0", gq, true);
    assert_true(top_error(json_object_get(q, "top"), json_object_get(gq, "top")) < 1.0);
    json_decref(q), json_decref(gq), json_decref(f16), json_decref(g);
}

static void test_text_generation(void **s) {
    (void)s;
    char out[1 << 16];
    json_t *g = golden("stories260K.json");
    const json_t *c0 = json_array_get(json_object_get(g, "cases"), 0);
    char args[1024];
    snprintf(args, sizeof args, "run -m " MODELS "stories260K.gguf -p '%s' -n %zu --temp 0",
             json_string_value(json_object_get(c0, "prompt")), json_array_size(json_object_get(c0, "greedy_ids")));
    assert_int_equal(run(args, false, out, sizeof out), 0);
    const char *want = json_string_value(json_object_get(c0, "text"));
    if (strncmp(out, want, strlen(want)) != 0)
        fail_msg("streamed text:\n%s\nexpected:\n%s", out, want);
    assert_int_equal(run(args, true, out, sizeof out), 0);
    assert_non_null(strstr(out, "t/s")); /* the closing speed line */
    assert_non_null(strstr(out, "peak RSS"));
    json_decref(g);
}

/* The streamed text holds a character's bytes until the token that
 * completes it: "🦙" forced as four byte tokens (<0xF0> <0x9F> <0xA6> <0x99>,
 * ids 3 + byte in the synthetic SentencePiece vocabulary) prints whole; cut
 * after two, it ends as one U+FFFD, never as the raw lead bytes. */
static void test_text_whole_characters(void **s) {
    (void)s;
    char out[256];
    assert_int_equal(run("run -m " MODELS "tiny-f32.gguf --prompt-ids 1 --force-ids 243,162,169,156,36 -n 5 --temp 0",
                         false, out, sizeof out),
                     0);
    assert_string_equal(out, "\xF0\x9F\xA6\x99!\n");
    assert_int_equal(
        run("run -m " MODELS "tiny-f32.gguf --prompt-ids 1 --force-ids 243,162 -n 2 --temp 0", false, out, sizeof out),
        0);
    assert_string_equal(out, "\xEF\xBF\xBD\n");
}

/* A prompt of several chunks streams the same text and shows its prefill
 * progress; a prompt of one chunk, or --json, shows none. */
static void test_prefill_progress(void **s) {
    (void)s;
    static char one[1 << 16], chunked[1 << 16];
    const char *base = "run -m " MODELS "stories260K.gguf -p 'Once upon a time, there was a little girl' -n 8 --temp 0";
    char args[1024];
    assert_int_equal(run(base, false, one, sizeof one), 0);
    snprintf(args, sizeof args, "%s --batch 3", base);
    assert_int_equal(run(args, false, chunked, sizeof chunked), 0);
    assert_string_equal(chunked, one);
    assert_int_equal(run(args, true, chunked, sizeof chunked), 0);
    const char *done = strstr(chunked, "relais: prefill 100% (");
    if (!done || !strstr(chunked, "relais: prefill  "))
        fail_msg("no prefill progress in:\n%s", chunked);
    assert_int_equal(run(base, true, one, sizeof one), 0);
    assert_null(strstr(one, "prefill"));
    snprintf(args, sizeof args, "%s --batch 3 --json", base);
    assert_int_equal(run(args, true, chunked, sizeof chunked), 0);
    assert_null(strstr(chunked, "prefill"));
}

static void test_chat(void **s) {
    (void)s;
    char out[1 << 16];
    /* two turns; the second reuses the cache of the first */
    int rc = run("chat -m " MODELS "stories260K.gguf --temp 0 -n 12 < /dev/null", true, out, sizeof out);
    assert_int_equal(rc, 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "printf 'Once upon a time\\nThe end\\n\\n' | %s chat -m " MODELS
             "stories260K.gguf --system 'Tell stories.' --temp 0 -n 12 2>&1",
             RELAIS_BIN);
    assert_int_equal(tu_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "template mistral-v1"));
    /* two prompts answered: three "> " prompts shown (the last one meets the empty line) */
    int prompts = 0;
    for (const char *q = out; (q = strstr(q, "> ")) != NULL; q += 2)
        prompts++;
    assert_true(prompts >= 3);
}

/* A reasoning model's reply in `relais chat`: a shrunk Ministral 3 (its
 * vocabulary names [THINK] 34 and [/THINK] 35, EOS 2) made to say
 * [THINK] a b [/THINK] c d, then e (--force-ids). The thinking shows between
 * [thinking] lines (stdout is not a terminal), apart from the answer, the
 * control tokens never as text; the second turn, whose prompt holds the
 * first's thinking as reasoning_content, has none. */
static void test_chat_reasoning(void **s) {
    (void)s;
    char model[TU_DIR_MAX + 32], cmd[2048], out[1 << 14];
    snprintf(model, sizeof model, "%s/m3.gguf", tmpdir);
    snprintf(cmd, sizeof cmd,
             "synth --preset ministral3-3b --layers 2 --dim 96 --heads 4 --kv-heads 2 --head-dim 32 --ffn 256 "
             "--vocab 2048 --ctx 256 --type q8_0 -o %s",
             model);
    assert_int_equal(run(cmd, true, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd,
             "printf 'Hi\\nAgain\\n\\n' | %s chat -m %s --temp 0 -n 16 -t 1 "
             "--force-ids 34,1100,1101,35,1200,1201,2,1300,2 2>/dev/null",
             RELAIS_BIN, model);
    assert_int_equal(tu_run(cmd, out, sizeof out), 0);
    const char *open = strstr(out, "> [thinking]\n"), *close = open ? strstr(open, "\n[/thinking]\n") : NULL;
    if (!open || !close) { /* return: GCC does not know fail_msg does not (-Wstringop-overread on NULL + n) */
        fail_msg("no thinking block in:\n%s", out);
        return;
    }
    assert_true(close > open + strlen("> [thinking]\n")); /* the thinking's text */
    const char *answer = close + strlen("\n[/thinking]\n"), *second = strstr(answer, "\n> ");
    assert_non_null(second);
    assert_true(second > answer);               /* the answer, apart */
    assert_null(strstr(close, "[thinking]\n")); /* one block: the second turn thinks not */
    assert_null(strstr(out, "[THINK]"));
    assert_null(strstr(out, "[/THINK]"));
    assert_non_null(strstr(second + 3, "\n> ")); /* the second reply, then the last prompt */
    /* --force-ids with a draft is refused */
    snprintf(cmd, sizeof cmd, "chat -m %s --force-ids 2 --draft ngram < /dev/null", model);
    assert_int_equal(run(cmd, true, out, sizeof out), 2);
    assert_non_null(strstr(out, "--draft does not go with --force-ids"));
}

/* `relais run` drives the micro-batch executor with one session whose
 * prompt chunks may use sgemm: its --json ids and top logits are, to the
 * last bit, what the single-process runner computes with the same chunk
 * (the path run took before the executor carried it): a 21-token prompt
 * in chunks of 8 (sgemm at --gemm-min 8) and 5 (the quantized kernels),
 * then greedy decode steps, on float, quantized and sliding-window models. */
static void test_run_is_the_runner(void **s) {
    (void)s;
    static const char *const names[] = {"tiny-f32", "tiny-q8_0",    "tiny-q4_0",
                                        "tiny-swa", "small-q4_k_m", "stories260K"};
    enum { N_PROMPT = 21, N_GEN = 6, TOP = 8, BATCH = 8 };
    static char out[1 << 16];
    for (size_t m = 0; m < sizeof names / sizeof names[0]; m++) {
        char path[512], err[512], args[2048];
        snprintf(path, sizeof path, MODELS "%s.gguf", names[m]);
        rl_runner_opts o = rl_runner_opts_default();
        o.model_path = path, o.n_threads = 2, o.batch = BATCH, o.gemm_min = BATCH, o.progress = false;
        rl_runner *r = rl_runner_new(&o, err, sizeof err);
        if (!r)
            fail_msg("%s: %s", names[m], err);
        const uint32_t V = rl_runner_hparams(r)->n_vocab;
        int32_t prompt[N_PROMPT];
        size_t n = (size_t)snprintf(args, sizeof args,
                                    "run -m %s -t 2 --batch %d --gemm-min %d --temp 0 -n %d "
                                    "--top-logits %d --json --prompt-ids ",
                                    path, BATCH, BATCH, N_GEN, TOP);
        for (int i = 0; i < N_PROMPT; i++) {
            prompt[i] = i == 0 ? 1 : (int32_t)((i * 7919u + 13u) % V);
            n += (size_t)snprintf(args + n, sizeof args - n, "%s%d", i ? "," : "", prompt[i]);
        }
        assert_int_equal(run(args, false, out, sizeof out), 0);
        json_t *j = json_loads(out, 0, NULL);
        assert_non_null(j);
        const json_t *ids = json_object_get(j, "greedy_ids"), *top = json_object_get(j, "top");
        assert_int_equal(json_array_size(ids), N_GEN);
        float *logits = malloc(V * sizeof *logits);
        assert_int_equal(rl_runner_feed(r, prompt, N_PROMPT, logits, err, sizeof err), 0);
        for (int t = 0; t < N_GEN; t++) {
            int32_t want[TOP];
            float vals[TOP];
            rl_top_logits(logits, V, TOP, want, vals);
            const json_t *step = json_array_get(top, (size_t)t);
            assert_int_equal(json_array_size(step), TOP);
            for (int k = 0; k < TOP; k++) {
                const json_t *pair = json_array_get(step, (size_t)k);
                const float got = (float)json_real_value(json_array_get(pair, 1));
                if (json_integer_value(json_array_get(pair, 0)) != want[k] || memcmp(&got, &vals[k], sizeof got))
                    fail_msg("%s step %d top %d: (%lld, %.9g), the runner (%d, %.9g)", names[m], t, k,
                             (long long)json_integer_value(json_array_get(pair, 0)), (double)got, want[k],
                             (double)vals[k]);
            }
            const int32_t id = (int32_t)json_integer_value(json_array_get(ids, (size_t)t));
            assert_int_equal(id, want[0]); /* greedy: the largest logit */
            if (t + 1 < N_GEN)
                assert_int_equal(rl_runner_feed(r, &id, 1, logits, err, sizeof err), 0);
        }
        free(logits);
        json_decref(j);
        rl_runner_destroy(&r);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_greedy_f32),
        cmocka_unit_test(test_json_force_ids_quantized),
        cmocka_unit_test(test_window_overrides),
        cmocka_unit_test(test_ministral_layout_inferred),
        cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_bad_input_errors),
        cmocka_unit_test(test_kv_type_option),
        cmocka_unit_test(test_ctx_beyond_file),
        cmocka_unit_test(test_memory_checked_at_start),
        cmocka_unit_test(test_bench_depth),
        cmocka_unit_test(test_text_generation),
        cmocka_unit_test(test_prefill_progress),
        cmocka_unit_test(test_chat),
        cmocka_unit_test(test_chat_reasoning),
        cmocka_unit_test(test_text_whole_characters),
        cmocka_unit_test(test_mistral3_load_errors),
        cmocka_unit_test(test_run_is_the_runner),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
