/* Tests of the OpenAI layer apart from HTTP: the prompt built from a chat
 * request equals golden/chat/v3-tekken.json token for token (through the
 * same request reader the server uses), every bad field gets a 400 naming
 * it, the model name (404 for another), response_format (text, json_object,
 * json_schema and the keywords it refuses),
 * tool_choice, the context check, tool-call parsing, and the output
 * text's stop strings (their limits, and matching in time proportional to
 * the output), tool-call switch and whole characters. */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "openai.h"
#include "testutil.h"
#include "tool_calls.h"
#include "utf8.h"

#define VOCAB RELAIS_SHARED_DIR "/models/vocab-tekken-shaped.gguf"
#define GOLDEN RELAIS_SHARED_DIR "/golden/chat/v3-tekken.json"

typedef struct {
    gguf_file *f;
    rl_tokenizer *tok;
    rl_oai_model m;
} fixture;

static int setup(void **state) {
    fixture *x = calloc(1, sizeof *x);
    char err[256];
    x->f = gguf_open(VOCAB, err, sizeof err);
    assert_non_null(x->f);
    x->tok = rl_tok_new(x->f, err, sizeof err);
    assert_non_null(x->tok);
    x->m = (rl_oai_model){x->tok, rl_chat_template_detect(x->tok, x->f), 4096, "shaped"};
    assert_int_equal(x->m.tpl, RL_CHAT_MISTRAL_V3_TEKKEN);
    *state = x;
    return 0;
}

static int teardown(void **state) {
    fixture *x = *state;
    rl_tok_destroy(&x->tok);
    gguf_close(&x->f);
    free(x);
    return 0;
}

static int parse(fixture *x, bool chat, const char *body, rl_oai_req *r, rl_oai_err *e) {
    return rl_oai_req_parse(&x->m, chat, body, strlen(body), r, e);
}

static void test_golden_prompts(void **state) {
    fixture *x = *state;
    json_error_t jerr;
    json_t *golden = json_load_file(GOLDEN, 0, &jerr);
    assert_non_null(golden);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(golden, "cases"), i, c) {
        json_t *body = json_pack("{s:O, s:i, s:f}", "messages", json_object_get(c, "messages"), "max_tokens", 16,
                                 "temperature", 0.0);
        if (json_object_get(c, "tools"))
            json_object_set(body, "tools", json_object_get(c, "tools"));
        char *text = json_dumps(body, 0);
        rl_oai_req r;
        rl_oai_err e;
        assert_int_equal(parse(x, true, text, &r, &e), 0);
        json_t *want = json_object_get(c, "prompt_ids");
        assert_int_equal(r.n_prompt, json_array_size(want));
        for (size_t k = 0; k < r.n_prompt; k++)
            assert_int_equal(r.prompt[k], json_integer_value(json_array_get(want, k)));
        assert_int_equal(r.tools_offered, json_object_get(c, "tools") != NULL);
        assert_int_equal(r.max_tokens, 16);
        assert_true(r.sampling.temperature == 0.0f);
        rl_oai_req_free(&r);
        free(text);
        json_decref(body);
    }
    assert_true(i >= 4);
    json_decref(golden);
}

/* Each body must be refused with status 400, the given param and a message
 * containing `says`. */
