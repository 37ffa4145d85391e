/* SentencePiece encoding the way llama.cpp does it for `llama` vocabularies:
 * spaces become U+2581 (with one prefixed when asked), the text is split into
 * characters, neighbouring symbols merge while the merged text is a token,
 * highest score first, and a character with no token of its own falls back to
 * its bytes as <0xNN> tokens. Only normal and user-defined tokens take part in
 * merging, as in SentencePiece, so text never merges into a control token. */
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"
#include "utf8.h"

static const char SPACE_MARK[] = "\xE2\x96\x81"; /* U+2581, the SentencePiece space */

static bool spm_pair(const rl_tokenizer *t, const char *text, const rl_tok_sym *l, const rl_tok_sym *r, double *prio,
                     int32_t *id) {
    int32_t m = rl_tok_map_find(t, &t->by_text, text + l->off, l->len + r->len);
    if (m < 0 || !rl_tok_is_text(t, m))
        return false;
    *prio = t->score ? t->score[m] : 0.0;
    *id = m;
    return true;
}

/* A symbol with no token: its bytes as <0xNN> tokens, or the unknown token
 * for the whole symbol when the vocabulary lacks byte tokens. */
static int emit_fallback(const rl_tokenizer *t, const unsigned char *s, size_t len, rl_idvec *out) {
    for (size_t k = 0; k < len; k++) {
        if (t->byte_tok[s[k]] < 0)
            return t->unk >= 0 ? rl_idvec_push(out, t->unk) : -1;
    }
    for (size_t k = 0; k < len; k++) {
        if (rl_idvec_push(out, t->byte_tok[s[k]]) != 0)
            return -1;
    }
    return 0;
}

/* Copies text with spaces escaped; returns the escaped length. */
static size_t escape_spaces(const char *text, size_t len, bool space_prefix, char *out) {
    size_t n = 0;
    if (space_prefix) {
        memcpy(out, SPACE_MARK, 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(out + n, SPACE_MARK, 3);
            n += 3;
        } else {
            out[n++] = text[i];
        }
    }
    return n;
}

int rl_tok_spm_encode(const rl_tokenizer *t, const char *text, size_t len, bool space_prefix, rl_idvec *out) {
    if (len == 0)
        return 0;
    char *buf = malloc(3 * (len + 1));
    rl_tok_sym *syms = malloc((len + 1) * sizeof *syms);
    int rc = -1;
    if (!buf || !syms)
        goto done;
    size_t n = escape_spaces(text, len, space_prefix, buf);

    size_t n_syms = 0;
    for (size_t pos = 0; pos < n;) {
        uint32_t cp;
        size_t k = rl_utf8_decode(buf + pos, n - pos, &cp);
        int32_t id = rl_tok_map_find(t, &t->by_text, buf + pos, k);
        syms[n_syms] = (rl_tok_sym){.off = (uint32_t)pos,
                                    .len = (uint32_t)k,
                                    .id = rl_tok_is_text(t, id) ? id : -1,
                                    .prev = (int32_t)n_syms - 1,
                                    .next = (int32_t)n_syms + 1};
        n_syms++;
        pos += k;
    }
    syms[n_syms - 1].next = -1;
    if (rl_tok_merge(t, buf, syms, n_syms, spm_pair) != 0)
        goto done;

    for (int32_t i = 0; i >= 0; i = syms[i].next) {
        const rl_tok_sym *s = &syms[i];
        int err =
            s->id >= 0 ? rl_idvec_push(out, s->id) : emit_fallback(t, (const unsigned char *)buf + s->off, s->len, out);
        if (err != 0)
            goto done;
    }
    rc = 0;
done:
    free(buf);
    free(syms);
    return rc;
}
