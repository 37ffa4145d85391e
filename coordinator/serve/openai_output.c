/* Assembling a request's generated text (see openai.h): streaming UTF-8
 * decoding, stop strings with hold-back, the switch to tool-call text at
 * the model's [TOOL_CALLS] token, and reasoning between [THINK] and [/THINK].
 * Stop strings are matched by one Knuth-Morris-Pratt automaton each, fed
 * every content byte once: the cost is proportional to the text generated,
 * whatever the stop strings' lengths (this runs on the scheduler thread,
 * where a rescan per token would hold every other request up). */
#include <stdlib.h>
#include <string.h>
#include "openai.h"
#include "util.h"

typedef struct {
    char *p;
    size_t len, cap;
} buf;

/* One stop string's matcher: fail[i] is the length of the longest proper
 * prefix of s[0..i] that is also its suffix; state is how many bytes of s
 * end the content so far (always < len: a full match stops the output). */
typedef struct {
    const char *s; /* borrowed */
    size_t len;
    size_t *fail;
    size_t state;
} stop_matcher;

struct rl_oai_out {
    const rl_tokenizer *tok; /* borrowed */
    rl_tok_stream *dec;      /* holds back incomplete UTF-8 */
    stop_matcher stop[RL_OAI_MAX_STOP];
    size_t n_stop;
    int32_t tool_id;              /* id of [TOOL_CALLS], -1 when tools are off */
    int32_t args_id, call_id;     /* [ARGS], [CALL_ID] of the newer call format (-1: none, or tools off) */
    int32_t think_id, unthink_id; /* [THINK], [/THINK] (-1 when the vocabulary has none) */
    bool in_think;                /* text now goes to `reasoning` */
    buf reasoning;                /* text between [THINK] and [/THINK] */
    bool in_tools;                /* text now goes to `tools` */
    bool stopped;                 /* a stop string matched: content is final */
    bool finished;                /* end of generation: nothing held back */
    buf content;                  /* text before tool calls (cut at a stop string) */
    size_t visible;               /* bytes of content that may be shown */
    buf tools;                    /* text after [TOOL_CALLS] */
};

static bool buf_add(buf *b, const char *s, size_t n) {
    char *p = rl_grow(b->p, &b->cap, b->len + n + 1, 1, 256);
    if (!p)
        return false;
    b->p = p;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

static int matcher_init(stop_matcher *m, const char *s) {
    m->s = s;
    m->len = strlen(s);
    if (!(m->fail = malloc(m->len * sizeof *m->fail)))
        return -1;
    m->fail[0] = 0;
    for (size_t i = 1, k = 0; i < m->len; i++) {
        while (k > 0 && s[i] != s[k])
            k = m->fail[k - 1];
        if (s[i] == s[k])
            k++;
        m->fail[i] = k;
    }
    return 0;
}

/* Advances by one byte; true when the stop string now ends the content. */
static bool matcher_feed(stop_matcher *m, char c) {
    while (m->state > 0 && m->s[m->state] != c)
        m->state = m->fail[m->state - 1];
    if (m->s[m->state] == c)
        m->state++;
    if (m->state < m->len)
        return false;
    m->state = m->fail[m->len - 1];
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
    for (size_t i = 0; i < n_stop && o->n_stop < RL_OAI_MAX_STOP; i++) {
        if (!stop[i][0])
            continue; /* an empty string stops nothing */
        if (matcher_init(&o->stop[o->n_stop], stop[i])) {
            rl_oai_out_destroy(&o);
            return NULL;
        }
        o->n_stop++;
    }
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
    for (size_t i = 0; i < o->n_stop; i++)
        free(o->stop[i].fail);
    free(o->content.p);
    free(o->tools.p);
    free(o->reasoning.p);
    free(o);
    *po = NULL;
}

/* Feeds content bytes [from, len) to the matchers. The content is cut at
 * the earliest start of any stop string completed in them; otherwise all
 * but the longest tail that could begin one becomes visible. */
static void scan_stops(rl_oai_out *o, size_t from) {
    buf *c = &o->content;
    size_t cut = c->len;
    for (size_t i = from; i < c->len; i++)
        for (size_t k = 0; k < o->n_stop; k++)
            if (matcher_feed(&o->stop[k], c->p[i]) && i + 1 - o->stop[k].len < cut)
                cut = i + 1 - o->stop[k].len;
    if (cut < c->len) {
        c->len = cut;
        c->p[cut] = 0;
        o->visible = cut;
        o->stopped = true;
        return;
    }
    size_t hold = 0;
    for (size_t k = 0; k < o->n_stop; k++)
        if (o->stop[k].state > hold)
            hold = o->stop[k].state;
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
    if (buf_add(&o->content, s, n))
        scan_stops(o, old); /* the matchers hold what came before */
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
        buf_add(&o->tools,
                id == o->tool_id       ? "[TOOL_CALLS]"
                    : id == o->args_id ? "[ARGS]"
                                       : "[CALL_ID]",
                id == o->args_id       ? 6
                    : id == o->tool_id ? 12
                                       : 9);
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
        o->visible = o->content.len; /* content is over: nothing can complete a stop string */
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