static void test_bad_fields(void **state) {
    fixture *x = *state;
    static const struct {
        bool chat;
        const char *body, *param, *says;
    } cases[] = {
        {true, "{\"messages\": [", "", "could not parse the JSON"},
        {true, "[1, 2]", "", "JSON object"},
        {true, "{}", "messages", "non-empty array"},
        {true, "{\"messages\": []}", "messages", "non-empty array"},
        {true, "{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", "messages", "messages[0]"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": \"hot\"}", "temperature",
         "between 0 and 2"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": 3}", "temperature",
         "number"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_p\": -1}", "top_p", "number"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 0}", "max_tokens",
         "integer"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_completion_tokens\": 1.5}",
         "max_completion_tokens", "integer"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"seed\": \"x\"}", "seed", "integer"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"presence_penalty\": 9}",
         "presence_penalty", "between -2 and 2"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"frequency_penalty\": null, \"stream\": 1}",
         "stream", "boolean"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}",
         "stop", "at most 4"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stop\": \"\"}", "stop", "non-empty"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 2}", "n", "must be 1"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logit_bias\": {\"5\": 3}}", "logit_bias",
         "not supported"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"model\": 5}", "model", "string"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": 1}", "logprobs", "boolean"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_logprobs\": 2}", "top_logprobs",
         "needs 'logprobs': true"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": true, \"top_logprobs\": 21}",
         "top_logprobs", "between 0 and 20"},
        {false, "{\"prompt\": \"x\", \"logprobs\": 2}", "logprobs", "/v1/chat/completions has it"},
        {true,
         "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"json_schema\", "
         "\"json_schema\": {\"name\": \"n\", \"schema\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": "
         "\"array\", \"items\": {\"type\": \"integer\", \"minimum\": 0}}}}}}}",
         "response_format", "'response_format.json_schema.schema.properties.a.items' uses 'minimum'"},
        {true,
         "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"json_schema\", "
         "\"json_schema\": {\"name\": \"n\", \"schema\": {\"type\": \"array\"}}}}",
         "response_format", "type 'object'"},
        {true,
         "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"json_schema\", "
         "\"json_schema\": {\"name\": \"n\", \"schema\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": "
         "\"null\"}}}}}}",
         "response_format", "'null' is not supported"},
        {true,
         "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"json_schema\", "
         "\"json_schema\": {\"name\": \"n\", \"schema\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": "
         "\"string\"}}, \"required\": [\"b\"]}}}}",
         "response_format", "must name properties"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"yaml\"}}",
         "response_format", "must be 'text'"},
        {false, "{\"prompt\": \"x\", \"response_format\": \"json\"}", "response_format", "must be an object"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": 5}", "tools", "array"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{\"type\": \"x\"}]}", "tools",
         "tools[0]"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tool_choice\": \"required\"}",
         "tool_choice", "only allowed"},
        {true, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream_options\": {\"include_usage\": 1}}",
         "stream_options.include_usage", "boolean"},
        {false, "{\"prompt\": 5}", "prompt", "string"},
        {false, "{\"prompt\": [1, -2]}", "prompt", "prompt[1]"},
        {false, "{\"prompt\": [\"a\", \"b\"]}", "prompt", "prompt[0]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rl_oai_req r;
        rl_oai_err e;
        assert_int_equal(parse(x, cases[i].chat, cases[i].body, &r, &e), -1);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.type, "invalid_request_error");
        if (strcmp(e.param, cases[i].param) != 0 || !strstr(e.message, cases[i].says))
            fail_msg("case %zu: param '%s', message '%s'", i, e.param, e.message);
    }
}

static void test_options_and_context(void **state) {
    fixture *x = *state;
    rl_oai_req r;
    rl_oai_err e;
    assert_int_equal(parse(x, false,
                           "{\"prompt\": \"Hello\", \"stop\": [\"a\", \"bc\"], \"seed\": 7, \"stream\": true,"
                           " \"stream_options\": {\"include_usage\": true}, \"top_p\": 0.5}",
                           &r, &e),
                     0);
    assert_int_equal(r.n_stop, 2);
    assert_string_equal(r.stop[1], "bc");
    assert_true(r.stream && r.include_usage);
    assert_int_equal(r.sampling.seed, 7);
    assert_true(r.sampling.temperature == 1.0f && r.sampling.top_p == 0.5f);
    assert_int_equal(r.max_tokens, 4096 - (int64_t)r.n_prompt);
    rl_oai_req_free(&r);
    /* prompt + max_tokens over the context */
    assert_int_equal(parse(x, false, "{\"prompt\": [1, 2, 3], \"max_tokens\": 4094}", &r, &e), -1);
    assert_string_equal(e.code, "context_length_exceeded");
    assert_non_null(strstr(e.message, "maximum context length is 4096 tokens"));
    assert_non_null(strstr(e.message, "4097 tokens (3 in the prompt, 4094 in the completion)"));
    assert_int_equal(parse(x, false, "{\"prompt\": [1, 2, 3], \"max_tokens\": 4093}", &r, &e), 0);
    rl_oai_req_free(&r);
    /* logprobs of a chat completion */
    assert_int_equal(
        parse(x, true,
              "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": true, \"top_logprobs\": 20}",
              &r, &e),
        0);
    assert_true(r.logprobs);
    assert_int_equal(r.top_logprobs, 20);
    rl_oai_req_free(&r);
}

