/* Assembling a request's generated text (see openai.h): streaming UTF-8
 * decoding, stop strings with hold-back, the switch to tool-call text at
 * the model's [TOOL_CALLS] token, and reasoning between [THINK] and [/THINK]. */
#include <stdlib.h>
#include <string.h>
#include "openai.h"

typedef struct {
    char *p;
    size_t len, cap;
} buf;

struct rl_oai_out {
    const rl_tokenizer *tok;   /* borrowed */
    rl_tok_stream *dec;        /* holds back incomplete UTF-8 */
    char *const *stop;         /* borrowed stop strings */
    size_t n_stop;
    size_t max_stop;           /* longest stop string */
    int32_t tool_id;           /* id of [TOOL_CALLS], -1 when tools are off */
    int32_t args_id, call_id;  /* [ARGS], [CALL_ID] of the newer call format (-1: none, or tools off) */
    int32_t think_id, unthink_id;   /* [THINK], [/THINK] (-1 when the vocabulary has none) */
    bool in_think;             /* text now goes to `reasoning` */
    buf reasoning;             /* text between [THINK] and [/THINK] */
    bool in_tools;             /* text now goes to `tools` */
    bool stopped;              /* a stop string matched: content is final */
    bool finished;             /* end of generation: nothing held back */
    buf content;               /* text before tool calls (cut at a stop string) */
    size_t visible;            /* bytes of content that may be shown */
    buf tools;                 /* text after [TOOL_CALLS] */
};

static bool buf_add(buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return false;
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

rl_oai_out *rl_oai_out_new(const rl_tokenizer *tok, char *const *stop, size_t n_stop, bool tools, bool forced) {
    rl_oai_out *o = calloc(1, sizeof *o);
    if (!o || !(o->dec = rl_tok_stream_new(tok, false)) || !buf_add(&o->content, "", 0) || !buf_add(&o->tools, "", 0) ||
        !buf_add(&o->reasoning, "", 0)) {
        rl_oai_out_destroy(&o);
        return NULL;
    }
    o->tok = tok;
    o->stop = stop;
    o->n_stop = n_stop;
    for (size_t i = 0; i < n_stop; i++)
        if (strlen(stop[i]) > o->max_stop)
            o->max_stop = strlen(stop[i]);
    o->tool_id = tools ? rl_tok_find(tok, "[TOOL_CALLS]") : -1;
    o->args_id = tools ? rl_tok_find(tok, "[ARGS]") : -1;
    o->call_id = tools ? rl_tok_find(tok, "[CALL_ID]") : -1;
    o->think_id = rl_tok_find(tok, "[THINK]");
    o->unthink_id = rl_tok_find(tok, "[/THINK]");
    o->in_tools = forced;
    return o;
}

void rl_oai_out_destroy(rl_oai_out **po) {
    rl_oai_out *o = po ? *po : NULL;
    if (!o)
        return;
    rl_tok_stream_destroy(&o->dec);
    free(o->content.p);
    free(o->tools.p);
    free(o->reasoning.p);
    free(o);
    *po = NULL;
}

/* Cuts content at the first stop string that starts at or after `from`;
 * otherwise marks visible all but a tail that could begin one. */
static void scan_stops(rl_oai_out *o, size_t from) {
    buf *c = &o->content;
    for (size_t i = from; i < c->len; i++)
        for (size_t k = 0; k < o->n_stop; k++) {
            size_t sl = strlen(o->stop[k]);
            if (sl <= c->len - i && memcmp(c->p + i, o->stop[k], sl) == 0) {
                c->len = i;
                c->p[i] = 0;
                o->visible = i;
                o->stopped = true;
                return;
            }
        }
    size_t hold = 0;
    for (size_t k = 0; k < o->n_stop; k++) {
        size_t sl = strlen(o->stop[k]);
        for (size_t h = sl - 1 < c->len ? sl - 1 : c->len; h > hold; h--)
            if (memcmp(c->p + c->len - h, o->stop[k], h) == 0) {
                hold = h;
                break;
            }
    }
    o->visible = c->len - hold;
}

/* Appends decoded text to content (checking stops) or to the tool text. */
static void add_text(rl_oai_out *o, const char *s, size_t n) {
    if (n == 0)
        return;
    if (o->in_think) {
        buf_add(&o->reasoning, s, n);
        return;
    }
    if (o->in_tools) {
        buf_add(&o->tools, s, n);
        return;
    }
    size_t old = o->content.len;
    buf_add(&o->content, s, n);
    /* a stop string may straddle the old end */
    scan_stops(o, old > o->max_stop ? old - o->max_stop : 0);
}

/* A control token that switches where text goes, or that the newer
 * call format needs written out; true when id was one. */
static bool feed_control(rl_oai_out *o, int32_t id) {
    char text[1024];
    const bool think = id == o->think_id && !o->in_think && !o->in_tools;
    const bool unthink = id == o->unthink_id && o->in_think;
    const bool marker = o->in_tools && (id == o->tool_id || id == o->args_id || id == o->call_id);
    if (id < 0 || !(think || unthink || marker))
        return false;
    add_text(o, text, rl_tok_stream_flush(o->dec, text, sizeof text));
    if (marker)
        buf_add(&o->tools, id == o->tool_id ? "[TOOL_CALLS]" : id == o->args_id ? "[ARGS]" : "[CALL_ID]",
                id == o->args_id ? 6 : id == o->tool_id ? 12 : 9);
    o->in_think = think;
    return true;
}

bool rl_oai_out_feed(rl_oai_out *o, int32_t id) {
    char text[1024];
    if (o->stopped)
        return false;
    if (feed_control(o, id))
        return !o->stopped;
    if (id == o->tool_id && !o->in_tools) {
        add_text(o, text, rl_tok_stream_flush(o->dec, text, sizeof text));
        o->visible = o->content.len;   /* content is over: nothing can complete a stop string */
        o->in_tools = !o->stopped;
        return !o->stopped;
    }
    add_text(o, text, rl_tok_stream_feed(o->dec, id, text, sizeof text));
    return !o->stopped;
}

void rl_oai_out_finish(rl_oai_out *o) {
    char text[1024];
    if (o->finished)
        return;
    if (!o->stopped)
        add_text(o, text, rl_tok_stream_flush(o->dec, text, sizeof text));
    o->visible = o->content.len;
    o->finished = true;
}

const char *rl_oai_out_content(const rl_oai_out *o, size_t *len) {
    *len = o->visible;
    return o->content.p;
}

bool rl_oai_out_in_tools(const rl_oai_out *o) { return o->in_tools; }

const char *rl_oai_out_tool_text(const rl_oai_out *o, size_t *len) {
    *len = o->tools.len;
    return o->tools.p;
}

const char *rl_oai_out_reasoning(const rl_oai_out *o, size_t *len) {
    *len = o->reasoning.len;
    return o->reasoning.p;
}
