/* Row operations of the llama block. Sums run in double, as llama.cpp's
 * ggml_float does, so that RMSNorm and softmax agree with the references to
 * the last bits that matter for greedy decoding of flat distributions. */
#include "ops.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

void rl_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps) {
    double ss = 0.0;
    for (uint32_t i = 0; i < n; i++)
        ss += (double)x[i] * (double)x[i];
    const float scale = (float)(1.0 / sqrt(ss / n + (double)eps));
    for (uint32_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

rl_rope_params rl_rope_params_plain(float base) {
    rl_rope_params p = {.base = base, .factor = 1.0f, .attn_factor = 1.0f, .beta_fast = 32.0f, .beta_slow = 1.0f};
    return p;
}

/* The pair index at which a rotation makes n_rot turns over orig_ctx
 * positions (llama.cpp's YaRN correction dimension). */
static float yarn_corr_dim(uint32_t head_dim, uint32_t orig_ctx, float n_rot, float base) {
    return (float)head_dim * logf((float)orig_ctx / (n_rot * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

/* YaRN's magnitude: 1 + 0.1 ln f, divided by the same with the log
 * multiplier (so 1 when it is 1), times attn_factor; 1 for f <= 1. */
static float yarn_mscale(const rl_rope_params *p) {
    if (p->factor <= 1.0f)
        return p->attn_factor;
    const float l = logf(p->factor);
    return p->attn_factor * (1.0f + 0.1f * l) / (1.0f + 0.1f * p->log_mul * l);
}

int rl_rope_table_init(rl_rope_table *t, const rl_rope_params *p, uint32_t head_dim) {
    if (head_dim == 0 || head_dim % 2 || head_dim / 2 > RL_ROPE_MAX_PAIRS)
        return -1;
    memset(t, 0, sizeof *t);
    t->head_dim = head_dim;
    t->freq_scale = 1.0f / p->factor;
    t->mscale = p->yarn ? yarn_mscale(p) : p->attn_factor;
    float low = 0.0f, high = 0.0f;
    if (p->yarn) {
        low = fmaxf(0.0f, floorf(yarn_corr_dim(head_dim, p->orig_ctx, p->beta_fast, p->base)));
        high = fminf((float)(head_dim - 1), ceilf(yarn_corr_dim(head_dim, p->orig_ctx, p->beta_slow, p->base)));
    }
    for (uint32_t i = 0; i < head_dim / 2; i++) {
        t->freq[i] = powf(p->base, -(float)(2 * i) / (float)head_dim);
        if (p->yarn) {
            const float y = ((float)i - low) / fmaxf(0.001f, high - low);
            t->ramp_mix[i] = 1.0f - fminf(1.0f, fmaxf(0.0f, y));
        }
    }
    return 0;
}

/* Unscaled, the angle is pos * freq exactly (interp = extrap, ramp 0, mscale
 * 1 multiply out without rounding), as before tables existed. */
void rl_rope_cos_sin(const rl_rope_table *t, uint32_t pos, float *cs) {
    for (uint32_t i = 0; i < t->head_dim / 2; i++) {
        const float extrap = (float)pos * t->freq[i], interp = t->freq_scale * extrap;
        const float theta = interp * (1.0f - t->ramp_mix[i]) + extrap * t->ramp_mix[i];
        cs[2 * i] = cosf(theta) * t->mscale;
        cs[2 * i + 1] = sinf(theta) * t->mscale;
    }
}

void rl_rope_apply(float *x, uint32_t n_heads, uint32_t head_dim, const float *cs) {
    for (uint32_t h = 0; h < n_heads; h++)
        for (uint32_t i = 0; i < head_dim; i += 2) {
            float *v = x + (size_t)h * head_dim + i;
            const float a = v[0], b = v[1], c = cs[i], s = cs[i + 1];
            v[0] = a * c - b * s;
            v[1] = a * s + b * c;
        }
}

float rl_attn_temp(float beta, uint32_t len, uint32_t pos) {
    return (float)(log(floor((double)pos / len) + 1.0) * beta + 1.0);
}

void rl_scale(float *x, float s, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        x[i] *= s;
}

void rl_softmax(float *x, uint32_t n) {
    float mx = -INFINITY;
    for (uint32_t i = 0; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    double sum = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (uint32_t i = 0; i < n; i++)
        x[i] *= inv;
}

void rl_swiglu(float *g, const float *u, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void rl_add(float *y, const float *x, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        y[i] += x[i];
}