/* The model field: the served name or none is fine, another name gets
 * OpenAI's 404; response_format text is what relais writes anyway, and
 * json_object is taken. */
static void test_model_and_format(void **state) {
    fixture *x = *state;
    rl_oai_req r;
    rl_oai_err e;
    const char *ok[] = {
        "{\"prompt\": \"Hi\", \"model\": \"shaped\"}",
        "{\"prompt\": \"Hi\"}",
        "{\"prompt\": \"Hi\", \"response_format\": {\"type\": \"text\"}}",
        "{\"prompt\": \"Hi\", \"response_format\": null}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (parse(x, false, ok[i], &r, &e))
            fail_msg("%s: %d %s", ok[i], e.status, e.message);
        assert_false(r.json_object);
        rl_oai_req_free(&r);
    }
    /* json_object: the scheduler constrains the output to the JSON grammar */
    assert_int_equal(parse(x, true,
                           "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], "
                           "\"response_format\": {\"type\": \"json_object\"}}",
                           &r, &e),
                     0);
    assert_true(r.json_object);
    assert_null(r.schema);
    rl_oai_req_free(&r);
    /* json_schema: compiled for the grammar */
    assert_int_equal(parse(x, true,
                           "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": "
                           "{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"n\", \"strict\": true, "
                           "\"schema\": {\"type\": \"object\", \"title\": \"t\", \"properties\": {\"a\": {\"type\": "
                           "\"string\"}, \"b\": {\"enum\": [1, \"x\", null]}}, \"required\": [\"a\"], "
                           "\"additionalProperties\": false}}}}",
                           &r, &e),
                     0);
    assert_non_null(r.schema);
    rl_jg g;
    rl_jg_init_schema(&g, r.schema);
    assert_true(rl_jg_feed(&g, (const uint8_t *)"{\"a\":\"q\",\"b\":null}", 18));
    assert_true(rl_jg_done(&g));
    rl_oai_req_free(&r);
    assert_int_equal(
        parse(x, true, "{\"model\": \"gpt-4o\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", &r, &e),
        -1);
    assert_int_equal(e.status, 404);
    assert_string_equal(e.code, "model_not_found");
    assert_string_equal(e.param, "model");
    assert_non_null(strstr(e.message, "'gpt-4o' does not exist"));
    assert_non_null(strstr(e.message, "serves 'shaped'"));
    /* a server that names no model takes any */
    rl_oai_model any = x->m;
    any.id = NULL;
    const char *other = "{\"prompt\": \"Hi\", \"model\": \"gpt-4o\"}";
    assert_int_equal(rl_oai_req_parse(&any, false, other, strlen(other), &r, &e), 0);
    rl_oai_req_free(&r);
}

