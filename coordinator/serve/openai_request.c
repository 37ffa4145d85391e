/* Reading OpenAI request bodies (see openai.h). Every field is checked
 * before it is used, and a bad one gets a 400 that names it, as OpenAI's
 * `param`. The chat prompt is built by the model's chat template
 * (engine/tok/chat.h) from `messages` and the tools `tool_choice` leaves in;
 * a forced tool choice also opens the assistant's reply with [TOOL_CALLS]
 * so the model can only answer with calls. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "openai.h"

void rl_oai_err_set(rl_oai_err *e, int status, const char *type, const char *param, const char *fmt, ...) {
    va_list ap;
    e->status = status;
    e->type = type;
    e->code = NULL;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* A 400 naming param; returns -1 for the callers' `return bad(...)`. */
static int bad(rl_oai_err *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(rl_oai_err *e, const char *param, const char *fmt, ...) {
    va_list ap;
    rl_oai_err_set(e, 400, "invalid_request_error", param, "%s", "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* A number field in [lo, hi]; absent or null leaves *out. */
static int number_field(const json_t *body, const char *key, double lo, double hi, float *out, rl_oai_err *e) {
    const json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    double d = json_number_value(v);
    if (!json_is_number(v) || !isfinite(d) || d < lo || d > hi)
        return bad(e, key, "'%s' must be a number between %g and %g", key, lo, hi);
    *out = (float)d;
    return 0;
}

/* An integer field in [lo, hi]; absent or null leaves *out and *present. */
static int int_field(const json_t *body, const char *key, int64_t lo, int64_t hi, int64_t *out, bool *present,
                     rl_oai_err *e) {
    const json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bad(e, key, "'%s' must be an integer between %lld and %lld", key, (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    if (present)
        *present = true;
    return 0;
}

static int bool_field(const json_t *body, const char *key, bool *out, rl_oai_err *e) {
    const json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return bad(e, key, "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return 0;
}

static uint64_t random_seed(void) {
    uint64_t s;
    if (getrandom(&s, sizeof s, 0) == (ssize_t)sizeof s)
        return s;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)ts.tv_sec;
}

/* ---- json_schema: the subset the grammar enforces (json_grammar.h) ---- */

#define SCHEMA_KEYS "type, properties, required, items, enum, additionalProperties, description, title"

/* A JSON text of v into the schema (the caller frees *out). */
static char *json_text(const json_t *v) { return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT); }

static int schema_node(rl_js *s, const json_t *j, const char *path, int depth, rl_oai_err *e);

static int schema_enum(rl_js *s, const json_t *en, const char *path, rl_oai_err *e) {
    const size_t n = json_array_size(en);
    if (!json_is_array(en) || n == 0 || n > 64)
        return bad(e, "response_format", "'%s.enum' must be an array of 1 to 64 values", path);
    char *texts[64];
    size_t k = 0;
    int id = -1;
    for (; k < n; k++) {
        const json_t *v = json_array_get(en, k);
        if (json_is_object(v) || json_is_array(v) || !(texts[k] = json_text(v)))
            break;
    }
    if (k == n && (id = rl_js_enum(s, (const char *const *)texts, n)) < 0)
        rl_oai_err_set(e, 500, "server_error", NULL, "out of memory for the schema");
    else if (k < n)
        bad(e, "response_format", "'%s.enum' may hold strings, numbers, booleans and null only", path);
    while (k--)
        free(texts[k]);
    return id;
}

static int schema_object(rl_js *s, const json_t *j, const char *path, int depth, rl_oai_err *e) {
    const json_t *props = json_object_get(j, "properties"), *req = json_object_get(j, "required");
    const json_t *extra = json_object_get(j, "additionalProperties");
    if (props && !json_is_object(props))
        return bad(e, "response_format", "'%s.properties' must be an object", path);
    if (extra && !json_is_boolean(extra))
        return bad(e, "response_format", "'%s.additionalProperties' must be a boolean (schemas are not supported)",
                   path);
    for (size_t i = 0; i < json_array_size(req); i++) /* every property is written: each required one is there */
        if (!json_is_string(json_array_get(req, i)) ||
            !json_object_get(props, json_string_value(json_array_get(req, i))))
            return bad(e, "response_format", "'%s.required' must name properties of '%s.properties'", path, path);
    if (req && !json_is_array(req))
        return bad(e, "response_format", "'%s.required' must be an array", path);
    const size_t n = json_object_size(props);
    char **keys = calloc(n ? n : 1, sizeof *keys);
    int *ids = calloc(n ? n : 1, sizeof *ids), id = -1;
    size_t k = 0;
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)props, name, v) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.properties.%s", path, name);
        json_t *key = json_string(name);
        if (!keys || !ids || !key || !(keys[k] = json_text(key))) {
            json_decref(key);
            rl_oai_err_set(e, 500, "server_error", NULL, "out of memory for the schema");
            break;
        }
        json_decref(key);
        if ((ids[k++] = schema_node(s, v, sub, depth + 1, e)) < 0)
            break;
    }
    if (k == n && (k == 0 || ids[k - 1] >= 0) && (id = rl_js_object(s, (const char *const *)keys, ids, n)) < 0)
        rl_oai_err_set(e, 500, "server_error", NULL, "out of memory for the schema");
    for (size_t i = 0; keys && i < n; i++)
        free(keys[i]);
    free(keys), free(ids);
    return id;
}

/* One node of the schema (path names it in errors); its index, or -1 with
 * a 400 naming what relais does not enforce. */
static int schema_node(rl_js *s, const json_t *j, const char *path, int depth, rl_oai_err *e) {
    if (!json_is_object(j))
        return bad(e, "response_format", "'%s' must be an object", path);
    if (depth > RL_JS_MAX_DEPTH)
        return bad(e, "response_format", "'%s': schemas nest at most %d deep", path, RL_JS_MAX_DEPTH);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        char pat[80];
        snprintf(pat, sizeof pat, " %s,", key);
        if (strlen(key) > 40 || strpbrk(key, ", ") || !strstr(" " SCHEMA_KEYS ",", pat))
            return bad(
                e, "response_format",
                "'%s' uses '%s', which relais does not enforce; the JSON schema keywords it enforces are: " SCHEMA_KEYS,
                path, key);
    }
    const json_t *en = json_object_get(j, "enum"), *type = json_object_get(j, "type");
    if (en)
        return schema_enum(s, en, path, e);
    const char *t = json_string_value(type);
    if (!t)
        return bad(e, "response_format", "'%s.type' must be one of object, array, string, number, integer, boolean",
                   path);
    if (!strcmp(t, "object"))
        return schema_object(s, j, path, depth, e);
    if (json_object_get(j, "properties") || json_object_get(j, "required"))
        return bad(e, "response_format", "'%s' has properties but is not of type object", path);
    if (!strcmp(t, "array")) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.items", path);
        int items = schema_node(s, json_object_get(j, "items"), sub, depth + 1, e);
        return items < 0 ? -1 : rl_js_array(s, items);
    }
    if (json_object_get(j, "items"))
        return bad(e, "response_format", "'%s' has items but is not of type array", path);
    if (!strcmp(t, "boolean")) {
        const char *const b[] = {"true", "false"};
        return rl_js_enum(s, b, 2);
    }
    if (!strcmp(t, "string") || !strcmp(t, "number") || !strcmp(t, "integer"))
        return rl_js_scalar(s,
                            !strcmp(t, "string")       ? RL_JS_STRING
                                : !strcmp(t, "number") ? RL_JS_NUMBER
                                                       : RL_JS_INTEGER);
    return bad(e, "response_format",
               "'%s.type' '%s' is not supported: relais enforces object, array, string, number, integer, boolean", path,
               t);
}

