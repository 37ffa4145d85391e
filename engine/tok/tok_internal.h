/* Internals shared by the tokenizer's files (tokenizer.c: loading, special
 * tokens, decoding; tok_spm.c and tok_bpe.c: the two encoders; tok_merge.c:
 * the pair-merging loop both encoders run; tok_pretok.c: the BPE
 * pre-tokenizer patterns). Not part of the engine's interface. */
#ifndef RELAIS_TOK_INTERNAL_H
#define RELAIS_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tokenizer.h"

/* GGUF token types (tokenizer.ggml.token_type). */
enum { RL_TT_NORMAL = 1, RL_TT_UNKNOWN = 2, RL_TT_CONTROL = 3, RL_TT_USER = 4, RL_TT_UNUSED = 5, RL_TT_BYTE = 6 };

/* Pre-tokenizer patterns for byte-level BPE. */
typedef enum { RL_PRE_GPT2, RL_PRE_TEKKEN } rl_pretok;

/* Open-addressing set of token ids keyed by token text. */
typedef struct {
    uint32_t *slots; /* token id + 1 per slot, 0 when empty */
    uint32_t mask;   /* slot count - 1 (a power of two) */
} rl_tok_map;

/* One BPE merge rule, keyed by the ids of its two halves. */
typedef struct {
    uint64_t key;   /* (left id + 1) << 32 | (right id + 1); 0 when empty */
    uint32_t rank;  /* line number in tokenizer.ggml.merges: lower merges first */
    int32_t result; /* id of the merged token */
} rl_merge_slot;

struct rl_tokenizer {
    rl_tok_kind kind;          /* SentencePiece or byte-level BPE */
    rl_pretok pre;             /* BPE pre-tokenizer pattern */
    char pre_name[32];         /* tokenizer.ggml.pre as found ("" if absent) */
    char kind_name[96];        /* for rl_tok_kind_name */
    uint32_t n_vocab;          /* number of tokens */
    char *arena;               /* every token's text, each NUL-terminated */
    uint32_t *text_off;        /* token id -> offset of its text in arena */
    uint32_t *text_len;        /* token id -> text length in bytes */
    uint8_t *type;             /* token id -> RL_TT_* */
    float *score;              /* SPM merge scores by token id (NULL for BPE) */
    uint8_t *eog;              /* token id -> 1 when it ends generation */
    rl_tok_map by_text;        /* every token by its text (the last id wins on duplicates) */
    rl_tok_map special;        /* tokens whose text is matched in the input before encoding */
    uint8_t special_first[32]; /* bitmap of the first bytes of those texts */
    uint32_t *special_lens;    /* their distinct lengths, longest first */
    size_t n_special_lens;     /* entries used in special_lens */
    rl_merge_slot *merges;     /* BPE merge rules (NULL for SPM) */
    uint32_t merge_mask;       /* slot count - 1 */
    int32_t byte_tok[256];     /* SPM: the <0xNN> token; BPE: the token of the byte's mapped character; -1 if none */
    int32_t bos, eos, unk;     /* special ids, -1 when absent */
    bool add_bos;              /* tokenizer.ggml.add_bos_token or the kind's default */
    bool add_space_prefix;     /* SPM: prefix a space to text that starts a fragment */
    bool ignore_merges;        /* BPE: a piece that is a whole token is taken as is (Tekken) */
    uint32_t max_piece;        /* longest decoded piece in bytes */
};

/* Growable id list the encoders append to. */
typedef struct {
    int32_t *ids; /* malloc'd */
    size_t n;     /* ids in use */
    size_t cap;   /* ids allocated */
} rl_idvec;

int rl_idvec_push(rl_idvec *v, int32_t id);

/* Token id by exact text in a map, -1 if absent. */
int32_t rl_tok_map_find(const rl_tokenizer *t, const rl_tok_map *m, const char *s, size_t len);
/* Whether a token may be produced by ordinary text encoding (normal or
 * user-defined), as opposed to control, unknown, unused or byte tokens. */
bool rl_tok_is_text(const rl_tokenizer *t, int32_t id);

/* ---- pair merging (tok_merge.c) ---- */

/* A symbol: a byte range of the text being merged and its token id. */
typedef struct {
    uint32_t off, len;  /* bytes in the working text; len 0 once merged away */
    int32_t id;         /* token for these bytes, -1 if the vocabulary has none */
    int32_t prev, next; /* neighbours, -1 at the ends */
} rl_tok_sym;

/* Decides whether neighbours l and r may merge. On yes, sets *prio (higher
 * merges first; ties go to the leftmost pair) and *id (the merged token). */
typedef bool (*rl_tok_pair_fn)(const rl_tokenizer *t, const char *text, const rl_tok_sym *l, const rl_tok_sym *r,
                               double *prio, int32_t *id);

/* Merges the n symbols (a linked list in order) until no pair may merge.
 * Returns 0, or -1 when out of memory. */
int rl_tok_merge(const rl_tokenizer *t, const char *text, rl_tok_sym *syms, size_t n, rl_tok_pair_fn pair);

/* ---- encoders of one fragment of ordinary text ---- */

/* SPM: spaces become U+2581, one is prefixed when space_prefix. */
int rl_tok_spm_encode(const rl_tokenizer *t, const char *text, size_t len, bool space_prefix, rl_idvec *out);
/* BPE: pre-tokenizer pieces, bytes mapped to GPT-2 characters, merges by rank. */
int rl_tok_bpe_encode(const rl_tokenizer *t, const char *text, size_t len, rl_idvec *out);
/* Fills t->merges and t->byte_tok from tokenizer.ggml.merges; 0 or -1 with err. */
int rl_tok_bpe_load(rl_tokenizer *t, const gguf_file *f, char *err, size_t errlen);
/* The GPT-2 mapping: byte -> code point, and back (-1 for a code point that
 * stands for no byte). */
uint32_t rl_bpe_byte_to_cp(uint8_t b);
int rl_bpe_cp_to_byte(uint32_t cp);

/* ---- pre-tokenizer (tok_pretok.c) ---- */

/* Text decoded into units: characters, or runs of invalid bytes. */
typedef struct {
    uint32_t *cp; /* code point, RL_UTF8_INVALID for invalid bytes */
    uint8_t *cls; /* rl_uclass of each unit */
    size_t *off;  /* byte offset of each unit, n + 1 entries */
    size_t n;     /* number of units */
} rl_units;

int rl_units_init(rl_units *u, const char *text, size_t len);
void rl_units_free(rl_units *u);
/* End (unit index) of the pre-tokenizer piece that starts at unit i < u->n. */
size_t rl_pretok_next(rl_pretok pre, const rl_units *u, size_t i);

#endif
