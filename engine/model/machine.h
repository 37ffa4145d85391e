/* What the engine can tell about the machine it runs on, for the node's
 * capabilities and `relais bench`: the kernel set it chose, the SIMD
 * features it found, and two self-benchmarks (a quantized matrix-vector
 * product and a plain streaming read) that bound decode's speed. This is the
 * only way node and coordinator reach the kernels and the thread pool. */
#ifndef RELAIS_MACHINE_H
#define RELAIS_MACHINE_H

#include <stddef.h>

/* The kernel set in use: "scalar", "avx2", "avx512" or "neon". */
const char *rl_kernel_name(void);

/* Fills names with up to cap SIMD features this CPU has and the OS enables
 * ("avx2", "avx512", "avx512vnni", "neon", "dotprod"); returns how many. The
 * strings are static. */
size_t rl_simd_names(const char **names, size_t cap);

/* Weight bytes per second that a Q4_0 matrix-vector product streams with
 * `threads` workers (a 37.7 MB matrix, past the last-level cache, so the
 * figure is memory-bound as decode is), timed for at least `seconds`.
 * 0 when the buffers or threads cannot be had. */
double rl_matvec_probe(int threads, double seconds);

/* Best of several passes of a plain streaming read of `bytes` (much larger
 * than the caches) split between `threads` threads, in GB/s; 0 when the
 * buffer or the threads cannot be had. */
double rl_read_probe(int threads, size_t bytes);

#endif
