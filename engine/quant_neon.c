/* The aarch64 kernel set: the activation quantizer and the batched product
 * in NEON (every aarch64 core has it), with the dot-product microkernel
 * chosen at run time on cores that report it (HWCAP_ASIMDDP: the Pi 5's
 * Cortex-A76, not the Pi 4's A72). The matrix-vector dots come from the
 * scalar reference: with the batched product serving every batch size they
 * only run for float weights. */
#include "cpu.h"

#include <arm_neon.h>
#include <pthread.h>

/* The reference's Q8_0 quantizer, 32 elements at a time, byte for byte: the
 * same float operations, FCVTNS rounding half to even like lrintf. */
static void quantize_q8_0_neon(const float *x, void *dst, int n)
{
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

static rl_kernel_set neon_set = {
    .name = "neon",
    .quantize_q8_0 = quantize_q8_0_neon,
    .qg_pack = rl_qg_pack_neon,
    .qg_unpack = rl_qg_unpack_neon,
    .qg_kernel = rl_qg_kernel_neon,
};

static pthread_once_t neon_once = PTHREAD_ONCE_INIT;

static void neon_complete(void)
{
    if (rl_cpu()->dotprod)
        neon_set.qg_kernel = rl_qg_kernel_neon_dot;
    rl_kernels_fill(&neon_set, rl_kernels_ref());
}

const rl_kernel_set *rl_kernels_neon(void)
{
    if (!rl_cpu()->neon)
        return NULL;
    pthread_once(&neon_once, neon_complete);
    return &neon_set;
}
