/* Row operations of the llama block. Sums run in double, as llama.cpp's
 * ggml_float does, so that RMSNorm and softmax agree with the references to
 * the last bits that matter for greedy decoding of flat distributions. */
#include "ops.h"

#include <math.h>
#include <stddef.h>

void rl_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps) {
    double ss = 0.0;
    for (uint32_t i = 0; i < n; i++)
        ss += (double)x[i] * (double)x[i];
    const float scale = (float)(1.0 / sqrt(ss / n + (double)eps));
    for (uint32_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

void rl_rope(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t pos, float base) {
    for (uint32_t i = 0; i < head_dim; i += 2) {
        const float theta = (float)pos * powf(base, -(float)i / (float)head_dim);
        const float c = cosf(theta), s = sinf(theta);
        for (uint32_t h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * head_dim + i;
            const float a = v[0], b = v[1];
            v[0] = a * c - b * s;
            v[1] = a * s + b * c;
        }
    }
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
