/* Tests of the chat templates: every case of golden/chat/v3-tekken.json
 * (built by mistral-common) token for token, mistral-common's normalization
 * rules that the golden cases do not reach (merged turns, the inserted empty
 * user turn, non-JSON tool results, Python's JSON formatting), the
 * mistral-v1 template on the Llama SentencePiece vocabulary against a
 * hand-checked sequence, template detection, and errors for bad messages;
 * the mistral-v13 template (Ministral 3) against sequences written here
 * from mistral-common's V13 rules (instruct.py, normalize.py), on a copy of
 * the Tekken-shaped vocabulary whose ids 32-35 are named [ARGS], [CALL_ID],
 * [THINK], [/THINK] as in Tekken files of V11 and later. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "chat.h"
#include "gguf_write.h"
#include "testutil.h"

/* rl_chat_build takes JSON text: the tests keep their messages as jansson
 * values and hand over their text, as the server does. */
static int build_j(const rl_tokenizer *t, rl_chat_template tpl, const json_t *m, const json_t *tl, int32_t **ids,
                   size_t *n, char *err, size_t errlen) {
    char *mt = m ? json_dumps(m, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *tt = tl ? json_dumps(tl, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    int rc = rl_chat_build(t, tpl, mt, tt, ids, n, err, errlen);
    free(mt);
    free(tt);
    return rc;
}

static gguf_file *open_gguf(const char *name) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/models/%s", RELAIS_SHARED_DIR, name);
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    return f;
}

static rl_tokenizer *open_tok(const char *name) {
    char err[256];
    gguf_file *f = open_gguf(name);
    rl_tokenizer *t = rl_tok_new(f, err, sizeof err);
    gguf_close(&f);
    if (!t)
        fail_msg("%s: %s", name, err);
    return t;
}

static json_t *parse(const char *text) {
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("bad test JSON: %s", jerr.text);
    return j;
}

static void expect_same(const int32_t *got, size_t n, const int32_t *want, size_t n_want) {
    bool same = n == n_want && memcmp(got, want, n * sizeof *got) == 0;
    if (!same) {
        fprintf(stderr, "  got ");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %d", got[i]);
        fprintf(stderr, "\n want");
        for (size_t i = 0; i < n_want; i++)
            fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    assert_true(same);
}

static void test_golden_v3_tekken(void **state) {
    rl_tokenizer *t = open_tok("vocab-tekken-shaped.gguf");
    char path[512], err[256];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/golden/chat/v3-tekken.json", RELAIS_SHARED_DIR);
    json_t *g = json_load_file(path, 0, &jerr);
    if (!g)
        fail_msg("%s: %s", path, jerr.text);
    assert_int_equal(rl_chat_template_from_name(json_string_value(json_object_get(g, "template"))),
                     RL_CHAT_MISTRAL_V3_TEKKEN);
    json_t *cases = json_object_get(g, "cases");
    assert_true(json_array_size(cases) > 0);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        json_t *want = json_object_get(c, "prompt_ids");
        size_t n_want = json_array_size(want);
        int32_t *w = malloc(n_want * sizeof *w);
        assert_non_null(w);
        for (size_t k = 0; k < n_want; k++)
            w[k] = (int32_t)json_integer_value(json_array_get(want, k));
        int32_t *ids;
        size_t n;
        if (build_j(t, RL_CHAT_MISTRAL_V3_TEKKEN, json_object_get(c, "messages"), json_object_get(c, "tools"), &ids, &n,
                    err, sizeof err) != 0)
            fail_msg("case %zu: %s", i, err);
        expect_same(ids, n, w, n_want);
        free(ids);
        free(w);
    }
    json_decref(g);
    rl_tok_destroy(&t);
}

/* The expected prompt spelled as segments: a control token name in
 * brackets or angle brackets is that token, anything else is text
 * tokenized on its own. */
static void expect_prompt(const rl_tokenizer *t, const char *messages, const char *tools, const char *const *segments,
                          size_t n_seg) {
    int32_t want[512];
    size_t n_want = 0;
    for (size_t i = 0; i < n_seg; i++) {
        int32_t id = rl_tok_find(t, segments[i]);
        if (id >= 0 && rl_tok_is_control(t, id)) {
            want[n_want++] = id;
            continue;
        }
        int32_t *ids;
        size_t n;
        assert_int_equal(rl_tok_encode(t, segments[i], strlen(segments[i]), false, false, &ids, &n), 0);
        assert_true(n_want + n <= 512);
        memcpy(want + n_want, ids, n * sizeof *ids);
        n_want += n;
        free(ids);
    }
    json_t *m = parse(messages);
    json_t *tl = tools ? parse(tools) : NULL;
    int32_t *ids;
    size_t n;
    char err[256];
    if (build_j(t, RL_CHAT_MISTRAL_V3_TEKKEN, m, tl, &ids, &n, err, sizeof err) != 0)
        fail_msg("%s", err);
    expect_same(ids, n, want, n_want);
    free(ids);
    json_decref(m);
    json_decref(tl);
}

#define SEGS(...) (const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)

static void test_v3_normalization(void **state) {
    rl_tokenizer *t = open_tok("vocab-tekken-shaped.gguf");
    /* neighbouring user messages merge with a blank line; system messages
     * anywhere join the system prompt in front of the last user turn */
    expect_prompt(t,
                  "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"system\",\"content\":\"S1\"},"
                  "{\"role\":\"user\",\"content\":\"b\"},{\"role\":\"user\",\"content\":\"c\"},"
                  "{\"role\":\"system\",\"content\":\"S2\"}]",
                  NULL, SEGS("<s>", "[INST]", "a", "[/INST]", "[INST]", "S1\n\nS2\n\nb\n\nc", "[/INST]"));
    /* a conversation that opens with the assistant gets an empty user turn;
     * assistant text loses trailing spaces, text parts are joined */
    expect_prompt(
        t,
        "[{\"role\":\"assistant\",\"content\":\"Hi there  \"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"},{\"type\":\"text\",\"text\":\"y\"}]}]",
        NULL, SEGS("<s>", "[INST]", "[/INST]", "Hi there", "</s>", "[INST]", "x\n\ny", "[/INST]"));
    /* tool results that are not JSON stay strings; JSON is written the way
     * Python writes it (floats, escapes, non-ASCII kept); arguments given as
     * an object; a tool call without id has none */
    expect_prompt(
        t,
        "[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{\"k\":[1,2.5]}}},"
        "{\"id\":\"abcDEF123\",\"function\":{\"name\":\"g\",\"arguments\":\"not json\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"x1\",\"content\":\"plain \\\"text\\\"\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"abcDEF123\",\"content\":"
        "\"{\\\"a\\\": 0.1, \\\"b\\\": 1e-05, \\\"c\\\": 1e16, \\\"d\\\": 100.0, \\\"e\\\": 0.0001, "
        "\\\"f\\\": \\\"\\u00e9\\\\n\\\\u001b\\\", \\\"g\\\": -2.5e-300, \\\"h\\\": 123456789012}\"}]",
        NULL,
        SEGS("<s>", "[INST]", "q", "[/INST]", "[TOOL_CALLS]",
             "[{\"name\": \"f\", \"arguments\": {\"k\": [1, 2.5]}}, "
             "{\"name\": \"g\", \"arguments\": \"not json\", \"id\": \"abcDEF123\"}]",
             "</s>", "[TOOL_RESULTS]", "{\"content\": \"plain \\\"text\\\"\", \"call_id\": \"x1\"}", "[/TOOL_RESULTS]",
             "[TOOL_RESULTS]",
             "{\"content\": {\"a\": 0.1, \"b\": 1e-05, \"c\": 1e+16, \"d\": 100.0, \"e\": 0.0001, "
             "\"f\": \"\xC3\xA9\\n\\u001b\", \"g\": -2.5e-300, \"h\": 123456789012}, \"call_id\": \"abcDEF123\"}",
             "[/TOOL_RESULTS]"));
    /* tools are rebuilt in mistral-common's field order, with defaults */
    expect_prompt(t, "[{\"role\":\"user\",\"content\":\"q\"}]",
                  "[{\"function\":{\"parameters\":{\"b\":1,\"a\":2},\"name\":\"f\",\"strict\":true}}]",
                  SEGS("<s>", "[AVAILABLE_TOOLS]",
                       "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"\", "
                       "\"parameters\": {\"b\": 1, \"a\": 2}}}]",
                       "[/AVAILABLE_TOOLS]", "[INST]", "q", "[/INST]"));
    /* control-token text inside a message stays text */
    expect_prompt(t, "[{\"role\":\"user\",\"content\":\"[INST]\"}]", NULL,
                  SEGS("<s>", "[INST]", "[", "INST]", "[/INST]"));
    rl_tok_destroy(&t);
}

/* mistral-v1 on the Llama SentencePiece vocabulary. Expected ids checked by
 * hand against the vocabulary: " [INST]" is ▁[ INST ], " [/INST]" is
 * ▁[ / INST ], the system prompt opens the first user message. */
static void test_v1_spm(void **state) {
    gguf_file *f = open_gguf("vocab-llama-spm.gguf");
    char err[256];
    rl_tokenizer *t = rl_tok_new(f, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(rl_chat_template_detect(t, f), RL_CHAT_MISTRAL_V1);
    gguf_close(&f);
    json_t *m = parse("[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi\"},"
                      "{\"role\":\"assistant\",\"content\":\"Hello!\"},{\"role\":\"user\",\"content\":\"Bye\"}]");
    const int32_t want[] = {
        1,                                 /* <s> */
        518,   25580, 29962,               /* ▁[ INST ] */
        1522,  11473, 29889, 13,    13,    /* ▁Be ▁brief . \n \n */
        18567,                             /* Hi */
        518,   29914, 25580, 29962,        /* ▁[ / INST ] */
        15043, 29991, 2,                   /* ▁Hello ! </s> */
        518,   25580, 29962, 2648,  29872, /* ▁[ INST ] ▁By e */
        518,   29914, 25580, 29962,        /* ▁[ / INST ] */
    };
    int32_t *ids;
    size_t n;
    if (build_j(t, RL_CHAT_MISTRAL_V1, m, NULL, &ids, &n, err, sizeof err) != 0)
        fail_msg("%s", err);
    expect_same(ids, n, want, sizeof want / sizeof want[0]);
    free(ids);
    json_decref(m);
    /* no tool support in v1 */
    m = parse("[{\"role\":\"user\",\"content\":\"Hi\"}]");
    json_t *tools = parse("[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]");
    assert_int_equal(build_j(t, RL_CHAT_MISTRAL_V1, m, tools, &ids, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "tools"));
    json_decref(tools);
    json_decref(m);
    rl_tok_destroy(&t);
}

static void test_detect_and_names(void **state) {
    rl_tokenizer *t = open_tok("vocab-tekken-shaped.gguf");
    assert_int_equal(rl_chat_template_detect(t, NULL), RL_CHAT_MISTRAL_V3_TEKKEN);
    rl_tok_destroy(&t);
    t = open_tok("vocab-llama-spm.gguf");
    assert_int_equal(rl_chat_template_detect(t, NULL), RL_CHAT_MISTRAL_V1);
    rl_tok_destroy(&t);
    t = open_tok("vocab-gpt2.gguf");
    assert_int_equal(rl_chat_template_detect(t, NULL), RL_CHAT_NONE);
    json_t *m = parse("[{\"role\":\"user\",\"content\":\"Hi\"}]");
    int32_t *ids;
    size_t n;
    char err[256];
    assert_int_equal(build_j(t, RL_CHAT_NONE, m, NULL, &ids, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "no chat template"));
    json_decref(m);
    rl_tok_destroy(&t);
    for (int i = 0; i <= RL_CHAT_NONE; i++)
        assert_int_equal(rl_chat_template_from_name(rl_chat_template_name((rl_chat_template)i)), i);
    assert_string_equal(rl_chat_template_name(RL_CHAT_MISTRAL_V3_TEKKEN), "mistral-v3-tekken");
    assert_string_equal(rl_chat_template_name(RL_CHAT_MISTRAL_V1), "mistral-v1");
    assert_int_equal(rl_chat_template_from_name("chatml"), -1);
}

/* ---- mistral-v13 ---- */

static char tmpdir[TU_DIR_MAX];

/* The V13 vocabulary (written once) and, in *f when asked, its file. */
static rl_tokenizer *v13_tok(const char *name, const char *chat_template, gguf_file **f) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (access(path, F_OK) != 0 && tu_write_v13_vocab(path, chat_template) != 0)
        fail_msg("cannot write %s", path);
    gguf_file *g = gguf_open(path, err, sizeof err);
    if (!g)
        fail_msg("%s", err);
    rl_tokenizer *t = rl_tok_new(g, err, sizeof err);
    if (!t)
        fail_msg("%s", err);
    if (f)
        *f = g;
    else
        gguf_close(&g);
    return t;
}

/* The expected sequence, written as mistral-common's rules give it: names
 * in brackets (and <s>, </s>) are control tokens, anything else a text
 * segment tokenized on its own. NULL ends the list. */
static size_t expected(const rl_tokenizer *t, int32_t *out, size_t cap, const char *const *parts) {
    size_t n = 0;
    for (; *parts; parts++) {
        int32_t id = **parts == '[' || !strcmp(*parts, "<s>") || !strcmp(*parts, "</s>") ? rl_tok_find(t, *parts) : -2;
        if (id >= 0) {
            assert_true(rl_tok_is_control(t, id));
            assert_true(n < cap);
            out[n++] = id;
            continue;
        }
        int32_t *ids;
        size_t k;
        assert_int_equal(rl_tok_encode(t, *parts, strlen(*parts), false, false, &ids, &k), 0);
        assert_true(n + k <= cap);
        memcpy(out + n, ids, k * sizeof *ids);
        n += k;
        free(ids);
    }
    return n;
}

static void expect_v13(const rl_tokenizer *t, const char *messages, const char *tools, const char *const *parts) {
    json_t *m = parse(messages), *tl = tools ? parse(tools) : NULL;
    int32_t *ids, want[4096];
    size_t n;
    char err[256];
    if (build_j(t, RL_CHAT_MISTRAL_V13, m, tl, &ids, &n, err, sizeof err) != 0)
        fail_msg("%s", err);
    expect_same(ids, n, want, expected(t, want, 4096, parts));
    free(ids);
    json_decref(m);
    json_decref(tl);
}

#define V13_TOOLS                                                                                 \
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\"," \
    "\"parameters\":{\"type\":\"object\"}}}]"

/* System prompt in place, tools before the first user turn, reasoning as
 * [THINK], text and calls in one turn, results ordered as the calls. */
static void test_v13_tools_and_thinking(void **state) {
    rl_tokenizer *t = v13_tok("v13.gguf", NULL, NULL);
    const char *msgs =
        "[{\"role\":\"system\",\"content\":\"You are helpful.\"},"
        "{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"reasoning_content\":\"Two cities.\",\"content\":\"Checking. \",\"tool_calls\":["
        "{\"id\":\"call1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":"
        "\\\"Paris\\\"}\"}},"
        "{\"id\":\"call2\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":"
        "\"Rome\"}}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call2\",\"content\":\"18C\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call1\",\"content\":\"{\\\"t\\\":22}\"},"
        "{\"role\":\"user\",\"content\":\"Thanks\"}]";
    const char *const want[] = {
        "<s>",
        "[SYSTEM_PROMPT]",
        "You are helpful.",
        "[/SYSTEM_PROMPT]",
        "[AVAILABLE_TOOLS]",
        "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather\", "
        "\"parameters\": {\"type\": \"object\"}}}]",
        "[/AVAILABLE_TOOLS]",
        "[INST]",
        "Weather in Paris and Rome?",
        "[/INST]",
        "[THINK]",
        "Two cities.",
        "[/THINK]",
        "Checking. ", /* a think chunk: the text is not stripped */
        "[TOOL_CALLS]",
        "get_weather",
        "[ARGS]",
        "{\"city\": \"Paris\"}",
        "[TOOL_CALLS]",
        "get_weather",
        "[ARGS]",
        "{\"city\": \"Rome\"}",
        "</s>",
        "[TOOL_RESULTS]",
        "{\"t\":22}",
        "[/TOOL_RESULTS]", /* call1's result first; its JSON kept as sent */
        "[TOOL_RESULTS]",
        "18C",
        "[/TOOL_RESULTS]",
        "[INST]",
        "Thanks",
        "[/INST]",
        NULL};
    expect_v13(t, msgs, V13_TOOLS, want);
    rl_tok_destroy(&t);
}

/* Neighbouring user turns merge with a blank line, system messages stay
 * separate and where they were, assistant text alone loses trailing spaces,
 * tools go before the first user turn, and no empty user turn is added. */
static void test_v13_normalization(void **state) {
    rl_tokenizer *t = v13_tok("v13.gguf", NULL, NULL);
    const char *msgs =
        "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"assistant\",\"content\":\"Hi!  \"},{\"role\":\"system\",\"content\":\"S1\"},"
        "{\"role\":\"system\",\"content\":\"S2\"},{\"role\":\"user\",\"content\":\"c\"}]";
    const char *const want[] = {
        "<s>",
        "[AVAILABLE_TOOLS]",
        "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather\", "
        "\"parameters\": {\"type\": \"object\"}}}]",
        "[/AVAILABLE_TOOLS]",
        "[INST]",
        "a\n\nb",
        "[/INST]",
        "Hi!",
        "</s>",
        "[SYSTEM_PROMPT]",
        "S1",
        "[/SYSTEM_PROMPT]",
        "[SYSTEM_PROMPT]",
        "S2",
        "[/SYSTEM_PROMPT]",
        "[INST]",
        "c",
        "[/INST]",
        NULL};
    expect_v13(t, msgs, V13_TOOLS, want);
    const char *const sys_first[] = {"<s>", "[SYSTEM_PROMPT]", "S", "[/SYSTEM_PROMPT]", "[INST]", "q", "[/INST]", NULL};
    expect_v13(t, "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"q\"}]", NULL, sys_first);
    /* a call without an id: V13 requires one */
    json_t *m = parse("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"tool_calls\":"
                      "[{\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                      "{\"role\":\"tool\",\"tool_call_id\":\"x\",\"content\":\"1\"}]");
    int32_t *ids = NULL;
    size_t n;
    char err[256];
    assert_int_equal(build_j(t, RL_CHAT_MISTRAL_V13, m, NULL, &ids, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "'id'"));
    json_decref(m);
    rl_tok_destroy(&t);
    /* reasoning_content is refused where no template can write it */
    t = open_tok("vocab-tekken-shaped.gguf");
    m = parse("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\","
              "\"reasoning_content\":\"r\"},{\"role\":\"user\",\"content\":\"c\"}]");
    assert_int_equal(build_j(t, RL_CHAT_MISTRAL_V3_TEKKEN, m, NULL, &ids, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "reasoning_content"));
    json_decref(m);
    rl_tok_destroy(&t);
}

/* The format comes from the file: the V11+ control tokens and a template
 * without [CALL_ID] (or none) mean V13; a template writing [CALL_ID] is
 * not V13. */
static void test_v13_detect(void **state) {
    gguf_file *f;
    rl_tokenizer *t = v13_tok("v13-tpl.gguf",
                              "{{ '[SYSTEM_PROMPT]' }}{{ '[TOOL_CALLS]' + name + '[ARGS]' }}"
                              "{{ '[THINK]' }}",
                              &f);
    assert_int_equal(rl_chat_template_detect(t, f), RL_CHAT_MISTRAL_V13);
    gguf_close(&f);
    rl_tok_destroy(&t);
    t = v13_tok("v11-tpl.gguf", "{{ '[TOOL_CALLS]' + name + '[CALL_ID]' + id + '[ARGS]' }}", &f);
    assert_int_not_equal(rl_chat_template_detect(t, f), RL_CHAT_MISTRAL_V13);
    gguf_close(&f);
    assert_int_equal(rl_chat_template_detect(t, NULL), RL_CHAT_MISTRAL_V13);
    rl_tok_destroy(&t);
    assert_string_equal(rl_chat_template_name(RL_CHAT_MISTRAL_V13), "mistral-v13");
}

/* Each bad input fails with a message naming where: all fragments must appear. */
static void expect_error(const rl_tokenizer *t, const char *messages, const char *tools, const char *frag1,
                         const char *frag2) {
    json_t *m = parse(messages);
    json_t *tl = tools ? parse(tools) : NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    char err[256] = "";
    if (build_j(t, RL_CHAT_MISTRAL_V3_TEKKEN, m, tl, &ids, &n, err, sizeof err) != -1)
        fail_msg("accepted: %s", messages);
    assert_null(ids);
    if (!strstr(err, frag1) || !strstr(err, frag2))
        fail_msg("error '%s' lacks '%s' or '%s'", err, frag1, frag2);
    json_decref(m);
    json_decref(tl);
}

static void test_errors(void **state) {
    rl_tokenizer *t = open_tok("vocab-tekken-shaped.gguf");
    expect_error(t, "[]", NULL, "messages", "non-empty");
    expect_error(t, "{\"role\":\"user\"}", NULL, "messages", "array");
    expect_error(t, "[{\"role\":\"user\",\"content\":\"a\"},3]", NULL, "messages[1]", "not an object");
    expect_error(t, "[{\"content\":\"a\"}]", NULL, "messages[0]", "'role'");
    expect_error(t, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"robot\",\"content\":\"b\"}]", NULL,
                 "messages[1]", "unknown role 'robot'");
    expect_error(t, "[{\"role\":\"user\"}]", NULL, "messages[0] (user)", "missing 'content'");
    expect_error(t, "[{\"role\":\"system\",\"content\":null},{\"role\":\"user\",\"content\":\"a\"}]", NULL,
                 "messages[0] (system)", "missing 'content'");
    expect_error(t, "[{\"role\":\"user\",\"content\":5}]", NULL, "messages[0] (user)", "'content'");
    expect_error(t, "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":\"x\"}]}]", NULL,
                 "messages[0] (user)", "content[0]");
    expect_error(
        t, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\"},{\"role\":\"user\",\"content\":\"b\"}]",
        NULL, "messages[1] (assistant)", "'content' or 'tool_calls'");
    expect_error(t,
                 "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"x\","
                 "\"tool_calls\":[{\"id\":\"abcdefghi\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                 "{\"role\":\"tool\",\"tool_call_id\":\"abcdefghi\",\"content\":\"1\"}]",
                 NULL, "messages[1] (assistant)", "both");
    expect_error(t,
                 "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"x\"},"
                 "{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\"}}]},"
                 "{\"role\":\"tool\",\"tool_call_id\":\"abcdefghi\",\"content\":\"1\"}]",
                 NULL, "messages[2] (assistant)", "both text and tool calls");
    expect_error(t,
                 "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
                 "\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]},"
                 "{\"role\":\"tool\",\"tool_call_id\":\"abcdefghi\",\"content\":\"1\"}]",
                 NULL, "messages[1] (assistant)", "tool_calls[0]");
    expect_error(t,
                 "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
                 "\"tool_calls\":[{\"id\":\"abcdefghi\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                 "{\"role\":\"tool\",\"content\":\"1\"}]",
                 NULL, "messages[2] (tool)", "missing 'tool_call_id'");
    expect_error(t,
                 "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"tool\",\"tool_call_id\":\"abcdefghi\","
                 "\"content\":\"1\"}]",
                 NULL, "messages[1] (tool)", "must follow");
    expect_error(t, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]", NULL,
                 "messages[1]", "last message");
    expect_error(t,
                 "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"tool_calls\":{}},"
                 "{\"role\":\"user\",\"content\":\"b\"}]",
                 NULL, "messages[1] (assistant)", "must be an array");
    expect_error(t, "[{\"role\":\"user\",\"content\":\"a\"}]", "[{\"type\":\"function\"}]", "tools[0]", "'name'");
    expect_error(t, "[{\"role\":\"user\",\"content\":\"a\"}]", "{\"a\":1}", "tools", "array");
    rl_tok_destroy(&t);
}

static int setup(void **state) {
    (void)state;
    return tu_dir_new(tmpdir, "chat");
}

static int teardown(void **state) {
    (void)state;
    return tu_dir_remove(tmpdir);
}

/* Text that is not JSON is refused with the field and the parser's place. */
static void test_malformed_json_text(void **state) {
    (void)state;
    char err[256];
    gguf_file *f = gguf_open(RELAIS_SHARED_DIR "/models/vocab-tekken-shaped.gguf", err, sizeof err);
    assert_non_null(f);
    rl_tokenizer *t = rl_tok_new(f, err, sizeof err);
    assert_non_null(t);
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(
        rl_chat_build(t, RL_CHAT_MISTRAL_V3_TEKKEN, "[{\"role\": \"user\"", NULL, &ids, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "messages: not valid JSON"));
    assert_int_equal(rl_chat_build(t, RL_CHAT_MISTRAL_V3_TEKKEN, "[{\"role\":\"user\",\"content\":\"hi\"}]", "[1,",
                                   &ids, &n, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "tools: not valid JSON"));
    assert_int_equal(rl_chat_build(t, RL_CHAT_MISTRAL_V3_TEKKEN, "[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, &ids,
                                   &n, err, sizeof err),
                     0);
    assert_true(n > 2);
    free(ids);
    rl_tok_destroy(&t);
    gguf_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_v3_tekken),
        cmocka_unit_test(test_v3_normalization),
        cmocka_unit_test(test_v1_spm),
        cmocka_unit_test(test_detect_and_names),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_v13_tools_and_thinking),
        cmocka_unit_test(test_v13_normalization),
        cmocka_unit_test(test_v13_detect),
        cmocka_unit_test(test_malformed_json_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