static void test_tool_choice(void **state) {
    fixture *x = *state;
    const char *tools = "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"a\"}},"
                        " {\"type\": \"function\", \"function\": {\"name\": \"b\"}}]";
    char body[512];
    rl_oai_req r, plain;
    rl_oai_err e;
    int32_t calls = rl_tok_find(x->tok, "[TOOL_CALLS]");
    snprintf(body, sizeof body, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], %s}", tools);
    assert_int_equal(parse(x, true, body, &plain, &e), 0);
    assert_int_equal(plain.tool_mode, RL_TOOLS_AUTO);
    snprintf(body, sizeof body,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], %s, \"tool_choice\": "
             "\"required\"}",
             tools);
    assert_int_equal(parse(x, true, body, &r, &e), 0);
    assert_int_equal(r.tool_mode, RL_TOOLS_REQUIRED);
    assert_int_equal(r.n_prompt, plain.n_prompt + 1);
    assert_memory_equal(r.prompt, plain.prompt, plain.n_prompt * sizeof(int32_t));
    assert_int_equal(r.prompt[r.n_prompt - 1], calls);
    rl_oai_req_free(&r);
    /* a named function: only that one is listed */
    snprintf(body, sizeof body,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], %s, \"tool_choice\": "
             "{\"type\": \"function\", \"function\": {\"name\": \"b\"}}}",
             tools);
    assert_int_equal(parse(x, true, body, &r, &e), 0);
    assert_true(r.n_prompt < plain.n_prompt + 1);
    assert_int_equal(r.prompt[r.n_prompt - 1], calls);
    rl_oai_req_free(&r);
    snprintf(body, sizeof body,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], %s, \"tool_choice\": "
             "{\"type\": \"function\", \"function\": {\"name\": \"zz\"}}}",
             tools);
    assert_int_equal(parse(x, true, body, &r, &e), -1);
    assert_string_equal(e.param, "tool_choice");
    /* none: no tools in the prompt */
    snprintf(body, sizeof body,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], %s, \"tool_choice\": "
             "\"none\"}",
             tools);
    assert_int_equal(parse(x, true, body, &r, &e), 0);
    assert_false(r.tools_offered);
    assert_true(r.n_prompt < plain.n_prompt);
    rl_oai_req_free(&r);
    rl_oai_req_free(&plain);
}

static void check_call(json_t *calls, size_t i, const char *name, const char *args) {
    json_t *c = json_array_get(calls, i);
    assert_string_equal(json_string_value(json_object_get(c, "type")), "function");
    assert_true(rl_tool_call_id_valid(json_string_value(json_object_get(c, "id"))));
    json_t *fn = json_object_get(c, "function");
    assert_string_equal(json_string_value(json_object_get(fn, "name")), name);
    assert_string_equal(json_string_value(json_object_get(fn, "arguments")), args);
}

static json_t *calls_of(const char *text) { return rl_tool_calls_parse(text, strlen(text)); }

static void test_tool_call_parsing(void **state) {
    (void)state;
    json_t *c = calls_of(" [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}},"
                         " {\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\", \"id\": \"abcDEF123\"}] ");
    assert_int_equal(json_array_size(c), 2);
    check_call(c, 0, "get_weather", "{\"city\":\"Paris\"}");
    check_call(c, 1, "f", "{\"x\": 1}");
    assert_string_equal(json_string_value(json_object_get(json_array_get(c, 1), "id")), "abcDEF123");
    json_decref(c);
    c = calls_of("{\"name\": \"g\", \"id\": \"not-valid-id\"}"); /* one object; no arguments; bad id */
    assert_int_equal(json_array_size(c), 1);
    check_call(c, 0, "g", "{}");
    assert_string_not_equal(json_string_value(json_object_get(json_array_get(c, 0), "id")), "not-valid-id");
    json_decref(c);
    const char *bad[] = {"",
                         "[]",
                         "[{\"arguments\": {}}]",
                         "[{\"name\": 5}]",
                         "[{\"name\": \"\"}]",
                         "[1]",
                         "[{\"name\": \"a\"}] trailing",
                         "not json",
                         "[{\"name\": \"a\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(calls_of(bad[i]));
    /* the newer format (V13; V11 with [CALL_ID]) */
    json_t *v = calls_of("f[ARGS]{\"a\": 1}[TOOL_CALLS]g[CALL_ID]abcdefghi[ARGS]{}");
    assert_int_equal(json_array_size(v), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_array_get(v, 0), "function"), "arguments")),
        "{\"a\":1}");
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 1), "id")), "abcdefghi");
    json_decref(v);
    const char *bad_v13[] = {"[ARGS]{}", "f[ARGS]{oops", "f[ARGS]{}[TOOL_CALLS]g", "f[ARGS]{}[TOOL_CALLS]"};
    for (size_t i = 0; i < sizeof bad_v13 / sizeof bad_v13[0]; i++)
        assert_null(calls_of(bad_v13[i]));
    char id[10];
    rl_tool_call_id(id);
    assert_true(rl_tool_call_id_valid(id));
    assert_false(rl_tool_call_id_valid("abc"));
    assert_false(rl_tool_call_id_valid("abcdefgh!"));
}

