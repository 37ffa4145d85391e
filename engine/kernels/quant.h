/* Quantized block layouts and the kernels that work on them.
 *
 * Every layout is a named struct with its size asserted, byte-for-byte the
 * ggml/GGUF layout, so a mapped file is used in place. Each kernel has a
 * scalar `_ref` definition (quant_ref.c) and per-ISA versions with the same
 * signature (quant_avx2.c, quant_avx512.c, later quant_neon.c) that the tests
 * check against it. Callers go through rl_kernels(), which picks the best
 * version for the CPU at run time.
 *
 * Matrix-vector products follow ggml: the activation row is quantized once to
 * 8-bit blocks (Q8_0 for Q4_0/Q8_0 weights, Q8_K for the K-quants) and each
 * weight block is dotted with it in integers, scaled at the end. F32, F16 and
 * BF16 weights are dotted with the f32 activation directly. */
#ifndef RELAIS_QUANT_H
#define RELAIS_QUANT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "dtype.h"
#include "fp16.h"

#define QK4_0 32
#define QK8_0 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef struct {
    rl_fp16 d;             /* scale */
    uint8_t qs[QK4_0 / 2]; /* nibbles: low = elements 0..15, high = 16..31, value = q - 8 */
} block_q4_0;
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");

typedef struct {
    rl_fp16 d;        /* scale */
    int8_t qs[QK8_0]; /* value = d * q */
} block_q8_0;
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");

typedef struct {
    rl_fp16 d;                    /* super-block scale for the 6-bit scales */
    rl_fp16 dmin;                 /* super-block scale for the 6-bit mins */
    uint8_t scales[K_SCALE_SIZE]; /* 8 scales and 8 mins, 6 bits each, packed */
    uint8_t qs[QK_K / 2];         /* 4-bit quants */
} block_q4_K;
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");

typedef struct {
    rl_fp16 d;
    rl_fp16 dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8]; /* 5th bit of each quant */
    uint8_t qs[QK_K / 2]; /* low 4 bits */
} block_q5_K;
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");

typedef struct {
    uint8_t ql[QK_K / 2];     /* low 4 bits */
    uint8_t qh[QK_K / 4];     /* high 2 bits */
    int8_t scales[QK_K / 16]; /* 8-bit scales of 16-element groups */
    rl_fp16 d;                /* super-block scale */
} block_q6_K;
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

typedef struct {
    float d;                  /* scale */
    int8_t qs[QK_K];          /* quants */
    int16_t bsums[QK_K / 16]; /* sums of each 16 quants, for the K-quant mins */
} block_q8_K;
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K size");

/* Unpacks the 12-byte K-quant scale field (Q4_K, Q5_K) into the bytes of
 * r[0..1], the eight 6-bit sub-block scales, and of r[2..3], the eight 6-bit
 * mins (little-endian byte order, as x86 and aarch64 are).
 * Packing: bytes 0-3 hold scales 0-3 in their low 6 bits, bytes 4-7 mins 0-3;
 * bytes 8-11 hold the low 4 bits of scales 4-7 (low nibble) and mins 4-7
 * (high nibble), whose top 2 bits sit in bits 6-7 of bytes 0-3 and 4-7.
 * Done on 32-bit words because the dot kernels call it per super-block; they
 * move the words straight into a vector register. */
static inline void rl_k_scales_words(const uint8_t *packed, uint32_t r[4]) {
    uint32_t w[3];
    memcpy(w, packed, sizeof w);
    const uint32_t low6 = 0x3f3f3f3fu, low4 = 0x0f0f0f0fu, low2 = 0x03030303u;
    r[0] = w[0] & low6;
    r[1] = (w[2] & low4) | (((w[0] >> 6) & low2) << 4);
    r[2] = w[1] & low6;
    r[3] = ((w[2] >> 4) & low4) | (((w[1] >> 6) & low2) << 4);
}

/* The same as bytes: out[0..7] scales, out[8..15] mins. */
static inline void rl_k_scales_unpack(const uint8_t *packed, uint8_t out[16]) {
    uint32_t r[4];
    rl_k_scales_words(packed, r);
    memcpy(out, r, sizeof r);
}