/* response_format.json_schema: {name, schema, strict?, description?}; the
 * schema's top level is an object. */
static int json_schema(const json_t *rf, rl_oai_req *r, rl_oai_err *e) {
    const json_t *js = json_object_get(rf, "json_schema");
    const json_t *schema = json_object_get(js, "schema");
    if (!json_is_object(js) || !json_is_string(json_object_get(js, "name")))
        return bad(e, "response_format", "'response_format.json_schema' must be an object with a string 'name'");
    if (!json_is_object(schema) || !json_is_string(json_object_get(schema, "type")) ||
        strcmp(json_string_value(json_object_get(schema, "type")), "object"))
        return bad(e, "response_format",
                   "'response_format.json_schema.schema' must be a schema of type 'object' (relais writes one object)");
    if (!(r->schema = rl_js_new())) {
        rl_oai_err_set(e, 500, "server_error", NULL, "out of memory for the schema");
        return -1;
    }
    int root = schema_node(r->schema, schema, "response_format.json_schema.schema", 0, e);
    if (root < 0 || rl_js_set_root(r->schema, root)) {
        if (root >= 0)
            rl_oai_err_set(e, 500, "server_error", NULL, "out of memory for the schema");
        rl_js_destroy(&r->schema);
        return -1;
    }
    return 0;
}

