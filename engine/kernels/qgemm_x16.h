/* Packing a tile (quant.h) from the x16 layout (x16.h), written once in
 * portable C with GCC vector extensions. Each ISA's kernel file includes it
 * and the compiler lowers a 64-byte vector to that ISA's registers: one ZMM,
 * two YMM or four NEON Q registers. After the load-time rearrangement the 16
 * rows of a field's dword are one 64-byte vector, so packing is loads, masks
 * and shifts, with no transposition.
 *
 * The includer defines
 *     static inline __attribute__((always_inline)) v16f32 halves_to_f32(v16u32 h);
 * converting the IEEE half in the low 16 bits of each lane to float, since
 * half conversion has no portable spelling. Every function that takes or
 * returns a vector is always inlined, so the psABI note about passing 64-byte
 * vectors where the ISA has no 64-byte registers does not apply. Every product (d times a 6-bit
 * or 8-bit scale) is the one the reference computes, so the tiles are
 * byte-identical to the reference's.
 *
 * Decode's product (rl_qg_gemv_fn) skips the tile's quants: the AVX2 and
 * NEON versions take one sub-block's quants at a time from x16_quants, so
 * the layout is described here once for every ISA's packing and products,
 * and unpack the chunk's scales only (x16_scales). */
#ifndef RELAIS_QGEMM_X16_H
#define RELAIS_QGEMM_X16_H

#include <string.h>
#include "quant.h"

/* Off for the rest of the including file: GCC reports it at the end of the
 * translation unit, outside any push/pop region. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef uint32_t v16u32 __attribute__((vector_size(64)));
typedef int32_t v16i32 __attribute__((vector_size(64)));
typedef float v16f32 __attribute__((vector_size(64)));
typedef uint16_t v16u16 __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) v16f32 halves_to_f32(v16u32 h);

static inline __attribute__((always_inline)) v16u32 x16_ld(const uint8_t *p) {
    v16u32 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void x16_st_q(rl_qg_tile *tl, uint32_t g, v16u32 v) {
    memcpy(tl->q + (size_t)g * 64, &v, sizeof v);
}

static inline __attribute__((always_inline)) void x16_st_f(float *p, v16f32 v) { memcpy(p, &v, sizeof v); }

/* 16 consecutive halves as floats. */
static inline __attribute__((always_inline)) v16f32 x16_halves(const uint8_t *p) {
    v16u16 h;
    memcpy(&h, p, sizeof h);
    return halves_to_f32(__builtin_convertvector(h, v16u32));
}

/* Byte e of each lane, 0..255, as float. */
static inline __attribute__((always_inline)) v16f32 x16_byte_f(v16u32 v, int e) {
    return __builtin_convertvector((v16i32)((v >> (8 * e)) & 0xff), v16f32);
}

/* Block group: 16 halves d, then the 16 quant bytes as 4 dwords of 16 rows
 * (x16.c gives the order of every type's units). */
static inline void x16_q4_0(const uint8_t *x, uint32_t nc, rl_qg_tile *tl) {
    for (uint32_t k = 0; k < nc / QK4_0; k++, x += sizeof(block_q4_0) * RL_QG_ROWS) {
        for (int j = 0; j < 4; j++) { /* elements 4j.. in the low nibbles, 16 + 4j.. in the high */
            const v16u32 v = x16_ld(x + 32 + 64 * j);
            x16_st_q(tl, 8 * k + j, v & 0x0f0f0f0fu);
            x16_st_q(tl, 8 * k + 4 + j, (v >> 4) & 0x0f0f0f0fu);
        }
    }
}

static inline void x16_q8_0(const uint8_t *x, uint32_t nc, rl_qg_tile *tl) {
    for (uint32_t k = 0; k < nc / QK8_0; k++, x += sizeof(block_q8_0) * RL_QG_ROWS)
        for (int j = 0; j < 8; j++)
            x16_st_q(tl, 8 * k + j, x16_ld(x + 32 + 64 * j) ^ 0x80808080u);
}

/* Their scales: the block group's 16 halves d. */
static inline void x16_scales_32(const uint8_t *x, uint32_t nc, size_t group, float *scale) {
    for (uint32_t k = 0; k < nc / 32; k++, x += group)
        x16_st_f(scale + k * RL_QG_ROWS, x16_halves(x));
}

/* Q4_K/Q5_K super-block group (x16.c gives the order): d|dmin and the 12
 * scale bytes as 3 dwords, then the quant dwords (Q5_K's 8 high-bit dwords
 * each before the quant dword of the same index). The scales are decoded
 * last, lane by lane as rl_k_scales_words does. */
