/* JSON grammar over bytes (see json_grammar.h).
 *
 * One byte at a time, a pushdown machine whose stack (objects and arrays)
 * fits in a 64-bit word, so a state is a few bytes and testing a token is
 * copying the state and feeding the token's bytes: the mask over a 131k
 * vocabulary is one pass of about a million byte steps. A number has no
 * end marker, so the byte after it ends it and is then read again as what
 * follows a value. */
#include "json_grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    S_START,     /* before the top-level '{' */
    S_VALUE,     /* a value must come (after ':' or an array's ',') */
    S_ARR_FIRST, /* after '[': a value or ']' */
    S_OBJ_FIRST, /* after '{': a key or '}' */
    S_KEY,       /* after an object's ',': a key */
    S_COLON,     /* after a key */
    S_AFTER,     /* after a value in a container: ',' or its closer */
    S_STR,       /* in a string */
    S_ESC,       /* after '\' */
    S_HEX,       /* in \uXXXX, aux digits seen */
    S_UTF8,      /* aux continuation bytes still due */
    S_LIT,       /* in true/false/null, aux bytes seen */
    S_NEG,       /* after '-': a digit */
    S_ZERO,      /* a leading 0 (complete) */
    S_INT,       /* integer digits (complete) */
    S_DOT,       /* after '.': a digit */
    S_FRAC,      /* fraction digits (complete) */
    S_EXP,       /* after 'e': a sign or digit */
    S_EXPSIGN,   /* after the exponent's sign: a digit */
    S_EXPD,      /* exponent digits (complete) */
    S_DONE
};

/* Numbers stay within what a double holds, so that every client reads
 * them: at most 15 integer digits and a two-digit exponent. */
#define MAX_INT_DIGITS 15
#define MAX_EXP_DIGITS 2

static const char *const lits[3] = {"true", "false", "null"};

void rl_jg_init(rl_jg *g) { memset(g, 0, sizeof *g); }

static bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static bool top_is_object(const rl_jg *g) { return (g->stack >> (g->depth - 1)) & 1u; }

/* A value just ended. */
static void value_done(rl_jg *g) { g->st = g->depth ? S_AFTER : S_DONE; }

static bool push(rl_jg *g, bool object) {
    if (g->depth >= RL_JG_MAX_DEPTH)
        return false;
    g->stack = (g->stack & ~(1ull << g->depth)) | ((uint64_t)object << g->depth);
    g->depth++;
    g->st = object ? S_OBJ_FIRST : S_ARR_FIRST;
    return true;
}

static bool pop(rl_jg *g, bool object) {
    if (!g->depth || top_is_object(g) != object)
        return false;
    g->depth--;
    value_done(g);
    return true;
}

/* The first byte of a value (the top level takes only an object). */
static bool value_start(rl_jg *g, uint8_t c) {
    switch (c) {
    case '{':
        return push(g, true);
    case '[':
        return push(g, false);
    case '"':
        g->st = S_STR, g->key = 0;
        return true;
    case '-':
        g->st = S_NEG;
        return true;
    case 't':
    case 'f':
    case 'n':
        g->st = S_LIT, g->lit = c == 't' ? 0 : c == 'f' ? 1 : 2, g->aux = 1;
        return true;
    default:
        if (!is_digit(c))
            return false;
        g->st = c == '0' ? S_ZERO : S_INT, g->aux = 1;
        return true;
    }
}

/* A byte inside a string: the end, an escape, a character or part of one. */
static bool in_string(rl_jg *g, uint8_t c) {
    if (c == '"') {
        if (g->key)
            g->st = S_COLON;
        else
            value_done(g);
        return true;
    }
    if (c == '\\') {
        g->st = S_ESC;
        return true;
    }
    if (c < 0x20)
        return false;
    if (c < 0x80)
        return true;
    /* a UTF-8 lead byte: how many continuations, and the first one's range
     * (no overlong forms, no surrogates, nothing past U+10FFFF) */
    g->u8lo = 0x80, g->u8hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        g->aux = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        g->aux = 2;
        if (c == 0xE0)
            g->u8lo = 0xA0;
        if (c == 0xED)
            g->u8hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        g->aux = 3;
        if (c == 0xF0)
            g->u8lo = 0x90;
        if (c == 0xF4)
            g->u8hi = 0x8F;
    } else
        return false;
    g->st = S_UTF8;
    return true;
}