/* Feeds the ids of text into o; returns whether it went on to the end. */
static bool feed_text(fixture *x, rl_oai_out *o, const char *text) {
    int32_t *ids;
    size_t n;
    assert_int_equal(rl_tok_encode(x->tok, text, strlen(text), false, false, &ids, &n), 0);
    bool go_on = true;
    for (size_t i = 0; i < n && go_on; i++)
        go_on = rl_oai_out_feed(o, ids[i]);
    free(ids);
    return go_on;
}

static void test_output_stops_and_tools(void **state) {
    fixture *x = *state;
    char *stop[2] = {"END", "\n\n"};
    size_t len;
    rl_oai_out *o = rl_oai_out_new(x->tok, stop, 2, false, false);
    assert_true(feed_text(x, o, "Hello wor"));
    assert_true(feed_text(x, o, "ld, the E"));
    const char *t = rl_oai_out_content(o, &len);
    assert_true(len <= strlen("Hello world, the ")); /* "E" is held back */
    assert_false(feed_text(x, o, "ND is near"));
    t = rl_oai_out_content(o, &len);
    assert_int_equal(len, strlen("Hello world, the "));
    assert_memory_equal(t, "Hello world, the ", len);
    rl_oai_out_destroy(&o);
    /* the held tail is released at the end */
    o = rl_oai_out_new(x->tok, stop, 2, false, false);
    assert_true(feed_text(x, o, "abc EN"));
    rl_oai_out_finish(o);
    t = rl_oai_out_content(o, &len);
    assert_int_equal(len, 6);
    rl_oai_out_destroy(&o);
    /* [TOOL_CALLS] switches to tool text when tools are offered */
    o = rl_oai_out_new(x->tok, stop, 2, true, false);
    assert_true(feed_text(x, o, "Sure. "));
    assert_true(rl_oai_out_feed(o, rl_tok_find(x->tok, "[TOOL_CALLS]")));
    assert_true(feed_text(x, o, "[{\"name\": \"a\"}]\n\nEND")); /* stops do not apply to calls */
    rl_oai_out_finish(o);
    assert_true(rl_oai_out_in_tools(o));
    t = rl_oai_out_tool_text(o, &len);
    assert_string_equal(t, "[{\"name\": \"a\"}]\n\nEND");
    t = rl_oai_out_content(o, &len);
    assert_int_equal(len, 6);
    rl_oai_out_destroy(&o);
    /* forced: everything is tool text */
    o = rl_oai_out_new(x->tok, NULL, 0, true, true);
    assert_true(feed_text(x, o, "{\"name\": \"b\"}"));
    rl_oai_out_finish(o);
    assert_true(rl_oai_out_in_tools(o));
    rl_oai_out_content(o, &len);
    assert_int_equal(len, 0);
    rl_oai_out_destroy(&o);
}

/* A body with n stop strings of len bytes of 'a' each. Malloc'd. */
static char *stop_body(size_t n, size_t len) {
    char *b = malloc(64 + n * (len + 4));
    size_t at = (size_t)sprintf(b, "{\"prompt\": \"x\", \"stop\": [");
    for (size_t i = 0; i < n; i++) {
        b[at++] = i ? ',' : ' ';
        b[at++] = '"';
        memset(b + at, 'a', len);
        at += len;
        b[at++] = '"';
    }
    strcpy(b + at, "]}");
    return b;
}

/* Stop strings as OpenAI limits them: four of 1.9 MB (within the body
 * limit) are refused with a 400 naming 'stop', as is one byte over the
 * limit; the limit itself is taken. */
