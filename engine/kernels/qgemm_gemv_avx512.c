/* AVX-512 VNNI product of x16 weights (x16.h) with a few tokens, straight
 * from the rearranged weights: decode's path.
 *
 * The batched path unpacks a chunk of 16 rows into a tile and then runs the
 * microkernel over it, which pays off when the tile serves 8 tokens. With
 * one token it doubles the work per weight byte: every quant is written to
 * the tile and read back, and decode is then short of the memory bandwidth
 * it should be bound by. Here each 64-byte vector of quants goes from the
 * load through the nibble masks straight into VPDPBUSD.
 *
 * The result is bit-identical to unpack + kernel (quant.h): the integer sums
 * are exact in any order, and every float step (scale times activation
 * scale, then one FMA per sub-block, sub-blocks in order; the mins after)
 * is the microkernel's. The unit offsets are x16.c's; qgemm_x16.h describes
 * them per type. */
#include "cpu.h"

#include <immintrin.h>
#include <string.h>
#include "quant.h"

#define T_MAX 2 /* tokens per pass over the weights (Q6_K keeps 8 sums per token) */
#define AI static inline __attribute__((always_inline))

typedef struct { /* tokens [j0, j0 + T) of an activation, from column c0 */
    const rl_qg_act *a;
    uint32_t c0, j0;
} toks;

AI __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

AI __m512i ld(const uint8_t *p) { return _mm512_loadu_si512(p); }

AI __m512i nib_lo(__m512i v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0f)); }

AI __m512i nib_hi(__m512i v) { return _mm512_and_si512(_mm512_srli_epi32(v, 4), _mm512_set1_epi8(0x0f)); }

/* Quants of token t at column e of the chunk. */
AI const int8_t *xq(const toks *k, int t, uint32_t e) {
    return k->a->qs + (size_t)(k->j0 + t) * k->a->cols + k->c0 + e;
}

/* The integer sum's start: -z times the sum of the activation's sub-block. */
AI __m512i corr(const toks *k, int t, uint32_t e, int sub) {
    return _mm512_set1_epi32(k->a->corr[(size_t)(k->j0 + t) * (k->a->cols / sub) + (k->c0 + e) / sub]);
}

/* acc += isum x (scale x the activation's block scale), as the microkernel. */
AI __m512 fma_scaled(__m512 acc, __m512i isum, __m512 sc, const toks *k, int t, uint32_t e) {
    const float d = k->a->d[(size_t)(k->j0 + t) * (k->a->cols / 32) + (k->c0 + e) / 32];
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(sc, _mm512_set1_ps(d)), acc);
}

/* acc -= min x the activation's d x sum of block quants. */
AI __m512 sub_min(__m512 acc, __m512 mn, const toks *k, int t, uint32_t e) {
    const float ds = k->a->dsum[(size_t)(k->j0 + t) * (k->a->cols / 32) + (k->c0 + e) / 32];
    return _mm512_fnmadd_ps(mn, _mm512_set1_ps(ds), acc);
}

AI __m512 halves(const uint8_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

/* Q4_0 and Q8_0 block groups: 16 halves d, then the quant dwords. */
AI void blocks32(const uint8_t *x, uint32_t nc, bool q8, const toks *k, const int T, __m512 *acc) {
    const size_t group = (q8 ? sizeof(block_q8_0) : sizeof(block_q4_0)) * RL_QG_ROWS;
    for (uint32_t e = 0; e < nc; e += 32, x += group) {
        __m512i s0[T_MAX], s1[T_MAX];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            s0[t] = corr(k, t, e, 32);
            s1[t] = _mm512_setzero_si512();
        }
        if (q8) {
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) { /* dword j: elements 4j.. */
                const __m512i w = _mm512_xor_si512(ld(x + 32 + 64 * j), _mm512_set1_epi8((char)0x80));
#pragma GCC unroll 8
                for (int t = 0; t < T; t++)
                    s0[t] = _mm512_dpbusd_epi32(s0[t], w, bcast4(xq(k, t, e + 4 * j)));
            }
        } else {
#pragma GCC unroll 8
            for (int j = 0; j < 4; j++) { /* elements 4j.. in the low nibbles, 16 + 4j.. in the high */
                const __m512i v = ld(x + 32 + 64 * j), lo = nib_lo(v), hi = nib_hi(v);
#pragma GCC unroll 8
                for (int t = 0; t < T; t++) {
                    s0[t] = _mm512_dpbusd_epi32(s0[t], lo, bcast4(xq(k, t, e + 4 * j)));
                    s1[t] = _mm512_dpbusd_epi32(s1[t], hi, bcast4(xq(k, t, e + 16 + 4 * j)));
                }
            }
        }
        const __m512 sc = halves(x);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            acc[t] = fma_scaled(acc[t], _mm512_add_epi32(s0[t], s1[t]), sc, k, t, e);
    }
}

