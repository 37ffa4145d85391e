/* The aarch64 kernel set: the activation quantizer, the batched product and
 * the float-weight dots in NEON (every aarch64 core has it), with the
 * dot-product microkernel chosen at run time on cores that report it
 * (HWCAP_ASIMDDP: the Pi 5's Cortex-A76, not the Pi 4's A72).
 *
 * The batched product serves every batch size of the quantized formats, so
 * their matrix-vector dots and the Q8_K quantizer never run on this path
 * and come from the scalar reference, except the Q8_0 dot, which the
 * attention runs over a Q8_0 KV cache's keys. Float weights (F32, F16, BF16 files)
 * have no batched kernel: their decode is the matrix-vector dot, which the
 * reference computes in double, element by element (and F16 through a
 * software conversion), several times slower than the memory it reads. */
#include "cpu.h"

#include <arm_neon.h>
#include <pthread.h>

/* The reference's Q8_0 quantizer, 32 elements at a time, byte for byte: the
 * same float operations, FCVTNS rounding half to even like lrintf. */
static void quantize_q8_0_neon(const float *x, void *dst, int n) {
    block_q8_0 *y = dst;
    for (int i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float32x4_t v[8], amax = vdupq_n_f32(0);
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(x + 4 * k);
            amax = vmaxq_f32(amax, vabsq_f32(v[k]));
        }
        const float d = vmaxvq_f32(amax) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = rl_f32_to_fp16(d);
        for (int k = 0; k < 8; k += 2) {
            const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[k], id)), b = vcvtnq_s32_f32(vmulq_n_f32(v[k + 1], id));
            const int16x8_t h = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
            vst1_s8(y[i].qs + 4 * k, vmovn_s16(h));
        }
    }
}

/* ---- float weights: four 4-wide accumulators, scalar tail ----------------- */

static inline float32x4_t load4_f32(const void *w, int i) { return vld1q_f32((const float *)w + i); }

static inline float32x4_t load4_f16(const void *w, int i) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const rl_fp16 *)w + i)));
}

static inline float32x4_t load4_bf16(const void *w, int i) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const rl_bf16 *)w + i), 16));
}

static inline float elem_f32(const void *w, int i) { return ((const float *)w)[i]; }

static inline float elem_f16(const void *w, int i) { return rl_fp16_to_f32(((const rl_fp16 *)w)[i]); }

static inline float elem_bf16(const void *w, int i) { return rl_bf16_to_f32(((const rl_bf16 *)w)[i]); }

/* Inlined into each caller with constant loaders, so no indirect calls
 * remain. Four independent accumulators cover the latency of FMLA. */
static inline __attribute__((always_inline)) float dot_float(int n, const void *w, const float *y,
                                                             float32x4_t (*load4)(const void *, int),
                                                             float (*elem)(const void *, int)) {
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++)
            acc[k] = vfmaq_f32(acc[k], load4(w, i + 4 * k), vld1q_f32(y + i + 4 * k));
    for (; i + 4 <= n; i += 4)
        acc[0] = vfmaq_f32(acc[0], load4(w, i), vld1q_f32(y + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; i++)
        sum += elem(w, i) * y[i];
    return sum;
}

static float vec_dot_f32_neon(int n, const void *w, const void *a) { return dot_float(n, w, a, load4_f32, elem_f32); }

static float vec_dot_f16_neon(int n, const void *w, const void *a) { return dot_float(n, w, a, load4_f16, elem_f16); }

static float vec_dot_bf16_neon(int n, const void *w, const void *a) {
    return dot_float(n, w, a, load4_bf16, elem_bf16);
}

/* ---- KV cache reads: the attention's Q8_0 key dot and value sums ---------- */

/* Q8_0 keys against the Q8_0 query: the reference's integer sum per block,
 * then one float multiply-add per block in the reference's order. */
static float vec_dot_q8_0_neon(int n, const void *w, const void *a) {
    const block_q8_0 *x = w, *y = a;
    float sum = 0;
    for (int i = 0; i < n / QK8_0; i++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int k = 0; k < QK8_0; k += 16) {
            const int8x16_t xv = vld1q_s8(x[i].qs + k), yv = vld1q_s8(y[i].qs + k);
            acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(xv), vget_low_s8(yv)));
            acc = vpadalq_s16(acc, vmull_s8(vget_high_s8(xv), vget_high_s8(yv)));
        }
        sum += (float)vaddvq_s32(acc) * (rl_fp16_to_f32(x[i].d) * rl_fp16_to_f32(y[i].d));
    }
    return sum;
}

/* Four scores of one F16 key row, the row converted once per 4 elements,
 * the four sums in registers. */
