/* Tests of the JSON grammar behind response_format json_object
 * (engine/sample/json_grammar.c): every prefix of valid objects is
 * accepted and only the whole is complete; invalid ones (numbers, escapes,
 * UTF-8, nesting, structure) are refused at the byte that breaks them; the
 * close sequence completes any prefix; a schema's subset (types, enums,
 * nested objects and arrays; each prefix closes into a value that follows
 * it); the mask over a small vocabulary and over the 131k Tekken one (random walks that always end as JSON jansson
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
    /* numbers a double holds: 15 integer digits, a two-digit exponent */
    rl_jg_init(&g);
    assert_true(feed_str(&g, "{\"a\":-123456789012345.123456789e-12,\"b\":"));
    rl_jg t = g;
    assert_false(feed_str(&t, "1234567890123456"));
    t = g;
    assert_false(feed_str(&t, "1e123"));
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

/* {"name": string, "age": integer, "score": number, "ok": boolean,
 * "tags": [string], "color": "red"|"green"|7, "pos": {"x": number}, "e": {}} */
static rl_js *test_schema(void) {
    rl_js *s = rl_js_new();
    assert_non_null(s);
    const char *const boolean[] = {"true", "false"}, *const colors[] = {"\"red\"", "\"green\"", "7"};
    const char *const xk[] = {"\"x\""};
    int x = rl_js_scalar(s, RL_JS_NUMBER);
    int pos = rl_js_object(s, xk, &x, 1);
    const int props[] = {rl_js_scalar(s, RL_JS_STRING),
                         rl_js_scalar(s, RL_JS_INTEGER),
                         x,
                         rl_js_enum(s, boolean, 2),
                         rl_js_array(s, rl_js_scalar(s, RL_JS_STRING)),
                         rl_js_enum(s, colors, 3),
                         pos,
                         rl_js_object(s, NULL, NULL, 0)};
    const char *const keys[] = {"\"name\"", "\"age\"",   "\"score\"", "\"ok\"",
                                "\"tags\"", "\"color\"", "\"pos\"",   "\"e\""};
    for (int i = 0; i < 8; i++)
        assert_true(props[i] >= 0);
    assert_int_equal(rl_js_set_root(s, props[0]), -1); /* the top level is an object */
    assert_int_equal(rl_js_set_root(s, rl_js_object(s, keys, props, 8)), 0);
    return s;
}

/* A parsed value that follows test_schema. */
static void check_schema_value(const json_t *j, const char *text) {
    const json_t *color = json_object_get(j, "color"), *tags = json_object_get(j, "tags");
    const bool ok = json_is_object(j) && json_object_size(j) == 8 && json_is_string(json_object_get(j, "name")) &&
        json_is_integer(json_object_get(j, "age")) && json_is_number(json_object_get(j, "score")) &&
        json_is_boolean(json_object_get(j, "ok")) && json_is_array(tags) &&
        (json_is_integer(color) ? json_integer_value(color) == 7
                                : json_is_string(color) &&
                 (!strcmp(json_string_value(color), "red") || !strcmp(json_string_value(color), "green"))) &&
        json_is_number(json_object_get(json_object_get(j, "pos"), "x")) &&
        json_object_size(json_object_get(j, "e")) == 0 && json_is_object(json_object_get(j, "e"));
    for (size_t i = 0; ok && i < json_array_size(tags); i++)
        assert_true(json_is_string(json_array_get(tags, i)));
    if (!ok)
        fail_msg("does not follow the schema: %s", text);
}

