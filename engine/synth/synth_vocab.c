/* Tokenizer metadata for synthetic models: a vocabulary that a real
 * tokenizer runs end to end, of any size from rl_synth_vocab_min up.
 *
 * Both kinds start with their fixed part (control tokens, the 256 byte
 * tokens, and for SentencePiece the single-character pieces), then grow
 * "word pieces" up to the requested size: each new piece joins an existing
 * piece (the space marker, a letter, or an earlier piece) with a lowercase
 * continuation piece, picking early pieces more often, so short common-ish
 * fragments come first and every piece is reachable by merging its two
 * parents. Byte-level BPE records each join as a merge in creation order;
 * SentencePiece gives later pieces lower scores. Pieces never mix letter
 * case inside a word the way the Tekken pre-tokenizer would split, so the
 * merges do fire on ordinary text.
 *
 * A random-weight model picks its tokens almost uniformly, so what it writes
 * is this vocabulary shuffled. To make that read as words rather than
 * letter soup (the quickstart's first run), letters alternate between
 * vowels and consonants across every join, and most new pieces start with
 * the space marker: the pieces are pronounceable words and word parts.
 *
 * The layout of Tekken's ids 0..999 (named controls, then <SPECIAL_N>
 * fillers) and the GPT-2 byte order of ids 1000..1255 follow the real
 * Mistral vocabulary as llama.cpp converts it. */
#include "synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rng.h"

enum {
    SLOT = 32,      /* bytes per token string, NUL included */
    MAX_PIECE = 16, /* longest grown piece, in bytes */
    MERGE_SLOT = 2 * MAX_PIECE + 2,
    TEKKEN_CONTROLS = 1000,
    TOK_NORMAL = 1,
    TOK_UNKNOWN = 2,
    TOK_CONTROL = 3,
    TOK_BYTE = 6,
};

static const char *const TEKKEN_NAMED[] = {
    "<unk>",
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
    "[TOOL_CALLS]",
    "[IMG]",
    "<pad>",
    "[IMG_BREAK]",
    "[IMG_END]",
    "[PREFIX]",
    "[MIDDLE]",
    "[SUFFIX]",
    "[SYSTEM_PROMPT]",
    "[/SYSTEM_PROMPT]",
    "[TOOL_CONTENT]",
};
#define TEKKEN_PAD 11

static const char SPM_MARKER[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's space */
static const char BPE_MARKER[] = "\xc4\xa0";     /* U+0120, GPT-2's mapped space byte */
static const char SPM_EXTRA_CHARS[] = "0123456789.,!?'-:;\"()";
static const char LOWER_BY_FREQ[] = "etaoinshrdlcumwfgypbvkjxqz";
static const char UPPER_BY_FREQ[] = "TAISOWHBCMFPDRLNEGUVYJKQXZ";

/* The vocabulary being built. */
typedef struct {
    rl_synth_vocab kind;
    uint32_t cap;  /* n_vocab: tokens to reach */
    uint32_t n;    /* tokens so far */
    char *text;    /* (cap * SLOT) token strings */
    int32_t *type; /* (cap) token types */
    float *score;  /* (cap) SentencePiece scores */
    char *merges;  /* (cap * MERGE_SLOT) "left right" strings, BPE only */
    uint32_t n_merges;
    uint32_t *hash;     /* open addressing over token strings: id + 1, 0 = empty */
    uint32_t hash_mask; /* table size - 1 (a power of two >= 2 cap) */
    uint32_t *left;     /* ids a new piece may start with */
    uint32_t n_left;
    uint32_t *right; /* ids of lowercase-only pieces a new piece may end with */
    uint32_t n_right;
    uint32_t *words; /* ids of pieces that start with the space marker */
    uint32_t n_words;
    bool *lower; /* (cap) the token is in `right` */
} vocab;

static char *tok(vocab *v, uint32_t id) { return v->text + (size_t)id * SLOT; }

static uint32_t str_hash(const char *s) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The slot of s in the hash table: where it is, or the empty slot it would take. */
static uint32_t *find_slot(vocab *v, const char *s) {
    for (uint32_t i = str_hash(s) & v->hash_mask;; i = (i + 1) & v->hash_mask)
        if (!v->hash[i] || !strcmp(tok(v, v->hash[i] - 1), s))
            return &v->hash[i];
}

static uint32_t add_token(vocab *v, const char *s, int32_t type) {
    uint32_t id = v->n++;
    snprintf(tok(v, id), SLOT, "%s", s);
    v->type[id] = type;
    v->score[id] = type == TOK_NORMAL ? -(float)id : 0.0f;
    *find_slot(v, s) = id + 1;
    return id;
}

static void vocab_free(vocab *v) {
    free(v->text);
    free(v->type);
    free(v->score);
    free(v->merges);
    free(v->hash);
    free(v->left);
    free(v->right);
    free(v->words);
    free(v->lower);
}

static int vocab_init(vocab *v, rl_synth_vocab kind, uint32_t cap) {
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->cap = cap;
    uint32_t size = 1;
    while (size < 2 * cap)
        size *= 2;
    v->hash_mask = size - 1;
    v->text = malloc((size_t)cap * SLOT);
    v->type = malloc(cap * sizeof *v->type);
    v->score = malloc(cap * sizeof *v->score);
    v->merges = kind != RL_SYNTH_VOCAB_SPM ? malloc((size_t)cap * MERGE_SLOT) : NULL;
    v->hash = calloc(size, sizeof *v->hash);
    v->left = malloc(cap * sizeof *v->left);
    v->right = malloc(cap * sizeof *v->right);
    v->words = malloc(cap * sizeof *v->words);
    v->lower = calloc(cap, sizeof *v->lower);
    if (!v->text || !v->type || !v->score || !v->hash || !v->left || !v->right || !v->words || !v->lower ||
        (kind != RL_SYNTH_VOCAB_SPM && !v->merges)) {
        vocab_free(v);
        return -1;
    }
    return 0;
}

static void utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = 0;
    }
}

