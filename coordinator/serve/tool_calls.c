/* Parsing the model's tool calls into OpenAI's shape (see tool_calls.h). */
#include "tool_calls.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char ALNUM[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

void rl_tool_call_id(char out[10]) {
    unsigned char r[9];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* no entropy source: ids only need to differ within a conversation */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long x = (unsigned long long)ts.tv_nsec * 2654435761ULL ^ (unsigned long long)ts.tv_sec;
        for (int i = 0; i < 9; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
            r[i] = (unsigned char)(x >> 33);
    }
    for (int i = 0; i < 9; i++)
        out[i] = ALNUM[r[i] % 62]; /* the 4-value bias of 256 % 62 does not matter for ids */
    out[9] = 0;
}

bool rl_tool_call_id_valid(const char *s) {
    if (strlen(s) != 9)
        return false;
    for (int i = 0; i < 9; i++)
        if (!strchr(ALNUM, s[i])) /* strlen 9: no NUL among them */
            return false;
    return true;
}

/* One OpenAI call from one of the model's {"name", "arguments", "id"}. */
static json_t *one_call(const json_t *c) {
    const json_t *name = json_object_get(c, "name"), *args = json_object_get(c, "arguments");
    const json_t *id = json_object_get(c, "id");
    if (!json_is_object(c) || !json_is_string(name) || json_string_length(name) == 0)
        return NULL;
    char *arg_text;
    if (!args)
        arg_text = strdup("{}");
    else if (json_is_string(args))
        arg_text = strdup(json_string_value(args));
    else
        arg_text = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!arg_text)
        return NULL;
    char fresh[10];
    const char *id_text =
        json_is_string(id) && rl_tool_call_id_valid(json_string_value(id)) ? json_string_value(id) : NULL;
    if (!id_text) {
        rl_tool_call_id(fresh);
        id_text = fresh;
    }
    json_t *call = json_pack("{s:s, s:s, s:{s:O, s:s}}", "id", id_text, "type", "function", "function", "name", name,
                             "arguments", arg_text);
    free(arg_text);
    return call;
}

static const char *find(const char *s, const char *end, const char *needle) {
    size_t n = strlen(needle);
    for (; s + n <= end; s++)
        if (!memcmp(s, needle, n))
            return s;
    return NULL;
}

/* One call of the newer format, "name[ARGS]json" or, in V11,
 * "name[CALL_ID]id[ARGS]json", as the model's {"name", "arguments", "id"}. */
static json_t *marked_call(const char *s, const char *end) {
    const char *args = find(s, end, "[ARGS]"), *cid = find(s, end, "[CALL_ID]");
    if (!args || (cid && cid > args))
        return NULL;
    const char *name_end = cid ? cid : args;
    json_t *a = json_loadb(args + 6, (size_t)(end - args - 6), JSON_DECODE_ANY, NULL);
    if (!a || name_end == s) {
        json_decref(a);
        return NULL;
    }
    json_t *c = json_pack("{s:s%, s:o}", "name", s, (size_t)(name_end - s), "arguments", a);
    if (c && cid)
        json_object_set_new(c, "id", json_stringn(cid + 9, (size_t)(args - cid - 9)));
    return c;
}

/* The newer format's calls, each after a [TOOL_CALLS] (the first one's is
 * the switch into tool text, so it is not in it): the list of the model's
 * calls, or NULL. */
static json_t *marked_calls(const char *text, size_t len) {
    json_t *list = json_array();
    const char *s = text, *end = text + len, *next;
    do { /* a [TOOL_CALLS] promises one more call: one with nothing after it is a cut-off list */
        next = find(s, end, "[TOOL_CALLS]");
        json_t *c = list ? marked_call(s, next ? next : end) : NULL;
        if (!c) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, c);
        s = next ? next + 12 : end;
    } while (next);
    return list;
}

json_t *rl_tool_calls_parse(const char *text, size_t len) {
    json_error_t jerr;
    if (find(text, text + len, "[ARGS]")) {
        json_t *calls = marked_calls(text, len);
        if (!calls)
            return NULL;
        json_t *out = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(calls, i, c) json_array_append_new(out, one_call(c));
        json_decref(calls);
        return out;
    }
    json_t *v = json_loadb(text, len, 0, &jerr);
    if (!v)
        return NULL;
    if (json_is_object(v)) {
        json_t *list = json_array();
        json_array_append_new(list, v);
        v = list;
    }
    json_t *out = json_is_array(v) && json_array_size(v) > 0 ? json_array() : NULL;
    size_t i;
    json_t *c;
    json_array_foreach(v, i, c) {
        json_t *call = out ? one_call(c) : NULL;
        if (!call) {
            json_decref(out);
            out = NULL;
            break;
        }
        json_array_append_new(out, call);
    }
    json_decref(v);
    return out;
}
