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

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "dtype.h"

typedef uint16_t rl_fp16;   /* IEEE half, stored as bits */
typedef uint16_t rl_bf16;   /* bfloat16, stored as bits */

#define QK4_0 32
#define QK8_0 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef struct {
    rl_fp16 d;               /* scale */
    uint8_t qs[QK4_0 / 2];   /* nibbles: low = elements 0..15, high = 16..31, value = q - 8 */
} block_q4_0;
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");

typedef struct {
    rl_fp16 d;               /* scale */
    int8_t qs[QK8_0];        /* value = d * q */
} block_q8_0;
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");

typedef struct {
    rl_fp16 d;                      /* super-block scale for the 6-bit scales */
    rl_fp16 dmin;                   /* super-block scale for the 6-bit mins */
    uint8_t scales[K_SCALE_SIZE];   /* 8 scales and 8 mins, 6 bits each, packed */
    uint8_t qs[QK_K / 2];           /* 4-bit quants */
} block_q4_K;
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");

typedef struct {
    rl_fp16 d;
    rl_fp16 dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];           /* 5th bit of each quant */
    uint8_t qs[QK_K / 2];           /* low 4 bits */
} block_q5_K;
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");

typedef struct {
    uint8_t ql[QK_K / 2];           /* low 4 bits */
    uint8_t qh[QK_K / 4];           /* high 2 bits */
    int8_t scales[QK_K / 16];       /* 8-bit scales of 16-element groups */
    rl_fp16 d;                      /* super-block scale */
} block_q6_K;
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

typedef struct {
    float d;                        /* scale */
    int8_t qs[QK_K];                /* quants */
    int16_t bsums[QK_K / 16];       /* sums of each 16 quants, for the K-quant mins */
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
static inline void rl_k_scales_words(const uint8_t *packed, uint32_t r[4])
{
    uint32_t w[3];
    memcpy(w, packed, sizeof w);
    const uint32_t low6 = 0x3f3f3f3fu, low4 = 0x0f0f0f0fu, low2 = 0x03030303u;
    r[0] = w[0] & low6;
    r[1] = (w[2] & low4) | (((w[0] >> 6) & low2) << 4);
    r[2] = w[1] & low6;
    r[3] = ((w[2] >> 4) & low4) | (((w[1] >> 6) & low2) << 4);
}

/* The same as bytes: out[0..7] scales, out[8..15] mins. */
static inline void rl_k_scales_unpack(const uint8_t *packed, uint8_t out[16])
{
    uint32_t r[4];
    rl_k_scales_words(packed, r);
    memcpy(out, r, sizeof r);
}

/* Half and bfloat16 conversion (scalar, exact, round-to-nearest-even). */
float rl_fp16_to_f32(rl_fp16 h);
rl_fp16 rl_f32_to_fp16(float f);
float rl_bf16_to_f32(rl_bf16 h);
rl_bf16 rl_f32_to_bf16(float f);

/* Dequantizes n elements (a multiple of the type's block) of a row. */
void rl_dequantize_row(rl_dtype t, const void *src, float *dst, int64_t n);

/* Quantizes n floats into type t (for the synthetic-model writer and tests).
 * Supported: f32 f16 bf16 q4_0 q8_0 q4_K q5_K q6_K. Returns bytes written,
 * 0 if t is not supported or n is not a multiple of the block. */
size_t rl_quantize_row(rl_dtype t, const float *src, void *dst, int64_t n);

/* The activation type a weight type is dotted against: RL_Q8_0, RL_Q8_K, or
 * RL_F32 (for float weights). */
rl_dtype rl_vec_dot_type(rl_dtype weight);

/* One kernel set. n is the row length in elements. `w` is one weight row of
 * the weight type; `a` is the activation row already converted to
 * rl_vec_dot_type(weight) by quantize_q8_0 / quantize_q8_K (or plain f32).
 * Both quantizers keep every quant in [-127, 127], which the SIMD dots rely on;
 * any set's quantizers produce the same bytes as the reference's. */
typedef float (*rl_vec_dot_fn)(int n, const void *w, const void *a);
typedef void (*rl_quantize_act_fn)(const float *x, void *dst, int n);

typedef struct {
    const char *name;                       /* "scalar", "avx2", "avx512", "neon" */
    rl_quantize_act_fn quantize_q8_0;
    rl_quantize_act_fn quantize_q8_K;
    rl_vec_dot_fn vec_dot[RL_DTYPE_COUNT];  /* by weight type; NULL if unsupported */
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
