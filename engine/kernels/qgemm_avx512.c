/* AVX-512 VNNI version of the batched quantized product (see quant.h).
 *
 * A packed tile holds 16 weight rows, one per 32-bit lane, so VPDPBUSD
 * (unsigned weight bytes times signed activation bytes, four products summed
 * into each int32 lane) advances all 16 rows by 4 columns against 4 bytes of
 * one token broadcast to every lane. The microkernel keeps 8 tokens in
 * flight: 8 integer sums for the current sub-block and 8 float accumulators,
 * so each weight register loaded serves 8 instructions. Weights still in the
 * file's layout are brought to the x16 layout by register transposes of 16
 * rows, then packed like rearranged ones. */
#include "cpu.h"

#include <immintrin.h>
#include "qgemm_x16.h"
#include "x16.h"

#define TOKENS 8 /* tokens per register tile */

/* ---- packing ------------------------------------------------------------- */

/* out[j], lane i = dword j of the 16 bytes at p + i * rb. */
static inline void load_16x4(const uint8_t *p, size_t rb, __m512i out[4]) {
    __m512i r[4];
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++) { /* 128-bit lane L: row a + 4L */
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + (size_t)a * rb)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + (size_t)(a + 4) * rb)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + (size_t)(a + 8) * rb)), 2);
        r[a] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + (size_t)(a + 12) * rb)), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(r[0], r[1]), t1 = _mm512_unpackhi_epi32(r[0], r[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(r[2], r[3]), t3 = _mm512_unpackhi_epi32(r[2], r[3]);
    out[0] = _mm512_unpacklo_epi64(t0, t2);
    out[1] = _mm512_unpackhi_epi64(t0, t2);
    out[2] = _mm512_unpacklo_epi64(t1, t3);
    out[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* out[j], lane i = dword j of the 32 bytes at p + i * rb. */
static inline void load_16x8(const uint8_t *p, size_t rb, __m512i out[8]) {
    __m512i r[8], t[8];
#pragma GCC unroll 8
    for (int a = 0; a < 8; a++) /* low half row a, high half row a + 8 */
        r[a] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + (size_t)a * rb))),
                                  _mm256_loadu_si256((const __m256i *)(p + (size_t)(a + 8) * rb)), 1);
#pragma GCC unroll 8
    for (int a = 0; a < 8; a += 2) {
        t[a] = _mm512_unpacklo_epi32(r[a], r[a + 1]);
        t[a + 1] = _mm512_unpackhi_epi32(r[a], r[a + 1]);
    }
#pragma GCC unroll 8
    for (int a = 0; a < 8; a += 4) { /* r[a + c], lanes: rows a..a+3 (and +8) of columns c, 4 + c */
        r[a] = _mm512_unpacklo_epi64(t[a], t[a + 2]);
        r[a + 1] = _mm512_unpackhi_epi64(t[a], t[a + 2]);
        r[a + 2] = _mm512_unpacklo_epi64(t[a + 1], t[a + 3]);
        r[a + 3] = _mm512_unpackhi_epi64(t[a + 1], t[a + 3]);
    }
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        out[c] = _mm512_permutex2var_epi64(r[c], lo, r[4 + c]);
        out[4 + c] = _mm512_permutex2var_epi64(r[c], hi, r[4 + c]);
    }
}

/* Block k0 + k of 16 rows to the x16 layout: runs of 4-byte units that are
 * contiguous in the block are transposed 32 or 16 bytes at a time and each
 * resulting vector stored where its unit goes; the rest is copied. */
static void interleave_avx512(rl_dtype t, const void *w, size_t rb, uint32_t k0, uint32_t nblk, void *dst) {
    rl_x16_unit u[RL_X16_MAX_UNITS], *by_off[RL_X16_MAX_UNITS];
    const int n = rl_x16_units(t, u);
    for (int i = 0; i < n; i++) { /* by block offset (insertion sort, n < 60) */
        int j = i;
        for (; j > 0 && by_off[j - 1]->off > u[i].off; j--)
            by_off[j] = by_off[j - 1];
        by_off[j] = &u[i];
    }
    const size_t bb = rl_dtype_block_bytes(t);
    for (uint32_t k = 0; k < nblk; k++) {
        const uint8_t *blk = (const uint8_t *)w + (size_t)(k0 + k) * bb;
        uint8_t *x = (uint8_t *)dst + (size_t)k * bb * RL_QG_ROWS;
        for (int i = 0; i < n;) {
            int run = 0; /* contiguous 4-byte units from i, at most 8 */
            while (run < 8 && i + run < n && by_off[i + run]->size == 4 &&
                   by_off[i + run]->off == by_off[i]->off + 4 * run)
                run++;
            __m512i v[8];
            if (run >= 4) {
                run = run == 8 ? 8 : 4;
                if (run == 8)
                    load_16x8(blk + by_off[i]->off, rb, v);
                else
                    load_16x4(blk + by_off[i]->off, rb, v);
                for (int r = 0; r < run; r++)
                    _mm512_storeu_si512(x + by_off[i + r]->pos, v[r]);
                i += run;
                continue;
            }
            for (int r = 0; r < RL_QG_ROWS; r++)
                memcpy(x + by_off[i]->pos + (size_t)r * by_off[i]->size, blk + (size_t)r * rb + by_off[i]->off,
                       by_off[i]->size);
            i++;
        }
    }
}

