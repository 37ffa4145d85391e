/* Chat templates: OpenAI-style messages to prompt ids, the way each model
 * family's reference builds them (see chat.h).
 *
 * Mistral's reference (mistral-common) first normalizes the conversation:
 * system messages are pulled out and joined into one system prompt,
 * neighbouring messages of the same role are merged, a conversation that
 * does not open with a user turn gets an empty one, and JSON carried in tool
 * call arguments and tool results is parsed so that it is written back as
 * JSON rather than as a quoted string. Then each turn is encoded, every text
 * segment tokenized on its own. The JSON it writes comes from Python's
 * json.dumps, so this file has a serializer that matches it byte for byte
 * (separators, escapes, float formatting) instead of using jansson's. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "chat.h"
#include "util.h"

typedef enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_TOOL } role;

static const char *const ROLE_NAMES[] = {"system", "user", "assistant", "tool"};

/* Growable byte string. */
typedef struct {
    char *p;    /* NUL-terminated once anything was added */
    size_t n;   /* bytes used */
    size_t cap; /* bytes allocated */
    bool oom;   /* an allocation failed; the content is incomplete */
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->oom || n == 0)
        return;
    char *p = rl_grow(b->p, &b->cap, b->n + n + 1, 1, 64);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Appends src to dst with a blank line between, skipping empty text (the
 * way mistral-common joins messages and text chunks). */
static void join_text(strbuf *dst, const char *src, size_t n) {
    if (n == 0)
        return;
    if (dst->n)
        sb_str(dst, "\n\n");
    sb_add(dst, src, n);
}

/* ---- JSON as Python's json.dumps(ensure_ascii=False) writes it ---- */

static void json_py_string(strbuf *b, const char *s, size_t len) {
    sb_add(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = c == '"' ? "\\\""
            : c == '\\'            ? "\\\\"
            : c == '\n'            ? "\\n"
            : c == '\r'            ? "\\r"
            : c == '\t'            ? "\\t"
            : c == '\b'            ? "\\b"
            : c == '\f'            ? "\\f"
                                   : NULL;
        if (!esc && c >= 0x20)
            continue;
        char u[8];
        if (!esc) {
            snprintf(u, sizeof u, "\\u%04x", c);
            esc = u;
        }
        sb_add(b, s + start, i - start);
        sb_str(b, esc);
        start = i + 1;
    }
    sb_add(b, s + start, len - start);
    sb_add(b, "\"", 1);
}

/* Python's repr of a float: the shortest digits that read back to x, in
 * positional notation when the decimal point falls within 16 digits and
 * with an exponent otherwise ("0.0001", "1e-05", "1e+16", "100.0"). */
static void json_py_real(strbuf *b, double x) {
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, x);
        if (strtod(tmp, NULL) == x)
            break;
    }
    const char *p = tmp;
    if (*p == '-')
        sb_add(b, p++, 1);
    char digits[24];
    size_t nd = 0;
    for (; *p != 'e'; p++) {
        if (*p != '.')
            digits[nd++] = *p;
    }
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int exp10 = atoi(p + 1), decpt = exp10 + 1;
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            sb_str(b, "0.");
            for (int i = decpt; i < 0; i++)
                sb_add(b, "0", 1);
            sb_add(b, digits, nd);
        } else if ((size_t)decpt >= nd) {
            sb_add(b, digits, nd);
            for (size_t i = nd; i < (size_t)decpt; i++)
                sb_add(b, "0", 1);
            sb_str(b, ".0");
        } else {
            sb_add(b, digits, (size_t)decpt);
            sb_add(b, ".", 1);
            sb_add(b, digits + decpt, nd - (size_t)decpt);
        }
        return;
    }
    sb_add(b, digits, 1);
    if (nd > 1) {
        sb_add(b, ".", 1);
        sb_add(b, digits + 1, nd - 1);
    }
    snprintf(tmp, sizeof tmp, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    sb_str(b, tmp);
}

