/* The element-wise and per-row operations of the llama block, scalar and
 * written like their math; they are a small share of the time next to the
 * matrix products, so clarity wins over SIMD here. */
#ifndef RELAIS_OPS_H
#define RELAIS_OPS_H

#include <stdbool.h>
#include <stdint.h>

/* out (n) = x / sqrt(mean(x^2) + eps) * w; out may alias x. */
void rl_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);

/* RoPE, GGUF "normal" convention: adjacent pairs (x[2i], x[2i+1]) of each
 * head turn by an angle that grows with the position. Without scaling pair
 * i turns by pos * base^(-2i/head_dim). With YaRN (as llama.cpp computes
 * it) the angle mixes the interpolated pos * base^(-2i/d) / f and the
 * original by a ramp over the pairs between the correction dimensions
 * found from beta_fast / beta_slow, and cos and sin are scaled by mscale.
 * What does not depend on the position is computed once, into the table. */
#define RL_ROPE_MAX_PAIRS 512
typedef struct {
    float base;        /* freq_base */
    float factor;      /* f; 1 = no scaling */
    bool yarn;         /* mix by the YaRN ramp (else f only divides the angle) */
    uint32_t orig_ctx; /* original_context_length */
    float beta_fast, beta_slow;
    float log_mul;     /* yarn_log_multiplier */
    float attn_factor; /* rope.scaling.attn_factor */
} rl_rope_params;

typedef struct {
    uint32_t head_dim;
    float freq_scale;                  /* 1 / f */
    float mscale;                      /* cos and sin multiplier */
    float freq[RL_ROPE_MAX_PAIRS];     /* base^(-2i/head_dim) */
    float ramp_mix[RL_ROPE_MAX_PAIRS]; /* share of the unscaled angle: 1 on fast pairs, 0 on slow ones */
} rl_rope_table;

/* Plain RoPE over base (no scaling). */
rl_rope_params rl_rope_params_plain(float base);
/* Fills t for heads of head_dim (even, at most 2 * RL_ROPE_MAX_PAIRS);
 * -1 when head_dim does not fit. */
int rl_rope_table_init(rl_rope_table *t, const rl_rope_params *p, uint32_t head_dim);
/* cs (head_dim) = cos, sin of each pair's angle at pos, interleaved. */
void rl_rope_cos_sin(const rl_rope_table *t, uint32_t pos, float *cs);
/* Rotates each head of x (n_heads, head_dim) by cs from rl_rope_cos_sin. */
void rl_rope_apply(float *x, uint32_t n_heads, uint32_t head_dim, const float *cs);

/* The attention temperature of llama 4 scaling: 1 + beta ln(1 + floor(pos / len)). */
float rl_attn_temp(float beta, uint32_t len, uint32_t pos);
/* x (n) *= s */
void rl_scale(float *x, float s, uint32_t n);

/* x (n) = softmax(x), in place. */
void rl_softmax(float *x, uint32_t n);

/* g (n) = silu(g) * u: the SwiGLU gate. */
void rl_swiglu(float *g, const float *u, uint32_t n);

/* y (n) += x (n) */
void rl_add(float *y, const float *x, uint32_t n);

#endif