static bool escape(rl_jg *g, uint8_t c) {
    if (c == 'u') {
        g->st = S_HEX, g->aux = 0;
        return true;
    }
    g->st = S_STR;
    return strchr("\"\\/bfnrt", c) != NULL && c != 0;
}

/* Bytes of a number; a byte that cannot continue a complete one ends it. */
static bool number(rl_jg *g, uint8_t c, bool *again) {
    switch (g->st) {
    case S_NEG:
        g->st = c == '0' ? S_ZERO : S_INT, g->aux = 1;
        return is_digit(c);
    case S_DOT:
        g->st = S_FRAC;
        return is_digit(c);
    case S_EXP:
        if (c == '+' || c == '-') {
            g->st = S_EXPSIGN;
            return true;
        }
        g->st = S_EXPD, g->aux = 1;
        return is_digit(c);
    case S_EXPSIGN:
        g->st = S_EXPD, g->aux = 1;
        return is_digit(c);
    default:
        break;
    }
    if (is_digit(c) && g->st != S_ZERO) /* a double's range: see MAX_INT_DIGITS */
        return g->st == S_FRAC || ++g->aux <= (g->st == S_INT ? MAX_INT_DIGITS : MAX_EXP_DIGITS);
    if (c == '.' && (g->st == S_ZERO || g->st == S_INT)) {
        g->st = S_DOT;
        return true;
    }
    if ((c == 'e' || c == 'E') && g->st != S_EXPD) {
        g->st = S_EXP;
        return true;
    }
    value_done(g);
    *again = true;
    return true;
}

/* Whitespace between tokens, at most RL_JG_MAX_WS in a row. */
static bool blank(rl_jg *g) { return ++g->ws <= RL_JG_MAX_WS; }

static bool structural(rl_jg *g, uint8_t c) {
    if (g->st == S_DONE)
        return false;
    if (is_ws(c))
        return blank(g);
    g->ws = 0;
    switch (g->st) {
    case S_START:
        return c == '{' && push(g, true);
    case S_ARR_FIRST:
        return c == ']' ? pop(g, false) : value_start(g, c);
    case S_VALUE:
        return value_start(g, c);
    case S_OBJ_FIRST:
        if (c == '}')
            return pop(g, true);
        g->st = S_STR, g->key = 1;
        return c == '"';
    case S_KEY:
        g->st = S_STR, g->key = 1;
        return c == '"';
    case S_COLON:
        g->st = S_VALUE;
        return c == ':';
    case S_AFTER:
        if (c == ',') {
            g->st = top_is_object(g) ? S_KEY : S_VALUE;
            return true;
        }
        return c == '}' ? pop(g, true) : c == ']' ? pop(g, false) : false;
    default:
        return false; /* S_DONE: nothing more */
    }
}

static bool lex_step(rl_jg *g, uint8_t c) {
    bool again = false;
    switch (g->st) {
    case S_STR:
        return in_string(g, c);
    case S_ESC:
        return escape(g, c);
    case S_HEX:
        if (!is_hex(c))
            return false;
        if (++g->aux == 4)
            g->st = S_STR;
        return true;
    case S_UTF8:
        if (c < g->u8lo || c > g->u8hi)
            return false;
        g->u8lo = 0x80, g->u8hi = 0xBF;
        if (--g->aux == 0)
            g->st = S_STR;
        return true;
    case S_LIT:
        if ((uint8_t)lits[g->lit][g->aux] != c)
            return false;
        if (lits[g->lit][++g->aux] == 0)
            value_done(g);
        return true;
    case S_NEG:
    case S_ZERO:
    case S_INT:
    case S_DOT:
    case S_FRAC:
    case S_EXP:
    case S_EXPSIGN:
    case S_EXPD:
        if (!number(g, c, &again))
            return false;
        return again ? structural(g, c) : true;
    default:
        return structural(g, c);
    }
}

