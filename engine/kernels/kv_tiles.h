/* The attention's tile drivers (quant.h's kv_scores and kv_values), written
 * once for every ISA. A driver walks the queries and positions of a tile,
 * pads a short tile rather than special-casing it, and does the elements
 * past the last whole vector in scalar code; only the register-blocked
 * microkernels differ between ISAs. So a score's or an output element's
 * bits depend on the ISA's microkernel alone, never on a driver that one
 * ISA changed and another did not.
 *
 * The includer defines, before including this file:
 *     KV_LANES      floats per vector register (8 AVX2, 4 NEON);
 *     static inline void scores_4x2(int n, const float *const q[4],
 *                                   const float *k0, const float *k1, float out[8]);
 *                   out[2 * t + j] = q_t · k_j over the first n elements
 *                   (n a multiple of KV_LANES), its own reduction order;
 *     values_4w, values_41, values_1w, values_11, each
 *         static inline void f(int n, const float *p, size_t p_stride,
 *                              const float *v, size_t v_stride, int nv, float *y);
 *                   y += p_j * v_j (multiply, then add) over nv positions
 *                   for 4 or 1 queries by KV_4W_ELEMS, KV_LANES,
 *                   KV_1W_ELEMS and KV_LANES elements;
 *     KV_4W_ELEMS, KV_1W_ELEMS  (multiples of KV_LANES).
 * and then names kv_scores_tiles and kv_values_tiles in its kernel set. */
#ifndef RELAIS_KV_TILES_H
#define RELAIS_KV_TILES_H

#include <stddef.h>

/* Keys two at a time, queries four at a time; a short tile repeats its last
 * query or key and drops the extra scores. The elements past the last
 * whole vector are added element by element (multiply, add) after the
 * microkernel's reduction. */
static void kv_scores_tiles(int n, const float *q, int nq, const float *k, size_t k_stride, int nk, float *s,
                            size_t s_stride) {
    const int nv = n - n % KV_LANES;
    for (int j = 0; j < nk; j += 2) {
        const float *k0 = k + (size_t)j * k_stride, *k1 = j + 1 < nk ? k0 + k_stride : k0;
        for (int i = 0; i < nq; i += 4) {
            const float *qs[4];
            for (int t = 0; t < 4; t++)
                qs[t] = q + (size_t)(i + t < nq ? i + t : nq - 1) * n;
            float out[8];
            scores_4x2(nv, qs, k0, k1, out);
            for (int e = nv; e < n; e++)
                for (int t = 0; t < 4; t++) {
                    out[2 * t] += k0[e] * qs[t][e];
                    out[2 * t + 1] += k1[e] * qs[t][e];
                }
            for (int t = 0; t < 4 && i + t < nq; t++) {
                s[(size_t)(i + t) * s_stride + j] = out[2 * t];
                if (j + 1 < nk)
                    s[(size_t)(i + t) * s_stride + j + 1] = out[2 * t + 1];
            }
        }
    }
}

/* Four queries by KV_4W_ELEMS elements at a time, then single queries by
 * KV_1W_ELEMS, each then by one vector, then the tail elements position by
 * position; every element gets its terms in position order. */
static void kv_values_tiles(int n, const float *p, size_t p_stride, int nq, const float *v, size_t v_stride, int nv,
                            float *y) {
    const int nl = n - n % KV_LANES;
    int i = 0;
    for (; i + 4 <= nq; i += 4) {
        const float *pi = p + (size_t)i * p_stride;
        float *yi = y + (size_t)i * n;
        int e = 0;
        for (; e + KV_4W_ELEMS <= nl; e += KV_4W_ELEMS)
            values_4w(n, pi, p_stride, v + e, v_stride, nv, yi + e);
        for (; e < nl; e += KV_LANES)
            values_41(n, pi, p_stride, v + e, v_stride, nv, yi + e);
    }
    for (; i < nq; i++) {
        const float *pi = p + (size_t)i * p_stride;
        float *yi = y + (size_t)i * n;
        int e = 0;
        for (; e + KV_1W_ELEMS <= nl; e += KV_1W_ELEMS)
            values_1w(n, pi, p_stride, v + e, v_stride, nv, yi + e);
        for (; e < nl; e += KV_LANES)
            values_11(n, pi, p_stride, v + e, v_stride, nv, yi + e);
    }
    for (int j = 0; nl < n && j < nv; j++)
        for (i = 0; i < nq; i++) {
            const float a = p[(size_t)i * p_stride + j];
            for (int e = nl; e < n; e++)
                y[(size_t)i * n + e] += a * v[(size_t)j * v_stride + e];
        }
}

#endif
