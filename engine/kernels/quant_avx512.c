/* AVX-512 (F/BW/VL/DQ, plus VNNI) kernels, for the dots where the wider
 * registers measurably beat the AVX2 versions; every other slot of this set
 * is the AVX2 kernel (rl_kernels_fill).
 *
 * Q4_0/Q8_0 take two 32-element blocks per register and use VPDPBUSD, which
 * multiplies unsigned by signed bytes and accumulates into int32 in one step
 * (AVX2 needs VPMADDUBSW + VPMADDWD). The K-quant dots keep ggml's scheme but
 * handle both nibbles of a 64-element chunk, or four 16-element Q6_K groups,
 * per instruction, with the sub-block scales spread over the register by a
 * word permute. */
#include "cpu.h"

#include <immintrin.h>
#include <pthread.h>

static inline float fp16(rl_fp16 h) { return _cvtsh_ss(h); }

/* Two 32-byte rows a and b as one register. */
static inline __m512i load_2x256(const void *a, const void *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* Sums of x*y over each 4 signed bytes; y must not hold -128. The sign of x
 * moves onto y so that |x| can be the unsigned operand. */
static inline __m512i dot_i8(__m512i x, __m512i y) {
    const __m512i sy = _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(x), _mm512_setzero_si512(), y);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(x), sy);
}

/* Low 8 lanes a, high 8 lanes b. */
static inline __m512 two_scales(float a, float b) {
    return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

/* Q4_0 blocks x[0], x[1]: quants as signed bytes in element order per block. */
static inline __m512i q4_0_pair(const block_q4_0 *x) {
    const __m256i q =
        _mm256_set_m128i(_mm_loadu_si128((const __m128i *)x[1].qs), _mm_loadu_si128((const __m128i *)x[0].qs));
    /* lanes qs0 qs1 qs0>>4 qs1>>4, reordered to lo0 hi0 lo1 hi1 */
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
    v = _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0));
    return _mm512_sub_epi8(_mm512_and_si512(v, _mm512_set1_epi8(0x0f)), _mm512_set1_epi8(8));
}

static float vec_dot_q4_0_avx512(int n, const void *w, const void *a) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    const int nb = n / QK4_0;
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        const __m512i d = dot_i8(q4_0_pair(&x[i]), load_2x256(y[i].qs, y[i + 1].qs));
        const __m512 s = two_scales(fp16(x[i].d) * fp16(y[i].d), fp16(x[i + 1].d) * fp16(y[i + 1].d));
        acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(d), acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    if (i < nb)
        sum += rl_kernels_avx2()->vec_dot[RL_Q4_0](QK4_0, &x[i], &y[i]);
    return sum;
}

static float vec_dot_q8_0_avx512(int n, const void *w, const void *a) {
    const block_q8_0 *x = w, *y = a;
    const int nb = n / QK8_0;
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        const __m512i d = dot_i8(load_2x256(x[i].qs, x[i + 1].qs), load_2x256(y[i].qs, y[i + 1].qs));
        const __m512 s = two_scales(fp16(x[i].d) * fp16(y[i].d), fp16(x[i + 1].d) * fp16(y[i + 1].d));
        acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(d), acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    if (i < nb)
        sum += rl_kernels_avx2()->vec_dot[RL_Q8_0](QK8_0, &x[i], &y[i]);
    return sum;
}

/* Word index vector: 16 words of a then 16 words of b. */
static inline __m512i words_2(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi16((short)a), _mm256_set1_epi16((short)b), 1);
}

/* Accumulates one Q4_K/Q5_K super-block (qh NULL for Q4_K): d * sum(scale *
 * q * q8) into acc and dmin * sum(min * q8) into accm, both times y->d.
 * Chunk c of 64 elements is one register: low nibbles (sub-block 2c), then
 * high (2c+1). */
static inline void k_minmax_block(rl_fp16 d, rl_fp16 dmin, const uint8_t *scales, const uint8_t *qh, const uint8_t *qs,
                                  const block_q8_K *y, __m512 *acc, __m128 *accm) {
    uint32_t r[4];
    rl_k_scales_words(scales, r);
    const __m256i sm16 = _mm256_cvtepu8_epi16(_mm_set_epi32((int)r[3], (int)r[2], (int)r[1], (int)r[0]));
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    const __m128i sub_sums = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    const __m128i msum = _mm_madd_epi16(_mm256_extracti128_si256(sm16, 1), sub_sums);
    *accm = _mm_fmadd_ps(_mm_set1_ps(y->d * fp16(dmin)), _mm_cvtepi32_ps(msum), *accm);

    const __m512i scales16 = _mm512_castsi256_si512(sm16);
    const __m512i m4 = _mm512_set1_epi8(0x0f), bit4 = _mm512_set1_epi8(0x10);
    __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    __m512i sumi = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const __m512i sc = _mm512_permutexvar_epi16(words_2(2 * c, 2 * c + 1), scales16);
        const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
        v = _mm512_and_si512(v, m4);
        if (qh) { /* bit 2c -> 16 for the low nibbles, bit 2c+1 for the high */
            const __m512i h =
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_slli_epi16(hb, 4)), _mm256_slli_epi16(hb, 3), 1);
            v = _mm512_or_si512(v, _mm512_and_si512(h, bit4));
            hb = _mm256_srli_epi16(hb, 2);
        }
        const __m512i y8 = _mm512_loadu_si512((const void *)(y->qs + 64 * c));
        sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_maddubs_epi16(v, y8), sc));
    }
    *acc = _mm512_fmadd_ps(_mm512_set1_ps(y->d * fp16(d)), _mm512_cvtepi32_ps(sumi), *acc);
}

