/* Synthetic models: GGUF files of random weights in the exact layout of
 * llama.cpp's llama-architecture files (Mistral, Ministral) and mistral3 ones
 * (Ministral 3's text decoder), with a working
 * tokenizer, so a cluster can be sized and benchmarked at the real shape and
 * type without downloading a model, and tests get models of any shape.
 *
 * Weights are approximately normal with standard deviation 1/sqrt(fan_in)
 * (fan_in = ne[0], the row length), norms are 1. Each row is generated from
 * its own seed, derived from (seed, tensor index, row), then quantized and
 * streamed to disk, so an 8B file needs a few MB of memory and the same spec
 * always gives the same bytes. */
#ifndef RELAIS_SYNTH_H
#define RELAIS_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dtype.h"
#include "gguf_write.h"

/* Tokenizer families a synthetic file can carry. */
typedef enum {
    RL_SYNTH_VOCAB_SPM,        /* tokenizer.ggml.model=llama: <unk> <s> </s>, <0xNN>, ▁-pieces with scores */
    RL_SYNTH_VOCAB_TEKKEN,     /* tokenizer.ggml.model=gpt2, pre=tekken: 1000 control ids, 256 bytes, merges */
    RL_SYNTH_VOCAB_TEKKEN_V13, /* as TEKKEN, ids 32-35 named [ARGS] [CALL_ID] [THINK] [/THINK] (Ministral 3) */
} rl_synth_vocab;

/* Weight types, as llama.cpp's file types: a plain type for every matrix, or
 * a mix. Norms are always f32. A K-quant matrix whose rows are not a multiple
 * of 256 is written as q8_0 instead (llama.cpp falls back the same way). */
typedef enum {
    RL_SYNTH_F32,
    RL_SYNTH_F16,
    RL_SYNTH_BF16,
    RL_SYNTH_Q8_0,
    RL_SYNTH_Q4_0,
    RL_SYNTH_Q4_K,
    RL_SYNTH_Q5_K,
    RL_SYNTH_Q6_K,
    RL_SYNTH_Q4_K_M, /* Q4_K; output and, per llama.cpp's use_more_bits, some layers' attn_v and ffn_down Q6_K */
    RL_SYNTH_FTYPE_COUNT
} rl_synth_ftype;

typedef struct {
    char name[64]; /* general.name */
    uint32_t n_layer;
    uint32_t dim; /* embedding width */
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim; /* key/value length per head */
    uint32_t ffn_dim;
    uint32_t n_vocab;
    uint32_t n_ctx; /* llama.context_length */
    float rope_base;
    float norm_eps;
    uint32_t swa_window; /* 0: no sliding keys written */
    uint32_t swa_period; /* layer i is full when i % period == 0, else sliding */
    rl_synth_vocab vocab;
    rl_synth_ftype ftype;
    uint64_t seed;
    char arch[16];          /* general.architecture and the key prefix: "llama" or "mistral3" */
    bool tied_output;       /* no output.weight: the head reuses token_embd (Ministral 3 3B) */
    float rope_factor;      /* YaRN factor; <= 1: no rope.scaling keys */
    uint32_t rope_orig_ctx; /* rope.scaling.original_context_length */
    float yarn_beta_fast, yarn_beta_slow, yarn_log_mul;
    float attn_temp_scale; /* attention.temperature_scale; 0: not written */
} rl_synth_spec;

/* Fills *spec with a named preset: "ministral-8b", "mistral-7b", "small",
 * "tiny", and the Ministral 3 text decoders "ministral3-3b", "ministral3-8b",
 * "ministral3-14b" (architecture mistral3: YaRN, attention temperature, the
 * 3B's head tied to its embedding). Returns 0, or -1 for an unknown name. */
int rl_synth_preset(const char *name, rl_synth_spec *spec);
/* The preset names, comma-separated, for help texts. */
const char *rl_synth_preset_names(void);

/* "q4_k_m", "q4_K", "f16", ... (case-insensitive); -1 if unknown. */
int rl_synth_ftype_from_name(const char *name);
const char *rl_synth_ftype_name(rl_synth_ftype t);

/* Checks that a spec describes a file relais can write and load (shapes,
 * block multiples, vocabulary size). Returns 0, or -1 with a message. */
int rl_synth_check(const rl_synth_spec *spec, char *err, size_t errlen);

/* The storage type of a weight tensor of the spec's file: `tensor` is the
 * name without "blk.N." (e.g. "attn_v.weight", "output.weight"), il the
 * layer (ignored outside blocks), ne0 the row length. */
rl_dtype rl_synth_tensor_type(const rl_synth_spec *spec, const char *tensor, uint32_t il, uint64_t ne0);

/* Bytes of tensor data the file will hold (without header and padding). */
uint64_t rl_synth_data_bytes(const rl_synth_spec *spec);

typedef void (*rl_synth_progress)(void *ud, uint64_t done, uint64_t total);

/* Writes the model to path; progress (may be NULL) is called after each
 * piece written with tensor-data bytes done and the total. Returns 0, or -1
 * with a message (a partial file is removed). */
int rl_synth_write(const rl_synth_spec *spec, const char *path, rl_synth_progress progress, void *ud, char *err,
                   size_t errlen);

/* Smallest vocabulary a kind can be built at (its control and byte tokens
 * plus the letters the pieces grow from). */
uint32_t rl_synth_vocab_min(rl_synth_vocab kind);
/* Adds the tokenizer.* metadata of an n_vocab vocabulary of the given kind
 * (deterministic, independent of any seed). Returns 0, or -1 with a message. */
int rl_synth_vocab_add(gguf_writer *w, rl_synth_vocab kind, uint32_t n_vocab, char *err, size_t errlen);

#endif
