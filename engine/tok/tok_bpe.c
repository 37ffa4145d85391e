/* Byte-level BPE (GGUF `gpt2` vocabularies): the text is cut into pieces by
 * the pre-tokenizer pattern, each byte of a piece becomes the printable
 * character GPT-2 assigns to it (the vocabulary is written in those), and
 * neighbouring symbols merge by the rank of their rule in
 * tokenizer.ggml.merges, lowest first. With ignore_merges (Tekken, as in
 * tiktoken) a piece that is a whole token is taken without merging. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"
#include "utf8.h"

/* GPT-2 keeps the printable Latin-1 bytes as themselves and moves the other
 * 68, in byte order, to U+0100 onwards: 0x00-0x20 (33 bytes), 0x7F-0xA0 (34)
 * and 0xAD. */
uint32_t rl_bpe_byte_to_cp(uint8_t b) {
    if (b <= 0x20)
        return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x121 + (b - 0x7F);
    if (b == 0xAD)
        return 0x143;
    return b;
}

int rl_bpe_cp_to_byte(uint32_t cp) {
    if (cp >= 0x100 && cp <= 0x120)
        return (int)(cp - 0x100);
    if (cp >= 0x121 && cp <= 0x142)
        return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143)
        return 0xAD;
    if (cp < 0x100 && rl_bpe_byte_to_cp((uint8_t)cp) == cp)
        return (int)cp;
    return -1;
}

static uint64_t merge_key(int32_t l, int32_t r) { return ((uint64_t)(uint32_t)(l + 1) << 32) | (uint32_t)(r + 1); }

static uint32_t merge_hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (uint32_t)key;
}