/* ---- a JSON schema's subset: the same lexer for strings and numbers, the
 * structure from the schema ----
 *
 * The output follows the schema exactly, without blanks: an object lists
 * every property in the schema's order (so required ones are all there),
 * an array holds items of its one item schema, an enum or boolean is one of
 * its JSON texts. Containers are frames on a small stack; a scalar runs the
 * lexer above with no container open, so the lexer's S_DONE ends it. */

typedef struct {
    uint8_t kind;
    uint16_t items; /* array: the item node */
    uint16_t n;     /* object: properties; enum: values */
    uint16_t *props;
    char **lits; /* object: `{"k0":`, `,"k1":`...; enum: each value's JSON text */
} js_node;

struct rl_js {
    js_node *nodes;
    uint16_t n, cap;
    int root;
};

enum { K_OBJECT, K_ARRAY, K_STRING, K_NUMBER, K_INTEGER, K_ENUM };
enum { M_START, M_LIT, M_VALUE, M_SCALAR, M_ENUM, M_ARR_FIRST, M_ARR_AFTER, M_DONE };

rl_js *rl_js_new(void) {
    rl_js *s = calloc(1, sizeof *s);
    if (s)
        s->root = -1;
    return s;
}

void rl_js_destroy(rl_js **s) {
    if (!s || !*s)
        return;
    for (uint16_t i = 0; i < (*s)->n; i++) {
        js_node *nd = &(*s)->nodes[i];
        for (uint16_t k = 0; nd->lits && k < nd->n; k++)
            free(nd->lits[k]);
        free(nd->lits);
        free(nd->props);
    }
    free((*s)->nodes);
    free(*s);
    *s = NULL;
}

static int add_node(rl_js *s, js_node nd) {
    if (s->n == UINT16_MAX)
        return -1;
    if (s->n == s->cap) {
        uint16_t cap = s->cap ? (s->cap > UINT16_MAX / 2 ? UINT16_MAX : s->cap * 2) : 16;
        js_node *p = realloc(s->nodes, cap * sizeof *p);
        if (!p)
            return -1;
        s->nodes = p, s->cap = cap;
    }
    s->nodes[s->n] = nd;
    return s->n++;
}

int rl_js_scalar(rl_js *s, rl_js_type t) {
    return add_node(s, (js_node){.kind = t == RL_JS_STRING ? K_STRING : t == RL_JS_NUMBER ? K_NUMBER : K_INTEGER});
}

int rl_js_array(rl_js *s, int items) {
    if (items < 0 || items >= s->n)
        return -1;
    return add_node(s, (js_node){.kind = K_ARRAY, .items = (uint16_t)items});
}

/* n strings copied, each with `pre` before it and `post` after it. */
static char **copy_lits(const char *const *src, size_t n, const char *pre0, const char *pre, const char *post) {
    char **out = calloc(n ? n : 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++) {
        const char *a = i ? pre : pre0;
        size_t len = strlen(a) + strlen(src[i]) + strlen(post) + 1;
        if (!(out[i] = malloc(len))) {
            while (i--)
                free(out[i]);
            free(out);
            return NULL;
        }
        snprintf(out[i], len, "%s%s%s", a, src[i], post);
    }
    return out;
}

int rl_js_enum(rl_js *s, const char *const *texts, size_t n) {
    if (n == 0 || n > 64)
        return -1;
    js_node nd = {.kind = K_ENUM, .n = (uint16_t)n, .lits = copy_lits(texts, n, "", "", "")};
    int id = nd.lits ? add_node(s, nd) : -1;
    if (id < 0 && nd.lits) {
        for (size_t i = 0; i < n; i++)
            free(nd.lits[i]);
        free(nd.lits);
    }
    return id;
}