static inline void x16_k_minmax(const uint8_t *x, bool five, rl_qg_tile *tl) {
    for (int c = 0; c < 4; c++) /* sub-block 2c in the low nibbles of qs[32c..], 2c + 1 in the high */
        for (int j = 0; j < 8; j++) {
            const int i = 8 * c + j; /* qs dword */
            const v16u32 v = x16_ld(x + 256 + 64 * (five ? (i < 8 ? 2 * i + 1 : i + 8) : i));
            v16u32 lo = v & 0x0f0f0f0fu, hi = (v >> 4) & 0x0f0f0f0fu;
            if (five) { /* bit 2c / 2c + 1 of qh to bit 4 */
                const v16u32 h = x16_ld(x + 256 + 64 * 2 * j);
                lo |= ((h >> (2 * c)) << 4) & 0x10101010u;
                hi |= ((h >> (2 * c + 1)) << 4) & 0x10101010u;
            }
            x16_st_q(tl, 16 * c + j, lo);
            x16_st_q(tl, 16 * c + 8 + j, hi);
        }
}

static inline void x16_k_minmax_scales(const uint8_t *x, float *scale, float *min) {
    const v16u32 dd = x16_ld(x), w0 = x16_ld(x + 64), w1 = x16_ld(x + 128), w2 = x16_ld(x + 192);
    const v16f32 d = halves_to_f32(dd & 0xffffu), dmin = halves_to_f32(dd >> 16);
    const v16u32 r[4] = {
        w0 & 0x3f3f3f3fu,
        (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4),
        w1 & 0x3f3f3f3fu,
        ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4),
    };
    for (int s = 0; s < 8; s++) {
        x16_st_f(scale + s * RL_QG_ROWS, d * x16_byte_f(r[s / 4], s % 4));
        x16_st_f(min + s * RL_QG_ROWS, dmin * x16_byte_f(r[2 + s / 4], s % 4));
    }
}

/* Q6_K super-block group: the scales (4 dwords), for each half h and dword
 * j the three dwords that make 16 quants (ql[64h + 4j..], ql[64h + 32 +
 * 4j..], qh[32h + 4j..]), then d (halves). Element 128h + 32p + 4j.. takes its
 * low nibbles from the first ql dword for p = 0, the second for p = 1, their
 * high nibbles for p = 2, 3, and bits 2p, 2p+1 of the qh dword. */
static inline void x16_q6_K(const uint8_t *x, rl_qg_tile *tl) {
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 8; j++) {
            const uint8_t *p = x + 256 + 64 * 3 * (8 * h + j);
            const v16u32 a = x16_ld(p), b = x16_ld(p + 64), u = x16_ld(p + 128);
            x16_st_q(tl, 32 * h + j, (a & 0x0f0f0f0fu) | ((u << 4) & 0x30303030u));
            x16_st_q(tl, 32 * h + 8 + j, (b & 0x0f0f0f0fu) | ((u << 2) & 0x30303030u));
            x16_st_q(tl, 32 * h + 16 + j, ((a >> 4) & 0x0f0f0f0fu) | (u & 0x30303030u));
            x16_st_q(tl, 32 * h + 24 + j, ((b >> 4) & 0x0f0f0f0fu) | ((u >> 2) & 0x30303030u));
        }
}

static inline void x16_q6_K_scales(const uint8_t *x, float *scale) {
    const uint8_t *sc = x;
    const v16f32 d = x16_halves(x + 256 + 64 * 48);
    for (int k = 0; k < 4; k++) {
        const v16i32 v = (v16i32)x16_ld(sc + 64 * k);
        for (int e = 0; e < 4; e++) /* byte e, sign-extended */
            x16_st_f(scale + (4 * k + e) * RL_QG_ROWS, d * __builtin_convertvector((v << (24 - 8 * e)) >> 24, v16f32));
    }
}

/* The float scales of columns [0, nc) of the chunk whose first block group
 * is at x16 into scale (and min, for Q4_K/Q5_K), laid out as a tile's. */
static inline __attribute__((always_inline)) void x16_scales(rl_dtype t, const void *x16, uint32_t nc, float *scale,
                                                             float *min) {
    switch (t) {
    case RL_Q4_0:
        x16_scales_32(x16, nc, sizeof(block_q4_0) * RL_QG_ROWS, scale);
        break;
    case RL_Q8_0:
        x16_scales_32(x16, nc, sizeof(block_q8_0) * RL_QG_ROWS, scale);
        break;
    case RL_Q4_K:
    case RL_Q5_K:
        x16_k_minmax_scales(x16, scale, min);
        break;
    default:
        x16_q6_K_scales(x16, scale);
    }
}