/* Q6_K element e (0..255) of a block as stored, 0..63 (the value is q - 32):
 * element 128h + 32p + l takes its low nibble from ql[64h + 32(p&1) + l]
 * (low half for p < 2, high half otherwise) and its top 2 bits from
 * qh[32h + l] bits 2p..2p+1. */
static inline int rl_q6_K_quant(const block_q6_K *b, int e) {
    const int h = e / 128, p = (e % 128) / 32, l = e % 32;
    const int lo = (b->ql[64 * h + 32 * (p & 1) + l] >> (4 * (p >> 1))) & 0xf;
    const int hi = (b->qh[32 * h + l] >> (2 * p)) & 3;
    return lo | (hi << 4);
}

/* Dequantizes n elements (a multiple of the type's block) of a row. */
void rl_dequantize_row(rl_dtype t, const void *src, float *dst, int64_t n);

/* Quantizes n floats into type t (for the synthetic-model writer and tests).
 * Supported: f32 f16 bf16 q4_0 q8_0 q4_K q5_K q6_K. Returns bytes written,
 * 0 if t is not supported or n is not a multiple of the block. */
size_t rl_quantize_row(rl_dtype t, const float *src, void *dst, int64_t n);

/* The activation type a weight type is dotted against: RL_Q8_0, RL_Q8_K, or
 * RL_F32 (for float weights). */
rl_dtype rl_vec_dot_type(rl_dtype weight);

/* ---- batched products: tokens against tiles of weight rows --------------------
 *
 * A product is computed tile by tile: RL_QG_ROWS weight rows, RL_QG_CHUNK
 * columns at a time, are repacked into a small buffer that stays in L1 so
 * that one 32-bit lane holds 4 consecutive quants of one row, and the 16
 * rows of a tile fill the 16 lanes of a 512-bit register (two 256-bit halves
 * for AVX2, four 128-bit ones for NEON). The microkernel broadcasts 4
 * activation bytes of a token to every lane, so one multiply-accumulate
 * advances all 16 rows, and each weight register serves several tokens. No
 * horizontal sums are needed: lane i ends up holding output row i.
 *
 * Every supported weight format packs to one form: unsigned quants q (signed
 * formats shifted by z), a float scale per sub-block of `sub` elements and,
 * for Q4_K/Q5_K, a float min per 32, so that  w = scale * (q - z) - min.
 * Activations are Q8_0 blocks of signed bytes; the correction -z * sum(a) per
 * sub-block and d * sum(a) per block (for the mins) are computed once per
 * token when they are quantized.
 *
 * Each output is accumulated in float, sub-block after sub-block, in the same
 * order whatever the number of tokens or their grouping, so a token's result
 * does not depend on the batch it came in: one session's logits are
 * bit-identical alone and batched with others. */
#define RL_QG_ROWS 16
#define RL_QG_CHUNK 256 /* columns packed at a time: one K-quant super-block */

typedef struct {
    uint8_t sub;  /* elements per scale: 32, or 16 (Q6_K); 0 = no batched kernel */
    uint8_t zero; /* z: the unsigned quant that stands for 0 */
    bool mins;    /* a min per 32 elements is subtracted (Q4_K, Q5_K) */
} rl_qg_format;

rl_qg_format rl_qg_format_of(rl_dtype weight);

typedef struct {                                      /* RL_QG_ROWS weight rows x up to RL_QG_CHUNK columns, packed */
    _Alignas(64) uint8_t q[RL_QG_CHUNK * RL_QG_ROWS]; /* quants 4k..4k+3 of row i at q[(16k + i) * 4] */
    _Alignas(64) float scale[RL_QG_CHUNK / 16 * RL_QG_ROWS]; /* (cols / sub, RL_QG_ROWS) */
    _Alignas(64) float min[RL_QG_CHUNK / 32 * RL_QG_ROWS];   /* (cols / 32, RL_QG_ROWS) when fmt.mins */
    uint32_t cols;                                           /* columns packed: a multiple of 32 */
    rl_qg_format fmt;
} rl_qg_tile;

