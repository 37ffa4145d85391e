/* Decoding: the bytes each token stands for, and the streaming decoder that
 * turns a sequence of ids into text that is always valid UTF-8. A character
 * whose bytes arrive in several tokens (byte-fallback tokens, or byte-level
 * BPE tokens that end mid-character) is held back until it is complete; what
 * can never complete is replaced with U+FFFD, one per maximal subpart. */
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"
#include "util.h"
#include "utf8.h"

/* Appends into a bounded buffer while counting the full length. */
typedef struct {
    char *buf;  /* destination */
    size_t cap; /* bytes available in buf */
    size_t len; /* bytes produced so far (may exceed cap) */
} sink;

static void put(sink *s, const char *p, size_t n) {
    if (s->len < s->cap)
        memcpy(s->buf + s->len, p, n < s->cap - s->len ? n : s->cap - s->len);
    s->len += n;
}

/* "<0xNN>" -> NN, or -1. */
static int byte_of(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0'
            : c >= 'A' && c <= 'F'   ? c - 'A' + 10
            : c >= 'a' && c <= 'f'   ? c - 'a' + 10
                                     : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A normal SentencePiece token: U+2581 stands for a space. */
static void put_spm(sink *o, const char *s, size_t len) {
    size_t start = 0;
    for (size_t i = 0; i + 3 <= len; i++) {
        if (memcmp(s + i, "\xE2\x96\x81", 3) != 0)
            continue;
        put(o, s + start, i - start);
        put(o, " ", 1);
        start = i + 3;
        i += 2;
    }
    put(o, s + start, len - start);
}

/* A normal byte-level BPE token: each character stands for one byte; a
 * character outside the mapping (not produced by the encoder) is kept. */
static void put_bpe(sink *o, const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = rl_utf8_decode(s + i, len - i, &cp);
        int b = cp == RL_UTF8_INVALID ? -1 : rl_bpe_cp_to_byte(cp);
        if (b >= 0) {
            char c = (char)b;
            put(o, &c, 1);
        } else {
            put(o, s + i, k);
        }
        i += k;
    }
}

int rl_tok_piece(const rl_tokenizer *t, int32_t id, bool show_control, char *buf, size_t cap) {
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return -1;
    const char *s = rl_tok_text(t, id);
    size_t len = t->text_len[id];
    sink o = {buf, cap, 0};
    int b;
    switch (t->type[id]) {
    case RL_TT_CONTROL:
    case RL_TT_UNKNOWN:
        if (show_control)
            put(&o, s, len);
        break;
    case RL_TT_UNUSED:
        break;
    case RL_TT_USER:
        put(&o, s, len);
        break;
    case RL_TT_BYTE:
        if ((b = byte_of(s, len)) >= 0) {
            char c = (char)b;
            put(&o, &c, 1);
        } else {
            put(&o, s, len);
        }
        break;
    default:
        if (t->kind == RL_TOK_SPM)
            put_spm(&o, s, len);
        else
            put_bpe(&o, s, len);
    }
    if (o.len < cap)
        buf[o.len] = '\0';
    return (int)o.len;
}

/* ---- streaming ---- */

struct rl_tok_stream {
    const rl_tokenizer *tok; /* not owned */
    bool show_control;       /* control tokens give their text */
    bool started;            /* some piece produced bytes already */
    char *held;              /* decoded bytes not handed out yet */
    size_t n_held;           /* bytes in held */
    size_t cap_held;         /* bytes allocated for held */
    char *piece;             /* scratch for one token's piece, max_piece + 1 bytes */
};

rl_tok_stream *rl_tok_stream_new(const rl_tokenizer *t, bool show_control) {
    rl_tok_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->tok = t;
    s->show_control = show_control;
    s->piece = malloc((size_t)t->max_piece + 1);
    if (!s->piece)
        rl_tok_stream_destroy(&s);
    return s;
}

void rl_tok_stream_destroy(rl_tok_stream **sp) {
    rl_tok_stream *s = *sp;
    if (!s)
        return;
    free(s->held);
    free(s->piece);
    free(s);
    *sp = NULL;
}

static int hold(rl_tok_stream *s, const char *p, size_t n) {
    if (n == 0)
        return 0;
    char *h = rl_grow(s->held, &s->cap_held, s->n_held + n, 1, 64);
    if (!h)
        return -1;
    s->held = h;
    memcpy(s->held + s->n_held, p, n);
    s->n_held += n;
    return 0;
}

/* Moves complete characters from held to out (cap - 1 bytes at most, then a
 * NUL). Unless final, a character that later bytes may still complete stays
 * held; so does whatever does not fit. */
static size_t deliver(rl_tok_stream *s, char *out, size_t cap, bool final) {
    if (cap == 0)
        return 0;
    size_t end = final ? s->n_held : rl_utf8_complete_prefix(s->held, s->n_held);
    size_t pos = 0, w = 0;
    while (pos < end) {
        uint32_t cp;
        size_t k = rl_utf8_decode(s->held + pos, end - pos, &cp);
        const char *src = cp == RL_UTF8_INVALID ? "\xEF\xBF\xBD" : s->held + pos;
        size_t n = cp == RL_UTF8_INVALID ? 3 : k;
        if (w + n > cap - 1)
            break;
        memcpy(out + w, src, n);
        w += n;
        pos += k;
    }
    out[w] = '\0';
    if (pos > 0) {
        memmove(s->held, s->held + pos, s->n_held - pos);
        s->n_held -= pos;
    }
    return w;
}

size_t rl_tok_stream_feed(rl_tok_stream *s, int32_t id, char *out, size_t cap) {
    int n = rl_tok_piece(s->tok, id, s->show_control, s->piece, (size_t)s->tok->max_piece + 1);
    if (n > 0) {
        const char *p = s->piece;
        /* SentencePiece's add-space-prefix put this space there; the text never had it. */
        if (s->tok->kind == RL_TOK_SPM && s->tok->add_space_prefix && !s->started && p[0] == ' ') {
            p++;
            n--;
        }
        s->started = true;
        /* Out of memory drops the piece: this call has no way to report it. */
        if (hold(s, p, (size_t)n) != 0)
            return deliver(s, out, cap, false);
    }
    return deliver(s, out, cap, false);
}

size_t rl_tok_stream_flush(rl_tok_stream *s, char *out, size_t cap) { return deliver(s, out, cap, true); }
