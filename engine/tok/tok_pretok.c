/* Pre-tokenizer patterns of byte-level BPE, matched by hand instead of with a
 * regex engine. Each function below follows one alternative of the pattern,
 * including the backtracking a regex engine would do, so the pieces are the
 * ones the reference tokenizers (tiktoken for Tekken, the GPT-2 encoder) cut:
 *
 * tekken: [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+
 *        |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*
 *        |\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * Bytes that are not valid UTF-8 form units of their own that are neither
 * letter, number nor space, so they travel with punctuation. */
#include <assert.h>
#include <stdlib.h>
#include "tok_internal.h"
#include "unicode_tables.h"
#include "utf8.h"

int rl_units_init(rl_units *u, const char *text, size_t len) {
    u->cp = malloc((len + 1) * sizeof *u->cp);
    u->cls = malloc(len + 1);
    u->off = malloc((len + 1) * sizeof *u->off);
    u->n = 0;
    if (!u->cp || !u->cls || !u->off) {
        rl_units_free(u);
        return -1;
    }
    size_t pos = 0;
    while (pos < len) {
        uint32_t cp;
        size_t k = rl_utf8_decode(text + pos, len - pos, &cp);
        u->cp[u->n] = cp;
        u->cls[u->n] = (uint8_t)(cp == RL_UTF8_INVALID ? RL_UC_OTHER : rl_unicode_class(cp));
        u->off[u->n] = pos;
        u->n++;
        pos += k;
    }
    u->off[u->n] = len;
    return 0;
}

void rl_units_free(rl_units *u) {
    free(u->cp);
    free(u->cls);
    free(u->off);
    u->cp = NULL;
    u->cls = NULL;
    u->off = NULL;
    u->n = 0;
}

static bool is_letter(uint8_t c) { return c >= RL_UC_LU && c <= RL_UC_LO; }
static bool is_space(uint8_t c) { return c == RL_UC_SPACE; }
/* [^\s\p{L}\p{N}] */
static bool is_other(uint8_t c) { return !is_letter(c) && c != RL_UC_N && c != RL_UC_SPACE; }
static bool is_crlf(uint32_t cp) { return cp == '\r' || cp == '\n'; }
/* Tekken's "upper" class [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] */
static bool is_upper(uint8_t c) {
    return c == RL_UC_LU || c == RL_UC_LT || c == RL_UC_LM || c == RL_UC_LO || c == RL_UC_M;
}
/* Tekken's "lower" class [\p{Ll}\p{Lm}\p{Lo}\p{M}] */
static bool is_lower(uint8_t c) { return c == RL_UC_LL || c == RL_UC_LM || c == RL_UC_LO || c == RL_UC_M; }

static size_t run_of(const rl_units *u, size_t i, bool (*in)(uint8_t)) {
    while (i < u->n && in(u->cls[i]))
        i++;
    return i;
}

/* Tekken alternatives 1 and 2: an optional [^\r\n\p{L}\p{N}] then letters.
 * The optional prefix is tried first, as a greedy `?` is. Returns the end,
 * or i when neither alternative matches. */
static size_t tekken_word(const rl_units *u, size_t i) {
    bool may_prefix = !is_crlf(u->cp[i]) && !is_letter(u->cls[i]) && u->cls[i] != RL_UC_N;
    /* upper* lower+ : upper* backs off until a lower character follows */
    for (size_t p = may_prefix ? 1 : 0;; p--) {
        size_t j = i + p;
        size_t kmax = run_of(u, j, is_upper) - j;
        for (size_t k = kmax + 1; k-- > 0;) {
            if (j + k < u->n && is_lower(u->cls[j + k]))
                return run_of(u, j + k, is_lower);
        }
        if (p == 0)
            break;
    }
    /* upper+ lower* */
    for (size_t p = may_prefix ? 1 : 0;; p--) {
        size_t j = i + p;
        if (j < u->n && is_upper(u->cls[j]))
            return run_of(u, run_of(u, j, is_upper), is_lower);
        if (p == 0)
            break;
    }
    return i;
}

/* ` ?X+` for the class X; returns i when it does not match. */
static size_t space_then_run(const rl_units *u, size_t i, bool (*in)(uint8_t)) {
    size_t j = u->cp[i] == ' ' ? i + 1 : i;
    if (j < u->n && in(u->cls[j]))
        return run_of(u, j, in);
    return i;
}

/* `\s+(?!\S)|\s+`: whitespace that leaves its last character to the next
 * piece when a non-space follows, unless that character is all there is. */
static size_t trailing_space(const rl_units *u, size_t i) {
    size_t j = run_of(u, i, is_space);
    if (j == u->n || j - i < 2)
        return j;
    return j - 1;
}

static size_t tekken_next(const rl_units *u, size_t i) {
    size_t end = tekken_word(u, i);
    if (end > i)
        return end;
    if (u->cls[i] == RL_UC_N)
        return i + 1;
    end = space_then_run(u, i, is_other);
    if (end > i) {
        while (end < u->n && (is_crlf(u->cp[end]) || u->cp[end] == '/'))
            end++;
        return end;
    }
    assert(is_space(u->cls[i])); /* letters, numbers and the rest matched above */
    /* \s*[\r\n]+ : up to the last line break of the whitespace run */
    size_t j = run_of(u, i, is_space);
    for (size_t k = j; k > i; k--) {
        if (is_crlf(u->cp[k - 1]))
            return k;
    }
    return trailing_space(u, i);
}

/* 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, as in GPT-2) */
static size_t contraction(const rl_units *u, size_t i) {
    if (u->cp[i] != '\'' || i + 1 >= u->n)
        return i;
    uint32_t a = u->cp[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return i + 2;
    if (i + 2 >= u->n)
        return i;
    uint32_t b = u->cp[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return i + 3;
    return i;
}

static bool is_number(uint8_t c) { return c == RL_UC_N; }

static size_t gpt2_next(const rl_units *u, size_t i) {
    size_t end = contraction(u, i);
    if (end > i)
        return end;
    end = space_then_run(u, i, is_letter);
    if (end > i)
        return end;
    end = space_then_run(u, i, is_number);
    if (end > i)
        return end;
    end = space_then_run(u, i, is_other);
    if (end > i)
        return end;
    return trailing_space(u, i);
}

size_t rl_pretok_next(rl_pretok pre, const rl_units *u, size_t i) {
    size_t end = pre == RL_PRE_TEKKEN ? tekken_next(u, i) : gpt2_next(u, i);
    assert(end > i);
    return end;
}
