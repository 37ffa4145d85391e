/* Tokenizer construction from GGUF metadata and encoding entry point.
 *
 * Everything needed later is copied out of the file (token texts into one
 * arena, types, scores, merge rules), so the GGUF may be closed once the
 * tokenizer exists. Encoding first cuts the input at the texts of special
 * tokens (user-defined tokens always, control and unknown ones only when the
 * caller asks, as llama.cpp does), then hands each stretch of ordinary text
 * to the SentencePiece or BPE encoder. Decoding lives in tok_decode.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"
#include "util.h"

/* ---- text -> id maps ---- */

static uint32_t text_hash(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static const char *tok_text(const rl_tokenizer *t, int32_t id) { return t->arena + t->text_off[id]; }

int32_t rl_tok_map_find(const rl_tokenizer *t, const rl_tok_map *m, const char *s, size_t len) {
    for (uint32_t i = text_hash(s, len) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t v = m->slots[i];
        if (v == 0)
            return -1;
        int32_t id = (int32_t)(v - 1);
        if (t->text_len[id] == len && memcmp(tok_text(t, id), s, len) == 0)
            return id;
    }
}

static int map_init(rl_tok_map *m, uint32_t n) {
    uint32_t slots = 16;
    while (slots < 2 * (uint64_t)n)
        slots *= 2;
    m->slots = calloc(slots, sizeof *m->slots);
    m->mask = slots - 1;
    return m->slots ? 0 : -1;
}

/* Inserts id; a later token with the same text replaces the earlier one. */
static void map_put(const rl_tokenizer *t, rl_tok_map *m, int32_t id) {
    const char *s = tok_text(t, id);
    size_t len = t->text_len[id];
    for (uint32_t i = text_hash(s, len) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t v = m->slots[i];
        if (v == 0 || (t->text_len[v - 1] == len && memcmp(tok_text(t, (int32_t)(v - 1)), s, len) == 0)) {
            m->slots[i] = (uint32_t)id + 1;
            return;
        }
    }
}

int rl_idvec_push(rl_idvec *v, int32_t id) {
    int32_t *ids = rl_grow(v->ids, &v->cap, v->n + 1, sizeof *ids, 32);
    if (!ids)
        return -1;
    v->ids = ids;
    v->ids[v->n++] = id;
    return 0;
}

bool rl_tok_is_text(const rl_tokenizer *t, int32_t id) {
    return id >= 0 && (uint32_t)id < t->n_vocab && (t->type[id] == RL_TT_NORMAL || t->type[id] == RL_TT_USER);
}

/* ---- loading ---- */

/* Copies the token texts and types. */
static int load_tokens(rl_tokenizer *t, const gguf_file *f, char *err, size_t errlen) {
    gguf_type elem;
    uint64_t n;
    const void *data;
    if (!gguf_get_arr(f, "tokenizer.ggml.tokens", &elem, &n, &data) || elem != GGUF_STRING || n == 0) {
        snprintf(err, errlen, "tokenizer.ggml.tokens: missing, empty or not an array of strings");
        return -1;
    }
    if (n >= INT32_MAX) {
        snprintf(err, errlen, "tokenizer.ggml.tokens: %llu tokens is more than relais supports", (unsigned long long)n);
        return -1;
    }
    t->n_vocab = (uint32_t)n;
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++)
        total += gguf_arr_str(f, "tokenizer.ggml.tokens", i).len + 1;
    if (total > UINT32_MAX) {
        snprintf(err, errlen, "tokenizer.ggml.tokens: %llu bytes of token text is more than relais supports",
                 (unsigned long long)total);
        return -1;
    }
    t->arena = malloc(total);
    t->text_off = malloc(n * sizeof *t->text_off);
    t->text_len = malloc(n * sizeof *t->text_len);
    t->type = malloc(n);
    t->eog = calloc(n, 1);
    if (!t->arena || !t->text_off || !t->text_len || !t->type || !t->eog) {
        snprintf(err, errlen, "out of memory for %llu tokens", (unsigned long long)n);
        return -1;
    }
    uint32_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        gguf_str s = gguf_arr_str(f, "tokenizer.ggml.tokens", i);
        memcpy(t->arena + off, s.ptr, s.len);
        t->arena[off + s.len] = '\0';
        t->text_off[i] = off;
        t->text_len[i] = (uint32_t)s.len;
        if (s.len > t->max_piece)
            t->max_piece = (uint32_t)s.len;
        off += (uint32_t)s.len + 1;
    }
    return 0;
}