static void json_py(strbuf *b, const json_t *v) {
    char num[32];
    size_t i;
    const char *key;
    json_t *item;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        sb_add(b, "{", 1);
        i = 0;
        json_object_foreach((json_t *)v, key, item) {
            if (i++)
                sb_str(b, ", ");
            json_py_string(b, key, strlen(key));
            sb_str(b, ": ");
            json_py(b, item);
        }
        sb_add(b, "}", 1);
        break;
    case JSON_ARRAY:
        sb_add(b, "[", 1);
        json_array_foreach(v, i, item) {
            if (i)
                sb_str(b, ", ");
            json_py(b, item);
        }
        sb_add(b, "]", 1);
        break;
    case JSON_STRING:
        json_py_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sb_str(b, num);
        break;
    case JSON_REAL:
        json_py_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        sb_str(b, "true");
        break;
    case JSON_FALSE:
        sb_str(b, "false");
        break;
    case JSON_NULL:
        sb_str(b, "null");
        break;
    }
}

/* Text that holds JSON becomes that value (mistral-common writes it back as
 * JSON); other text stays a string, and empty text is an empty object. */
static json_t *parse_json_text(const char *s, size_t len) {
    if (len == 0)
        return json_object();
    json_t *v = json_loadb(s, len, JSON_DECODE_ANY, NULL);
    return v ? v : json_stringn(s, len);
}

/* ---- messages ---- */

/* One turn of the normalized conversation. */
typedef struct {
    role role;           /* ROLE_SYSTEM only in mistral-v13, which keeps system messages in place */
    strbuf text;         /* user/assistant/system text, tool result text */
    strbuf think;        /* mistral-v13 assistant: reasoning_content */
    json_t *calls;       /* assistant: [{"name", "arguments", "id"?}...], or NULL */
    const char *call_id; /* tool: tool_call_id, borrowed from the input */
} turn;

typedef struct {
    turn *turns;   /* in order */
    size_t n;      /* turns in use */
    strbuf system; /* system messages joined by blank lines (not mistral-v13) */
    bool v13;      /* normalize as mistral-common's V7+ normalizer does */
    char *err;     /* caller's error buffer */
    size_t errlen; /* its size */
} convo;