int rl_js_object(rl_js *s, const char *const *keys, const int *props, size_t n) {
    if (n > UINT16_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (props[i] < 0 || props[i] >= s->n)
            return -1;
    js_node nd = {.kind = K_OBJECT, .n = (uint16_t)n, .props = malloc((n ? n : 1) * sizeof *nd.props)};
    nd.lits = copy_lits(keys, n, "{", ",", ":");
    int id = nd.props && nd.lits ? add_node(s, nd) : -1;
    if (id < 0) {
        for (size_t i = 0; nd.lits && i < n; i++)
            free(nd.lits[i]);
        free(nd.lits), free(nd.props);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        s->nodes[id].props[i] = (uint16_t)props[i];
    return id;
}

int rl_js_set_root(rl_js *s, int node) {
    if (node < 0 || node >= s->n || s->nodes[node].kind != K_OBJECT)
        return -1;
    s->root = node;
    return 0;
}

void rl_jg_init_schema(rl_jg *g, const rl_js *s) {
    rl_jg_init(g);
    g->schema = s;
    g->st = S_DONE; /* the lexer idles outside scalars */
}

bool rl_jg_done(const rl_jg *g) { return g->schema ? g->mode == M_DONE : g->st == S_DONE; }

static const js_node *node_at(const rl_jg *g, uint16_t i) { return &g->schema->nodes[i]; }
static const js_node *top_node(const rl_jg *g) { return node_at(g, g->frame_node[g->sdepth - 1]); }

static void set_lit(rl_jg *g, const char *lit, uint8_t then_close) {
    g->mode = M_LIT, g->fix = lit, g->fix_pos = 0, g->lit_close = then_close;
}

/* A value just ended: what its container expects next. */
static void s_complete(rl_jg *g) {
    if (!g->sdepth) {
        g->mode = M_DONE;
        return;
    }
    const js_node *n = top_node(g);
    if (n->kind == K_ARRAY) {
        g->mode = M_ARR_AFTER;
        return;
    }
    const uint16_t idx = ++g->frame_idx[g->sdepth - 1];
    if (idx < n->n)
        set_lit(g, n->lits[idx], 0);
    else
        set_lit(g, "}", 1);
}

static void s_pop_complete(rl_jg *g) {
    g->sdepth--;
    s_complete(g);
}

static bool s_step(rl_jg *g, uint8_t c);

/* The first byte of a value of node i. */
static bool s_start(rl_jg *g, uint16_t i, uint8_t c) {
    const js_node *n = node_at(g, i);
    if ((n->kind == K_OBJECT || n->kind == K_ARRAY) && g->sdepth == RL_JS_MAX_DEPTH)
        return false;
    g->node = i;
    switch (n->kind) {
    case K_OBJECT:
        g->frame_node[g->sdepth] = i, g->frame_idx[g->sdepth++] = 0;
        set_lit(g, n->n ? n->lits[0] : "{}", n->n == 0);
        return s_step(g, c);
    case K_ARRAY:
        if (c != '[')
            return false;
        g->frame_node[g->sdepth] = i, g->frame_idx[g->sdepth++] = 0;
        g->mode = M_ARR_FIRST;
        return true;
    case K_STRING:
        g->mode = M_SCALAR, g->st = S_STR, g->key = 0, g->depth = 0;
        return c == '"';
    case K_ENUM:
        g->mode = M_ENUM, g->alive = n->n == 64 ? ~0ull : (1ull << n->n) - 1, g->fix_pos = 0;
        return s_step(g, c);
    default: /* numbers */
        g->mode = M_SCALAR, g->depth = 0;
        return (c == '-' || is_digit(c)) && value_start(g, c);
    }
}

static bool num_complete(const rl_jg *g) {
    return g->st == S_ZERO || g->st == S_INT || g->st == S_FRAC || g->st == S_EXPD;
}

/* A byte of a number: one that cannot continue a complete number ends it
 * and goes to what follows; an integer takes no fraction or exponent. */
static bool s_number(rl_jg *g, uint8_t c) {
    const bool integer = node_at(g, g->node)->kind == K_INTEGER;
    const bool frac = c == '.' || c == 'e' || c == 'E';
    if (integer && frac)
        return num_complete(g) ? (s_complete(g), s_step(g, c)) : false;
    if (num_complete(g)) {
        const bool cont = (is_digit(c) && g->st != S_ZERO) || (c == '.' && (g->st == S_ZERO || g->st == S_INT)) ||
            ((c == 'e' || c == 'E') && g->st != S_EXPD);
        if (!cont) {
            s_complete(g);
            return s_step(g, c);
        }
    }
    return lex_step(g, c);
}

/* Whether an enum value of exactly lit_pos bytes is still alive, and
 * whether a longer one is. */
static void enum_ends(const rl_jg *g, bool *whole, bool *longer) {
    const js_node *n = node_at(g, g->node);
    *whole = *longer = false;
    for (uint16_t k = 0; k < n->n; k++)
        if ((g->alive >> k) & 1u) {
            const size_t len = strlen(n->lits[k]);
            *whole |= len == g->fix_pos;
            *longer |= len > g->fix_pos;
        }
}

static bool s_enum(rl_jg *g, uint8_t c) {
    const js_node *n = node_at(g, g->node);
    uint64_t alive = 0;
    for (uint16_t k = 0; k < n->n; k++)
        if (((g->alive >> k) & 1u) && strlen(n->lits[k]) > g->fix_pos && (uint8_t)n->lits[k][g->fix_pos] == c)
            alive |= 1ull << k;
    bool whole, longer;
    if (!alive) {
        enum_ends(g, &whole, &longer);
        if (!whole)
            return false;
        s_complete(g);
        return s_step(g, c);
    }
    g->alive = alive, g->fix_pos++;
    enum_ends(g, &whole, &longer);
    if (whole && !longer)
        s_complete(g);
    return true;
}

static bool s_step(rl_jg *g, uint8_t c) {
    switch (g->mode) {
    case M_START:
        return s_start(g, (uint16_t)g->schema->root, c);
    case M_LIT:
        if ((uint8_t)g->fix[g->fix_pos] != c)
            return false;
        if (g->fix[++g->fix_pos] == 0) {
            if (g->lit_close)
                s_pop_complete(g);
            else
                g->mode = M_VALUE;
        }
        return true;
    case M_VALUE: {
        const js_node *n = top_node(g);
        return s_start(g, n->kind == K_ARRAY ? n->items : n->props[g->frame_idx[g->sdepth - 1]], c);
    }
    case M_SCALAR:
        if (node_at(g, g->node)->kind != K_STRING)
            return s_number(g, c);
        if (!lex_step(g, c))
            return false;
        if (g->st == S_DONE)
            s_complete(g);
        return true;
    case M_ENUM:
        return s_enum(g, c);
    case M_ARR_FIRST:
        if (c == ']') {
            s_pop_complete(g);
            return true;
        }
        return s_start(g, top_node(g)->items, c);
    case M_ARR_AFTER:
        if (c == ',') {
            g->mode = M_VALUE;
            return true;
        }
        if (c != ']')
            return false;
        s_pop_complete(g);
        return true;
    default:
        return false;
    }
}

static uint8_t s_closer(const rl_jg *g);
static uint8_t lex_closer(const rl_jg *g);

/* The first byte of the shortest value of node i. */
static uint8_t start_closer(const rl_jg *g, uint16_t i) {
    const js_node *n = node_at(g, i);
    switch (n->kind) {
    case K_OBJECT:
        return '{';
    case K_ARRAY:
        return '[';
    case K_STRING:
        return '"';
    case K_ENUM:
        return (uint8_t)n->lits[0][0];
    default:
        return '0';
    }
}

static uint8_t s_closer(const rl_jg *g) {
    switch (g->mode) {
    case M_START:
        return '{';
    case M_LIT:
        return (uint8_t)g->fix[g->fix_pos];
    case M_VALUE: {
        const js_node *n = top_node(g);
        return start_closer(g, n->kind == K_ARRAY ? n->items : n->props[g->frame_idx[g->sdepth - 1]]);
    }
    case M_SCALAR:
        if (node_at(g, g->node)->kind == K_STRING || !num_complete(g))
            return lex_closer(g);
        break;
    case M_ENUM: {
        bool whole, longer;
        enum_ends(g, &whole, &longer);
        if (!whole) { /* the next byte of an alive value */
            const js_node *n = node_at(g, g->node);
            for (uint16_t k = 0; k < n->n; k++)
                if ((g->alive >> k) & 1u)
                    return (uint8_t)n->lits[k][g->fix_pos];
        }
        break;
    }
    case M_ARR_FIRST:
    case M_ARR_AFTER:
        return ']';
    default:
        return 0;
    }
    rl_jg t = *g; /* a complete number or enum value: what follows it */
    s_complete(&t);
    return s_closer(&t);
}

static bool step(rl_jg *g, uint8_t c) { return g->schema ? s_step(g, c) : lex_step(g, c); }
static uint8_t closer(const rl_jg *g) { return g->schema ? s_closer(g) : lex_closer(g); }

bool rl_jg_feed(rl_jg *g, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!step(g, b[i]))
            return false;
    return true;
}

/* The byte that brings g nearest to complete. */
static uint8_t lex_closer(const rl_jg *g) {
    switch (g->st) {
    case S_START:
        return '{';
    case S_VALUE:
    case S_NEG:
    case S_DOT:
    case S_EXP:
    case S_EXPSIGN:
    case S_HEX:
        return '0';
    case S_ARR_FIRST:
        return ']';
    case S_OBJ_FIRST:
        return '}';
    case S_KEY:
    case S_STR:
        return '"';
    case S_COLON:
        return ':';
    case S_ESC:
        return 'n';
    case S_UTF8:
        return g->u8lo;
    case S_LIT:
        return (uint8_t)lits[g->lit][g->aux];
    default: /* after a value or a complete number */
        return top_is_object(g) ? '}' : ']';
    }
}

size_t rl_jg_close(const rl_jg *g, uint8_t *buf, size_t cap) {
    rl_jg t = *g;
    size_t n = 0;
    while (!rl_jg_done(&t) && n < cap) {
        buf[n] = closer(&t);
        if (!step(&t, buf[n++]))
            return 0; /* cannot happen: each closer is valid where it is chosen */
    }
    return n;
}

/* ---- the vocabulary ---- */

struct rl_jg_vocab {
    uint32_t n;
    uint32_t *off; /* (n + 1) token i's bytes are blob[off[i]..off[i+1]) */
    uint8_t *blob;
    size_t cap;
    uint8_t *eog;   /* (n) */
    uint8_t *plain; /* (n) text that leaves a string open as it found it: allowed in one without feeding */
    uint32_t next;  /* lowest id not yet set; ids past it have no bytes */
};

rl_jg_vocab *rl_jg_vocab_new(uint32_t n_vocab) {
    rl_jg_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->n = n_vocab;
    v->off = calloc((size_t)n_vocab + 1, sizeof *v->off);
    v->eog = calloc(n_vocab ? n_vocab : 1, 1);
    v->plain = calloc(n_vocab ? n_vocab : 1, 1);
    if (!v->off || !v->eog || !v->plain)
        rl_jg_vocab_destroy(&v);
    return v;
}

void rl_jg_vocab_destroy(rl_jg_vocab **v) {
    if (!v || !*v)
        return;
    free((*v)->off);
    free((*v)->blob);
    free((*v)->eog);
    free((*v)->plain);
    free(*v);
    *v = NULL;
}

uint32_t rl_jg_vocab_size(const rl_jg_vocab *v) { return v->n; }

/* Tokens are set in id order (each appends to the blob); an id set out of
 * order is refused, one skipped has no bytes. */
int rl_jg_vocab_set(rl_jg_vocab *v, uint32_t id, const uint8_t *b, size_t n, bool eog) {
    if (id >= v->n || id < v->next)
        return -1;
    const size_t at = v->off[v->next];
    if (at + n > UINT32_MAX)
        return -1;
    if (at + n > v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4096;
        while (cap < at + n)
            cap *= 2;
        uint8_t *p = realloc(v->blob, cap);
        if (!p)
            return -1;
        v->blob = p, v->cap = cap;
    }
    if (n)
        memcpy(v->blob + at, b, n);
    for (uint32_t i = v->next + 1; i <= id; i++) /* skipped ids: no bytes */
        v->off[i] = (uint32_t)at;
    v->off[id + 1] = (uint32_t)(at + n);
    v->next = id + 1;
    v->eog[id] = eog;
    rl_jg s = {.st = S_STR};
    v->plain[id] = n && !memchr(b, '"', n) && rl_jg_feed(&s, b, n) && s.st == S_STR;
    return 0;
}

bool rl_jg_feed_token(rl_jg *g, const rl_jg_vocab *v, int32_t id) {
    if (id < 0 || (uint32_t)id >= v->next || v->off[id] == v->off[id + 1])
        return false;
    return rl_jg_feed(g, v->blob + v->off[id], v->off[id + 1] - v->off[id]);
}

static void allow(uint8_t *mask, uint32_t i) { mask[i >> 3] |= (uint8_t)(1u << (i & 7)); }

static uint32_t allow_eog(const rl_jg_vocab *v, uint8_t *mask) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->next; i++)
        if (v->eog[i])
            allow(mask, i), k++;
    return k;
}