/* response_format: text, json_object or json_schema (sampling constrained
 * to a JSON grammar, of any object or of the schema: the scheduler masks
 * each sample). A schema keyword the grammar does not enforce is refused:
 * a client must not get unchecked output instead. */
static int response_format(const json_t *body, rl_oai_req *r, rl_oai_err *e) {
    const json_t *rf = json_object_get(body, "response_format");
    if (!rf || json_is_null(rf))
        return 0;
    const json_t *type = json_object_get(rf, "type");
    if (!json_is_object(rf) || !json_is_string(type))
        return bad(e, "response_format", "'response_format' must be an object with a string 'type'");
    const char *t = json_string_value(type);
    if (!strcmp(t, "text"))
        return 0;
    if (!strcmp(t, "json_object")) {
        r->json_object = true;
        return 0;
    }
    if (!strcmp(t, "json_schema"))
        return json_schema(rf, r, e);
    return bad(e, "response_format", "'response_format.type' must be 'text', 'json_object' or 'json_schema'");
}

/* Fields OpenAI has that relais does not do: refused rather than ignored,
 * so a client never silently gets something else than it asked for. */
static int unsupported(const json_t *body, rl_oai_req *r, rl_oai_err *e) {
    const json_t *n = json_object_get(body, "n");
    const json_t *bias = json_object_get(body, "logit_bias"), *best = json_object_get(body, "best_of");
    if (n && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1))
        return bad(e, "n", "'n' must be 1: relais generates one choice per request");
    if (best && !json_is_null(best) && !(json_is_integer(best) && json_integer_value(best) == 1))
        return bad(e, "best_of", "'best_of' must be 1");
    if (bias && !json_is_null(bias) && !(json_is_object(bias) && json_object_size(bias) == 0))
        return bad(e, "logit_bias", "'logit_bias' is not supported");
    return response_format(body, r, e);
}

/* logprobs (a boolean) and top_logprobs (0 to 20, only with logprobs) of
 * chat completions, as OpenAI takes them; the integer logprobs of the
 * legacy /v1/completions is not done. */