/* Columns [0, nc) of the chunk whose first block group is at x16. */
static inline __attribute__((always_inline)) void x16_unpack(rl_dtype t, const void *x16, uint32_t nc, rl_qg_tile *tl) {
    tl->fmt = rl_qg_format_of(t);
    tl->cols = nc;
    switch (t) {
    case RL_Q4_0:
        x16_q4_0(x16, nc, tl);
        break;
    case RL_Q8_0:
        x16_q8_0(x16, nc, tl);
        break;
    case RL_Q4_K:
    case RL_Q5_K:
        x16_k_minmax(x16, t == RL_Q5_K, tl);
        break;
    default:
        x16_q6_K(x16, tl);
    }
    x16_scales(t, x16, nc, tl->scale, tl->min);
}

/* ---- the quants of one sub-block, for the products straight from x16 -------
 *
 * An includer that defines X16_GV_BYTES (16 for NEON, 32 for AVX2) gets
 * x16_quants: 4 columns of one sub-block for X16_GV_BYTES / 4 consecutive
 * rows of a block group, read where x16.c put them, as the tile would hold
 * them (unsigned, z not subtracted), except Q8_0's, which stay as stored:
 * signed, the file's values, as the NEON and AVX2 kernels multiply them. */
#ifdef X16_GV_BYTES
typedef uint32_t x16_gv __attribute__((vector_size(X16_GV_BYTES)));

static inline __attribute__((always_inline)) x16_gv x16_gv_ld(const uint8_t *p) {
    x16_gv v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Sub-blocks in a block group: x16_quants's u is below this. */
static inline __attribute__((always_inline)) int x16_subs(rl_dtype t) {
    return t == RL_Q4_0 || t == RL_Q8_0 ? 1 : t == RL_Q6_K ? 16 : 8;
}

static inline __attribute__((always_inline)) size_t x16_group_bytes(rl_dtype t) {
    switch (t) {
    case RL_Q4_0:
        return sizeof(block_q4_0) * RL_QG_ROWS;
    case RL_Q8_0:
        return sizeof(block_q8_0) * RL_QG_ROWS;
    case RL_Q4_K:
        return sizeof(block_q4_K) * RL_QG_ROWS;
    case RL_Q5_K:
        return sizeof(block_q5_K) * RL_QG_ROWS;
    default:
        return sizeof(block_q6_K) * RL_QG_ROWS;
    }
}

/* Columns 4g..4g+3 of sub-block u of the block group whose rows start at x
 * (the group plus 4 bytes per row skipped). Free of branches on u, so that
 * a caller may loop over the sub-blocks without unrolling them. */
static inline __attribute__((always_inline)) x16_gv x16_quants(rl_dtype t, const uint8_t *x, int u, int g) {
    const uint32_t m4 = 0x0f0f0f0fu;
    switch (t) {
    case RL_Q4_0: { /* elements 4g.. in the low nibbles of dword g, 16 + 4g.. in the high */
        const x16_gv v = x16_gv_ld(x + 32 + 64 * (g % 4));
        return g < 4 ? v & m4 : (v >> 4) & m4;
    }
    case RL_Q8_0:
        return x16_gv_ld(x + 32 + 64 * g);
    case RL_Q4_K:
    case RL_Q5_K: { /* sub-block 2c in the low nibbles of qs dwords 8c.., 2c + 1 in the high */
        const bool five = t == RL_Q5_K;
        const int i = 8 * (u / 2) + g;
        const x16_gv v = x16_gv_ld(x + 256 + 64 * (five ? (i < 8 ? 2 * i + 1 : i + 8) : i));
        x16_gv q = (v >> (4 * (u % 2))) & m4;
        if (five) /* bit u of qh dword g to bit 4 */
            q |= ((x16_gv_ld(x + 256 + 64 * 2 * g) >> u) << 4) & 0x10101010u;
        return q;
    }
    default: { /* sub-block u = 8h + 2r + (g's half): elements 128h + 32r + 4j.., j = 4(u % 2) + g */
        const int h = u / 8, r = u % 8 / 2, j = 4 * (u % 2) + g;
        const uint8_t *p = x + 256 + 64 * 3 * (8 * h + j);
        const x16_gv ql = x16_gv_ld(p + 64 * (r % 2)), qh = x16_gv_ld(p + 128);
        return ((ql >> (4 * (r / 2))) & m4) | (((qh >> (2 * r)) << 4) & 0x30303030u);
    }
    }
}
#endif

#endif