AI __m512 byte_f(__m512i v, int e) {
    return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v, 8 * e), _mm512_set1_epi32(0xff)));
}

/* Q4_K/Q5_K super-block groups: d|dmin, 3 scale dwords, then the quants
 * (Q5_K's high-bit dwords among them). Sub-block 2c is in the low nibbles of
 * quant dwords 8c.., 2c + 1 in the high. */
AI void super_minmax(const uint8_t *x, uint32_t nc, bool five, const toks *k, const int T, __m512 *acc) {
    for (uint32_t e0 = 0; e0 < nc; e0 += QK_K, x += (five ? sizeof(block_q5_K) : sizeof(block_q4_K)) * RL_QG_ROWS) {
        const __m512i dd = ld(x), w0 = ld(x + 64), w1 = ld(x + 128), w2 = ld(x + 192);
        const __m512i m6 = _mm512_set1_epi8(0x3f), m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(0x03);
        const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
        const __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
        const __m512i r[4] = {
            _mm512_and_si512(w0, m6),
            _mm512_or_si512(_mm512_and_si512(w2, m4),
                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w0, 6), m2), 4)),
            _mm512_and_si512(w1, m6),
            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 4), m4),
                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w1, 6), m2), 4)),
        };
#pragma GCC unroll 8
        for (int c = 0; c < 4; c++) {
            __m512i slo[T_MAX], shi[T_MAX];
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                slo[t] = corr(k, t, e0 + 64 * c, 32);
                shi[t] = corr(k, t, e0 + 64 * c + 32, 32);
            }
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                const int i = 8 * c + j;
                const __m512i v = ld(x + 256 + 64 * (five ? (i < 8 ? 2 * i + 1 : i + 8) : i));
                __m512i lo = nib_lo(v), hi = nib_hi(v);
                if (five) { /* bit 2c / 2c + 1 of qh to bit 4 */
                    const __m512i h = ld(x + 256 + 64 * 2 * j), b4 = _mm512_set1_epi8(0x10);
                    lo = _mm512_or_si512(lo, _mm512_and_si512(_mm512_slli_epi32(_mm512_srli_epi32(h, 2 * c), 4), b4));
                    hi = _mm512_or_si512(hi,
                                         _mm512_and_si512(_mm512_slli_epi32(_mm512_srli_epi32(h, 2 * c + 1), 4), b4));
                }
#pragma GCC unroll 8
                for (int t = 0; t < T; t++) {
                    slo[t] = _mm512_dpbusd_epi32(slo[t], lo, bcast4(xq(k, t, e0 + 64 * c + 4 * j)));
                    shi[t] = _mm512_dpbusd_epi32(shi[t], hi, bcast4(xq(k, t, e0 + 64 * c + 32 + 4 * j)));
                }
            }
#pragma GCC unroll 8
            for (int h = 0; h < 2; h++) { /* sub-block s = 2c + h, in order */
                const int s = 2 * c + h;
                const __m512 sc = _mm512_mul_ps(d, byte_f(r[s / 4], s % 4));
                const __m512 mn = _mm512_mul_ps(dmin, byte_f(r[2 + s / 4], s % 4));
#pragma GCC unroll 8
                for (int t = 0; t < T; t++) {
                    acc[t] = fma_scaled(acc[t], h ? shi[t] : slo[t], sc, k, t, e0 + 32 * s);
                    acc[t] = sub_min(acc[t], mn, k, t, e0 + 32 * s);
                }
            }
        }
    }
}

/* Each byte's bits 0-3 from lo and bits 4-7 from hi, in one instruction
 * (VPTERNLOGD as a bit select by m4). A Q6_K quant is its 4 low bits with
 * its 2 high bits at 4-5, and bits 6-7 must be zero: the high-bit bytes are
 * masked to 0x33 or 0xcc before the shift that puts the wanted pair at 4-5,
 * so the pair above it arrives as zeros, and whatever a shift carries in
 * from the next byte lands in bits 0-3, which come from lo. 11 operations
 * per four quant vectors instead of 17. */