static void dot4_f16(int n, const void *k, const char *q, size_t q_stride, float *scores, size_t s_stride) {
    const float *q0 = (const float *)q, *q1 = (const float *)(q + q_stride);
    const float *q2 = (const float *)(q + 2 * q_stride), *q3 = (const float *)(q + 3 * q_stride);
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0), a2 = vdupq_n_f32(0), a3 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t kv = load4_f16(k, i);
        a0 = vfmaq_f32(a0, kv, vld1q_f32(q0 + i));
        a1 = vfmaq_f32(a1, kv, vld1q_f32(q1 + i));
        a2 = vfmaq_f32(a2, kv, vld1q_f32(q2 + i));
        a3 = vfmaq_f32(a3, kv, vld1q_f32(q3 + i));
    }
    float s0 = vaddvq_f32(a0), s1 = vaddvq_f32(a1), s2 = vaddvq_f32(a2), s3 = vaddvq_f32(a3);
    for (; i < n; i++) {
        const float kf = elem_f16(k, i);
        s0 += kf * q0[i], s1 += kf * q1[i], s2 += kf * q2[i], s3 += kf * q3[i];
    }
    scores[0] = s0, scores[s_stride] = s1, scores[2 * s_stride] = s2, scores[3 * s_stride] = s3;
}

/* F16 keys against f32 queries: four at a time, the rest one by one. */
static void kv_dot_f16_neon(int n, const void *k, const void *q, size_t q_stride, int G, float *scores,
                            size_t s_stride) {
    int g = 0;
    for (; g + 4 <= G; g += 4)
        dot4_f16(n, k, (const char *)q + (size_t)g * q_stride, q_stride, scores + (size_t)g * s_stride, s_stride);
    for (; g < G; g++)
        scores[(size_t)g * s_stride] = vec_dot_f16_neon(n, k, (const char *)q + (size_t)g * q_stride);
}

/* Q8_0 keys against Q8_0 queries, each query as vec_dot_q8_0_neon. */
static void kv_dot_q8_0_neon(int n, const void *k, const void *q, size_t q_stride, int G, float *scores,
                             size_t s_stride) {
    for (int g = 0; g < G; g++)
        scores[(size_t)g * s_stride] = vec_dot_q8_0_neon(n, k, (const char *)q + (size_t)g * q_stride);
}

/* Value sums: multiply, then add, as the reference. */
static void kv_axpy_f16_neon(int n, const float *a, size_t a_stride, const void *v, int G, float *y) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t x = load4_f16(v, i);
        for (int g = 0; g < G; g++) {
            float *yg = y + (size_t)g * n + i;
            vst1q_f32(yg, vaddq_f32(vld1q_f32(yg), vmulq_n_f32(x, a[g * a_stride])));
        }
    }
    for (; i < n; i++)
        for (int g = 0; g < G; g++)
            y[(size_t)g * n + i] += a[g * a_stride] * elem_f16(v, i);
}

static void kv_axpy_q8_0_neon(int n, const float *a, size_t a_stride, const void *vv, int G, float *y) {
    const block_q8_0 *x = vv;
    for (int b = 0; b < n / QK8_0; b++) {
        const float d = rl_fp16_to_f32(x[b].d);
        float32x4_t v[8];
        for (int k = 0; k < 4; k++) {
            const int16x8_t q = vmovl_s8(vld1_s8(x[b].qs + 8 * k));
            v[2 * k] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(q)));
            v[2 * k + 1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(q)));
        }
        for (int g = 0; g < G; g++) {
            const float s = a[g * a_stride] * d;
            float *yg = y + (size_t)g * n + b * QK8_0;
            for (int k = 0; k < 8; k++)
                vst1q_f32(yg + 4 * k, vaddq_f32(vld1q_f32(yg + 4 * k), vmulq_n_f32(v[k], s)));
        }
    }
}

static rl_kernel_set neon_set = {
    .name = "neon",
    .quantize_q8_0 = quantize_q8_0_neon,
    .vec_dot =
        {
            [RL_F32] = vec_dot_f32_neon,
            [RL_F16] = vec_dot_f16_neon,
            [RL_BF16] = vec_dot_bf16_neon,
            [RL_Q8_0] = vec_dot_q8_0_neon,
        },
    .qg_pack = rl_qg_pack_neon,
    .qg_unpack = rl_qg_unpack_neon,
    .qg_kernel = rl_qg_kernel_neon,
    .qg_gemv = rl_qg_gemv_neon,
    .qg_gemv_max = 2, /* its passes take 2 tokens; larger batches unmeasured on hardware */
    .kv_dot =
        {
            [RL_F16] = kv_dot_f16_neon,
            [RL_Q8_0] = kv_dot_q8_0_neon,
        },
    .kv_axpy =
        {
            [RL_F16] = kv_axpy_f16_neon,
            [RL_Q8_0] = kv_axpy_q8_0_neon,
        },
};

static pthread_once_t neon_once = PTHREAD_ONCE_INIT;

static void neon_complete(void) {
    if (rl_cpu()->dotprod) {
        neon_set.qg_kernel = rl_qg_kernel_neon_dot;
        neon_set.qg_gemv = rl_qg_gemv_neon_dot;
    }
    rl_kernels_fill(&neon_set, rl_kernels_ref());
}

const rl_kernel_set *rl_kernels_neon(void) {
    if (!rl_cpu()->neon)
        return NULL;
    pthread_once(&neon_once, neon_complete);
    return &neon_set;
}
