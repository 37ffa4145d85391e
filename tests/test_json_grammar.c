/* Tests of the JSON grammar behind response_format json_object
 * (engine/sample/json_grammar.c): every prefix of valid objects is
 * accepted and only the whole is complete; invalid ones (numbers, escapes,
 * UTF-8, nesting, structure) are refused at the byte that breaks them; the
 * close sequence completes any prefix; the mask over a small vocabulary and
 * over the 131k Tekken one (random walks that always end as JSON jansson
 * parses, within the token budget), with the mask's time per step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gguf.h"
#include "json_grammar.h"
#include "openai.h"
#include "rng.h"
#include "util.h"

static bool feed_str(rl_jg *g, const char *s) { return rl_jg_feed(g, (const uint8_t *)s, strlen(s)); }

static const char *const valid[] = {
    "{}",
    " {\n\t\"a\" : 1 } ",
    "{\"a\":0}",
    "{\"a\":-0.5E-2,\"b\":10e+3,\"c\":123.456}",
    "{\"a\":[1,-2.5e+3,true,false,null,{\"b\":\"x\\n\\u00e9\\\"\\\\\\/\"}],\"c\":[]}",
    "{\"k\":\"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80\"}",
    "{\"\":{\"\":{\"\":[[[]]]}}}",
};

static void test_valid_prefixes(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        const char *s = valid[i];
        size_t end = strlen(s);
        while (end && s[end - 1] == ' ') /* nothing may follow the object, not even blanks */
            end--;
        rl_jg g;
        rl_jg_init(&g);
        for (size_t k = 0; k < end; k++) {
            assert_false(rl_jg_done(&g));
            if (!rl_jg_feed(&g, (const uint8_t *)s + k, 1))
                fail_msg("'%s' refused at byte %zu", s, k);
        }
        assert_true(rl_jg_done(&g));
        assert_false(feed_str(&g, " "));
        /* the same bytes parse as JSON */
        json_error_t je;
        json_t *j = json_loadb(s, end, 0, &je);
        assert_non_null(j);
        json_decref(j);
    }
}

static const char *const invalid[] = {
    "[]",
    "\"a\"",
    "1",
    "{a:1}",
    "{\"a\":01}",
    "{\"a\":1.}",
    "{\"a\":-}",
    "{\"a\":1e}",
    "{\"a\":tru}",
    "{\"a\":nul1}",
    "{\"a\":\"\\x\"}",
    "{\"a\":\"\\u12g4\"}",
    "{\"a\":1,}",
    "{,}",
    "{\"a\" 1}",
    "{\"a\":[1,]}",
    "{\"a\":[}",
    "{\"a\":{]}",
    "{\"a\":\"\x01\"}",
    "{\"a\":\"\xc0\x80\"}",
    "{\"a\":\"\xed\xa0\x80\"}",
    "{\"a\":\"\xf4\x90\x80\x80\"}",
    "{\"a\":\"\x80\"}",
    "{}x",
    "{}}",
    "{\"a\":.5}",
    "{\"a\":+1}",
};

static void test_invalid(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        rl_jg g;
        rl_jg_init(&g);
        if (feed_str(&g, invalid[i]) && rl_jg_done(&g))
            fail_msg("'%s' accepted", invalid[i]);
        json_error_t je;
        json_t *j = json_loads(invalid[i], 0, &je);
        assert_true(!j || !json_is_object(j)); /* jansson agrees: not one object */
        json_decref(j);
    }
}

static void test_limits(void **state) {
    (void)state;
    rl_jg g;
    rl_jg_init(&g);
    assert_true(feed_str(&g, "{\"a\":"));
    for (int i = 0; i < RL_JG_MAX_DEPTH - 1; i++)
        assert_true(feed_str(&g, "["));
    assert_false(feed_str(&g, "[")); /* one level too deep */
    rl_jg_init(&g);
    assert_true(feed_str(&g, "{"));
    for (int i = 0; i < RL_JG_MAX_WS; i++)
        assert_true(feed_str(&g, " "));
    assert_false(feed_str(&g, " "));
    rl_jg_init(&g);
    assert_true(feed_str(&g, "{\"a\":\""));
    for (int i = 0; i < 100; i++) /* blanks inside strings are text */
        assert_true(feed_str(&g, " "));
}

/* Every prefix of every valid document closes into a complete object. */
static void test_close(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        for (size_t k = 0; k <= strlen(valid[i]); k++) {
            rl_jg g;
            rl_jg_init(&g);
            if (!rl_jg_feed(&g, (const uint8_t *)valid[i], k) || rl_jg_done(&g))
                continue;
            uint8_t buf[RL_JG_MAX_CLOSE + 1];
            size_t n = rl_jg_close(&g, buf, RL_JG_MAX_CLOSE);
            assert_true(n > 0);
            assert_true(rl_jg_feed(&g, buf, n));
            assert_true(rl_jg_done(&g));
        }
    rl_jg g;
    rl_jg_init(&g);
    uint8_t buf[RL_JG_MAX_CLOSE];
    assert_true(feed_str(&g, "{\"a\":[1,{\"b\":\"x\\u0"));
    size_t n = rl_jg_close(&g, buf, sizeof buf);
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "000\"}]}", 7);
}

