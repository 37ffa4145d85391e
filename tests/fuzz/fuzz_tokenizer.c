/* libFuzzer harness for the tokenizer (engine/tokenizer*.c) on real
 * vocabularies from the test data: any bytes (valid UTF-8 or not) encoded
 * with the Tekken-shaped byte-level BPE vocabulary and the SentencePiece
 * one (first input byte picks the vocabulary, BOS and special-token
 * parsing), then decoded back through the streaming decoder. For the
 * byte-level vocabulary, decoding the ids of valid UTF-8 encoded without
 * special tokens must give the text back byte for byte. Seeds: corpus/tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gguf.h"
#include "tokenizer.h"
#include "utf8.h"

static const char *const VOCABS[2] = {RELAIS_SHARED_DIR "/models/vocab-tekken-shaped.gguf",
                                      RELAIS_SHARED_DIR "/models/vocab-llama-spm.gguf"};
static gguf_file *g_f[2];
static rl_tokenizer *g_tok[2];

static void vocab_init(void) {
    char err[512];
    if (g_tok[0])
        return;
    for (int i = 0; i < 2; i++)
        if (!(g_f[i] = gguf_open(VOCABS[i], err, sizeof err)) || !(g_tok[i] = rl_tok_new(g_f[i], err, sizeof err))) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", err);
            abort();
        }
}

/* Decodes ids with the streaming decoder into out (cap bytes); the length. */
static size_t decode(const rl_tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap) {
    rl_tok_stream *s = rl_tok_stream_new(t, false);
    size_t len = 0;
    char piece[1024];
    if (!s)
        abort();
    for (size_t i = 0; i < n; i++) {
        size_t k = rl_tok_stream_feed(s, ids[i], piece, sizeof piece);
        if (len + k <= cap)
            memcpy(out + len, piece, k);
        len += k;
    }
    size_t k = rl_tok_stream_flush(s, piece, sizeof piece);
    if (len + k <= cap)
        memcpy(out + len, piece, k);
    len += k;
    rl_tok_stream_destroy(&s);
    return len;
}

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += rl_utf8_decode(s + i, n - i, &cp);
        if (cp == RL_UTF8_INVALID || cp == 0)
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vocab_init();
    if (size == 0)
        return 0;
    const int which = data[0] & 1;
    const bool bos = data[0] & 2, special = data[0] & 4;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    const rl_tokenizer *t = g_tok[which];
    int32_t *ids = NULL;
    size_t n = 0;
    if (rl_tok_encode(t, text, len, bos, special, &ids, &n) != 0)
        abort(); /* only an invalid table or no memory may fail */
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= rl_tok_n_vocab(t))
            abort();
    char *back = malloc(len + 64);
    size_t blen = decode(t, ids, n, back, len + 64);
    if (which == 0 && !bos && !special && valid_utf8(text, len) && (blen != len || memcmp(back, text, len) != 0))
        abort(); /* byte-level BPE is lossless */
    free(back);
    free(ids);
    return 0;
}