typedef struct { /* n quantized activation rows, for one weight format */
    uint32_t n, cols;
    uint8_t sub;         /* the format's sub-block */
    const int8_t *qs;    /* (n, cols) quants */
    const float *d;      /* (n, cols / 32) block scales */
    const int32_t *corr; /* (n, cols / sub) -z * sum of each sub-block's quants */
    const float *dsum;   /* (n, cols / 32) d * sum of each block's quants (mins only) */
} rl_qg_act;

/* Scratch for rl_qg_act of up to n rows of cols (a multiple of 32). */
typedef struct {
    int8_t *qs;
    float *d, *dsum;
    int32_t *corr;
} rl_qg_act_buf;

int rl_qg_act_buf_init(rl_qg_act_buf *b, uint32_t n, uint32_t cols); /* 0, or -1 out of memory */
void rl_qg_act_buf_free(rl_qg_act_buf *b);
/* Quantizes rows [r0, r1) of x (n, cols) with `quantize_q8_0` (so the bytes
 * are those of the matrix-vector path) into b, for weight format fmt. */
void rl_qg_act_rows(void (*quantize_q8_0)(const float *, void *, int), rl_qg_format fmt, const float *x, uint32_t cols,
                    uint32_t r0, uint32_t r1, rl_qg_act_buf *b);
/* The view of the first n rows of b for format fmt. */
rl_qg_act rl_qg_act_view(const rl_qg_act_buf *b, rl_qg_format fmt, uint32_t n, uint32_t cols);

/* Packs columns [c0, c0 + nc) of rows [0, rows) (rows <= RL_QG_ROWS,
 * row_bytes apart, the file's layout) of a weight of type t into tile; c0
 * and nc are multiples of the type's block, nc <= RL_QG_CHUNK. Missing rows
 * are packed as all-zero blocks. */
typedef void (*rl_qg_pack_fn)(rl_dtype t, const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc,
                              rl_qg_tile *tile);
/* The same from the x16 layout (x16.h): x16 is the block group where the
 * chunk's columns start, nc as for packing. */
typedef void (*rl_qg_unpack_fn)(rl_dtype t, const void *x16, uint32_t nc, rl_qg_tile *tile);
/* acc[j * RL_QG_ROWS + i] += row i of the tile · columns [c0, c0 + tile->cols)
 * of token j of act, for every j < act->n. */
typedef void (*rl_qg_kernel_fn)(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc);

/* acc[j * RL_QG_ROWS + i] += row i · columns [c0, c0 + nc) of token j, for
 * every j < act->n, read straight from the x16 block groups at x16 (nc as
 * for unpacking) with no tile in between: bit for bit what unpack + kernel
 * give. The engine uses it for batches of at most the set's qg_gemv_max
 * tokens (decode, a draft being verified, a few sessions' decode tokens),
 * where a tile would be written and read back for too few uses; beyond that
 * the tile's reuse pays for it. */
typedef void (*rl_qg_gemv_fn)(rl_dtype t, const void *x16, uint32_t nc, const rl_qg_act *act, uint32_t c0, float *acc);

/* Bytes of the x16 block groups of one chunk, at most. */
#define RL_QG_CHUNK_X16_BYTES (RL_QG_CHUNK / QK8_0 * sizeof(block_q8_0) * RL_QG_ROWS)

/* File-layout packing as every set does it: the chunk's blocks of 16 rows
 * are put in the x16 layout by `interleave` (rl_x16_interleave or a SIMD
 * equivalent) in a scratch buffer, then unpacked by the set's `unpack`. */
void rl_qg_pack_via(rl_qg_unpack_fn unpack,
                    void (*interleave)(rl_dtype, const void *, size_t, uint32_t, uint32_t, void *), rl_dtype t,
                    const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc, rl_qg_tile *tile);

/* One kernel set. n is the row length in elements. `w` is one weight row of
 * the weight type; `a` is the activation row already converted to
 * rl_vec_dot_type(weight) by quantize_q8_0 / quantize_q8_K (or plain f32).
 * Both quantizers keep every quant in [-127, 127], which the SIMD dots rely on;
 * any set's quantizers produce the same bytes as the reference's. */
