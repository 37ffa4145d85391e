/* Tests of the tokenizers: every golden case from independent references
 * (llama.cpp for the GPT-2, SentencePiece and Tekken-shaped vocabularies)
 * token for token, decoding back to the original text, the streaming
 * decoder's handling of characters split across tokens, special-token
 * parsing on and off, small hand-made vocabularies for the rules the goldens
 * do not reach (merge order, user-defined tokens, fallbacks, bad metadata),
 * and the pieces underneath (UTF-8, Unicode classes, the hand-written
 * pre-tokenizer patterns). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "gguf.h"
#include "gguf_write.h"
#include "tok_internal.h"
#include "tokenizer.h"
#include "unicode_tables.h"
#include "utf8.h"

static rl_tokenizer *open_vocab(const char *name) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/models/%s", RELAIS_SHARED_DIR, name);
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    rl_tokenizer *t = rl_tok_new(f, err, sizeof err);
    gguf_close(&f);
    if (!t)
        fail_msg("%s: %s", name, err);
    return t;
}

static json_t *load_golden(const char *rel) {
    char path[512];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/golden/%s", RELAIS_SHARED_DIR, rel);
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j)
        fail_msg("%s: %s", path, jerr.text);
    return j;
}

/* Encodes and compares with the expected ids, printing both on a mismatch. */
static void expect_ids(const rl_tokenizer *t, const char *text, size_t len, bool parse_special, const int32_t *want,
                       size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(rl_tok_encode(t, text, len, false, parse_special, &ids, &n), 0);
    bool same = n == n_want && memcmp(ids, want, n * sizeof *ids) == 0;
    if (!same) {
        fprintf(stderr, "text %s\n  got ", text);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n want");
        for (size_t i = 0; i < n_want; i++)
            fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    assert_true(same);
}

/* Decodes ids with the streaming decoder, one token at a time. */
static char *stream_decode(const rl_tokenizer *t, const int32_t *ids, size_t n, bool show_control) {
    rl_tok_stream *s = rl_tok_stream_new(t, show_control);
    assert_non_null(s);
    size_t cap = 64 + 8 * n, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++)
        len += rl_tok_stream_feed(s, ids[i], text + len, cap - len);
    len += rl_tok_stream_flush(s, text + len, cap - len);
    assert_int_equal(strlen(text), len);
    rl_tok_stream_destroy(&s);
    assert_null(s);
    return text;
}

/* Every case of golden/tokenizer/<name>.json: exact ids, and decoding them
 * gives the text back. */
static void run_golden(const char *vocab, const char *golden) {
    rl_tokenizer *t = open_vocab(vocab);
    json_t *g = load_golden(golden);
    json_t *cases = json_object_get(g, "cases");
    assert_true(json_array_size(cases) > 0);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        size_t len = json_string_length(json_object_get(c, "text"));
        bool parse_special = json_is_true(json_object_get(c, "parse_special"));
        json_t *jids = json_object_get(c, "ids");
        size_t n = json_array_size(jids);
        int32_t *want = malloc((n + 1) * sizeof *want);
        assert_non_null(want);
        for (size_t k = 0; k < n; k++)
            want[k] = (int32_t)json_integer_value(json_array_get(jids, k));
        expect_ids(t, text, len, parse_special, want, n);
        char *back = stream_decode(t, want, n, parse_special);
        assert_string_equal(back, text);
        free(back);
        free(want);
    }
    json_decref(g);
    rl_tok_destroy(&t);
    assert_null(t);
}

static void test_golden_gpt2(void **state) { run_golden("vocab-gpt2.gguf", "tokenizer/vocab-gpt2.json"); }
static void test_golden_spm(void **state) { run_golden("vocab-llama-spm.gguf", "tokenizer/vocab-llama-spm.json"); }
static void test_golden_tekken(void **state) {
    run_golden("vocab-tekken-shaped.gguf", "tokenizer/vocab-tekken-shaped.json");
}