static float vec_dot_q4_K_avx512(int n, const void *w, const void *a) {
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    __m512 acc = _mm512_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int i = 0; i < n / QK_K; i++)
        k_minmax_block(x[i].d, x[i].dmin, x[i].scales, NULL, x[i].qs, &y[i], &acc, &accm);
    return _mm512_reduce_add_ps(_mm512_sub_ps(acc, _mm512_zextps128_ps512(accm)));
}

static float vec_dot_q5_K_avx512(int n, const void *w, const void *a) {
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    __m512 acc = _mm512_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int i = 0; i < n / QK_K; i++)
        k_minmax_block(x[i].d, x[i].dmin, x[i].scales, x[i].qh, x[i].qs, &y[i], &acc, &accm);
    return _mm512_reduce_add_ps(_mm512_sub_ps(acc, _mm512_zextps128_ps512(accm)));
}

/* Word index vector: each 128-bit lane k holds g + k. */
static inline __m512i words_4(int g) {
    const long long r = 0x0001000100010001LL;
    return _mm512_set_epi64(r * (g + 3), r * (g + 3), r * (g + 2), r * (g + 2), r * (g + 1), r * (g + 1), r * g, r * g);
}

/* Q6_K as in the AVX2 version (unsigned quants, -32 applied via bsums), with
 * 64 elements, four scale groups, per register. */
static float vec_dot_q6_K_avx512(int n, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
        __m512i sumi = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), offset));
        for (int h = 0; h < 2; h++) {
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            const __m512i ql = _mm512_loadu_si512((const void *)(x[i].ql + 64 * h));
            const __m512i ha =
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_slli_epi16(qh, 4)), _mm256_slli_epi16(qh, 2), 1);
            const __m512i hb = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
            const __m512i qa = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(ha, m30));
            const __m512i qb =
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(hb, m30));
            const __m512i sa = _mm512_permutexvar_epi16(words_4(8 * h), _mm512_castsi256_si512(sc16));
            const __m512i sb = _mm512_permutexvar_epi16(words_4(8 * h + 4), _mm512_castsi256_si512(sc16));
            const __m512i ya = _mm512_loadu_si512((const void *)(y[i].qs + 128 * h));
            const __m512i yb = _mm512_loadu_si512((const void *)(y[i].qs + 128 * h + 64));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_maddubs_epi16(qa, ya), sa));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_maddubs_epi16(qb, yb), sb));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(y[i].d * fp16(x[i].d)), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* The attention's kernels are AVX2's (rl_kernels_fill): a head's rows are
 * too short for 16-lane registers to pay, and no AVX-512 machine was at hand
 * to measure them. */

static rl_kernel_set avx512_set = {
    .name = "avx512",
    .vec_dot =
        {
            [RL_Q4_0] = vec_dot_q4_0_avx512,
            [RL_Q8_0] = vec_dot_q8_0_avx512,
            [RL_Q4_K] = vec_dot_q4_K_avx512,
            [RL_Q5_K] = vec_dot_q5_K_avx512,
            [RL_Q6_K] = vec_dot_q6_K_avx512,
        },
    .qg_pack = rl_qg_pack_avx512,
    .qg_unpack = rl_qg_unpack_avx512,
    .qg_kernel = rl_qg_kernel_avx512,
    .qg_gemv = rl_qg_gemv_avx512,
    .qg_gemv_max = 2, /* its passes take 2 tokens; larger batches unmeasured */
};

static pthread_once_t avx512_once = PTHREAD_ONCE_INIT;

static void avx512_complete(void) {
    if (!rl_cpu()->avx512vnni) { /* the Q4_0/Q8_0 dots and the batched kernel need VPDPBUSD */
        avx512_set.vec_dot[RL_Q4_0] = NULL;
        avx512_set.vec_dot[RL_Q8_0] = NULL;
        avx512_set.qg_pack = NULL;
        avx512_set.qg_unpack = NULL;
        avx512_set.qg_kernel = NULL;
        avx512_set.qg_gemv = NULL;
        avx512_set.qg_gemv_max = 0;
    }
    rl_kernels_fill(&avx512_set, rl_kernels_avx2());
}

const rl_kernel_set *rl_kernels_avx512(void) {
    if (!rl_cpu()->avx512)
        return NULL;
    pthread_once(&avx512_once, avx512_complete);
    return &avx512_set;
}