static void test_stop_limits(void **state) {
    fixture *x = *state;
    rl_oai_req r;
    rl_oai_err e;
    char *b = stop_body(4, 1900000);
    assert_int_equal(parse(x, false, b, &r, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.param, "stop");
    assert_non_null(strstr(e.message, "at most 512"));
    free(b);
    b = stop_body(1, RL_OAI_MAX_STOP_BYTES + 1);
    assert_int_equal(parse(x, false, b, &r, &e), -1);
    assert_string_equal(e.param, "stop");
    free(b);
    b = stop_body(RL_OAI_MAX_STOP, RL_OAI_MAX_STOP_BYTES);
    assert_int_equal(parse(x, false, b, &r, &e), 0);
    assert_int_equal(r.n_stop, RL_OAI_MAX_STOP);
    rl_oai_req_free(&r);
    free(b);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds to feed n ids of "a" through an output with the given stops;
 * checks that nothing stopped and that all but the held tail is visible. */
static double feed_a(fixture *x, char **stop, size_t n_stop, size_t n, size_t hold) {
    int32_t *ids;
    size_t n_ids, len;
    assert_int_equal(rl_tok_encode(x->tok, "a", 1, false, false, &ids, &n_ids), 0);
    assert_int_equal(n_ids, 1);
    rl_oai_out *o = rl_oai_out_new(x->tok, stop, n_stop, false, false);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++)
        assert_true(rl_oai_out_feed(o, ids[0]));
    double dt = now_s() - t0;
    rl_oai_out_content(o, &len);
    assert_int_equal(len, n - hold);
    rl_oai_out_destroy(&o);
    free(ids);
    return dt;
}

/* Matching costs time proportional to the output: four stop strings of the
 * largest size, each all but matching at every position ("aaa...ab" over a
 * text of "a"s, the worst case for a rescan), add little to the cost per
 * token. The rescan this replaced took about 65 us per token here (100,000
 * tokens: 6.5 s, against 5 ms without stop strings); the bound, 0.25 s,
 * leaves room for a loaded machine. */
static void test_stop_matching_linear(void **state) {
    fixture *x = *state;
    enum { N = 100000 };
    char *stop[RL_OAI_MAX_STOP];
    for (size_t k = 0; k < RL_OAI_MAX_STOP; k++) {
        stop[k] = malloc(RL_OAI_MAX_STOP_BYTES + 1);
        memset(stop[k], 'a', RL_OAI_MAX_STOP_BYTES);
        stop[k][RL_OAI_MAX_STOP_BYTES - 1] = (char)('b' + k);
        stop[k][RL_OAI_MAX_STOP_BYTES] = 0;
    }
    double plain = feed_a(x, NULL, 0, N, 0);
    double with = feed_a(x, stop, RL_OAI_MAX_STOP, N, RL_OAI_MAX_STOP_BYTES - 1);
    printf("%d tokens: %.1f ms without stop strings, %.1f ms with four of %d bytes\n", N, plain * 1e3, with * 1e3,
           RL_OAI_MAX_STOP_BYTES);
    assert_true(with < 20 * plain + 0.25);
    for (size_t k = 0; k < RL_OAI_MAX_STOP; k++)
        free(stop[k]);
}

/* Whether s[0..n) is whole, valid UTF-8: what an SSE delta must be. */
static bool utf8_whole(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += rl_utf8_decode(s + i, n - i, &cp);
        if (cp == RL_UTF8_INVALID)
            return false;
    }
    return true;
}

/* The streamed content (what the SSE deltas carry) never ends inside a
 * character, though the byte-level vocabulary splits "ï" and "🦙" across
 * tokens; a stop string of several bytes per character still cuts; a
 * character the generation never completes ends as one U+FFFD. */