/* GPT-2's bytes_to_unicode in its vocabulary order: the printable bytes as
 * themselves, then the others mapped to U+0100 upwards in byte order. */
static void add_gpt2_bytes(vocab *v) {
    bool printable[256] = {false};
    char s[4];
    for (uint32_t b = 0; b < 256; b++)
        printable[b] = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    for (uint32_t b = 0; b < 256; b++)
        if (printable[b]) {
            utf8_put(s, b);
            add_token(v, s, TOK_NORMAL);
        }
    for (uint32_t b = 0, next = 256; b < 256; b++)
        if (!printable[b]) {
            utf8_put(s, next++);
            add_token(v, s, TOK_NORMAL);
        }
}

/* The controls that Tekken files of tokenizer V11 and later (Magistral,
 * Ministral 3) name at ranks 32-35. */
static const char *const TEKKEN_V13_NAMED[] = {"[ARGS]", "[CALL_ID]", "[THINK]", "[/THINK]"};
#define TEKKEN_V13_FIRST 32

/* Tekken: 1000 controls, the byte tokens; letters are byte tokens themselves. */
static void add_tekken_base(vocab *v) {
    char s[SLOT];
    const uint32_t n_named = sizeof TEKKEN_NAMED / sizeof TEKKEN_NAMED[0], n_v13 = 4;
    for (uint32_t i = 0; i < TEKKEN_CONTROLS; i++) {
        if (i < n_named)
            snprintf(s, sizeof s, "%s", TEKKEN_NAMED[i]);
        else if (v->kind == RL_SYNTH_VOCAB_TEKKEN_V13 && i >= TEKKEN_V13_FIRST && i < TEKKEN_V13_FIRST + n_v13)
            snprintf(s, sizeof s, "%s", TEKKEN_V13_NAMED[i - TEKKEN_V13_FIRST]);
        else
            snprintf(s, sizeof s, "<SPECIAL_%u>", i);
        add_token(v, s, TOK_CONTROL);
    }
    add_gpt2_bytes(v);
    v->left[v->n_left++] = v->words[v->n_words++] = *find_slot(v, BPE_MARKER) - 1;
}

/* SentencePiece: <unk> <s> </s>, <0xNN> fallbacks, then single-character
 * pieces (the space marker, letters, digits, punctuation). */
static void add_spm_base(vocab *v) {
    char s[SLOT];
    add_token(v, "<unk>", TOK_UNKNOWN);
    add_token(v, "<s>", TOK_CONTROL);
    add_token(v, "</s>", TOK_CONTROL);
    for (uint32_t b = 0; b < 256; b++) {
        snprintf(s, sizeof s, "<0x%02X>", b);
        add_token(v, s, TOK_BYTE);
    }
    v->left[v->n_left++] = v->words[v->n_words++] = add_token(v, SPM_MARKER, TOK_NORMAL);
    for (int c = 'a'; c <= 'z'; c++)
        add_token(v, (char[]){(char)c, 0}, TOK_NORMAL);
    for (int c = 'A'; c <= 'Z'; c++)
        add_token(v, (char[]){(char)c, 0}, TOK_NORMAL);
    for (const char *c = SPM_EXTRA_CHARS; *c; c++)
        add_token(v, (char[]){*c, 0}, TOK_NORMAL);
}

/* Seeds the piece pools with the letters, lowercase first, each in English
 * frequency order so that the early (most often picked) pieces are common. */
static void seed_pools(vocab *v) {
    for (const char *c = LOWER_BY_FREQ; *c; c++) {
        uint32_t id = *find_slot(v, (char[]){*c, 0}) - 1;
        v->left[v->n_left++] = id;
        v->right[v->n_right++] = id;
        v->lower[id] = true;
    }
    for (const char *c = UPPER_BY_FREQ; *c; c++)
        v->left[v->n_left++] = *find_slot(v, (char[]){*c, 0}) - 1;
}

