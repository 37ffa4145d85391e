/* CPU feature detection and kernel-set plumbing, internal to the engine.
 *
 * One relais binary runs on any x86-64 (or aarch64) machine, so the SIMD
 * kernels are compiled for their ISA in separate files and chosen at run time.
 * A feature counts as present only when the CPU has it and the OS saves the
 * register state it needs (YMM for AVX2, ZMM and opmask for AVX-512). */
#ifndef RELAIS_CPU_H
#define RELAIS_CPU_H

#include <stdbool.h>
#include "quant.h"

typedef struct {
    bool avx2;       /* AVX2 + FMA + F16C, YMM state enabled by the OS */
    bool avx512;     /* AVX-512 F/BW/VL/DQ, ZMM and opmask state enabled */
    bool avx512vnni; /* VPDPBUSD, on top of avx512 */
    bool neon;       /* Advanced SIMD (always on aarch64) */
    bool dotprod;    /* SDOT/UDOT (HWCAP_ASIMDDP: Cortex-A76 and later) */
} rl_cpu_features;

/* Detected once; safe to call from any thread. */
const rl_cpu_features *rl_cpu(void);

/* Completes a per-ISA set: every vec_dot slot the ISA leaves NULL, and a
 * missing activation quantizer, is taken from `fallback`, so callers never
 * need to check a set for gaps. */
void rl_kernels_fill(rl_kernel_set *set, const rl_kernel_set *fallback);

/* The scalar reference of the batched path (qgemm_ref.c), and the SIMD
 * versions the ISA sets install (qgemm_avx2.c, qgemm_avx512.c, qgemm_neon.c). */
void rl_qg_pack_ref(rl_dtype t, const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc, rl_qg_tile *tile);
void rl_qg_unpack_ref(rl_dtype t, const void *x16, uint32_t nc, rl_qg_tile *tile);
void rl_qg_kernel_ref(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc);
void rl_qg_pack_avx2(rl_dtype t, const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc, rl_qg_tile *tile);
void rl_qg_unpack_avx2(rl_dtype t, const void *x16, uint32_t nc, rl_qg_tile *tile);
void rl_qg_kernel_avx2(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc);
void rl_qg_gemv_avx2(rl_dtype t, const void *x16, uint32_t nc, const rl_qg_act *act, uint32_t c0, float *acc);
void rl_qg_pack_avx512(rl_dtype t, const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc,
                       rl_qg_tile *tile);
void rl_qg_unpack_avx512(rl_dtype t, const void *x16, uint32_t nc, rl_qg_tile *tile);
void rl_qg_kernel_avx512(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc);
void rl_qg_gemv_avx512(rl_dtype t, const void *x16, uint32_t nc, const rl_qg_act *act, uint32_t c0, float *acc);
void rl_qg_pack_neon(rl_dtype t, const void *w, size_t row_bytes, int rows, uint32_t c0, uint32_t nc, rl_qg_tile *tile);
void rl_qg_unpack_neon(rl_dtype t, const void *x16, uint32_t nc, rl_qg_tile *tile);
void rl_qg_kernel_neon(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc);
void rl_qg_kernel_neon_dot(const rl_qg_tile *tile, const rl_qg_act *act, uint32_t c0, float *acc);
void rl_qg_gemv_neon(rl_dtype t, const void *x16, uint32_t nc, const rl_qg_act *act, uint32_t c0, float *acc);
void rl_qg_gemv_neon_dot(rl_dtype t, const void *x16, uint32_t nc, const rl_qg_act *act, uint32_t c0, float *acc);

#endif