static void test_output_split_characters(void **state) {
    fixture *x = *state;
    const char *text = "na\xC3\xAFve \xF0\x9F\xA6\x99!"; /* "naïve 🦙!" */
    int32_t *ids;
    size_t n, len, held = 0;
    assert_int_equal(rl_tok_encode(x->tok, text, strlen(text), false, false, &ids, &n), 0);
    rl_oai_out *o = rl_oai_out_new(x->tok, NULL, 0, false, false);
    size_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(rl_oai_out_feed(o, ids[i]));
        const char *t = rl_oai_out_content(o, &len);
        assert_true(utf8_whole(t, len));
        assert_memory_equal(t, text, len);
        char piece[16];
        int k = rl_tok_piece(x->tok, ids[i], false, piece, sizeof piece);
        held += k > 0 && len == prev; /* a token's bytes came in, nothing could be shown */
        prev = len;
    }
    assert_true(held >= 1); /* the test does split a character */
    rl_oai_out_finish(o);
    const char *t = rl_oai_out_content(o, &len);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(t, text, len);
    rl_oai_out_destroy(&o);

    char *stop[1] = {"\xF0\x9F\xA6\x99"};
    o = rl_oai_out_new(x->tok, stop, 1, false, false);
    assert_false(feed_text(x, o, text));
    t = rl_oai_out_content(o, &len);
    assert_int_equal(len, strlen("na\xC3\xAFve "));
    assert_memory_equal(t, "na\xC3\xAFve ", len);
    rl_oai_out_destroy(&o);

    /* "🦙" cut after the tokens that carry its first bytes */
    o = rl_oai_out_new(x->tok, NULL, 0, false, false);
    int32_t *lids;
    size_t ln;
    assert_int_equal(rl_tok_encode(x->tok, "\xF0\x9F\xA6\x99", 4, false, false, &lids, &ln), 0);
    assert_true(ln >= 2);
    for (size_t i = 0; i + 1 < ln; i++)
        assert_true(rl_oai_out_feed(o, lids[i]));
    rl_oai_out_content(o, &len);
    assert_int_equal(len, 0);
    rl_oai_out_finish(o);
    t = rl_oai_out_content(o, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(t, "\xEF\xBF\xBD", 3);
    rl_oai_out_destroy(&o);
    free(lids);
    free(ids);
}

/* Ministral 3's output: [THINK]..[/THINK] goes to the reasoning, and calls
 * in the newer format keep their markers for the parser. */
