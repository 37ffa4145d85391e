/* The element-wise and per-row operations of the llama block, scalar and
 * written like their math; they are a small share of the time next to the
 * matrix products, so clarity wins over SIMD here. */
#ifndef RELAIS_OPS_H
#define RELAIS_OPS_H

#include <stdint.h>

/* out (n) = x / sqrt(mean(x^2) + eps) * w; out may alias x. */
void rl_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);

/* Rotates each head of x (n_heads, head_dim) for position pos, GGUF "normal"
 * convention: adjacent pairs (x[2i], x[2i+1]) turn by pos * base^(-2i/head_dim). */
void rl_rope(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t pos, float base);

/* x (n) = softmax(x), in place. */
void rl_softmax(float *x, uint32_t n);

/* g (n) = silu(g) * u: the SwiGLU gate. */
void rl_swiglu(float *g, const float *u, uint32_t n);

/* y (n) += x (n) */
void rl_add(float *y, const float *x, uint32_t n);

#endif