static int read_logprobs(const json_t *body, rl_oai_req *r, rl_oai_err *e) {
    const json_t *lp = json_object_get(body, "logprobs");
    int64_t top = 0;
    bool has_top = false;
    if (!r->chat)
        return lp && !json_is_null(lp) && !json_is_false(lp)
            ? bad(e, "logprobs", "'logprobs' is not supported on /v1/completions; /v1/chat/completions has it")
            : 0;
    if (bool_field(body, "logprobs", &r->logprobs, e) ||
        int_field(body, "top_logprobs", 0, RL_OAI_MAX_TOP_LOGPROBS, &top, &has_top, e))
        return -1;
    if (has_top && !r->logprobs)
        return bad(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r->top_logprobs = (uint32_t)top;
    return 0;
}

static int read_sampling(const json_t *body, rl_oai_req *r, rl_oai_err *e) {
    rl_sampler_params *s = &r->sampling;
    int64_t seed = 0;
    bool has_seed = false;
    *s = rl_sampler_defaults();
    s->temperature = 1.0f; /* OpenAI's defaults */
    s->repeat_last_n = -1; /* the penalties see every generated id */
    if (number_field(body, "temperature", 0, 2, &s->temperature, e) ||
        number_field(body, "top_p", 0, 1, &s->top_p, e) ||
        number_field(body, "presence_penalty", -2, 2, &s->presence_penalty, e) ||
        number_field(body, "frequency_penalty", -2, 2, &s->frequency_penalty, e) ||
        int_field(body, "seed", INT64_MIN, INT64_MAX, &seed, &has_seed, e))
        return -1;
    if (s->top_p == 0)
        s->temperature = 0; /* only the most likely token is left */
    s->seed = has_seed ? (uint64_t)seed : random_seed();
    return 0;
}

static bool plain_string(const json_t *s) {
    return json_is_string(s) && json_string_length(s) > 0 && strlen(json_string_value(s)) == json_string_length(s);
}

static int add_stop(rl_oai_req *r, const json_t *s, rl_oai_err *e) {
    if (json_string_length(s) > RL_OAI_MAX_STOP_BYTES)
        return bad(e, "stop", "a stop string of %zu bytes; each may have at most %d", json_string_length(s),
                   RL_OAI_MAX_STOP_BYTES);
    if (!(r->stop[r->n_stop] = strdup(json_string_value(s))))
        return bad(e, NULL, "out of memory");
    r->n_stop++;
    return 0;
}

static int read_stop(const json_t *body, rl_oai_req *r, rl_oai_err *e) {
    const json_t *v = json_object_get(body, "stop");
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v))
        return plain_string(v) ? add_stop(r, v, e) : bad(e, "stop", "'stop' must be a non-empty string without NUL");
    if (!json_is_array(v) || json_array_size(v) > RL_OAI_MAX_STOP)
        return bad(e, "stop", "'stop' must be a string or an array of at most %d strings", RL_OAI_MAX_STOP);
    size_t i;
    const json_t *s;
    json_array_foreach(v, i, s) {
        if (!plain_string(s))
            return bad(e, "stop", "stop[%zu] must be a non-empty string without NUL", i);
        if (add_stop(r, s, e))
            return -1;
    }
    return 0;
}

static int read_options(const rl_oai_model *m, const json_t *body, rl_oai_req *r, rl_oai_err *e) {
    const json_t *so = json_object_get(body, "stream_options"), *model = json_object_get(body, "model");
    bool has_mct = false, has_mt = false;
    int64_t mct = -1, mt = -1;
    if (model && !json_is_string(model))
        return bad(e, "model", "'model' must be a string");
    /* as OpenAI answers a model name it does not have */
    if (json_is_string(model) && m->id && strcmp(json_string_value(model), m->id)) {
        rl_oai_err_set(e, 404, "invalid_request_error", "model",
                       "The model '%s' does not exist; this server serves '%s'.", json_string_value(model), m->id);
        e->code = "model_not_found";
        return -1;
    }
    if (unsupported(body, r, e) || bool_field(body, "stream", &r->stream, e) ||
        int_field(body, "max_completion_tokens", 1, INT32_MAX, &mct, &has_mct, e) ||
        int_field(body, "max_tokens", 1, INT32_MAX, &mt, &has_mt, e) || read_sampling(body, r, e) ||
        read_stop(body, r, e) || read_logprobs(body, r, e))
        return -1;
    bool speculative = true;
    if (bool_field(body, "speculative", &speculative, e))
        return -1;
    r->no_draft = !speculative;
    r->max_tokens = has_mct ? mct : has_mt ? mt : -1;
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            return bad(e, "stream_options", "'stream_options' must be an object");
        if (bool_field(so, "include_usage", &r->include_usage, e)) {
            snprintf(e->param, sizeof e->param, "stream_options.include_usage");
            return -1;
        }
    }
    return 0;
}

/* ---- prompts ---- */