static const rl_merge_slot *merge_find(const rl_tokenizer *t, int32_t l, int32_t r) {
    uint64_t key = merge_key(l, r);
    for (uint32_t i = merge_hash(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const rl_merge_slot *s = &t->merges[i];
        if (s->key == key)
            return s;
        if (s->key == 0)
            return NULL;
    }
}

/* Adds one rule unless its pair is already there (the earlier line ranks lower). */
static void merge_insert(rl_tokenizer *t, int32_t l, int32_t r, uint32_t rank, int32_t result) {
    uint64_t key = merge_key(l, r);
    for (uint32_t i = merge_hash(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        rl_merge_slot *s = &t->merges[i];
        if (s->key == key)
            return;
        if (s->key == 0) {
            *s = (rl_merge_slot){.key = key, .rank = rank, .result = result};
            return;
        }
    }
}

/* Splits one merges line "left right" and records it when both halves and
 * their concatenation are tokens; other lines can never apply. */
static int add_merge_line(rl_tokenizer *t, gguf_str line, uint32_t rank, char **buf, size_t *cap) {
    /* The split is at the first space after the first byte: a half may itself
     * start with a space in vocabularies that keep raw spaces. */
    const char *sp = line.len > 1 ? memchr(line.ptr + 1, ' ', line.len - 1) : NULL;
    if (!sp)
        return 0;
    size_t ll = (size_t)(sp - line.ptr), rl = line.len - ll - 1;
    int32_t l = rl_tok_map_find(t, &t->by_text, line.ptr, ll);
    int32_t r = rl_tok_map_find(t, &t->by_text, sp + 1, rl);
    if (l < 0 || r < 0)
        return 0;
    if (ll + rl > *cap) {
        char *nb = realloc(*buf, ll + rl);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = ll + rl;
    }
    memcpy(*buf, line.ptr, ll);
    memcpy(*buf + ll, sp + 1, rl);
    int32_t m = rl_tok_map_find(t, &t->by_text, *buf, ll + rl);
    if (m >= 0)
        merge_insert(t, l, r, rank, m);
    return 0;
}

int rl_tok_bpe_load(rl_tokenizer *t, const gguf_file *f, char *err, size_t errlen) {
    static const char key[] = "tokenizer.ggml.merges";
    gguf_type elem;
    uint64_t n;
    const void *data;
    if (!gguf_get_arr(f, key, &elem, &n, &data) || elem != GGUF_STRING) {
        snprintf(err, errlen, "%s: missing or not an array of strings (a gpt2 tokenizer needs it)", key);
        return -1;
    }
    if (n > UINT32_MAX / 4) {
        snprintf(err, errlen, "%s: %llu rules is more than relais supports", key, (unsigned long long)n);
        return -1;
    }
    uint32_t slots = 16;
    while (slots < 2 * n)
        slots *= 2;
    t->merges = calloc(slots, sizeof *t->merges);
    if (!t->merges) {
        snprintf(err, errlen, "out of memory for %llu merges", (unsigned long long)n);
        return -1;
    }
    t->merge_mask = slots - 1;
    char *buf = NULL;
    size_t cap = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (add_merge_line(t, gguf_arr_str(f, key, i), (uint32_t)i, &buf, &cap) != 0) {
            free(buf);
            snprintf(err, errlen, "out of memory reading %s", key);
            return -1;
        }
    }
    free(buf);
    for (unsigned b = 0; b < 256; b++) {
        char u[4];
        size_t k = rl_utf8_encode(rl_bpe_byte_to_cp((uint8_t)b), u);
        t->byte_tok[b] = rl_tok_map_find(t, &t->by_text, u, k);
    }
    return 0;
}

static bool bpe_pair(const rl_tokenizer *t, const char *text, const rl_tok_sym *l, const rl_tok_sym *r, double *prio,
                     int32_t *id) {
    if (l->id < 0 || r->id < 0)
        return false;
    const rl_merge_slot *m = merge_find(t, l->id, r->id);
    if (!m)
        return false;
    *prio = -(double)m->rank;
    *id = m->result;
    return true;
}

/* Encodes one pre-tokenizer piece. map and syms have room for 2 and 1 entries
 * per byte of the piece. */
static int encode_piece(const rl_tokenizer *t, const unsigned char *s, size_t len, char *map, rl_tok_sym *syms,
                        rl_idvec *out) {
    size_t n = 0;
    for (size_t k = 0; k < len; k++) {
        size_t w = rl_utf8_encode(rl_bpe_byte_to_cp(s[k]), map + n);
        syms[k] = (rl_tok_sym){.off = (uint32_t)n,
                               .len = (uint32_t)w,
                               .id = t->byte_tok[s[k]],
                               .prev = (int32_t)k - 1,
                               .next = (int32_t)k + 1};
        n += w;
    }
    syms[len - 1].next = -1;
    if (t->ignore_merges) {
        int32_t whole = rl_tok_map_find(t, &t->by_text, map, n);
        if (rl_tok_is_text(t, whole))
            return rl_idvec_push(out, whole);
    }
    if (rl_tok_merge(t, map, syms, len, bpe_pair) != 0)
        return -1;
    for (int32_t i = 0; i >= 0; i = syms[i].next) {
        int32_t id = syms[i].id >= 0 ? syms[i].id : t->unk;
        if (id < 0 || rl_idvec_push(out, id) != 0)
            return -1;
    }
    return 0;
}

int rl_tok_bpe_encode(const rl_tokenizer *t, const char *text, size_t len, rl_idvec *out) {
    if (len == 0)
        return 0;
    rl_units u;
    if (rl_units_init(&u, text, len) != 0)
        return -1;
    char *map = malloc(2 * len);
    rl_tok_sym *syms = malloc(len * sizeof *syms);
    int rc = map && syms ? 0 : -1;
    for (size_t i = 0; i < u.n && rc == 0;) {
        size_t end = rl_pretok_next(t->pre, &u, i);
        rc = encode_piece(t, (const unsigned char *)text + u.off[i], u.off[end] - u.off[i], map, syms, out);
        i = end;
    }
    free(map);
    free(syms);
    rl_units_free(&u);
    return rc;
}
