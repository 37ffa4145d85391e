/* The streaming-read probe of `relais bench --probe`: how fast this machine
 * reads memory it has not got in cache, with a given number of threads. The
 * decode speed of a model is bounded by it (every weight is read once per
 * token), so `relais bench` reports decode's effective bandwidth as a share
 * of it. */
#ifndef RELAIS_BENCH_PROBE_H
#define RELAIS_BENCH_PROBE_H

#include <stddef.h>

/* Best of several passes over a buffer of `bytes` (much larger than the
 * caches) split between `threads` threads, in GB/s; 0 when the buffer or the
 * threads cannot be had. */
double bench_probe_gbps(int threads, size_t bytes);

#endif
