/* A llama-architecture model (Mistral, Ministral, Llama; also `mistral3`,
 * the Ministral 3 text decoder: llama with YaRN RoPE and an attention
 * temperature) bound from a GGUF file: hyper-parameters, the per-layer sliding-window layout, and views of
 * the weight tensors of the layers a caller asked for.
 *
 * A node binds only its own contiguous slice [l0, l1) (plus the embedding or
 * the head when it runs them); the tensors of other layers are never touched,
 * so their pages are never read. */
#ifndef RELAIS_MODEL_H
#define RELAIS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dtype.h"
#include "gguf.h"

#define RL_MAX_LAYERS 512

typedef struct {
    char arch[32];  /* general.architecture, e.g. "llama" */
    char name[128]; /* general.name, may be empty */
    uint32_t n_layer;
    uint32_t dim; /* embedding width */
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim; /* dim / n_head unless the file says otherwise */
    uint32_t ffn_dim;
    uint32_t n_vocab;
    uint32_t n_ctx_train; /* the largest context a session may have: the file's context_length,
                                    131072 on a Ministral-8B-2410 file, or a larger one the user
                                    accepted (rl_model_opts.n_ctx_beyond) */
    uint32_t n_ctx_file;  /* context_length as the file declares it */
    float norm_eps;
    float rope_base;
    uint32_t swa_window;         /* W; 0 when no layer slides */
    bool sliding[RL_MAX_LAYERS]; /* (n_layer) true = layer attends over (p-W, p] */
    bool swa_inferred;           /* the published Ministral-8B layout was applied */
    bool tied_output;            /* the head reuses token_embd */
    /* RoPE scaling (rope.scaling.*), as llama.cpp applies it. */
    bool rope_yarn;         /* scaling type "yarn" */
    float rope_factor;      /* f: context extension factor; 1 = none */
    uint32_t rope_orig_ctx; /* original_context_length (the context before extension) */
    float yarn_beta_fast;   /* correction range of the YaRN ramp (default 32) */
    float yarn_beta_slow;   /* (default 1) */
    float yarn_log_mul;     /* yarn_log_multiplier m (absent = 0) */
    float rope_attn_factor; /* rope.scaling.attn_factor, 1 when absent */
    /* Attention temperature (llama 4 scaling): q at position p is multiplied
     * by 1 + attn_temp_scale * ln(1 + floor(p / rope_orig_ctx)); 0 = off. */
    float attn_temp_scale;
} rl_hparams;

/* A weight matrix: `rows` outputs of `cols` inputs, row-major in `type`. */
typedef struct {
    const void *data;
    rl_dtype type;
    uint32_t rows;
    uint32_t cols;
    size_t row_bytes;
    const char *name; /* the GGUF tensor name (owned by the gguf file) */
    bool x16;         /* full groups of 16 rows rearranged at load (x16.h) */
} rl_weight;

typedef struct {
    const float *attn_norm; /* (dim) */
    rl_weight wq;           /* (n_head * head_dim, dim) */
    rl_weight wk;           /* (n_head_kv * head_dim, dim) */
    rl_weight wv;           /* (n_head_kv * head_dim, dim) */
    rl_weight wo;           /* (dim, n_head * head_dim) */
    const float *ffn_norm;  /* (dim) */
    rl_weight w_gate;       /* (ffn_dim, dim) */
    rl_weight w_up;         /* (ffn_dim, dim) */
    rl_weight w_down;       /* (dim, ffn_dim) */
} rl_layer;

typedef struct {
    uint32_t l0, l1;         /* layers to bind: [l0, l1); l1 = 0 means all */
    bool embed;              /* bind token_embd (the coordinator's part) */
    bool head;               /* bind output_norm and output */
    int64_t swa_window;      /* override W: -1 keeps the file's; 0 turns sliding off */
    const char *swa_pattern; /* override: NULL keeps the file's; "4" = period (layer i full
                                 when i % 4 == 0), or one char per layer, 'S'/'1' sliding, 'F'/'0' full */
    void (*progress)(void *ud, uint64_t done, uint64_t total); /* bytes touched while binding */
    void *progress_ud;
    bool file_layout;      /* keep the weights as the file lays them out (no x16 rearrangement) */
    uint32_t n_ctx_beyond; /* a context above the file's that the user accepted (--ctx-beyond-file):
                                 the model's maximum is raised to it; 0 = none */
    bool no_yarn;          /* debug: plain RoPE even where the file asks for YaRN (the golden
                                 tests show the answers then differ) */
    bool no_attn_temp;     /* debug: no attention temperature scaling */
    bool no_mmap;          /* read every bound weight into memory (huge pages where the kernel
                                 has them); without it only those rearranged into x16 are, and
                                 the rest (the embedding, file_layout weights) stays mapped */
} rl_model_opts;

rl_model_opts rl_model_opts_default(void); /* all layers, embed, head, no overrides */

typedef struct rl_model rl_model;

/* Opens path and binds what opts asks for. Every tensor bound is checked for
 * presence, shape and a supported type; a problem gets NULL and a message in
 * err naming the tensor (and its type). Destroy with rl_model_destroy. */
rl_model *rl_model_load(const char *path, const rl_model_opts *opts, char *err, size_t errlen);
void rl_model_destroy(rl_model **m); /* NULLs *m */

const rl_hparams *rl_model_hparams(const rl_model *m);
const gguf_file *rl_model_gguf(const rl_model *m);
void rl_model_range(const rl_model *m, uint32_t *l0, uint32_t *l1);
const rl_layer *rl_model_layer(const rl_model *m, uint32_t il); /* NULL outside the range */
const rl_weight *rl_model_embed(const rl_model *m);             /* (n_vocab, dim); NULL if unbound */
const rl_weight *rl_model_output(const rl_model *m);            /* (n_vocab, dim); NULL if unbound */
const float *rl_model_output_norm(const rl_model *m);           /* (dim); NULL if unbound */

/* Reads hyper-parameters and the sliding layout from an open file (no tensors
 * bound); used by inspect and the planner. Returns 0, or -1 with err. */
int rl_hparams_read(const gguf_file *f, const rl_model_opts *opts, rl_hparams *hp, char *err, size_t errlen);
/* The context a session gets into *n_ctx: asked, or RL_DEFAULT_CTX capped at
 * the model's maximum when asked is 0. An ask above the maximum is refused
 * (-1 with the reason and the way to accept it in err), never cut short. */
#define RL_DEFAULT_CTX 4096
#define RL_MINISTRAL_8B_CTX 131072 /* Ministral-8B-2410's published context */
int rl_hparams_ctx(const rl_hparams *hp, uint32_t asked, uint32_t *n_ctx, char *err, size_t errlen);
/* Bytes of the weights of layer il as stored in the file. */
uint64_t rl_layer_file_bytes(const gguf_file *f, uint32_t il);
/* Bytes of the head as stored: output_norm and output (token_embd when the
 * output is tied to it), all of which a token's logits read. */
uint64_t rl_head_file_bytes(const gguf_file *f, bool tied_output);

#endif