static int fail(convo *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(convo *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Message text: a string, or an array of {"type": "text", "text": ...} parts
 * (joined by blank lines, as mistral-common joins text chunks). Absent or
 * null content leaves *present false. */
static int read_text(convo *c, const json_t *msg, size_t i, const char *who, strbuf *out, bool *present) {
    const json_t *v = json_object_get(msg, "content");
    *present = v && !json_is_null(v);
    if (!*present)
        return 0;
    if (json_is_string(v)) {
        sb_add(out, json_string_value(v), json_string_length(v));
        return 0;
    }
    if (!json_is_array(v))
        return fail(c, "messages[%zu] (%s): 'content' must be a string or an array of text parts", i, who);
    size_t k;
    const json_t *part;
    json_array_foreach(v, k, part) {
        const json_t *text = json_object_get(part, "text");
        const json_t *type = json_object_get(part, "type");
        if (!json_is_string(text) || (type && !(json_is_string(type) && !strcmp(json_string_value(type), "text"))))
            return fail(c, "messages[%zu] (%s): content[%zu] is not a text part (only text is supported)", i, who, k);
        join_text(out, json_string_value(text), json_string_length(text));
    }
    return 0;
}

/* An assistant's tool calls as mistral-common writes them:
 * {"name": ..., "arguments": <parsed JSON>, "id": ...}. */
static int read_calls(convo *c, const json_t *calls, size_t i, json_t *out) {
    size_t k;
    const json_t *call;
    json_array_foreach(calls, k, call) {
        const json_t *fn = json_object_get(call, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        const json_t *id = json_object_get(call, "id");
        if (!json_is_object(fn) || !json_is_string(name) || json_string_length(name) == 0)
            return fail(c, "messages[%zu] (assistant): tool_calls[%zu] needs 'function' with a 'name'", i, k);
        if (id && !json_is_null(id) && !json_is_string(id))
            return fail(c, "messages[%zu] (assistant): tool_calls[%zu].id must be a string", i, k);
        json_t *args_v = json_is_string(args) ? parse_json_text(json_string_value(args), json_string_length(args))
            : !args || json_is_null(args)     ? json_object()
                                              : json_incref((json_t *)args);
        json_t *o = json_object();
        json_object_set(o, "name", (json_t *)name);
        json_object_set_new(o, "arguments", args_v);
        /* "null" is mistral-common's placeholder for a missing id */
        if (json_is_string(id) && strcmp(json_string_value(id), "null") != 0)
            json_object_set(o, "id", (json_t *)id);
        json_array_append_new(out, o);
    }
    return 0;
}

static turn *new_turn(convo *c, role r) {
    turn *t = realloc(c->turns, (c->n + 1) * sizeof *t);
    if (!t)
        return NULL;
    c->turns = t;
    t = &c->turns[c->n++];
    *t = (turn){.role = r};
    return t;
}

static int parse_role(convo *c, const json_t *msg, size_t i, role *r) {
    if (!json_is_object(msg))
        return fail(c, "messages[%zu]: not an object", i);
    const char *name = json_string_value(json_object_get(msg, "role"));
    if (!name)
        return fail(c, "messages[%zu]: missing 'role'", i);
    for (int k = 0; k < 4; k++) {
        if (strcmp(name, ROLE_NAMES[k]) == 0) {
            *r = (role)k;
            return 0;
        }
    }
    return fail(c, "messages[%zu]: unknown role '%s' (expected system, user, assistant or tool)", i, name);
}

/* What each role requires of its fields. */
static int check_fields(convo *c, const json_t *msg, size_t i, role r, bool present, bool has_text) {
    const char *who = ROLE_NAMES[r];
    const json_t *calls = json_object_get(msg, "tool_calls");
    bool has_calls = json_array_size(calls) > 0;
    if ((r == ROLE_SYSTEM || r == ROLE_USER) && !present)
        return fail(c, "messages[%zu] (%s): missing 'content'", i, who);
    if (r == ROLE_ASSISTANT && calls && !json_is_null(calls) && !json_is_array(calls))
        return fail(c, "messages[%zu] (assistant): 'tool_calls' must be an array", i);
    if (r == ROLE_ASSISTANT && has_calls && has_text && !c->v13)
        return fail(c, "messages[%zu] (assistant): has both 'content' and 'tool_calls'; send them as two messages", i);
    const json_t *think = json_object_get(msg, "reasoning_content");
    if (think && !json_is_null(think) && (r != ROLE_ASSISTANT || !c->v13 || !json_is_string(think)))
        return fail(c,
                    "messages[%zu] (%s): 'reasoning_content' is taken only as a string on assistant messages "
                    "of a mistral-v13 (Ministral 3) template",
                    i, who);
    if (r == ROLE_ASSISTANT && !has_calls && !present)
        return fail(c, "messages[%zu] (assistant): needs 'content' or 'tool_calls'", i);
    if (r == ROLE_TOOL && !json_is_string(json_object_get(msg, "tool_call_id")))
        return fail(c, "messages[%zu] (tool): missing 'tool_call_id'", i);
    return 0;
}

/* Adds a user, assistant or tool message as a turn, merged into the previous
 * turn when it continues a run of user or assistant messages. */
static int add_turn(convo *c, const json_t *msg, size_t i, role r, int prev_role, const strbuf *text) {
    bool merge = r != ROLE_TOOL && r != ROLE_SYSTEM && prev_role == (int)r;
    turn *t = merge ? &c->turns[c->n - 1] : new_turn(c, r);
    if (!t)
        return fail(c, "out of memory");
    join_text(&t->text, text->p, text->n);
    if (r == ROLE_TOOL)
        t->call_id = json_string_value(json_object_get(msg, "tool_call_id"));
    const json_t *think = json_object_get(msg, "reasoning_content");
    if (json_is_string(think))
        sb_add(&t->think, json_string_value(think), json_string_length(think));
    const json_t *calls = json_object_get(msg, "tool_calls");
    if (json_array_size(calls) > 0) {
        if (!t->calls)
            t->calls = json_array();
        if (read_calls(c, calls, i, t->calls) != 0)
            return -1;
    }
    if (t->calls && t->text.n && !c->v13)
        return fail(c,
                    "messages[%zu] (assistant): merged with the assistant message before it, it gives "
                    "both text and tool calls; the template takes one or the other",
                    i);
    return 0;
}

/* Adds message i; prev_role is the previous message's role (-1 for none).
 * System text goes to the system prompt. */
static int add_message(convo *c, const json_t *msg, size_t i, role r, int prev_role) {
    strbuf text = {0};
    bool present;
    int rc = read_text(c, msg, i, ROLE_NAMES[r], &text, &present);
    if (rc == 0)
        rc = check_fields(c, msg, i, r, present, text.n > 0);
    if (rc == 0 && r == ROLE_SYSTEM && !c->v13)
        join_text(&c->system, text.p, text.n);
    else if (rc == 0)
        rc = add_turn(c, msg, i, r, prev_role, &text);
    free(text.p);
    return rc;
}

/* A tool result must answer an assistant's tool call: *calls_open says
 * whether the messages before i end in one (or in its results). */
static int check_order(convo *c, const json_t *msg, size_t i, role r, bool *calls_open) {
    if (r == ROLE_TOOL && !*calls_open)
        return fail(c, "messages[%zu] (tool): must follow an assistant message with 'tool_calls'", i);
    if (r == ROLE_ASSISTANT)
        *calls_open = json_array_size(json_object_get(msg, "tool_calls")) > 0;
    else if (r != ROLE_TOOL)
        *calls_open = false;
    return 0;
}

static void convo_free(convo *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->turns[i].text.p);
        free(c->turns[i].think.p);
        json_decref(c->turns[i].calls);
    }
    free(c->turns);
    free(c->system.p);
}

/* Validates and normalizes the messages as mistral-common does. */
static int convo_read(convo *c, const json_t *messages) {
    size_t n = json_array_size(messages);
    if (!json_is_array(messages) || n == 0)
        return fail(c, "messages: must be a non-empty array");
    int prev = -1;
    bool calls_open = false;
    for (size_t i = 0; i < n; i++) {
        role r = ROLE_USER; /* set by parse_role; initialized for the compiler's flow analysis */
        const json_t *msg = json_array_get(messages, i);
        if (parse_role(c, msg, i, &r) != 0 || check_order(c, msg, i, r, &calls_open) != 0 ||
            add_message(c, msg, i, r, prev) != 0)
            return -1;
        prev = (int)r;
    }
    /* the prompt must end where the assistant speaks next */
    if (prev == ROLE_ASSISTANT)
        return fail(c,
                    "messages[%zu]: the last message is the assistant's; the prompt must end with a user "
                    "or tool message",
                    n - 1);
    /* V7+ (mistral-v13) starts with whatever comes first, system included */
    if (!c->v13 && (c->n == 0 || c->turns[0].role != ROLE_USER)) {
        if (!new_turn(c, ROLE_USER))
            return fail(c, "out of memory");
        memmove(c->turns + 1, c->turns, (c->n - 1) * sizeof *c->turns);
        c->turns[0] = (turn){.role = ROLE_USER};
    }
    bool oom = c->system.oom;
    for (size_t i = 0; i < c->n; i++)
        oom |= c->turns[i].text.oom | c->turns[i].think.oom;
    return oom ? fail(c, "out of memory") : 0;
}

/* ---- encoding ---- */

/* Prompt ids under construction. */
typedef struct {
    const rl_tokenizer *tok; /* not owned */
    int32_t *ids;            /* malloc'd */
    size_t n;                /* ids in use */
    size_t cap;              /* ids allocated */
    convo *c;                /* for error messages */
} prompt;

static int emit(prompt *p, int32_t id) {
    int32_t *ids = rl_grow(p->ids, &p->cap, p->n + 1, sizeof *ids, 256);
    if (!ids)
        return fail(p->c, "out of memory");
    p->ids = ids;
    p->ids[p->n++] = id;
    return 0;
}

/* A control token by name; the template cannot be built without it. */
static int emit_control(prompt *p, const char *name) {
    int32_t id = rl_tok_find(p->tok, name);
    if (id < 0)
        return fail(p->c, "the vocabulary has no %s token, which the chat template needs", name);
    return emit(p, id);
}

/* A text segment, tokenized on its own: no BOS, control-token text inside
 * it stays text. */
static int emit_text(prompt *p, const char *s, size_t len) {
    int32_t *ids;
    size_t n;
    if (rl_tok_encode(p->tok, s, len, false, false, &ids, &n) != 0)
        return fail(p->c, "tokenizing failed");
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = emit(p, ids[i]);
    free(ids);
    return rc;
}

static int emit_json(prompt *p, const json_t *v) {
    strbuf b = {0};
    json_py(&b, v);
    int rc = b.oom ? fail(p->c, "out of memory") : emit_text(p, b.p, b.n);
    free(b.p);
    return rc;
}

/* The tools as mistral-common lists them: each rebuilt as {"type":
 * "function", "function": {"name", "description", "parameters"}}, with ""
 * and {} standing in for a missing description and parameters. */
static int tools_json(convo *c, const json_t *tools, json_t **out) {
    *out = json_array();
    size_t i;
    const json_t *tool;
    json_array_foreach(tools, i, tool) {
        const json_t *fn = json_object_get(tool, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *type = json_object_get(tool, "type");
        if (type && !(json_is_string(type) && strcmp(json_string_value(type), "function") == 0))
            return fail(c, "tools[%zu]: 'type' must be \"function\"", i);
        if (!json_is_object(fn) || !json_is_string(name))
            return fail(c, "tools[%zu]: needs 'function' with a 'name'", i);
        const json_t *desc = json_object_get(fn, "description");
        const json_t *params = json_object_get(fn, "parameters");
        if (desc && !json_is_null(desc) && !json_is_string(desc))
            return fail(c, "tools[%zu]: 'function.description' must be a string", i);
        if (params && !json_is_null(params) && !json_is_object(params))
            return fail(c, "tools[%zu]: 'function.parameters' must be an object", i);
        json_t *f = json_object();
        json_object_set(f, "name", (json_t *)name);
        json_object_set_new(f, "description", json_is_string(desc) ? json_incref((json_t *)desc) : json_string(""));
        json_object_set_new(f, "parameters", json_is_object(params) ? json_incref((json_t *)params) : json_object());
        json_t *t = json_object();
        json_object_set_new(t, "type", json_string("function"));
        json_object_set_new(t, "function", f);
        json_array_append_new(*out, t);
    }
    return 0;
}

/* Assistant text loses trailing spaces (only spaces) before </s>. */
static size_t rstrip_spaces(const strbuf *b) {
    size_t n = b->n;
    while (n > 0 && b->p[n - 1] == ' ')
        n--;
    return n;
}

static int v3_user(prompt *p, const convo *c, size_t k, size_t last_user, const json_t *tools) {
    const turn *t = &c->turns[k];
    int rc = 0;
    if (k == last_user && tools) {
        rc = emit_control(p, "[AVAILABLE_TOOLS]");
        if (rc == 0)
            rc = emit_json(p, tools);
        if (rc == 0)
            rc = emit_control(p, "[/AVAILABLE_TOOLS]");
    }
    if (rc == 0)
        rc = emit_control(p, "[INST]");
    if (rc == 0 && k == last_user && c->system.n) {
        strbuf s = {0};
        sb_add(&s, c->system.p, c->system.n);
        sb_str(&s, "\n\n");
        sb_add(&s, t->text.p, t->text.n);
        rc = s.oom ? fail(p->c, "out of memory") : emit_text(p, s.p, s.n);
        free(s.p);
    } else if (rc == 0) {
        rc = emit_text(p, t->text.p, t->text.n);
    }
    return rc == 0 ? emit_control(p, "[/INST]") : rc;
}

static int v3_other(prompt *p, const turn *t, int32_t eos) {
    int rc;
    if (t->role == ROLE_TOOL) {
        json_t *o = json_object();
        json_object_set_new(o, "content", parse_json_text(t->text.p, t->text.n));
        json_object_set_new(o, "call_id", json_string(t->call_id));
        rc = emit_control(p, "[TOOL_RESULTS]");
        if (rc == 0)
            rc = emit_json(p, o);
        json_decref(o);
        return rc == 0 ? emit_control(p, "[/TOOL_RESULTS]") : rc;
    }
    if (t->calls) {
        rc = emit_control(p, "[TOOL_CALLS]");
        if (rc == 0)
            rc = emit_json(p, t->calls);
    } else {
        rc = emit_text(p, t->text.p, rstrip_spaces(&t->text));
    }
    return rc == 0 ? emit(p, eos) : rc;
}

static int build_v3(prompt *p, const convo *c, const json_t *tools) {
    size_t last_user = 0;
    for (size_t k = 0; k < c->n; k++) {
        if (c->turns[k].role == ROLE_USER)
            last_user = k;
    }
    int32_t eos = rl_tok_eos(p->tok);
    if (eos < 0)
        return fail(p->c, "the vocabulary has no end-of-sequence token, which the chat template needs");
    json_t *list = NULL;
    int rc = json_array_size(tools) > 0 ? tools_json(p->c, tools, &list) : 0;
    for (size_t k = 0; k < c->n && rc == 0; k++) {
        rc = c->turns[k].role == ROLE_USER ? v3_user(p, c, k, last_user, list) : v3_other(p, &c->turns[k], eos);
    }
    json_decref(list);
    return rc;
}

/* ---- mistral-v13 (mistral-common's tokenizer V13: Ministral 3) ---- */

/* A text segment between two control tokens. */
static int v13_wrapped(prompt *p, const char *open, const char *s, size_t len, const char *close) {
    int rc = emit_control(p, open);
    if (rc == 0)
        rc = emit_text(p, s, len);
    return rc == 0 ? emit_control(p, close) : rc;
}

/* Each call as [TOOL_CALLS]name[ARGS]arguments-json; V13 requires the ids
 * (it writes none, but orders the results by them). */
static int v13_calls(prompt *p, const json_t *calls) {
    size_t i;
    const json_t *call;
    json_array_foreach(calls, i, call) {
        const json_t *name = json_object_get(call, "name");
        if (!json_object_get(call, "id"))
            return fail(p->c, "tool call '%s' has no 'id', which the mistral-v13 template needs",
                        json_string_value(name));
        int rc = emit_control(p, "[TOOL_CALLS]");
        if (rc == 0)
            rc = emit_text(p, json_string_value(name), json_string_length(name));
        if (rc == 0)
            rc = emit_control(p, "[ARGS]");
        if (rc == 0)
            rc = emit_json(p, json_object_get(call, "arguments"));
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Reasoning as a think chunk, then the text as its own chunk; text alone
 * is a plain string and loses its trailing spaces, as in mistral-common. */
static int v13_assistant(prompt *p, const turn *t, int32_t eos) {
    int rc = 0;
    if (t->think.n) {
        rc = v13_wrapped(p, "[THINK]", t->think.p, t->think.n, "[/THINK]");
        if (rc == 0)
            rc = emit_text(p, t->text.p, t->text.n);
    } else {
        rc = emit_text(p, t->text.p, rstrip_spaces(&t->text));
    }
    if (rc == 0 && t->calls)
        rc = v13_calls(p, t->calls);
    return rc == 0 ? emit(p, eos) : rc;
}

/* Where a tool result sorts: its call's index among the calls of the
 * assistant turn before the run, past the end when it answers none. */
static size_t call_rank(const json_t *calls, const char *id) {
    size_t i;
    const json_t *call;
    json_array_foreach(calls, i, call) {
        const char *cid = json_string_value(json_object_get(call, "id"));
        if (cid && strcmp(cid, id) == 0)
            return i;
    }
    return (size_t)-1;
}

/* mistral-common V13 orders a run of tool results as the calls were made
 * (stably: insertion sort keeps equal ranks in their order). */
static void v13_sort_results(convo *c) {
    const json_t *calls = NULL;
    for (size_t k = 0; k < c->n; k++) {
        if (c->turns[k].role == ROLE_ASSISTANT)
            calls = c->turns[k].calls;
        if (c->turns[k].role != ROLE_TOOL)
            continue;
        for (size_t j = k; j > 0 && c->turns[j - 1].role == ROLE_TOOL &&
             call_rank(calls, c->turns[j - 1].call_id) > call_rank(calls, c->turns[j].call_id);
             j--) {
            turn tmp = c->turns[j];
            c->turns[j] = c->turns[j - 1];
            c->turns[j - 1] = tmp;
        }
    }
}

static int build_v13(prompt *p, convo *c, const json_t *tools) {
    size_t first_user = c->n;
    for (size_t k = c->n; k-- > 0;) {
        if (c->turns[k].role == ROLE_USER)
            first_user = k;
    }
    int32_t eos = rl_tok_eos(p->tok);
    if (eos < 0)
        return fail(p->c, "the vocabulary has no end-of-sequence token, which the chat template needs");
    v13_sort_results(c);
    json_t *list = NULL;
    int rc = json_array_size(tools) > 0 ? tools_json(p->c, tools, &list) : 0;
    for (size_t k = 0; k < c->n && rc == 0; k++) {
        const turn *t = &c->turns[k];
        if (t->role == ROLE_SYSTEM) {
            rc = v13_wrapped(p, "[SYSTEM_PROMPT]", t->text.p, t->text.n, "[/SYSTEM_PROMPT]");
        } else if (t->role == ROLE_USER) {
            if (k == first_user && list) {
                rc = emit_control(p, "[AVAILABLE_TOOLS]");
                if (rc == 0)
                    rc = emit_json(p, list);
                if (rc == 0)
                    rc = emit_control(p, "[/AVAILABLE_TOOLS]");
            }
            if (rc == 0)
                rc = v13_wrapped(p, "[INST]", t->text.p, t->text.n, "[/INST]");
        } else if (t->role == ROLE_TOOL) {
            rc = v13_wrapped(p, "[TOOL_RESULTS]", t->text.p, t->text.n, "[/TOOL_RESULTS]");
        } else {
            rc = v13_assistant(p, t, eos);
        }
    }
    json_decref(list);
    return rc;
}

/* mistral-v1: "[INST] {user} [/INST]" and "{assistant}</s>" as text, the
 * system prompt in front of the first user message. */
static int build_v1(prompt *p, const convo *c, const json_t *tools) {
    if (json_array_size(tools) > 0)
        return fail(p->c, "tools: the mistral-v1 template has no tool support");
    int32_t eos = rl_tok_eos(p->tok);
    if (eos < 0)
        return fail(p->c, "the vocabulary has no end-of-sequence token, which the chat template needs");
    int rc = 0;
    for (size_t k = 0; k < c->n && rc == 0; k++) {
        const turn *t = &c->turns[k];
        if (t->role == ROLE_TOOL || t->calls)
            return fail(p->c, "the mistral-v1 template has no tool support (tool calls or tool messages given)");
        if (t->role == ROLE_ASSISTANT) {
            rc = emit_text(p, t->text.p, t->text.n);
            if (rc == 0)
                rc = emit(p, eos);
            continue;
        }
        strbuf s = {0};
        sb_str(&s, "[INST] ");
        if (k == 0 && c->system.n) {
            sb_add(&s, c->system.p, c->system.n);
            sb_str(&s, "\n\n");
        }
        sb_add(&s, t->text.p, t->text.n);
        sb_str(&s, " [/INST]");
        rc = s.oom ? fail(p->c, "out of memory") : emit_text(p, s.p, s.n);
        free(s.p);
    }
    return rc;
}

/* ---- interface ---- */

static bool str_contains(gguf_str s, const char *needle) {
    size_t n = strlen(needle);
    for (uint64_t i = 0; i + n <= s.len; i++) {
        if (memcmp(s.ptr + i, needle, n) == 0)
            return true;
    }
    return false;
}

rl_chat_template rl_chat_template_detect(const rl_tokenizer *t, const gguf_file *f) {
    int32_t inst = rl_tok_find(t, "[INST]");
    bool bpe = rl_tok_kind_of(t) == RL_TOK_BPE;
    bool inst_control = inst >= 0 && rl_tok_is_control(t, inst);
    gguf_str tpl;
    bool has_tpl = f && gguf_get_str(f, "tokenizer.chat_template", &tpl);
    /* Tekken with [ARGS] and [SYSTEM_PROMPT] as control tokens is V11 or
     * later; V13 (Ministral 3) writes no [CALL_ID] in its calls, which its
     * template shows, and a file without a template is taken as V13 */
    int32_t args = rl_tok_find(t, "[ARGS]"), sys = rl_tok_find(t, "[SYSTEM_PROMPT]");
    bool v11_vocab = args >= 0 && rl_tok_is_control(t, args) && sys >= 0 && rl_tok_is_control(t, sys);
    if (bpe && inst_control && v11_vocab && (!has_tpl || !str_contains(tpl, "[CALL_ID]")))
        return RL_CHAT_MISTRAL_V13;
    if (bpe && inst_control && strcmp(rl_tok_pre(t), "tekken") == 0)
        return RL_CHAT_MISTRAL_V3_TEKKEN;
    if (has_tpl) {
        /* Only Mistral-style templates are implemented; another family's
         * template is better refused than imitated. */
        if (!str_contains(tpl, "[INST]"))
            return RL_CHAT_NONE;
        if (bpe && inst_control && str_contains(tpl, "[TOOL_CALLS]"))
            return RL_CHAT_MISTRAL_V3_TEKKEN;
        return bpe ? RL_CHAT_NONE : RL_CHAT_MISTRAL_V1;
    }
    return bpe ? RL_CHAT_NONE : RL_CHAT_MISTRAL_V1;
}

static const char *const TEMPLATE_NAMES[] = {"mistral-v3-tekken", "mistral-v1", "mistral-v13", "none"};

const char *rl_chat_template_name(rl_chat_template tpl) {
    return (unsigned)tpl <= RL_CHAT_NONE ? TEMPLATE_NAMES[tpl] : "unknown";
}

int rl_chat_template_from_name(const char *name) {
    for (int i = 0; i <= RL_CHAT_NONE; i++) {
        if (strcmp(name, TEMPLATE_NAMES[i]) == 0)
            return i;
    }
    return -1;
}

static int build_json(const rl_tokenizer *t, rl_chat_template tpl, const json_t *messages, const json_t *tools,
                      int32_t **ids, size_t *n_ids, char *err, size_t errlen) {
    convo c = {.err = err, .errlen = errlen};
    prompt p = {.tok = t, .c = &c};
    int rc;
    c.v13 = tpl == RL_CHAT_MISTRAL_V13;
    if (tpl != RL_CHAT_MISTRAL_V3_TEKKEN && tpl != RL_CHAT_MISTRAL_V1 && tpl != RL_CHAT_MISTRAL_V13) {
        rc = fail(&c, "no chat template for this model (template '%s')", rl_chat_template_name(tpl));
    } else if (tools && !json_is_null(tools) && !json_is_array(tools)) {
        rc = fail(&c, "tools: must be an array");
    } else if (rl_tok_bos(t) < 0) {
        rc = fail(&c, "the vocabulary has no BOS token, which the chat template needs");
    } else {
        rc = convo_read(&c, messages);
        if (rc == 0)
            rc = emit(&p, rl_tok_bos(t));
        if (rc == 0)
            rc = tpl == RL_CHAT_MISTRAL_V1   ? build_v1(&p, &c, tools)
                : tpl == RL_CHAT_MISTRAL_V13 ? build_v13(&p, &c, tools)
                                             : build_v3(&p, &c, tools);
    }
    convo_free(&c);
    if (rc != 0) {
        free(p.ids);
        return -1;
    }
    *ids = p.ids;
    *n_ids = p.n;
    return 0;
}

/* NULL (tools absent) stays NULL; text that does not parse is an error
 * naming the field and where the parser stopped. */
static int parse_arg(const char *text, const char *what, json_t **out, char *err, size_t errlen) {
    *out = NULL;
    if (!text)
        return 0;
    json_error_t je;
    *out = json_loads(text, JSON_DECODE_ANY, &je);
    if (*out)
        return 0;
    snprintf(err, errlen, "%s: not valid JSON (line %d, column %d: %s)", what, je.line, je.column, je.text);
    return -1;
}

int rl_chat_build(const rl_tokenizer *t, rl_chat_template tpl, const char *messages, const char *tools, int32_t **ids,
                  size_t *n_ids, char *err, size_t errlen) {
    json_t *m = NULL, *tl = NULL;
    int rc = -1;
    if (!messages)
        snprintf(err, errlen, "messages: must be a non-empty array");
    else if (parse_arg(messages, "messages", &m, err, errlen) == 0 && parse_arg(tools, "tools", &tl, err, errlen) == 0)
        rc = build_json(t, tpl, m, tl, ids, n_ids, err, errlen);
    json_decref(m);
    json_decref(tl);
    return rc;
}
