/* The ways a model's weights can be loaded give the same numbers: mapped and
 * rearranged into the x16 layout (the default), read into memory
 * (no_mmap), or left in the file's layout (file_layout). The batched kernels
 * pack identical tiles from either layout, so the logits must agree bit for
 * bit, for prompts and single tokens; a float model (stories260K), which has
 * nothing to rearrange, is the same read into memory or mapped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "runner.h"

#define MODELS RELAIS_SHARED_DIR "/models/"

typedef enum { DEFAULT, NO_MMAP, FILE_LAYOUT, N_MODES } mode;

/* Logits after a 9-token prompt and after 4 more tokens fed one by one:
 * (5, n_vocab), malloc'd. */
static float *run(const char *model, mode md, uint32_t *n_vocab) {
    char err[512];
    rl_runner_opts o = rl_runner_opts_default();
    o.model_path = model;
    o.n_threads = 2;
    o.n_ctx = 64;
    o.progress = false;
    o.no_mmap = md == NO_MMAP;
    o.file_layout = md == FILE_LAYOUT;
    rl_runner *r = rl_runner_new(&o, err, sizeof err);
    if (!r)
        fail_msg("%s: %s", model, err);
    *n_vocab = rl_runner_hparams(r)->n_vocab;
    float *logits = malloc(5 * (size_t)*n_vocab * sizeof *logits);
    const int32_t ids[13] = {1, 17, 5, 99, 23, 8, 41, 2, 77, 13, 6, 60, 31};
    assert_int_equal(rl_runner_feed(r, ids, 9, logits, err, sizeof err), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rl_runner_feed(r, ids + 9 + i, 1, logits + (size_t)(i + 1) * *n_vocab, err, sizeof err), 0);
    rl_runner_destroy(&r);
    return logits;
}

static void same_in_every_mode(const char *model) {
    uint32_t v0, v;
    float *want = run(model, DEFAULT, &v0);
    for (mode md = NO_MMAP; md < N_MODES; md++) {
        float *got = run(model, md, &v);
        assert_int_equal(v, v0);
        if (memcmp(got, want, 5 * (size_t)v * sizeof *got) != 0)
            fail_msg("%s: logits with %s differ from the default load", model,
                     md == NO_MMAP ? "no_mmap" : "file_layout");
        free(got);
    }
    free(want);
}

static void test_q8_0(void **state) {
    (void)state;
    same_in_every_mode(MODELS "tiny-q8_0.gguf");
}

static void test_k_quants(void **state) {
    (void)state;
    same_in_every_mode(MODELS "small-q4_k_m.gguf");
}

static void test_float_model(void **state) {
    (void)state;
    same_in_every_mode(MODELS "stories260K.gguf");
}

/* Which matrices end up rearranged: the layers' and an untied head's, not
 * with file_layout, never the embedding. Mapped, the rearranged ones have
 * been read into anonymous memory (huge pages where there are any), while
 * the embedding stays a view of the file. */
/* Whether the mapping holding p is of a file whose path ends in `name`
 * (/proc/self/maps). */
static bool mapped_from(const void *p, const char *name) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) != 2 || (uintptr_t)p < lo || (uintptr_t)p >= hi)
            continue;
        line[strcspn(line, "\n")] = 0;
        const size_t n = strlen(line), k = strlen(name);
        found = n >= k && strcmp(line + n - k, name) == 0;
        break;
    }
    if (f)
        fclose(f);
    return found;
}

static void test_which_are_rearranged(void **state) {
    (void)state;
    char err[512];
    rl_model_opts o = rl_model_opts_default();
    rl_model *m = rl_model_load(MODELS "small-q4_k_m.gguf", &o, err, sizeof err);
    assert_non_null(m);
    assert_true(rl_model_layer(m, 0)->wq.x16);
    assert_true(rl_model_layer(m, 0)->w_down.x16);
    assert_false(rl_model_embed(m)->x16);
    assert_int_equal(rl_model_output(m)->x16, !rl_model_hparams(m)->tied_output);
    assert_false(mapped_from(rl_model_layer(m, 0)->w_up.data, "small-q4_k_m.gguf"));
    assert_true(mapped_from(rl_model_embed(m)->data, "small-q4_k_m.gguf"));
    rl_model_destroy(&m);
    o.file_layout = true;
    o.no_mmap = true;
    m = rl_model_load(MODELS "small-q4_k_m.gguf", &o, err, sizeof err);
    assert_non_null(m);
    assert_false(rl_model_layer(m, 0)->wq.x16);
    rl_model_destroy(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_0),
        cmocka_unit_test(test_k_quants),
        cmocka_unit_test(test_float_model),
        cmocka_unit_test(test_which_are_rearranged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
