/* UTF-8 helpers shared by the tokenizers and the streaming decoder: decoding
 * that never fails (bytes that form no valid sequence are reported as an
 * invalid unit, so callers can keep the original bytes), encoding, and the
 * questions a streaming decoder asks about a byte buffer's tail. */
#ifndef RELAIS_UTF8_H
#define RELAIS_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define RL_UTF8_INVALID 0xFFFFFFFFu

/* Decodes the character at s (n > 0 bytes available). Returns its length in
 * bytes (1-4) and sets *cp. An invalid or truncated sequence sets
 * *cp = RL_UTF8_INVALID and returns the length of its maximal subpart (the
 * bytes that began a valid sequence, at least 1), the unit that Unicode
 * recommends replacing with one U+FFFD. Overlong forms and surrogates are
 * invalid. */
size_t rl_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Writes cp (<= 0x10FFFF) as UTF-8 into out; returns the length (1-4). */
size_t rl_utf8_encode(uint32_t cp, char out[4]);

/* Length of the longest prefix of s[0..n) that does not end inside a
 * character that further bytes could still complete: the bytes after it
 * (at most 3) are a valid but unfinished sequence. */
size_t rl_utf8_complete_prefix(const char *s, size_t n);

#endif
