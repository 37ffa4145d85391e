/* Run-time CPU detection and the choice of kernel set.
 *
 * The x86 features come from CPUID, but a CPU flag alone is not enough: the
 * OS must also save the wider registers on a context switch, which XGETBV
 * reports (XCR0). Without that check an AVX-512 kernel could run on a kernel
 * that silently corrupts ZMM state. rl_kernels() picks the widest usable set
 * once; RELAIS_ISA names a set explicitly, for benchmarking and for testing a
 * slower path on a fast machine. */
#include "cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(rl_cpu_features *f) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    const bool fma = c & (1u << 12), osxsave = c & (1u << 27);
    const bool avx = c & (1u << 28), f16c = c & (1u << 29);
    if (!osxsave || !avx)
        return;
    const uint64_t xcr0 = read_xcr0();
    const bool ymm_ok = (xcr0 & 0x6) == 0x6;   /* SSE and AVX state */
    const bool zmm_ok = (xcr0 & 0xe6) == 0xe6; /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    if (!ymm_ok || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return;
    f->avx2 = (b & (1u << 5)) && fma && f16c;
    const bool f512 = b & (1u << 16), dq = b & (1u << 17);
    const bool bw = b & (1u << 30), vl = b & (1u << 31);
    f->avx512 = f->avx2 && zmm_ok && f512 && dq && bw && vl;
    f->avx512vnni = f->avx512 && (c & (1u << 11));
}
#elif defined(__aarch64__)
#include <sys/auxv.h>

static void detect(rl_cpu_features *f) {
    f->neon = true;
    f->dotprod = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
}
#else
static void detect(rl_cpu_features *f) { (void)f; }
#endif

static rl_cpu_features g_features;
static pthread_once_t g_features_once = PTHREAD_ONCE_INIT;

static void detect_once(void) { detect(&g_features); }

const rl_cpu_features *rl_cpu(void) {
    pthread_once(&g_features_once, detect_once);
    return &g_features;
}

void rl_kernels_fill(rl_kernel_set *set, const rl_kernel_set *fallback) {
    if (!set->quantize_q8_0)
        set->quantize_q8_0 = fallback->quantize_q8_0;
    if (!set->quantize_q8_K)
        set->quantize_q8_K = fallback->quantize_q8_K;
    for (int t = 0; t < RL_DTYPE_COUNT; t++) {
        if (!set->vec_dot[t])
            set->vec_dot[t] = fallback->vec_dot[t];
        if (!set->kv_rows[t])
            set->kv_rows[t] = fallback->kv_rows[t];
    }
    if (!set->kv_scores)
        set->kv_scores = fallback->kv_scores;
    if (!set->kv_values)
        set->kv_values = fallback->kv_values;
    if (!set->kv_softmax)
        set->kv_softmax = fallback->kv_softmax;
    if (!set->qg_kernel) { /* the three parts of the batched path go together */
        set->qg_pack = fallback->qg_pack;
        set->qg_unpack = fallback->qg_unpack;
        set->qg_kernel = fallback->qg_kernel;
        set->qg_gemv = fallback->qg_gemv;
        set->qg_gemv_max = fallback->qg_gemv_max;
    }
}

/* The ISA files exist only for their architecture; elsewhere the set is
 * simply absent. An aarch64 build gets rl_kernels_neon from quant_neon.c. */
#if !defined(__x86_64__)
const rl_kernel_set *rl_kernels_avx2(void) { return NULL; }

const rl_kernel_set *rl_kernels_avx512(void) { return NULL; }
#endif
#if !defined(__aarch64__)
const rl_kernel_set *rl_kernels_neon(void) { return NULL; }
#endif

static const rl_kernel_set *g_kernels;
static pthread_once_t g_kernels_once = PTHREAD_ONCE_INIT;

static const rl_kernel_set *best_set(void) {
    const rl_kernel_set *s;
    if ((s = rl_kernels_avx512()) || (s = rl_kernels_avx2()) || (s = rl_kernels_neon()))
        return s;
    return rl_kernels_ref();
}

static void choose_once(void) {
    const char *want = getenv("RELAIS_ISA");
    g_kernels = best_set();
    if (!want || !*want)
        return;
    static const struct {
        const char *name;
        const rl_kernel_set *(*get)(void);
    } sets[] = {
        {"scalar", rl_kernels_ref},
        {"avx2", rl_kernels_avx2},
        {"avx512", rl_kernels_avx512},
        {"neon", rl_kernels_neon},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        if (strcmp(want, sets[i].name) != 0)
            continue;
        const rl_kernel_set *s = sets[i].get();
        if (s) {
            g_kernels = s;
            return;
        }
        fprintf(stderr, "relais: RELAIS_ISA=%s is not supported on this CPU or build; using %s\n", want,
                g_kernels->name);
        return;
    }
    fprintf(stderr, "relais: RELAIS_ISA=%s is unknown (scalar, avx2, avx512, neon); using %s\n", want, g_kernels->name);
}

const rl_kernel_set *rl_kernels(void) {
    pthread_once(&g_kernels_once, choose_once);
    return g_kernels;
}
