/* AVX2 version of the batched quantized product (see quant.h), for x86
 * machines without AVX-512 VNNI.
 *
 * The packed tile is the same as for AVX-512; a 256-bit register holds its
 * rows 0-7 or 8-15, and the kernel runs the two halves one after the other,
 * 4 tokens at a time. Without VPDPBUSD a 4-column step is VPMADDUBSW
 * (unsigned weight x signed activation bytes, pairs summed to int16) then
 * VPMADDWD by ones (pairs to int32). The int16 pairs cannot saturate for
 * quants up to 63; Q8_0's (0..255) could, so its bytes are turned back into
 * signed weights and multiplied by sign transfer, |w| x sign(w)·a, as the
 * matrix-vector kernels do — which needs no zero-point correction. Tiles are
 * packed by the portable code of qgemm_x16.h (with F16C for the scales);
 * weights still in the file's layout are first interleaved by byte copies. */
#include "cpu.h"

#include <immintrin.h>
#include "qgemm_x16.h"
#include "x16.h"

#define TOKENS 4   /* tokens per register tile (16 YMM registers) */

static inline __attribute__((always_inline)) v16f32 halves_to_f32(v16u32 h)
{
    const v16u16 n = __builtin_convertvector(h, v16u16);
    __m128i a, b;
    memcpy(&a, &n, sizeof a);
    memcpy(&b, (const char *)&n + sizeof a, sizeof b);
    const __m256 fa = _mm256_cvtph_ps(a), fb = _mm256_cvtph_ps(b);
    v16f32 r;
    memcpy(&r, &fa, sizeof fa);
    memcpy((char *)&r + sizeof fa, &fb, sizeof fb);
    return r;
}

void rl_qg_unpack_avx2(rl_dtype t, const void *x16, uint32_t nc, rl_qg_tile *tile)
{
    x16_unpack(t, x16, nc, tile);
}

void rl_qg_pack_avx2(rl_dtype t, const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc,
                     rl_qg_tile *tile)
{
    rl_qg_pack_via(rl_qg_unpack_avx2, rl_x16_interleave, t, w, row_bytes, rows, c0, nc, tile);
}

static inline __m256i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* Tokens [j0, j0 + T) against rows 8h..8h+7 of the tile. */
static inline __attribute__((always_inline)) void span(const rl_qg_tile *tl, const rl_qg_act *a, uint32_t c0,
                                                       uint32_t j0, const int T, const int sub, const bool mins,
                                                       const bool sgn, int h, float *accm)
{
    const uint32_t cols = a->cols, nsub = cols / sub, nb = cols / 32;
    const int8_t *x = a->qs + (size_t)j0 * cols + c0;
    const int32_t *corr = a->corr + (size_t)j0 * nsub + c0 / sub;
    const float *d = a->d + (size_t)j0 * nb + c0 / 32, *dsum = a->dsum + (size_t)j0 * nb + c0 / 32;
    const __m256i ones = _mm256_set1_epi16(1), bias = _mm256_set1_epi8((char)0x80);
    float *out = accm + (size_t)j0 * RL_QG_ROWS + 8 * h;
    __m256 acc[TOKENS];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_loadu_ps(out + (size_t)t * RL_QG_ROWS);
    for (uint32_t s = 0; s < tl->cols / sub; s++) {
        __m256i isum[TOKENS];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            isum[t] = sgn ? _mm256_setzero_si256() : _mm256_set1_epi32(corr[(size_t)t * nsub + s]);
        const uint8_t *q = tl->q + (size_t)s * sub * RL_QG_ROWS + 32 * h;
        const int8_t *xs = x + (size_t)s * sub;
#pragma GCC unroll 8
        for (int g = 0; g < sub / 4; g++) {
            const __m256i w = _mm256_load_si256((const __m256i *)(q + 64 * g));
            const __m256i ws = _mm256_xor_si256(w, bias), wa = _mm256_abs_epi8(ws);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const __m256i b = bcast4(xs + (size_t)t * cols + 4 * g);
                const __m256i p = sgn ? _mm256_maddubs_epi16(wa, _mm256_sign_epi8(b, ws)) : _mm256_maddubs_epi16(w, b);
                isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, ones));
            }
        }
        const __m256 sc = _mm256_load_ps(tl->scale + (size_t)s * RL_QG_ROWS + 8 * h);
        const uint32_t k = s * sub / 32;
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(sc, _mm256_set1_ps(d[(size_t)t * nb + k])),
                                     acc[t]);
        if (mins) {
            const __m256 mn = _mm256_load_ps(tl->min + (size_t)s * RL_QG_ROWS + 8 * h);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++)
                acc[t] = _mm256_fnmadd_ps(mn, _mm256_set1_ps(dsum[(size_t)t * nb + k]), acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        _mm256_storeu_ps(out + (size_t)t * RL_QG_ROWS, acc[t]);
}

static inline __attribute__((always_inline)) void kernel_fmt(const rl_qg_tile *tl, const rl_qg_act *a, uint32_t c0,
                                                             float *acc, const int sub, const bool mins, const bool sgn)
{
    for (int h = 0; h < 2; h++) {
        uint32_t j = 0;
        for (; j + TOKENS <= a->n; j += TOKENS)
            span(tl, a, c0, j, TOKENS, sub, mins, sgn, h, acc);
        if (a->n - j >= 2) {
            span(tl, a, c0, j, 2, sub, mins, sgn, h, acc);
            j += 2;
        }
        if (a->n - j >= 1)
            span(tl, a, c0, j, 1, sub, mins, sgn, h, acc);
    }
}

void rl_qg_kernel_avx2(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc)
{
    if (tile->fmt.sub == 16)
        kernel_fmt(tile, act, c0, acc, 16, false, false);
    else if (tile->fmt.mins)
        kernel_fmt(tile, act, c0, acc, 32, true, false);
    else if (tile->fmt.zero == 128)
        kernel_fmt(tile, act, c0, acc, 32, false, true);
    else
        kernel_fmt(tile, act, c0, acc, 32, false, false);
}