/* An index below n, strongly skewed towards 0, which keeps most pieces short. */
static uint32_t early(rl_rng *r, uint32_t n) {
    double u = rl_rng_uniform(r);
    return (uint32_t)(u * u * u * n);
}

static bool is_vowel(char c) { return c && strchr("aeiouAEIOU", c); }

static bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Whether joining a and b keeps vowels and consonants alternating: after
 * the space marker anything may follow. */
static bool alternates(const char *a, size_t la, const char *b) {
    char last = a[la - 1];
    return !is_letter(last) || is_vowel(last) != is_vowel(b[0]);
}

/* Whether piece s begins with the space marker: a word. */
static bool starts_word(const vocab *v, const char *s) {
    const char *m = v->kind == RL_SYNTH_VOCAB_TEKKEN ? BPE_MARKER : SPM_MARKER;
    return strncmp(s, m, strlen(m)) == 0;
}

static int grow_pieces(vocab *v) {
    rl_rng r;
    rl_rng_seed(&r, 0x5eed0f7e5ull);
    uint64_t tries = 0, max_tries = 1000ull * v->cap + 100000;
    char s[MAX_PIECE + 1];
    while (v->n < v->cap) {
        if (++tries > max_tries)
            return -1;
        /* three new pieces in four grow a word (marker first) */
        bool word = rl_rng_uniform(&r) < 0.75;
        uint32_t a = word ? v->words[early(&r, v->n_words)] : v->left[early(&r, v->n_left)];
        uint32_t b = v->right[early(&r, v->n_right)];
        const char *ta = tok(v, a), *tb = tok(v, b);
        size_t la = strlen(ta), lb = strlen(tb);
        if (la + lb > MAX_PIECE || !alternates(ta, la, tb))
            continue;
        memcpy(s, ta, la);
        memcpy(s + la, tb, lb + 1);
        if (*find_slot(v, s))
            continue;
        uint32_t id = add_token(v, s, TOK_NORMAL);
        v->left[v->n_left++] = id;
        if (word || starts_word(v, ta))
            v->words[v->n_words++] = id;
        if (v->lower[a]) {
            v->right[v->n_right++] = id;
            v->lower[id] = true;
        }
        if (v->merges)
            snprintf(v->merges + (size_t)v->n_merges++ * MERGE_SLOT, MERGE_SLOT, "%s %s", ta, tb);
    }
    return 0;
}

uint32_t rl_synth_vocab_min(rl_synth_vocab kind) {
    if (kind != RL_SYNTH_VOCAB_SPM)
        return TEKKEN_CONTROLS + 256;
    return 3 + 256 + 1 + 52 + (uint32_t)strlen(SPM_EXTRA_CHARS);
}

/* Pointers to n fixed-size slots, for the writer's string-array call. */
static const char **slot_ptrs(const char *base, size_t slot, uint32_t n) {
    const char **p = malloc((n ? n : 1) * sizeof *p);
    for (uint32_t i = 0; p && i < n; i++)
        p[i] = base + i * slot;
    return p;
}

static int emit(vocab *v, gguf_writer *w) {
    bool tekken = v->kind != RL_SYNTH_VOCAB_SPM;
    const char **toks = slot_ptrs(v->text, SLOT, v->n);
    const char **merges = tekken ? slot_ptrs(v->merges, MERGE_SLOT, v->n_merges) : NULL;
    if (!toks || (tekken && !merges)) {
        free(toks);
        return -1;
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", tekken ? "gpt2" : "llama");
    if (tekken)
        gguf_writer_set_str(w, "tokenizer.ggml.pre", "tekken");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, v->n);
    if (!tekken)
        gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, v->score, v->n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, v->type, v->n);
    if (tekken)
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, v->n_merges);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    if (tekken)
        gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", TEKKEN_PAD);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    free(toks);
    free(merges);
    return 0;
}

int rl_synth_vocab_add(gguf_writer *w, rl_synth_vocab kind, uint32_t n_vocab, char *err, size_t errlen) {
    if (n_vocab < rl_synth_vocab_min(kind)) {
        snprintf(err, errlen, "vocabulary of %u is too small for this tokenizer (at least %u)", n_vocab,
                 rl_synth_vocab_min(kind));
        return -1;
    }
    vocab v;
    if (vocab_init(&v, kind, n_vocab) < 0) {
        snprintf(err, errlen, "out of memory building a vocabulary of %u", n_vocab);
        return -1;
    }
    if (kind != RL_SYNTH_VOCAB_SPM)
        add_tekken_base(&v);
    else
        add_spm_base(&v);
    seed_pools(&v);
    int rc = grow_pieces(&v);
    if (rc < 0)
        snprintf(err, errlen, "could not grow %u distinct pieces of at most %d bytes", n_vocab, MAX_PIECE);
    else if ((rc = emit(&v, w)) < 0)
        snprintf(err, errlen, "out of memory writing the vocabulary");
    vocab_free(&v);
    return rc;
}