static bool tool_named(const json_t *tool, const char *name) {
    const json_t *n = json_object_get(json_object_get(tool, "function"), "name");
    return json_is_string(n) && strcmp(json_string_value(n), name) == 0;
}

/* The tools the prompt lists, after tool_choice: NULL (none), the array, or
 * a new array with the one named function. *forced: the reply must call. */
static int choose_tools(const json_t *body, json_t **tools, bool *forced, rl_oai_err *e) {
    const json_t *t = json_object_get(body, "tools"), *c = json_object_get(body, "tool_choice");
    *tools = NULL;
    *forced = false;
    if (t && !json_is_null(t) && !json_is_array(t))
        return bad(e, "tools", "'tools' must be an array");
    bool have = t && json_array_size(t) > 0;
    if (!c || json_is_null(c) || (json_is_string(c) && !strcmp(json_string_value(c), "auto"))) {
        *tools = have ? json_incref((json_t *)t) : NULL;
        return 0;
    }
    if (json_is_string(c) && !strcmp(json_string_value(c), "none"))
        return 0;
    if (!have)
        return bad(e, "tool_choice", "'tool_choice' is only allowed when 'tools' are given");
    if (json_is_string(c) && !strcmp(json_string_value(c), "required")) {
        *tools = json_incref((json_t *)t);
        *forced = true;
        return 0;
    }
    const json_t *name = json_object_get(json_object_get(c, "function"), "name");
    if (!json_is_object(c) || !json_is_string(name))
        return bad(e, "tool_choice",
                   "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": "
                   "{\"name\": …}}");
    size_t i;
    const json_t *tool;
    json_array_foreach(t, i, tool) if (tool_named(tool, json_string_value(name))) {
        *tools = json_array();
        json_array_append(*tools, (json_t *)tool);
        *forced = true;
        return 0;
    }
    return bad(e, "tool_choice", "tool_choice names function '%s', which is not among the tools",
               json_string_value(name));
}

static int chat_prompt(const rl_oai_model *m, const json_t *body, rl_oai_req *r, rl_oai_err *e) {
    const json_t *msgs = json_object_get(body, "messages");
    json_t *tools;
    bool forced;
    char err[512];
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return bad(e, "messages", "'messages' must be a non-empty array");
    if (choose_tools(body, &tools, &forced, e))
        return -1;
    /* the engine takes JSON text; dumping keeps every value exactly (reals
     * round-trip through %.17g) and the keys in their order */
    char *msgs_text = json_dumps(msgs, JSON_COMPACT), *tools_text = tools ? json_dumps(tools, JSON_COMPACT) : NULL;
    int rc = !msgs_text || (tools && !tools_text)
        ? (snprintf(err, sizeof err, "messages: out of memory"), -1)
        : rl_chat_build(m->tok, m->tpl, msgs_text, tools_text, &r->prompt, &r->n_prompt, err, sizeof err);
    free(msgs_text);
    free(tools_text);
    json_decref(tools);
    if (rc)
        return bad(e, strncmp(err, "tools", 5) == 0 ? "tools" : "messages", "%s", err);
    r->tools_offered = tools != NULL;
    r->tool_mode = forced ? RL_TOOLS_REQUIRED : tools ? RL_TOOLS_AUTO : RL_TOOLS_NONE;
    if (!forced)
        return 0;
    int32_t call = rl_tok_find(m->tok, "[TOOL_CALLS]");
    if (call < 0)
        return bad(e, "tool_choice", "this model has no [TOOL_CALLS] token to force a call with");
    int32_t *p = realloc(r->prompt, (r->n_prompt + 1) * sizeof *p);
    if (!p)
        return bad(e, NULL, "out of memory");
    r->prompt = p;
    r->prompt[r->n_prompt++] = call;
    return 0;
}