static bool allowed(const uint8_t *mask, uint32_t id) { return (mask[id / 8] >> (id % 8)) & 1u; }

static void test_mask_small(void **state) {
    (void)state;
    static const char *const toks[] = {"{", "}", "\"", "a", "1", ":", " ", "{\"", "\"}", "x", "", "<s>"};
    enum { N = sizeof toks / sizeof toks[0], EOS = 10, BOS = 11 };
    rl_jg_vocab *v = rl_jg_vocab_new(N);
    assert_non_null(v);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(rl_jg_vocab_set(v, i, (const uint8_t *)toks[i], i == BOS ? 0 : strlen(toks[i]), i == EOS), 0);
    assert_int_equal(rl_jg_vocab_set(v, 3, (const uint8_t *)"a", 1, false), -1); /* out of order */
    uint8_t mask[(N + 7) / 8];
    rl_jg g;
    rl_jg_init(&g);
    assert_int_equal(rl_jg_mask(&g, v, 100, mask), 3); /* "{", " ", "{\"" */
    assert_true(allowed(mask, 0) && allowed(mask, 6) && allowed(mask, 7));
    assert_false(allowed(mask, EOS) || allowed(mask, BOS) || allowed(mask, 3));
    assert_true(feed_str(&g, "{\"a\":\"x"));
    assert_int_equal(rl_jg_mask(&g, v, 100, mask), 10); /* any text (also "{\""), the quote, "\"}" */
    assert_false(allowed(mask, EOS));
    /* two tokens left: only what leaves one byte to close: "\"", "{\"" (text,
     * then the quote) or "\"}" */
    assert_int_equal(rl_jg_mask(&g, v, 2, mask), 3);
    assert_true(allowed(mask, 2) && allowed(mask, 7) && allowed(mask, 8));
    assert_true(rl_jg_feed_token(&g, v, 8));
    assert_true(rl_jg_done(&g));
    assert_int_equal(rl_jg_mask(&g, v, 100, mask), 1);
    assert_true(allowed(mask, EOS));
    rl_jg_vocab_destroy(&v);
    assert_null(v);
}

/* The real vocabulary: masks at a few states, timed, and random walks
 * through allowed tokens that must end as one JSON object. */
static void test_mask_tekken(void **state) {
    (void)state;
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/models/vocab-tekken.gguf", RELAIS_SHARED_DIR);
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    rl_tokenizer *t = rl_tok_new(f, err, sizeof err);
    gguf_close(&f);
    assert_non_null(t);
    const double t0 = rl_now_s();
    rl_jg_vocab *v = rl_oai_json_vocab_new(t);
    const double t_vocab = rl_now_s() - t0;
    assert_non_null(v);
    const uint32_t nv = rl_jg_vocab_size(v);
    uint8_t *mask = malloc((nv + 7) / 8);
    assert_non_null(mask);
    rl_rng r;
    rl_rng_seed(&r, 42);
    double t_mask = 0;
    uint32_t steps = 0;
    for (int walk = 0; walk < 8; walk++) {
        const uint32_t budget = 12 + 8 * (uint32_t)walk;
        rl_jg g;
        rl_jg_init(&g);
        char out[8192];
        size_t n_out = 0;
        bool ended = false;
        for (uint32_t left = budget; left > 0 && !ended; left--) {
            const double m0 = rl_now_s();
            const uint32_t k = rl_jg_mask(&g, v, left, mask);
            t_mask += rl_now_s() - m0, steps++;
            assert_true(k > 0);
            uint32_t pick = (uint32_t)(rl_rng_uniform(&r) * k), id = 0;
            for (;; id++)
                if (allowed(mask, id) && pick-- == 0)
                    break;
            if (rl_tok_is_eog(t, (int32_t)id)) {
                ended = true;
                break;
            }
            assert_true(rl_jg_feed_token(&g, v, (int32_t)id));
            int len = rl_tok_piece(t, (int32_t)id, false, out + n_out, sizeof out - n_out);
            assert_true(len >= 0 && n_out + (size_t)len < sizeof out);
            n_out += (size_t)len;
            ended = rl_jg_done(&g);
        }
        if (!rl_jg_done(&g))
            fail_msg("walk %d did not close within %u tokens: %.*s", walk, budget, (int)n_out, out);
        json_error_t je;
        json_t *j = json_loadb(out, n_out, 0, &je);
        if (!j || !json_is_object(j))
            fail_msg("walk %d: not an object (%s): %.*s", walk, je.text, (int)n_out, out);
        json_decref(j);
    }
    print_message("tekken (%u ids): token bytes in %.1f ms, mask %.2f ms per step (%u steps)\n", nv, t_vocab * 1e3,
                  t_mask * 1e3 / steps, steps);
    free(mask);
    rl_jg_vocab_destroy(&v);
    rl_tok_destroy(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_prefixes), cmocka_unit_test(test_invalid),    cmocka_unit_test(test_limits),
        cmocka_unit_test(test_close),          cmocka_unit_test(test_mask_small), cmocka_unit_test(test_mask_tekken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
