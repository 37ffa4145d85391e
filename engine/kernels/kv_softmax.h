/* The pieces of the attention's softmax (kv_softmax in quant.h) that every
 * kernel set shares, so that the sets agree to the bit: the exponential, a
 * polynomial (Cephes' expf: x = n ln 2 + r, e^r by a degree-5 polynomial, 2^n
 * put in the exponent) evaluated with separate multiplies and adds in the
 * order written here, which the SIMD versions follow lane by lane; and the
 * order in which the eight double partial sums are combined. libm's expf per
 * position cost as much as the scores themselves at depth; this is within 2
 * ulp of it and vectorizes. f32 caches keep rl_softmax (ops.h) and libm. */
#ifndef RELAIS_KV_SOFTMAX_H
#define RELAIS_KV_SOFTMAX_H

#include <math.h>

#define RL_EXP_MIN -87.33654f /* below, e^x is under FLT_MIN: the result is 2^-126 * p(r), as good as 0 here */
#define RL_EXP_LOG2E 1.44269504088896341f
#define RL_EXP_C1 0.693359375f    /* ln 2 in two parts: C1 exact in few bits */
#define RL_EXP_C2 -2.12194440e-4f /* ln 2 - C1 */
#define RL_EXP_P0 1.9875691500e-4f
#define RL_EXP_P1 1.3981999507e-3f
#define RL_EXP_P2 8.3334519073e-3f
#define RL_EXP_P3 4.1665795894e-2f
#define RL_EXP_P4 1.6666665459e-1f
#define RL_EXP_P5 5.0000001201e-1f

/* e^x for x <= 0 (softmax's x - max). */
static inline float rl_kv_exp(float x) {
    x = x < RL_EXP_MIN ? RL_EXP_MIN : x;
    const float n = floorf(x * RL_EXP_LOG2E + 0.5f);
    x = x - n * RL_EXP_C1;
    x = x - n * RL_EXP_C2;
    float y = RL_EXP_P0;
    y = y * x + RL_EXP_P1;
    y = y * x + RL_EXP_P2;
    y = y * x + RL_EXP_P3;
    y = y * x + RL_EXP_P4;
    y = y * x + RL_EXP_P5;
    y = y * (x * x) + x + 1.0f;
    union {
        int i;
        float f;
    } p = {.i = ((int)n + 127) << 23};
    return y * p.f;
}

/* The eight lanes' sums (lane l holds the elements at l mod 8) as one:
 * ((d0 + d4) + (d2 + d6)) + ((d1 + d5) + (d3 + d7)). */
static inline double rl_kv_sum8(const double d[8]) {
    return ((d[0] + d[4]) + (d[2] + d[6])) + ((d[1] + d[5]) + (d[3] + d[7]));
}

#endif