static void test_output_thinking_and_v13_calls(void **state) {
    fixture *x = *state;
    char dir[TU_DIR_MAX], path[TU_DIR_MAX + 16], err[256];
    assert_int_equal(tu_dir_new(dir, "openai"), 0);
    snprintf(path, sizeof path, "%s/v13.gguf", dir);
    assert_int_equal(tu_write_v13_vocab(path, NULL), 0);
    gguf_file *f = gguf_open(path, err, sizeof err);
    assert_non_null(f);
    rl_tokenizer *tok = rl_tok_new(f, err, sizeof err);
    assert_non_null(tok);
    fixture y = *x;
    y.tok = tok;
    rl_oai_out *o = rl_oai_out_new(tok, NULL, 0, true, false);
    assert_true(rl_oai_out_feed(o, rl_tok_find(tok, "[THINK]")));
    assert_true(feed_text(&y, o, "Two cities"));
    assert_true(rl_oai_out_feed(o, rl_tok_find(tok, "[/THINK]")));
    assert_true(feed_text(&y, o, "Checking."));
    assert_true(rl_oai_out_feed(o, rl_tok_find(tok, "[TOOL_CALLS]")));
    assert_true(feed_text(&y, o, "get_weather"));
    assert_true(rl_oai_out_feed(o, rl_tok_find(tok, "[ARGS]")));
    assert_true(feed_text(&y, o, "{\"city\": \"Paris\"}"));
    assert_true(rl_oai_out_feed(o, rl_tok_find(tok, "[TOOL_CALLS]")));
    assert_true(feed_text(&y, o, "get_weather"));
    assert_true(rl_oai_out_feed(o, rl_tok_find(tok, "[ARGS]")));
    assert_true(feed_text(&y, o, "{\"city\": \"Rome\"}"));
    rl_oai_out_finish(o);
    size_t len;
    const char *t = rl_oai_out_reasoning(o, &len);
    assert_int_equal(len, strlen("Two cities"));
    assert_memory_equal(t, "Two cities", len);
    t = rl_oai_out_content(o, &len);
    assert_int_equal(len, strlen("Checking."));
    assert_memory_equal(t, "Checking.", len);
    t = rl_oai_out_tool_text(o, &len);
    assert_string_equal(t, "get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Rome\"}");
    json_t *calls = rl_tool_calls_parse(t, len);
    assert_int_equal(json_array_size(calls), 2);
    json_t *fn = json_object_get(json_array_get(calls, 1), "function");
    assert_string_equal(json_string_value(json_object_get(fn, "name")), "get_weather");
    assert_string_equal(json_string_value(json_object_get(fn, "arguments")), "{\"city\":\"Rome\"}");
    assert_true(rl_tool_call_id_valid(json_string_value(json_object_get(json_array_get(calls, 0), "id"))));
    /* the reasoning reaches the response as reasoning_content */
    rl_oai_meta m = {"chatcmpl-1", "m3", 1700000000, true};
    t = rl_oai_out_content(o, &len);
    json_t *r = rl_oai_response(&m, t, len, calls, "tool_calls", rl_oai_usage(1, 1, 0));
    t = rl_oai_out_reasoning(o, &len);
    rl_oai_set_reasoning(r, t, len);
    json_t *msg = json_object_get(json_array_get(json_object_get(r, "choices"), 0), "message");
    assert_string_equal(json_string_value(json_object_get(msg, "reasoning_content")), "Two cities");
    assert_string_equal(json_string_value(json_object_get(msg, "content")), "Checking.");
    json_decref(r);
    rl_oai_out_destroy(&o);
    rl_tok_destroy(&tok);
    gguf_close(&f);
    tu_dir_remove(dir);
}

static void test_response_shapes(void **state) {
    (void)state;
    rl_oai_meta m = {"chatcmpl-1", "parrot", 1700000000, true};
    json_t *calls = calls_of("[{\"name\": \"a\"}]");
    json_t *r = rl_oai_response(&m, "", 0, calls, "tool_calls", rl_oai_usage(10, 3, 0));
    json_t *msg = json_object_get(json_array_get(json_object_get(r, "choices"), 0), "message");
    assert_true(json_is_null(json_object_get(msg, "content")));
    assert_int_equal(json_array_size(json_object_get(msg, "tool_calls")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "usage"), "total_tokens")), 13);
    assert_string_equal(json_string_value(json_object_get(r, "object")), "chat.completion");
    json_decref(r);
    r = rl_oai_chunk(&m, "assistant", "", 0, NULL, NULL);
    json_t *delta = json_object_get(json_array_get(json_object_get(r, "choices"), 0), "delta");
    assert_string_equal(json_string_value(json_object_get(delta, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(r, "object")), "chat.completion.chunk");
    json_decref(r);
    m.chat = false;
    r = rl_oai_chunk(&m, NULL, "hi", 2, NULL, "stop");
    json_t *choice = json_array_get(json_object_get(r, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(choice, "text")), "hi");
    assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")), "stop");
    json_decref(r);
    rl_oai_err e;
    rl_oai_err_set(&e, 429, "server_error", NULL, "busy");
    r = rl_oai_error_json(&e);
    assert_true(json_is_null(json_object_get(json_object_get(r, "error"), "param")));
    json_decref(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_limits),
        cmocka_unit_test(test_stop_matching_linear),
        cmocka_unit_test(test_golden_prompts),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_options_and_context),
        cmocka_unit_test(test_tool_choice),
        cmocka_unit_test(test_tool_call_parsing),
        cmocka_unit_test(test_output_stops_and_tools),
        cmocka_unit_test(test_output_split_characters),
        cmocka_unit_test(test_model_and_format),
        cmocka_unit_test(test_response_shapes),
        cmocka_unit_test(test_output_thinking_and_v13_calls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