/* Bytes rl_jg_close would give. */
static size_t close_len(const rl_jg *g) {
    rl_jg t = *g;
    size_t n = 0;
    while (!rl_jg_done(&t) && n < RL_JG_MAX_CLOSE && step(&t, closer(&t)))
        n++;
    return n;
}

/* Each token fed to a copy of g, allowed when valid and, with `limit`,
 * when it leaves at most that many bytes to close. Two shortcuts make it a
 * few ms over 131k ids: a first byte g refuses rules out every token
 * starting with it, and inside a string plain text is allowed without
 * feeding it (it leaves the state as it was). */
static uint32_t allow_valid(const rl_jg *g, const rl_jg_vocab *v, size_t limit, uint8_t *mask) {
    bool first[256];
    for (int c = 0; c < 256; c++) {
        rl_jg t = *g;
        first[c] = step(&t, (uint8_t)c);
    }
    const bool in_str = g->st == S_STR, plain_fits = close_len(g) <= limit;
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->next; i++) {
        const uint32_t len = v->off[i + 1] - v->off[i];
        const uint8_t *b = v->blob + v->off[i];
        if (!len || !first[b[0]])
            continue;
        rl_jg t = *g;
        if (in_str && v->plain[i] ? plain_fits
                                  : rl_jg_feed(&t, b, len) && (limit >= RL_JG_MAX_CLOSE || close_len(&t) <= limit))
            allow(mask, i), k++;
    }
    return k;
}

uint32_t rl_jg_mask(const rl_jg *g, const rl_jg_vocab *v, uint32_t left, uint8_t *mask) {
    memset(mask, 0, (v->n + 7) / 8);
    if (rl_jg_done(g))
        return allow_eog(v, mask);
    /* after this token, left - 1 must hold the close (one token per byte at
     * worst); a vocabulary without those tokens gets any valid one */
    uint32_t k = allow_valid(g, v, left - 1 < RL_JG_MAX_CLOSE ? left - 1 : RL_JG_MAX_CLOSE, mask);
    if (k == 0)
        k = allow_valid(g, v, RL_JG_MAX_CLOSE, mask);
    return k ? k : allow_eog(v, mask);
}