static int completion_prompt(const rl_oai_model *m, const json_t *body, rl_oai_req *r, rl_oai_err *e) {
    const json_t *p = json_object_get(body, "prompt");
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    if (json_is_string(p)) {
        const char *s = json_string_value(p);
        if (rl_tok_encode(m->tok, s, json_string_length(p), rl_tok_add_bos(m->tok), true, &r->prompt, &r->n_prompt))
            return bad(e, "prompt", "the prompt cannot be tokenized");
        return 0;
    }
    if (!json_is_array(p) || json_array_size(p) == 0)
        return bad(e, "prompt", "'prompt' must be a string, or a non-empty array of token ids");
    r->prompt = malloc(json_array_size(p) * sizeof *r->prompt);
    if (!r->prompt)
        return bad(e, "prompt", "out of memory");
    size_t i;
    const json_t *id;
    json_array_foreach(p, i, id) {
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= rl_tok_n_vocab(m->tok))
            return bad(e, "prompt", "prompt[%zu] is not a token id below %u (one prompt per request)", i,
                       rl_tok_n_vocab(m->tok));
        r->prompt[r->n_prompt++] = (int32_t)json_integer_value(id);
    }
    return 0;
}

/* The prompt and max_tokens must fit one session's context. */
static int fit_context(const rl_oai_model *m, rl_oai_req *r, rl_oai_err *e) {
    const char *what = r->chat ? "messages" : "prompt";
    if (r->n_prompt == 0)
        return bad(e, what, "the %s give no tokens", what);
    if (r->n_prompt >= m->n_ctx || (r->max_tokens > 0 && (uint64_t)r->n_prompt + (uint64_t)r->max_tokens > m->n_ctx)) {
        if (r->max_tokens > 0)
            bad(e, what,
                "This model's maximum context length is %u tokens. However, you requested %llu tokens (%zu in the "
                "%s, %lld in the completion). Please reduce the length of the %s or the completion.",
                m->n_ctx, (unsigned long long)(r->n_prompt + (uint64_t)r->max_tokens), r->n_prompt, what,
                (long long)r->max_tokens, what);
        else
            bad(e, what,
                "This model's maximum context length is %u tokens. However, your %s resulted in %zu tokens, which "
                "leaves no room for the completion. Please reduce the length of the %s.",
                m->n_ctx, what, r->n_prompt, what);
        e->code = "context_length_exceeded";
        return -1;
    }
    if (r->max_tokens < 0)
        r->max_tokens = m->n_ctx - (int64_t)r->n_prompt;
    return 0;
}

int rl_oai_req_parse(const rl_oai_model *m, bool chat, const char *body, size_t len, rl_oai_req *r, rl_oai_err *e) {
    json_error_t jerr;
    memset(r, 0, sizeof *r);
    r->chat = chat;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        bad(e, NULL, "We could not parse the JSON body of your request: %s (line %d, column %d)", jerr.text, jerr.line,
            jerr.column);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(root))
        bad(e, NULL, "The request body must be a JSON object");
    else if (read_options(m, root, r, e) == 0 &&
             (chat ? chat_prompt(m, root, r, e) : completion_prompt(m, root, r, e)) == 0)
        rc = fit_context(m, r, e);
    json_decref(root);
    if (rc)
        rl_oai_req_free(r);
    return rc;
}

void rl_oai_req_free(rl_oai_req *r) {
    for (size_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->prompt);
    rl_js_destroy(&r->schema);
    memset(r, 0, sizeof *r);
}

rl_jg_vocab *rl_oai_json_vocab_new(const rl_tokenizer *tok) {
    const uint32_t n = rl_tok_n_vocab(tok);
    rl_jg_vocab *v = rl_jg_vocab_new(n);
    char buf[256];
    for (uint32_t i = 0; v && i < n; i++) {
        int len = rl_tok_piece(tok, (int32_t)i, false, buf, sizeof buf);
        len = len < 0 ? 0 : len > (int)sizeof buf ? 0 : len; /* a piece too long to hold is never allowed */
        if (rl_jg_vocab_set(v, i, (const uint8_t *)buf, (size_t)len, rl_tok_is_eog(tok, (int32_t)i)))
            rl_jg_vocab_destroy(&v);
    }
    return v;
}