/* Token types; without the key every token is normal, and an undefined type
 * counts as normal too. */
static int load_types(rl_tokenizer *t, const gguf_file *f, char *err, size_t errlen) {
    uint64_t n;
    memset(t->type, RL_TT_NORMAL, t->n_vocab);
    if (!gguf_get_arr(f, "tokenizer.ggml.token_type", NULL, &n, NULL))
        return 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        int64_t v;
        if (n != t->n_vocab || !gguf_arr_i64(f, "tokenizer.ggml.token_type", i, &v)) {
            snprintf(err, errlen, "tokenizer.ggml.token_type: %u integers expected, one per token", t->n_vocab);
            return -1;
        }
        t->type[i] = v >= RL_TT_NORMAL && v <= RL_TT_BYTE ? (uint8_t)v : RL_TT_NORMAL;
    }
    return 0;
}

/* SentencePiece merge scores; without the key all merges score the same. */
static int load_scores(rl_tokenizer *t, const gguf_file *f, char *err, size_t errlen) {
    uint64_t n;
    if (!gguf_get_arr(f, "tokenizer.ggml.scores", NULL, &n, NULL))
        return 0;
    t->score = malloc(t->n_vocab * sizeof *t->score);
    if (!t->score) {
        snprintf(err, errlen, "out of memory for token scores");
        return -1;
    }
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        if (n != t->n_vocab || !gguf_arr_f32(f, "tokenizer.ggml.scores", i, &t->score[i])) {
            snprintf(err, errlen, "tokenizer.ggml.scores: %u numbers expected, one per token", t->n_vocab);
            return -1;
        }
    }
    return 0;
}

/* A special id from metadata: *out keeps its default when the key is absent,
 * and -1 or 0xFFFFFFFF (how converters write "none") means none. */
