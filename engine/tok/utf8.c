/* UTF-8 decoding, encoding and tail checks (see utf8.h), plus the lookup into
 * the generated Unicode class table. Validation follows RFC 3629 exactly, so
 * overlong forms and surrogates count as invalid bytes: a tokenizer keeps
 * them as raw bytes and a decoder replaces them with U+FFFD. */
#include "utf8.h"
#include "unicode_tables.h"

/* Sequence length announced by a lead byte, 0 for a byte that cannot lead. */
static size_t lead_length(unsigned char b) {
    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        return 2;
    if (b >= 0xE0 && b <= 0xEF)
        return 3;
    if (b >= 0xF0 && b <= 0xF4)
        return 4;
    return 0;
}

/* Whether b may follow lead as its second byte: the lead decides the range,
 * which is how overlong forms, surrogates and values past U+10FFFF are
 * excluded without decoding. */
static int second_ok(unsigned char lead, unsigned char b) {
    switch (lead) {
    case 0xE0:
        return b >= 0xA0 && b <= 0xBF;
    case 0xED:
        return b >= 0x80 && b <= 0x9F;
    case 0xF0:
        return b >= 0x90 && b <= 0xBF;
    case 0xF4:
        return b >= 0x80 && b <= 0x8F;
    default:
        return b >= 0x80 && b <= 0xBF;
    }
}

/* Number of leading bytes of s[0..n) that fit the sequence its lead byte
 * announces (at most that length). */
static size_t valid_run(const unsigned char *s, size_t n, size_t need) {
    size_t k = 1;
    while (k < need && k < n) {
        int ok = k == 1 ? second_ok(s[0], s[1]) : (s[k] & 0xC0) == 0x80;
        if (!ok)
            break;
        k++;
    }
    return k;
}

size_t rl_utf8_decode(const char *str, size_t n, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    size_t need = lead_length(s[0]);
    if (need == 1) {
        *cp = s[0];
        return 1;
    }
    if (need == 0) {
        *cp = RL_UTF8_INVALID;
        return 1;
    }
    size_t got = valid_run(s, n, need);
    if (got < need) {
        *cp = RL_UTF8_INVALID;
        return got;
    }
    uint32_t v = s[0] & (0x7F >> need);
    for (size_t k = 1; k < need; k++)
        v = (v << 6) | (s[k] & 0x3F);
    *cp = v;
    return need;
}

size_t rl_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t rl_utf8_complete_prefix(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    /* Only the last lead byte can start an unfinished character; it is at
     * most 3 bytes from the end. */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        size_t start = n - back;
        if ((s[start] & 0xC0) == 0x80)
            continue;
        size_t need = lead_length(s[start]);
        if (need > back && valid_run(s + start, back, need) == back)
            return start;
        return n;
    }
    return n;
}

rl_uclass rl_unicode_class(uint32_t cp) {
    if (cp > 0x10FFFF)
        return RL_UC_OTHER;
    size_t lo = 0, hi = rl_unicode_n_runs; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((rl_unicode_runs[mid] >> 4) <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return (rl_uclass)(rl_unicode_runs[lo] & 0xF);
}