static void test_metadata(void **state) {
    rl_tokenizer *t = open_vocab("vocab-llama-spm.gguf");
    assert_int_equal(rl_tok_kind_of(t), RL_TOK_SPM);
    assert_string_equal(rl_tok_kind_name(t), "llama (SentencePiece)");
    assert_int_equal(rl_tok_n_vocab(t), 32000);
    assert_int_equal(rl_tok_bos(t), 1);
    assert_int_equal(rl_tok_eos(t), 2);
    assert_true(rl_tok_add_bos(t));
    assert_int_equal(rl_tok_find(t, "<s>"), 1);
    assert_int_equal(rl_tok_find(t, "\xE2\x96\x81Hello"), 15043);
    assert_int_equal(rl_tok_find(t, "no such token"), -1);
    assert_true(rl_tok_is_control(t, 1));
    assert_false(rl_tok_is_control(t, 15043));
    assert_false(rl_tok_is_control(t, 32000));
    assert_true(rl_tok_is_eog(t, 2));
    assert_false(rl_tok_is_eog(t, 1));
    assert_string_equal(rl_tok_text(t, 15043), "\xE2\x96\x81Hello");
    assert_null(rl_tok_text(t, -1));
    /* add_bos puts BOS in front */
    int32_t *ids;
    size_t n;
    assert_int_equal(rl_tok_encode(t, "Hello", 5, true, false, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043);
    free(ids);
    /* empty text gives no tokens, not a lone space */
    assert_int_equal(rl_tok_encode(t, "", 0, false, false, &ids, &n), 0);
    assert_int_equal(n, 0);
    free(ids);
    rl_tok_destroy(&t);

    t = open_vocab("vocab-tekken-shaped.gguf");
    assert_int_equal(rl_tok_kind_of(t), RL_TOK_BPE);
    assert_string_equal(rl_tok_kind_name(t), "gpt2 (byte-level BPE, pre=tekken)");
    assert_string_equal(rl_tok_pre(t), "tekken");
    assert_true(rl_tok_add_bos(t));
    assert_true(rl_tok_is_eog(t, 2));
    assert_true(rl_tok_is_control(t, 3));
    rl_tok_destroy(&t);

    t = open_vocab("vocab-gpt2.gguf");
    assert_string_equal(rl_tok_kind_name(t), "gpt2 (byte-level BPE, pre=gpt-2)");
    assert_false(rl_tok_add_bos(t));
    assert_int_equal(rl_tok_eos(t), 50256);
    assert_true(rl_tok_is_eog(t, 50256));
    rl_tok_destroy(&t);
}

static void test_piece(void **state) {
    rl_tokenizer *t = open_vocab("vocab-llama-spm.gguf");
    char buf[32];
    assert_int_equal(rl_tok_piece(t, 15043, false, buf, sizeof buf), 6);
    assert_string_equal(buf, " Hello");
    /* <0x0A> is a newline byte */
    assert_int_equal(rl_tok_piece(t, 13, false, buf, sizeof buf), 1);
    assert_string_equal(buf, "\n");
    /* control tokens: nothing unless asked for */
    assert_int_equal(rl_tok_piece(t, 1, false, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(rl_tok_piece(t, 1, true, buf, sizeof buf), 3);
    assert_string_equal(buf, "<s>");
    /* too small a buffer: the full length, and no write past cap */
    memset(buf, 'x', sizeof buf);
    assert_int_equal(rl_tok_piece(t, 15043, false, buf, 3), 6);
    assert_memory_equal(buf, " He", 3);
    assert_int_equal(buf[3], 'x');
    assert_int_equal(rl_tok_piece(t, 32000, false, buf, sizeof buf), -1);
    assert_int_equal(rl_tok_piece(t, -1, false, buf, sizeof buf), -1);
    rl_tok_destroy(&t);

    t = open_vocab("vocab-gpt2.gguf");
    /* "Ġworld": the mapped space becomes a real one */
    assert_int_equal(rl_tok_piece(t, 995, false, buf, sizeof buf), 6);
    assert_string_equal(buf, " world");
    rl_tok_destroy(&t);
}

/* A character whose bytes come in several tokens is emitted only once
 * complete; what never completes is flushed as U+FFFD. */
static void test_stream_split_utf8(void **state) {
    rl_tokenizer *t = open_vocab("vocab-llama-spm.gguf");
    int32_t *ids;
    size_t n;
    /* "🦙" has no SentencePiece token: "▁" then four byte tokens */
    assert_int_equal(rl_tok_encode(t, "\xF0\x9F\xA6\x99", 4, false, false, &ids, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(ids[0], 29871);
    assert_int_equal(ids[1], 3 + 0xF0);
    rl_tok_stream *s = rl_tok_stream_new(t, false);
    char out[16];
    /* the add-space-prefix space of the first piece is dropped */
    assert_int_equal(rl_tok_stream_feed(s, ids[0], out, sizeof out), 0);
    for (size_t i = 1; i < 4; i++) {
        assert_int_equal(rl_tok_stream_feed(s, ids[i], out, sizeof out), 0);
        assert_string_equal(out, "");
    }
    assert_int_equal(rl_tok_stream_feed(s, ids[4], out, sizeof out), 4);
    assert_string_equal(out, "\xF0\x9F\xA6\x99");
    /* later spaces are kept */
    assert_int_equal(rl_tok_stream_feed(s, 15043, out, sizeof out), 6);
    assert_string_equal(out, " Hello");
    /* an unfinished character at the end: one replacement character */
    assert_int_equal(rl_tok_stream_feed(s, ids[1], out, sizeof out), 0);
    assert_int_equal(rl_tok_stream_feed(s, ids[2], out, sizeof out), 0);
    assert_int_equal(rl_tok_stream_flush(s, out, sizeof out), 3);
    assert_string_equal(out, "\xEF\xBF\xBD");
    /* a byte that cannot start a character is replaced at once */
    assert_int_equal(rl_tok_stream_feed(s, 3 + 0x80, out, sizeof out), 3);
    assert_string_equal(out, "\xEF\xBF\xBD");
    assert_int_equal(rl_tok_stream_flush(s, out, sizeof out), 0);
    rl_tok_stream_destroy(&s);
    free(ids);
    rl_tok_destroy(&t);

    /* byte-level BPE: " 🦙" is three tokens that split the character's bytes */
    t = open_vocab("vocab-gpt2.gguf");
    const int32_t llama[] = {12520, 99, 247};
    s = rl_tok_stream_new(t, false);
    assert_int_equal(rl_tok_stream_feed(s, llama[0], out, sizeof out), 1);
    assert_string_equal(out, " ");
    assert_int_equal(rl_tok_stream_feed(s, llama[1], out, sizeof out), 0);
    assert_int_equal(rl_tok_stream_feed(s, llama[2], out, sizeof out), 4);
    assert_string_equal(out, "\xF0\x9F\xA6\x99");
    /* output that does not fit waits for the next call, whole characters only */
    assert_int_equal(rl_tok_stream_feed(s, 18435, out, 4), 3); /* " Hello" */
    assert_string_equal(out, " He");
    assert_int_equal(rl_tok_stream_flush(s, out, sizeof out), 3);
    assert_string_equal(out, "llo");
    rl_tok_stream_destroy(&s);
    rl_tok_destroy(&t);
}

static void test_parse_special(void **state) {
    rl_tokenizer *t = open_vocab("vocab-tekken-shaped.gguf");
    const char *text = "[INST]Hi[/INST]";
    const int32_t on[] = {3, 18250, 4};
    expect_ids(t, text, strlen(text), true, on, 3);
    int32_t *ids;
    size_t n;
    assert_int_equal(rl_tok_encode(t, text, strlen(text), false, false, &ids, &n), 0);
    assert_true(n > 3);
    for (size_t i = 0; i < n; i++)
        assert_false(rl_tok_is_control(t, ids[i]));
    char *back = stream_decode(t, ids, n, false);
    assert_string_equal(back, text);
    free(back);
    free(ids);
    /* the longest special text wins: "[/AVAILABLE_TOOLS]" over anything shorter */
    const int32_t tools[] = {5, 6};
    expect_ids(t, "[AVAILABLE_TOOLS][/AVAILABLE_TOOLS]", 35, true, tools, 2);
    rl_tok_destroy(&t);

    t = open_vocab("vocab-llama-spm.gguf");
    /* SentencePiece: text after a special token gets the space prefix again */
    const int32_t spm_on[] = {1, 15043, 2};
    expect_ids(t, "<s>Hello</s>", 12, true, spm_on, 3);
    assert_int_equal(rl_tok_encode(t, "<s>", 3, false, false, &ids, &n), 0);
    assert_true(n > 1);
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(ids[i], 1);
    free(ids);
    rl_tok_destroy(&t);
}

/* The real TinyStories model's prompts: ids with BOS as llama.cpp made them,
 * and the continuation decodes to the reference text. */
static void test_golden_stories(void **state) {
    rl_tokenizer *t = open_vocab("stories260K.gguf");
    json_t *g = load_golden("stories260K.json");
    json_t *cases = json_object_get(g, "cases");
    assert_true(json_array_size(cases) > 0);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *prompt = json_string_value(json_object_get(c, "prompt"));
        json_t *jp = json_object_get(c, "prompt_ids"), *jg = json_object_get(c, "greedy_ids");
        size_t np = json_array_size(jp), ng = json_array_size(jg);
        int32_t *all = malloc((np + ng) * sizeof *all);
        assert_non_null(all);
        for (size_t k = 0; k < np; k++)
            all[k] = (int32_t)json_integer_value(json_array_get(jp, k));
        for (size_t k = 0; k < ng; k++)
            all[np + k] = (int32_t)json_integer_value(json_array_get(jg, k));
        int32_t *ids;
        size_t n;
        assert_int_equal(rl_tok_encode(t, prompt, strlen(prompt), true, false, &ids, &n), 0);
        expect_ids(t, prompt, strlen(prompt), false, all + 1, np - 1);
        assert_int_equal(n, np);
        assert_memory_equal(ids, all, np * sizeof *ids);
        free(ids);
        char *back = stream_decode(t, all, np + ng, false);
        const char *cont = json_string_value(json_object_get(c, "text"));
        assert_int_equal(strncmp(back, prompt, strlen(prompt)), 0);
        assert_string_equal(back + strlen(prompt), cont);
        free(back);
        free(all);
    }
    json_decref(g);
    rl_tok_destroy(&t);
}

/* ---- hand-made vocabularies ---- */

typedef void (*vocab_fill)(gguf_writer *w);

/* Writes a vocab-only GGUF with fill, then builds a tokenizer from it
 * (NULL with err set when the tokenizer refuses the metadata). */
static rl_tokenizer *tok_from(vocab_fill fill, char *err, size_t errlen) {
    char path[] = "/tmp/relais-tok-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    fill(w);
    char werr[256];
    if (gguf_writer_begin(w, path, werr, sizeof werr) != 0 || gguf_writer_close(w, werr, sizeof werr) != 0)
        fail_msg("%s", werr);
    gguf_writer_destroy(&w);
    gguf_file *f = gguf_open(path, werr, sizeof werr);
    unlink(path);
    if (!f)
        fail_msg("%s", werr);
    rl_tokenizer *t = rl_tok_new(f, err, errlen);
    gguf_close(&f);
    return t;
}

/* A small SentencePiece vocabulary without byte tokens. */
static const char *const SPM_TOKENS[] = {
    "<unk>",
    "<s>",
    "</s>",
    "\xE2\x96\x81",
    "a",
    "b",
    "\xE2\x96\x81"
    "a",
    "ab",
    "<|u|>",
    "<ctl>",
    "<|im_end|>",
    "x",
    "y",
    "xy",
    "yx",
};
enum { N_SPM = sizeof SPM_TOKENS / sizeof SPM_TOKENS[0] };
static const float SPM_SCORES[N_SPM] = {0, 0, 0, -1, -2, -3, -0.5f, -0.2f, 0, 0, 0, -4, -4, -1, -1};
static const int32_t SPM_TYPES[N_SPM] = {2, 3, 3, 1, 1, 1, 1, 1, 4, 3, 3, 1, 1, 1, 1};

static void fill_spm(gguf_writer *w) {
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", SPM_TOKENS, N_SPM);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, SPM_SCORES, N_SPM);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, SPM_TYPES, N_SPM);
}

static void fill_spm_no_prefix(gguf_writer *w) {
    fill_spm(w);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", false);
}

static void fill_bos_none(gguf_writer *w) {
    fill_spm(w);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", UINT32_MAX);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
}

static void test_spm_rules(void **state) {
    char err[256];
    rl_tokenizer *t = tok_from(fill_spm, err, sizeof err);
    if (!t)
        fail_msg("%s", err);
    /* SPM defaults without the id keys: BOS 1, EOS 2, add BOS */
    assert_int_equal(rl_tok_bos(t), 1);
    assert_int_equal(rl_tok_eos(t), 2);
    assert_true(rl_tok_add_bos(t));
    /* highest score first: "ab" (-0.2) before "▁a" (-0.5) */
    const int32_t ab[] = {3, 7};
    expect_ids(t, "ab", 2, false, ab, 2);
    /* a user-defined token is cut out even without parse_special; the text
     * after it gets the space prefix again */
    const int32_t user[] = {6, 8, 3, 5};
    expect_ids(t, "a<|u|>b", 7, false, user, 4);
    /* control text stays text without parse_special; with no byte tokens an
     * unknown character becomes <unk> */
    const int32_t ctl_text[] = {3, 0, 0, 0, 0, 0};
    expect_ids(t, "<ctl>", 5, false, ctl_text, 6);
    const int32_t ctl[] = {9};
    expect_ids(t, "<ctl>", 5, true, ctl, 1);
    /* end of generation: EOS and known end-of-turn tokens, nothing else */
    assert_true(rl_tok_is_eog(t, 2));
    assert_true(rl_tok_is_eog(t, 10));
    assert_false(rl_tok_is_eog(t, 9));
    assert_false(rl_tok_is_eog(t, 8));
    char buf[16];
    assert_int_equal(rl_tok_piece(t, 8, false, buf, sizeof buf), 5); /* user-defined: its text */
    assert_string_equal(buf, "<|u|>");
    rl_tok_destroy(&t);

    t = tok_from(fill_spm_no_prefix, err, sizeof err);
    if (!t)
        fail_msg("%s", err);
    /* equal scores: the leftmost pair merges first */
    const int32_t tie[] = {13, 11};
    expect_ids(t, "xyx", 3, false, tie, 2);
    const int32_t tie2[] = {14, 12};
    expect_ids(t, "yxy", 3, false, tie2, 2);
    /* no space prefix: "a" alone, and the stream keeps a real leading space */
    const int32_t a[] = {4};
    expect_ids(t, "a", 1, false, a, 1);
    const int32_t sp[] = {6};
    expect_ids(t, " a", 2, false, sp, 1);
    char *back = stream_decode(t, sp, 1, false);
    assert_string_equal(back, " a");
    free(back);
    rl_tok_destroy(&t);

    /* 0xFFFFFFFF as an id means none: no BOS even when asked for */
    t = tok_from(fill_bos_none, err, sizeof err);
    if (!t)
        fail_msg("%s", err);
    assert_int_equal(rl_tok_bos(t), -1);
    assert_false(rl_tok_add_bos(t));
    expect_ids(t, "a", 1, false, sp, 1);
    int32_t *ids;
    size_t n;
    assert_int_equal(rl_tok_encode(t, "a", 1, true, false, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 6);
    free(ids);
    rl_tok_destroy(&t);
}

static void fill_no_model(gguf_writer *w) { gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", SPM_TOKENS, N_SPM); }

static void fill_bert(gguf_writer *w) {
    fill_spm(w);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
}

static void fill_no_tokens(gguf_writer *w) { gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"); }

static void fill_short_types(gguf_writer *w) {
    fill_spm(w);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, SPM_TYPES, N_SPM - 1);
}

static void fill_short_scores(gguf_writer *w) {
    fill_spm(w);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, SPM_SCORES, 2);
}

static void fill_bad_bos(gguf_writer *w) {
    fill_spm(w);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", N_SPM);
}

static void fill_gpt2_no_merges(gguf_writer *w) {
    fill_spm(w);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
}

static void test_bad_metadata(void **state) {
    const struct {
        vocab_fill fill;
        const char *frag;
    } cases[] = {
        {fill_no_model, "tokenizer.ggml.model"},        {fill_bert, "'bert' is not supported"},
        {fill_no_tokens, "tokenizer.ggml.tokens"},      {fill_short_types, "tokenizer.ggml.token_type"},
        {fill_short_scores, "tokenizer.ggml.scores"},   {fill_bad_bos, "tokenizer.ggml.bos_token_id"},
        {fill_gpt2_no_merges, "tokenizer.ggml.merges"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        rl_tokenizer *t = tok_from(cases[i].fill, err, sizeof err);
        assert_null(t);
        if (!strstr(err, cases[i].frag))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].frag);
    }
}

/* ---- the pieces underneath ---- */

static void test_utf8(void **state) {
    uint32_t cp;
    assert_int_equal(rl_utf8_decode("A", 1, &cp), 1);
    assert_int_equal(cp, 'A');
    assert_int_equal(rl_utf8_decode("\xE2\x82\xAC", 3, &cp), 3);
    assert_int_equal(cp, 0x20AC);
    assert_int_equal(rl_utf8_decode("\xF0\x9F\xA6\x99", 4, &cp), 4);
    assert_int_equal(cp, 0x1F999);
    /* overlong, surrogate, beyond U+10FFFF, stray continuation: one byte each */
    const char *bad[] = {"\xC0\x80", "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\x80", "\xFF"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rl_utf8_decode(bad[i], strlen(bad[i]), &cp), 1);
        assert_int_equal(cp, RL_UTF8_INVALID);
    }
    /* a truncated sequence is one maximal subpart */
    assert_int_equal(rl_utf8_decode("\xE2\x82", 2, &cp), 2);
    assert_int_equal(cp, RL_UTF8_INVALID);
    assert_int_equal(rl_utf8_decode("\xE2\x82"
                                    "A",
                                    3, &cp),
                     2);
    char out[4];
    const uint32_t cps[] = {0x24, 0xA2, 0x20AC, 0x10348};
    for (size_t i = 0; i < 4; i++) {
        size_t k = rl_utf8_encode(cps[i], out);
        assert_int_equal(k, i + 1);
        assert_int_equal(rl_utf8_decode(out, k, &cp), k);
        assert_int_equal(cp, cps[i]);
    }
    assert_int_equal(rl_utf8_complete_prefix("a\xE2\x82", 3), 1);
    assert_int_equal(rl_utf8_complete_prefix("a\xE2\x82\xAC", 4), 4);
    assert_int_equal(rl_utf8_complete_prefix("a\xF0", 2), 1);
    assert_int_equal(rl_utf8_complete_prefix("a\x80", 2), 2);     /* can never complete */
    assert_int_equal(rl_utf8_complete_prefix("a\xE0\x80", 3), 3); /* overlong start */
    assert_int_equal(rl_utf8_complete_prefix("", 0), 0);
}

static void test_unicode_classes(void **state) {
    assert_int_equal(rl_unicode_class('A'), RL_UC_LU);
    assert_int_equal(rl_unicode_class('z'), RL_UC_LL);
    assert_int_equal(rl_unicode_class(0x01C5), RL_UC_LT); /* Dž */
    assert_int_equal(rl_unicode_class(0x02B0), RL_UC_LM); /* modifier small h */
    assert_int_equal(rl_unicode_class(0x6211), RL_UC_LO); /* 我 */
    assert_int_equal(rl_unicode_class(0x0301), RL_UC_M);  /* combining acute */
    assert_int_equal(rl_unicode_class(0x0E31), RL_UC_M);  /* Thai vowel sign */
    assert_int_equal(rl_unicode_class('7'), RL_UC_N);
    assert_int_equal(rl_unicode_class(0x00BD), RL_UC_N); /* ½ */
    assert_int_equal(rl_unicode_class(0x2163), RL_UC_N); /* Roman numeral four */
    assert_int_equal(rl_unicode_class(' '), RL_UC_SPACE);
    assert_int_equal(rl_unicode_class('\n'), RL_UC_SPACE);
    assert_int_equal(rl_unicode_class(0x0085), RL_UC_SPACE);
    assert_int_equal(rl_unicode_class(0x3000), RL_UC_SPACE);
    assert_int_equal(rl_unicode_class(0x001C), RL_UC_OTHER); /* isspace() in Python, not White_Space */
    assert_int_equal(rl_unicode_class(0x200B), RL_UC_OTHER); /* zero width space is Cf */
    assert_int_equal(rl_unicode_class('!'), RL_UC_OTHER);
    assert_int_equal(rl_unicode_class(0x1F999), RL_UC_OTHER);
    assert_int_equal(rl_unicode_class(0x10FFFF), RL_UC_OTHER);
    assert_int_equal(rl_unicode_class(0x110000), RL_UC_OTHER);
    assert_int_equal(rl_unicode_class(0x1D400), RL_UC_LU); /* mathematical bold A */
}

/* Joins the pieces of text with '|'. */
static void expect_split(rl_pretok pre, const char *text, const char *want) {
    rl_units u;
    assert_int_equal(rl_units_init(&u, text, strlen(text)), 0);
    char got[256];
    size_t w = 0;
    for (size_t i = 0; i < u.n;) {
        size_t end = rl_pretok_next(pre, &u, i);
        if (i > 0)
            got[w++] = '|';
        memcpy(got + w, text + u.off[i], u.off[end] - u.off[i]);
        w += u.off[end] - u.off[i];
        i = end;
    }
    got[w] = '\0';
    rl_units_free(&u);
    assert_string_equal(got, want);
}

static void test_pretok_tekken(void **state) {
    /* case classes: an upper run then lower letters, camel case splits */
    expect_split(RL_PRE_TEKKEN, "HelloWorld", "Hello|World");
    expect_split(RL_PRE_TEKKEN, "HTTPServer", "HTTPServer");
    expect_split(RL_PRE_TEKKEN, "ABC", "ABC");
    expect_split(RL_PRE_TEKKEN, "ΑθήναΑθήνα", "Αθήνα|Αθήνα");
    expect_split(RL_PRE_TEKKEN, "\xC7\x85ungla", "\xC7\x85ungla"); /* titlecase Dž */
    /* Lo counts as upper and lower: CJK runs into the following word */
    expect_split(RL_PRE_TEKKEN, "我想在apple工作", "我想在apple工作");
    /* a mark may start a piece as the optional prefix */
    expect_split(RL_PRE_TEKKEN, "e\xCC\x81t\xC3\xA9", "e\xCC\x81t\xC3\xA9");
    /* numbers one by one, punctuation with one leading space */
    expect_split(RL_PRE_TEKKEN, "ab 123 (x)", "ab| |1|2|3| (|x|)");
    expect_split(RL_PRE_TEKKEN, " don't", " don|'t");
    expect_split(RL_PRE_TEKKEN, "a//b\n", "a|//|b|\n");
    expect_split(RL_PRE_TEKKEN, "x ==\n\ny", "x| ==\n\n|y");
    /* whitespace: line breaks end a run, a trailing space goes to the word */
    expect_split(RL_PRE_TEKKEN, "a \n b", "a| \n| b");
    expect_split(RL_PRE_TEKKEN, "a   b", "a|  | b");
    expect_split(RL_PRE_TEKKEN, "a  ", "a|  ");
    expect_split(RL_PRE_TEKKEN, "\t\tb", "\t|\tb");
    /* invalid bytes travel like punctuation */
    expect_split(RL_PRE_TEKKEN, "a\xFF\xFE b", "a|\xFF\xFE| b");
}

static void test_pretok_gpt2(void **state) {
    expect_split(RL_PRE_GPT2, "I'll be there's", "I|'ll| be| there|'s");
    expect_split(RL_PRE_GPT2, "'RE 'Ve", "'|RE| '|Ve");
    expect_split(RL_PRE_GPT2, "HelloWorld 123abc", "HelloWorld| 123|abc");
    expect_split(RL_PRE_GPT2, "a   b\n\n", "a|  | b|\n\n");
    expect_split(RL_PRE_GPT2, "!!! ??", "!!!| ??");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_unicode_classes),
        cmocka_unit_test(test_pretok_tekken),
        cmocka_unit_test(test_pretok_gpt2),
        cmocka_unit_test(test_golden_gpt2),
        cmocka_unit_test(test_golden_spm),
        cmocka_unit_test(test_golden_tekken),
        cmocka_unit_test(test_golden_stories),
        cmocka_unit_test(test_spm_rules),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_piece),
        cmocka_unit_test(test_stream_split_utf8),
        cmocka_unit_test(test_parse_special),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