typedef float (*rl_vec_dot_fn)(int n, const void *w, const void *a);
typedef void (*rl_quantize_act_fn)(const float *x, void *dst, int n);
/* The attention's kernels (forward.c): a tile of queries (the G query heads
 * that share a KV head, for one or several rows of a segment) against a block
 * of cached positions, read once for the whole tile.
 *  kv_rows:   rows (n elements each, src_stride bytes apart) of the cache's
 *             type, F16 or Q8_0, converted to f32 at dst (rows x n). Exact
 *             (f16 and d * q are whole f32 values): every set gives the
 *             reference's bits.
 *  kv_scores: s[i * s_stride + j] = q_i · k_j for i < nq, j < nk; q_i at
 *             q + i * n, k_j at k + j * k_stride (floats). A set computes
 *             every score the same way wherever it sits in the tile (short
 *             tiles are padded, never special-cased), so a query's scores do
 *             not depend on what else shares its tile; within float rounding
 *             of the reference. F32 keys go through vec_dot[RL_F32] instead,
 *             the dot the goldens were checked with.
 *  kv_values: y_i (n) += p[i * p_stride + j] * v_j for j = 0 .. nv-1 in that
 *             order, i < nq; y_i at y + i * n, v_j at v + j * v_stride
 *             (floats). Each element is one multiply and one add, never
 *             fused, so every set gives the reference's bits (and an f32
 *             cache the numerics it always had), and a run of positions may
 *             be cut into blocks anywhere.
 *  kv_softmax: x (n) = softmax(x * scale) with kv_softmax.h's exponential,
 *             the sum in eight double lanes (element j in lane j mod 8,
 *             combined as kv_softmax.h says, the last n mod 8 added after
 *             in order): every set gives the reference's bits. Keys in F32
 *             keep rl_softmax (ops.h), the goldens' numerics. */
typedef void (*rl_kv_rows_fn)(int n, const void *src, size_t src_stride, int rows, float *dst);
typedef void (*rl_kv_scores_fn)(int n, const float *q, int nq, const float *k, size_t k_stride, int nk, float *s,
                                size_t s_stride);
typedef void (*rl_kv_values_fn)(int n, const float *p, size_t p_stride, int nq, const float *v, size_t v_stride, int nv,
                                float *y);
typedef void (*rl_kv_softmax_fn)(float *x, int n, float scale);

typedef struct {
    const char *name; /* "scalar", "avx2", "avx512", "neon" */
    rl_quantize_act_fn quantize_q8_0;
    rl_quantize_act_fn quantize_q8_K;
    rl_vec_dot_fn vec_dot[RL_DTYPE_COUNT]; /* by weight type; NULL if unsupported */
    rl_qg_pack_fn qg_pack;                 /* types with rl_qg_format_of(t).sub != 0 */
    rl_qg_unpack_fn qg_unpack;
    rl_qg_kernel_fn qg_kernel;
    rl_qg_gemv_fn qg_gemv;                 /* NULL: small batches unpack too */
    uint32_t qg_gemv_max;                  /* batches up to this many tokens use qg_gemv (measured per ISA) */
    rl_kv_rows_fn kv_rows[RL_DTYPE_COUNT]; /* F16, Q8_0; NULL for the rest */
    rl_kv_scores_fn kv_scores;
    rl_kv_values_fn kv_values;
    rl_kv_softmax_fn kv_softmax;
} rl_kernel_set;

/* The scalar reference set: the definition every other set is tested against. */
const rl_kernel_set *rl_kernels_ref(void);
/* Per-ISA sets; NULL when not compiled in or not supported by this CPU. */
const rl_kernel_set *rl_kernels_avx2(void);
const rl_kernel_set *rl_kernels_avx512(void);
const rl_kernel_set *rl_kernels_neon(void);
/* The best set for this CPU; RELAIS_ISA=scalar|avx2|avx512|neon overrides. */
const rl_kernel_set *rl_kernels(void);

#endif