static int load_id(const rl_tokenizer *t, const gguf_file *f, const char *key, int32_t *out, char *err, size_t errlen) {
    if (gguf_find_key(f, key) < 0)
        return 0;
    int64_t v;
    if (gguf_get_i64(f, key, &v) && (v == -1 || v == UINT32_MAX)) {
        *out = -1;
        return 0;
    }
    if (!gguf_get_i64(f, key, &v) || v < 0 || v >= t->n_vocab) {
        snprintf(err, errlen, "%s: not a token id of this vocabulary (%u tokens)", key, t->n_vocab);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

static int cmp_len_desc(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Indexes the tokens whose text is looked for in the input, and marks the
 * tokens that end generation. */
static int index_special(rl_tokenizer *t) {
    static const char *const end_of_turn[] = {
        "</s>",          "<|im_end|>",    "<|eot_id|>",      "<|eom_id|>", "<|end|>",
        "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
    };
    if (map_init(&t->special, t->n_vocab) != 0)
        return -1;
    t->special_lens = malloc(t->n_vocab * sizeof *t->special_lens);
    if (!t->special_lens)
        return -1;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        uint8_t ty = t->type[i];
        uint32_t len = t->text_len[i];
        if ((ty != RL_TT_CONTROL && ty != RL_TT_USER && ty != RL_TT_UNKNOWN) || len == 0)
            continue;
        map_put(t, &t->special, (int32_t)i);
        unsigned char c0 = (unsigned char)tok_text(t, (int32_t)i)[0];
        t->special_first[c0 / 8] |= (uint8_t)(1u << (c0 % 8));
        t->special_lens[t->n_special_lens++] = len;
    }
    qsort(t->special_lens, t->n_special_lens, sizeof *t->special_lens, cmp_len_desc);
    size_t k = 0;
    for (size_t i = 0; i < t->n_special_lens; i++) {
        if (k == 0 || t->special_lens[k - 1] != t->special_lens[i])
            t->special_lens[k++] = t->special_lens[i];
    }
    t->n_special_lens = k;
    if (t->eos >= 0)
        t->eog[t->eos] = 1;
    for (size_t i = 0; i < sizeof end_of_turn / sizeof end_of_turn[0]; i++) {
        int32_t id = rl_tok_map_find(t, &t->by_text, end_of_turn[i], strlen(end_of_turn[i]));
        if (id >= 0)
            t->eog[id] = 1;
    }
    return 0;
}

/* Reads the model kind, the pre-tokenizer and the flags with their defaults. */
static int load_kind(rl_tokenizer *t, const gguf_file *f, char *err, size_t errlen) {
    gguf_str model, pre = {"", 0};
    if (!gguf_get_str(f, "tokenizer.ggml.model", &model)) {
        snprintf(err, errlen, "tokenizer.ggml.model: missing (not a GGUF with a tokenizer?)");
        return -1;
    }
    gguf_get_str(f, "tokenizer.ggml.pre", &pre);
    snprintf(t->pre_name, sizeof t->pre_name, "%.*s", (int)pre.len, pre.ptr);
    if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0) {
        t->kind = RL_TOK_SPM;
        t->add_bos = true;
        t->bos = 1, t->eos = 2, t->unk = 0; /* llama.cpp's defaults for SentencePiece */
        snprintf(t->kind_name, sizeof t->kind_name, "llama (SentencePiece)");
    } else if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0) {
        t->kind = RL_TOK_BPE;
        bool tekken = strcmp(t->pre_name, "tekken") == 0;
        bool gpt2 = pre.len == 0 || strcmp(t->pre_name, "gpt-2") == 0 || strcmp(t->pre_name, "default") == 0;
        t->pre = tekken ? RL_PRE_TEKKEN : RL_PRE_GPT2;
        t->ignore_merges = t->add_bos = tekken;
        snprintf(t->kind_name, sizeof t->kind_name, "gpt2 (byte-level BPE, pre=%s%s)", pre.len ? t->pre_name : "gpt-2",
                 tekken || gpt2 ? "" : ", GPT-2 pattern");
    } else {
        snprintf(err, errlen, "tokenizer.ggml.model: '%.*s' is not supported (relais reads llama and gpt2)",
                 (int)(model.len > 64 ? 64 : model.len), model.ptr);
        return -1;
    }
    gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos);
    t->add_space_prefix = t->kind == RL_TOK_SPM;
    gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
    return 0;
}

/* SentencePiece byte tokens are spelled <0xNN> with upper-case hex. */
static void find_byte_tokens(rl_tokenizer *t) {
    for (unsigned b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_tok[b] = rl_tok_map_find(t, &t->by_text, name, 6);
    }
}

static int load(rl_tokenizer *t, const gguf_file *f, char *err, size_t errlen) {
    if (load_kind(t, f, err, errlen) != 0 || load_tokens(t, f, err, errlen) != 0 || load_types(t, f, err, errlen) != 0)
        return -1;
    if (t->kind == RL_TOK_SPM && t->n_vocab < 3)
        t->bos = t->eos = t->unk = -1;
    if (load_id(t, f, "tokenizer.ggml.bos_token_id", &t->bos, err, errlen) != 0 ||
        load_id(t, f, "tokenizer.ggml.eos_token_id", &t->eos, err, errlen) != 0 ||
        load_id(t, f, "tokenizer.ggml.unknown_token_id", &t->unk, err, errlen) != 0)
        return -1;
    if (map_init(&t->by_text, t->n_vocab) != 0) {
        snprintf(err, errlen, "out of memory indexing %u tokens", t->n_vocab);
        return -1;
    }
    for (uint32_t i = 0; i < t->n_vocab; i++)
        map_put(t, &t->by_text, (int32_t)i);
    if (index_special(t) != 0) {
        snprintf(err, errlen, "out of memory indexing special tokens");
        return -1;
    }
    if (t->kind == RL_TOK_BPE)
        return rl_tok_bpe_load(t, f, err, errlen);
    find_byte_tokens(t);
    return load_scores(t, f, err, errlen);
}

rl_tokenizer *rl_tok_new(const gguf_file *f, char *err, size_t errlen) {
    rl_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->bos = t->eos = t->unk = -1;
    if (load(t, f, err, errlen) != 0)
        rl_tok_destroy(&t);
    return t;
}

