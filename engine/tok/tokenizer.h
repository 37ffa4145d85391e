/* Tokenizers read from GGUF metadata: SentencePiece-style (`llama`: scores,
 * U+2581 spaces, <0xNN> byte fallback, add-space-prefix) and byte-level BPE
 * (`gpt2`: merges plus the pre-tokenizer regex named by tokenizer.ggml.pre,
 * at least `tekken` with real Unicode letter-case classes, and the GPT-2
 * default). Works on vocab-only files. */
#ifndef RELAIS_TOKENIZER_H
#define RELAIS_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "gguf.h"

typedef enum { RL_TOK_SPM, RL_TOK_BPE } rl_tok_kind;

typedef struct rl_tokenizer rl_tokenizer;

/* Builds the tokenizer from f's tokenizer.* metadata (f may be closed after).
 * NULL with a message in err when the metadata is missing or inconsistent. */
rl_tokenizer *rl_tok_new(const gguf_file *f, char *err, size_t errlen);
void rl_tok_destroy(rl_tokenizer **t); /* NULLs *t */

rl_tok_kind rl_tok_kind_of(const rl_tokenizer *t);
const char *rl_tok_kind_name(const rl_tokenizer *t); /* "llama (SentencePiece)", "gpt2 (byte-level BPE, pre=tekken)" */
/* tokenizer.ggml.pre as found in the file ("" when absent). BPE splits text
 * with the Tekken pattern for "tekken" and with GPT-2's for anything else. */
const char *rl_tok_pre(const rl_tokenizer *t);
uint32_t rl_tok_n_vocab(const rl_tokenizer *t);
int32_t rl_tok_bos(const rl_tokenizer *t);  /* -1 if none */
int32_t rl_tok_eos(const rl_tokenizer *t);  /* -1 if none */
bool rl_tok_add_bos(const rl_tokenizer *t); /* tokenizer.ggml.add_bos_token, default true for SPM */
/* Id of a token by its exact text (e.g. "[INST]"), -1 if absent. */
int32_t rl_tok_find(const rl_tokenizer *t, const char *text);
bool rl_tok_is_control(const rl_tokenizer *t, int32_t id); /* control/special tokens */
/* Token ids that end generation: EOS and any end-of-turn control token. */
bool rl_tok_is_eog(const rl_tokenizer *t, int32_t id);

/* Encodes len bytes of text. With parse_special, text of control tokens
 * (such as "[INST]") becomes those tokens; otherwise it is ordinary text.
 * User-defined tokens (GGUF token type 4: SentencePiece user symbols, added
 * tokens) are matched either way, as llama.cpp and their references do.
 * add_bos prepends BOS when the vocabulary has one. *ids is malloc'd and
 * owned by the caller. Returns 0, or -1 (invalid id table, out of memory). */
int rl_tok_encode(const rl_tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special, int32_t **ids,
                  size_t *n_ids);

/* The bytes a token stands for when decoded (byte-level BPE unmapped, U+2581
 * turned into spaces, <0xNN> into the byte). Control tokens give their text
 * only when show_control is true, otherwise nothing. Writes at most cap
 * bytes, plus a NUL when the piece is shorter than cap (a piece may itself
 * contain NUL bytes); returns the full length (like snprintf), or -1 for a
 * bad id. */
int rl_tok_piece(const rl_tokenizer *t, int32_t id, bool show_control, char *buf, size_t cap);
/* The raw vocabulary string of a token (for inspect/tests); NULL for a bad id. */
const char *rl_tok_text(const rl_tokenizer *t, int32_t id);

/* Streaming decoder: feeds ids, emits only complete UTF-8 characters; a
 * character split across tokens is held back until it is complete. For SPM,
 * the leading space of the first piece is dropped (add-space-prefix). */
typedef struct rl_tok_stream rl_tok_stream;
rl_tok_stream *rl_tok_stream_new(const rl_tokenizer *t, bool show_control);
void rl_tok_stream_destroy(rl_tok_stream **s);
/* Appends the text ready after `id` to out (at most cap bytes, NUL-terminated);
 * returns the number of bytes written. */
size_t rl_tok_stream_feed(rl_tok_stream *s, int32_t id, char *out, size_t cap);
/* Flushes what is held back (invalid sequences as U+FFFD). */
size_t rl_tok_stream_flush(rl_tok_stream *s, char *out, size_t cap);

#endif