static inline __attribute__((always_inline)) v16f32 halves_to_f32(v16u32 h) {
    return (v16f32)_mm512_cvtph_ps(_mm512_cvtepi32_epi16((__m512i)h));
}

void rl_qg_unpack_avx512(rl_dtype t, const void *x16, uint32_t nc, rl_qg_tile *tile) { x16_unpack(t, x16, nc, tile); }

void rl_qg_pack_avx512(rl_dtype t, const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc,
                       rl_qg_tile *tile) {
    rl_qg_pack_via(rl_qg_unpack_avx512, interleave_avx512, t, w, row_bytes, rows, c0, nc, tile);
}

static inline __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

/* Tokens [j0, j0 + T) against the tile; T, sub and mins are constants after
 * inlining, so the token loops unroll and the arrays live in registers. */
static inline __attribute__((always_inline)) void span(const rl_qg_tile *tl, const rl_qg_act *a, uint32_t c0,
                                                       uint32_t j0, const int T, const int sub, const bool mins,
                                                       float *accm) {
    const uint32_t cols = a->cols, nsub = cols / sub, nb = cols / 32;
    const int8_t *x = a->qs + (size_t)j0 * cols + c0;
    const int32_t *corr = a->corr + (size_t)j0 * nsub + c0 / sub;
    const float *d = a->d + (size_t)j0 * nb + c0 / 32, *dsum = a->dsum + (size_t)j0 * nb + c0 / 32;
    __m512 acc[TOKENS];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = _mm512_loadu_ps(accm + (size_t)(j0 + t) * RL_QG_ROWS);
    for (uint32_t s = 0; s < tl->cols / sub; s++) {
        /* P independent sums per token, so that few tokens do not leave the
         * VPDPBUSD latency exposed; integer sums are exact in any order. */
        const int P = T >= 4 ? 1 : 4 / T;
        __m512i isum[TOKENS * 4];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            isum[t * P] = _mm512_set1_epi32(corr[(size_t)t * nsub + s]);
#pragma GCC unroll 4
            for (int p = 1; p < P; p++)
                isum[t * P + p] = _mm512_setzero_si512();
        }
        const uint8_t *q = tl->q + (size_t)s * sub * RL_QG_ROWS;
        const int8_t *xs = x + (size_t)s * sub;
#pragma GCC unroll 8
        for (int g = 0; g < sub / 4; g++) {
            const __m512i w = _mm512_load_si512(q + 64 * g);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
                isum[t * P + g % P] =
                    _mm512_dpbusd_epi32(isum[t * P + g % P], w, bcast4(xs + (size_t)t * cols + 4 * g));
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
#pragma GCC unroll 4
            for (int p = 1; p < P; p++)
                isum[t * P] = _mm512_add_epi32(isum[t * P], isum[t * P + p]);
        const __m512 sc = _mm512_load_ps(tl->scale + (size_t)s * RL_QG_ROWS);
        const uint32_t k = s * sub / 32;
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t * P]),
                                     _mm512_mul_ps(sc, _mm512_set1_ps(d[(size_t)t * nb + k])), acc[t]);
        if (mins) {
            const __m512 mn = _mm512_load_ps(tl->min + (size_t)s * RL_QG_ROWS);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
                acc[t] = _mm512_fnmadd_ps(mn, _mm512_set1_ps(dsum[(size_t)t * nb + k]), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        _mm512_storeu_ps(accm + (size_t)(j0 + t) * RL_QG_ROWS, acc[t]);
}

static inline __attribute__((always_inline)) void kernel_fmt(const rl_qg_tile *tl, const rl_qg_act *a, uint32_t c0,
                                                             float *acc, const int sub, const bool mins) {
    uint32_t j = 0;
    for (; j + TOKENS <= a->n; j += TOKENS)
        span(tl, a, c0, j, TOKENS, sub, mins, acc);
    if (a->n - j >= 4) {
        span(tl, a, c0, j, 4, sub, mins, acc);
        j += 4;
    }
    if (a->n - j >= 2) {
        span(tl, a, c0, j, 2, sub, mins, acc);
        j += 2;
    }
    if (a->n - j >= 1)
        span(tl, a, c0, j, 1, sub, mins, acc);
}

void rl_qg_kernel_avx512(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc) {
    if (tile->fmt.sub == 16)
        kernel_fmt(tile, act, c0, acc, 16, false);
    else if (tile->fmt.mins)
        kernel_fmt(tile, act, c0, acc, 32, true);
    else
        kernel_fmt(tile, act, c0, acc, 32, false);
}