void rl_tok_destroy(rl_tokenizer **tp) {
    rl_tokenizer *t = *tp;
    if (!t)
        return;
    free(t->arena);
    free(t->text_off);
    free(t->text_len);
    free(t->type);
    free(t->score);
    free(t->eog);
    free(t->by_text.slots);
    free(t->special.slots);
    free(t->special_lens);
    free(t->merges);
    free(t);
    *tp = NULL;
}

/* ---- queries ---- */

rl_tok_kind rl_tok_kind_of(const rl_tokenizer *t) { return t->kind; }
const char *rl_tok_kind_name(const rl_tokenizer *t) { return t->kind_name; }
const char *rl_tok_pre(const rl_tokenizer *t) { return t->pre_name; }
uint32_t rl_tok_n_vocab(const rl_tokenizer *t) { return t->n_vocab; }
int32_t rl_tok_bos(const rl_tokenizer *t) { return t->bos; }
int32_t rl_tok_eos(const rl_tokenizer *t) { return t->eos; }
bool rl_tok_add_bos(const rl_tokenizer *t) { return t->add_bos; }

int32_t rl_tok_find(const rl_tokenizer *t, const char *text) {
    return rl_tok_map_find(t, &t->by_text, text, strlen(text));
}

static bool valid_id(const rl_tokenizer *t, int32_t id) { return id >= 0 && (uint32_t)id < t->n_vocab; }

bool rl_tok_is_control(const rl_tokenizer *t, int32_t id) { return valid_id(t, id) && t->type[id] == RL_TT_CONTROL; }

bool rl_tok_is_eog(const rl_tokenizer *t, int32_t id) { return valid_id(t, id) && t->eog[id]; }

const char *rl_tok_text(const rl_tokenizer *t, int32_t id) { return valid_id(t, id) ? tok_text(t, id) : NULL; }

/* ---- encoding ---- */

/* The special token whose text starts s (the longest), or -1. Control and
 * unknown tokens count only with parse_special. */
static int32_t match_special(const rl_tokenizer *t, const char *s, size_t len, bool parse_special) {
    unsigned char c0 = (unsigned char)s[0];
    if (!(t->special_first[c0 / 8] & (1u << (c0 % 8))))
        return -1;
    for (size_t i = 0; i < t->n_special_lens; i++) {
        size_t l = t->special_lens[i];
        if (l > len)
            continue;
        int32_t id = rl_tok_map_find(t, &t->special, s, l);
        if (id >= 0 && (parse_special || t->type[id] == RL_TT_USER))
            return id;
    }
    return -1;
}

/* Ordinary text between special tokens. Every fragment starts the input or
 * follows a special token, and SentencePiece prefixes each with a space
 * then, as llama.cpp does. */
static int encode_fragment(const rl_tokenizer *t, const char *s, size_t len, rl_idvec *out) {
    if (t->kind == RL_TOK_SPM)
        return rl_tok_spm_encode(t, s, len, t->add_space_prefix, out);
    return rl_tok_bpe_encode(t, s, len, out);
}

int rl_tok_encode(const rl_tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special, int32_t **ids,
                  size_t *n_ids) {
    rl_idvec v = {0};
    int rc = len > UINT32_MAX / 4 ? -1 : 0; /* symbol offsets are 32-bit */
    if (rc == 0 && add_bos && t->bos >= 0)
        rc = rl_idvec_push(&v, t->bos);
    size_t start = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        int32_t id = match_special(t, text + pos, len - pos, parse_special);
        if (id < 0) {
            pos++;
            continue;
        }
        if (pos > start)
            rc = encode_fragment(t, text + start, pos - start, &v);
        if (rc == 0)
            rc = rl_idvec_push(&v, id);
        pos += t->text_len[id];
        start = pos;
    }
    if (rc == 0 && start < len)
        rc = encode_fragment(t, text + start, len - start, &v);
    /* An empty result still gets an allocation, so *ids is never NULL on success. */
    if (rc == 0 && !v.ids && !(v.ids = malloc(sizeof *v.ids)))
        rc = -1;
    if (rc != 0) {
        free(v.ids);
        return -1;
    }
    *ids = v.ids;
    *n_ids = v.n;
    return 0;
}