static void test_schema_grammar(void **state) {
    (void)state;
    rl_js *s = test_schema();
    const char *good[] = {
        "{\"name\":\"Al\\\"x \xc3\xa9\",\"age\":-12,\"score\":1.5e3,\"ok\":true,\"tags\":[\"a\",\"b\"],"
        "\"color\":\"green\",\"pos\":{\"x\":0},\"e\":{}}",
        "{\"name\":\"\",\"age\":0,\"score\":-0.5,\"ok\":false,\"tags\":[],\"color\":7,\"pos\":{\"x\":10},\"e\":{}}",
    };
    for (size_t i = 0; i < 2; i++) {
        rl_jg g;
        rl_jg_init_schema(&g, s);
        for (size_t k = 0; good[i][k]; k++) {
            assert_false(rl_jg_done(&g));
            /* every prefix closes into a value of the schema */
            rl_jg t = g;
            uint8_t buf[RL_JG_MAX_CLOSE];
            char doc[2048];
            size_t n = rl_jg_close(&t, buf, sizeof buf);
            assert_true(n > 0 && rl_jg_feed(&t, buf, n) && rl_jg_done(&t));
            memcpy(doc, good[i], k), memcpy(doc + k, buf, n);
            json_error_t je;
            json_t *j = json_loadb(doc, k + n, 0, &je);
            if (!j)
                fail_msg("closed prefix is not JSON (%s): %.*s", je.text, (int)(k + n), doc);
            check_schema_value(j, good[i]);
            json_decref(j);
            if (!rl_jg_feed(&g, (const uint8_t *)good[i] + k, 1))
                fail_msg("'%s' refused at byte %zu", good[i], k);
        }
        assert_true(rl_jg_done(&g));
    }
    const char *bad[] = {
        "{\"age\":1",
        "{ \"name\"",
        "{\"name\":1",
        "{\"name\":\"\",\"age\":1.5",
        "{\"name\":\"\",\"age\":1e3",
        "{\"name\":\"\",\"age\":1,\"score\":1,\"ok\":yes",
        "{\"name\":\"\",\"age\":1,\"score\":1,\"ok\":true,\"tags\":[1]",
        "{\"name\":\"\",\"age\":1,\"score\":1,\"ok\":true,\"tags\":[],\"color\":\"blue\"",
        "{\"name\":\"\",\"age\":1,\"score\":1,\"ok\":true,\"tags\":[],\"color\":77",
        "{\"name\":\"\",\"age\":01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_jg g;
        rl_jg_init_schema(&g, s);
        if (feed_str(&g, bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    }
    rl_js_destroy(&s);
    assert_null(s);
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
    double t_mask[2] = {0, 0};
    uint32_t steps[2] = {0, 0};
    rl_js *schema = test_schema();
    for (int walk = 0; walk < 16; walk++) {
        const bool under = walk >= 8; /* the second half under test_schema */
        const uint32_t budget = under ? 90 + 10 * (uint32_t)(walk - 8) : 12 + 8 * (uint32_t)walk;
        rl_jg g;
        if (under)
            rl_jg_init_schema(&g, schema);
        else
            rl_jg_init(&g);
        char out[8192];
        size_t n_out = 0;
        bool ended = false;
        for (uint32_t left = budget; left > 0 && !ended; left--) {
            const double m0 = rl_now_s();
            const uint32_t k = rl_jg_mask(&g, v, left, mask);
            t_mask[under] += rl_now_s() - m0, steps[under]++;
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
        if (under)
            check_schema_value(j, out);
        json_decref(j);
    }
    rl_js_destroy(&schema);
    print_message("tekken (%u ids): token bytes in %.1f ms; mask per step %.2f ms any object (%u steps), "
                  "%.2f ms under the schema (%u steps)\n",
                  nv, t_vocab * 1e3, t_mask[0] * 1e3 / steps[0], steps[0], t_mask[1] * 1e3 / steps[1], steps[1]);
    free(mask);
    rl_jg_vocab_destroy(&v);
    rl_tok_destroy(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_prefixes), cmocka_unit_test(test_invalid),    cmocka_unit_test(test_limits),
        cmocka_unit_test(test_close),          cmocka_unit_test(test_mask_small), cmocka_unit_test(test_schema_grammar),
        cmocka_unit_test(test_mask_tekken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
