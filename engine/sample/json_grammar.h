/* A JSON grammar over bytes, for constrained sampling (`response_format`
 * json_object and json_schema): a small state machine that says whether
 * the bytes emitted so far can still become one JSON object (of a schema's
 * subset, when given one), and, over a whole vocabulary, which tokens can
 * extend them (a bitset mask applied before sampling).
 *
 * The value is always an object at the top level (RFC 8259 syntax, strings
 * valid UTF-8, numbers of at most 15 integer digits and a two-digit
 * exponent so that a double holds them, nesting up to RL_JG_MAX_DEPTH, at
 * most RL_JG_MAX_WS whitespace bytes in a row outside strings so that a
 * model cannot stall on blanks). When few tokens are left, the mask only
 * allows tokens after which the rest of the budget can still close what is
 * open (a byte per token at worst), so the output is complete whenever the
 * budget holds the shortest close. End-of-generation tokens are allowed
 * only once the object is complete, and then only they are. */
#ifndef RELAIS_JSON_GRAMMAR_H
#define RELAIS_JSON_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_JG_MAX_DEPTH 32
#define RL_JG_MAX_WS 16
#define RL_JG_MAX_CLOSE 1024 /* longest close sequence counted (depth x a few bytes; a schema's rest) */
#define RL_JS_MAX_DEPTH 8    /* containers open at once under a schema */

typedef struct rl_js rl_js;

/* The parse state: plain data, copied freely. */
typedef struct {
    uint64_t stack;     /* bit i: level i is an object (1) or an array (0) */
    uint8_t depth;      /* open containers */
    uint8_t st;         /* lexical state (json_grammar.c) */
    uint8_t aux;        /* literal / hex digit / UTF-8 continuation progress */
    uint8_t lit;        /* which literal (true, false, null) */
    uint8_t ws;         /* whitespace bytes in a row */
    uint8_t key;        /* the open string is an object key */
    uint8_t u8lo, u8hi; /* range of the next UTF-8 continuation byte */
    /* under a schema (NULL: any object); the fields above then lex one
     * string or number value */
    const rl_js *schema;
    uint8_t mode, sdepth, lit_close;                                  /* lit_close: fix ends the container */
    uint16_t frame_node[RL_JS_MAX_DEPTH], frame_idx[RL_JS_MAX_DEPTH]; /* open containers, property reached */
    uint16_t node;                                                    /* the scalar or enum being read */
    const char *fix; /* fixed bytes due (punctuation and keys), at fix_pos */
    uint16_t fix_pos;
    uint64_t alive; /* enum values still matching the fix_pos bytes read */
} rl_jg;

/* Any JSON object. */
void rl_jg_init(rl_jg *g);
/* A JSON schema's subset (json_schema): built bottom-up, each call adding
 * a node and returning its index (children first), -1 on bad input or out
 * of memory. The output under it has no blanks and lists an object's
 * properties all, in the order given. */
typedef enum { RL_JS_STRING, RL_JS_NUMBER, RL_JS_INTEGER } rl_js_type;
rl_js *rl_js_new(void); /* NULL out of memory */
void rl_js_destroy(rl_js **s);
int rl_js_scalar(rl_js *s, rl_js_type t);
int rl_js_array(rl_js *s, int items);
/* One of n (1 to 64) JSON texts, copied (a boolean is "true", "false"). */
int rl_js_enum(rl_js *s, const char *const *texts, size_t n);
/* keys: the JSON-encoded names, quotes included, copied. */
int rl_js_object(rl_js *s, const char *const *keys, const int *props, size_t n);
int rl_js_set_root(rl_js *s, int node); /* an object; 0 or -1 */
/* One value of schema s (borrowed: it outlives g and its copies). */
void rl_jg_init_schema(rl_jg *g, const rl_js *s);

/* Feeds n bytes; false when they cannot be part of a JSON object (then *g
 * is left somewhere in between: feed a copy to test). */
bool rl_jg_feed(rl_jg *g, const uint8_t *b, size_t n);
/* The object is complete. */
bool rl_jg_done(const rl_jg *g);
/* The shortest bytes that complete the value from g into buf (cap >=
 * RL_JG_MAX_CLOSE); returns their count (0 when done). */
size_t rl_jg_close(const rl_jg *g, uint8_t *buf, size_t cap);

/* Each token's bytes, computed once per vocabulary. */
typedef struct rl_jg_vocab rl_jg_vocab;
rl_jg_vocab *rl_jg_vocab_new(uint32_t n_vocab); /* NULL out of memory */
void rl_jg_vocab_destroy(rl_jg_vocab **v);      /* NULLs *v */
/* Token id decodes to bytes b (n; ids in increasing order; a token with none is never allowed but
 * when it ends generation: eog). 0, or -1 (bad id, out of memory). */
int rl_jg_vocab_set(rl_jg_vocab *v, uint32_t id, const uint8_t *b, size_t n, bool eog);
uint32_t rl_jg_vocab_size(const rl_jg_vocab *v);
/* Feeds token id's bytes to g; false when it cannot extend it. */
bool rl_jg_feed_token(rl_jg *g, const rl_jg_vocab *v, int32_t id);

/* The tokens that may follow g, as bits (id i: mask[i/8] >> (i%8) & 1) in
 * mask (ceil(n_vocab/8) bytes); `left`: tokens the budget still allows,
 * this one included. Returns how many are allowed (never 0 when the
 * vocabulary holds an end-of-generation token). */
uint32_t rl_jg_mask(const rl_jg *g, const rl_jg_vocab *v, uint32_t left, uint8_t *mask);

#endif