AI __m512i nibble_over(__m512i lo, __m512i hi, __m512i m4) {
    return _mm512_ternarylogic_epi32(lo, hi, m4, 0xe4); /* m4 ? lo : hi */
}

/* Q6_K super-block groups: 4 scale dwords, for each half h and dword j three
 * quant dwords, then d. Dword j of half h feeds sub-blocks 8h + j/4 + 2p for
 * p = 0..3, so a half's 8 sums are kept and then applied in order. */
AI void super_q6_K(const uint8_t *x, uint32_t nc, const toks *k, const int T, __m512 *acc) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m33 = _mm512_set1_epi8(0x33), mcc = _mm512_set1_epi8((char)0xcc);
    for (uint32_t e0 = 0; e0 < nc; e0 += QK_K, x += sizeof(block_q6_K) * RL_QG_ROWS) {
        const __m512 d = halves(x + 256 + 64 * 48);
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            __m512i s[8][T_MAX];
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++)
#pragma GCC unroll 8
                for (int t = 0; t < T; t++)
                    s[p][t] = corr(k, t, e0 + 128 * h + 16 * p, 16);
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                const uint8_t *p = x + 256 + 64 * 3 * (8 * h + j);
                const __m512i a = ld(p), b = ld(p + 64), u = ld(p + 128);
                const __m512i u03 = _mm512_and_si512(u, m33), u26 = _mm512_and_si512(u, mcc);
                const __m512i q[4] = {
                    /* low nibble | high bits at 4-5; see nibble_over */
                    nibble_over(a, _mm512_slli_epi32(u03, 4), m4),
                    nibble_over(b, _mm512_slli_epi32(u26, 2), m4),
                    nibble_over(_mm512_srli_epi32(a, 4), u03, m4),
                    nibble_over(_mm512_srli_epi32(b, 4), _mm512_srli_epi32(u26, 2), m4),
                };
#pragma GCC unroll 8
                for (int r = 0; r < 4; r++) /* elements 128h + 32r + 4j.. */
#pragma GCC unroll 8
                    for (int t = 0; t < T; t++)
                        s[2 * r + j / 4][t] = _mm512_dpbusd_epi32(s[2 * r + j / 4][t], q[r],
                                                                  bcast4(xq(k, t, e0 + 128 * h + 32 * r + 4 * j)));
            }
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++) {
                const int sb = 8 * h + p; /* scale byte sb, sign-extended */
                const __m512i v = ld(x + 64 * (sb / 4));
                const __m512 sc = _mm512_mul_ps(
                    d, _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * (sb % 4)), 24)));
#pragma GCC unroll 8
                for (int t = 0; t < T; t++)
                    acc[t] = fma_scaled(acc[t], s[p][t], sc, k, t, e0 + 16 * sb);
            }
        }
    }
}

AI void gemv_tokens(rl_dtype type, const uint8_t *x, uint32_t nc, const toks *k, const int T, float *accm) {
    __m512 acc[T_MAX];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = _mm512_loadu_ps(accm + (size_t)(k->j0 + t) * RL_QG_ROWS);
    switch (type) {
    case RL_Q4_0:
        blocks32(x, nc, false, k, T, acc);
        break;
    case RL_Q8_0:
        blocks32(x, nc, true, k, T, acc);
        break;
    case RL_Q4_K:
        super_minmax(x, nc, false, k, T, acc);
        break;
    case RL_Q5_K:
        super_minmax(x, nc, true, k, T, acc);
        break;
    default:
        super_q6_K(x, nc, k, T, acc);
        break;
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        _mm512_storeu_ps(accm + (size_t)(k->j0 + t) * RL_QG_ROWS, acc[t]);
}

void rl_qg_gemv_avx512(rl_dtype type, const void *x16, uint32_t nc, const rl_qg_act *act, uint32_t c0, float *acc) {
    for (uint32_t j = 0; j < act->n; j += T_MAX) {
        const toks k = {.a = act, .c0 = c0, .j0 = j};
        if (act->n - j >= 2)
            gemv_tokens(type, x16, nc, &k, 2, acc);
        else
            gemv_tokens(type, x16, nc, &k, 1, acc);
    }
}
