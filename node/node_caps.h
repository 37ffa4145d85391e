/* What a node tells a coordinator about itself at Hello, apart from its
 * model files: cores, memory, SIMD features and a measured matvec
 * throughput, which the planner turns into layer shares.
 *
 * The throughput comes from a short self-benchmark (a few hundred ms of
 * quantized matrix-vector products over a matrix larger than the caches,
 * with the node's threads). The figure is cached in the --cache directory,
 * keyed by this binary (size and mtime), the CPU model and the thread count.
 * A cached figure is used at once, and measured again in the background at
 * every start: a figure taken while the machine was busy (or before a
 * change the key does not see, a new memory speed, a governor) would
 * otherwise mislead the planner forever. When the new measurement is off
 * from the cached one by more than a third, it replaces it, in this
 * process and in the cache. */
#ifndef RELAIS_NODE_CAPS_H
#define RELAIS_NODE_CAPS_H

#include <stdbool.h>
#include <stdint.h>
#include "relais.pb-c.h"

typedef struct node_caps node_caps;

/* Loads the cached benchmark or runs it. threads <= 0: one per core. NULL
 * only when out of memory. */
node_caps *node_caps_new(const char *cache_dir, int threads);
void node_caps_destroy(node_caps **c); /* NULLs *c */

double node_caps_matvec(node_caps *c); /* weight bytes per second: the latest figure */
/* Waits for the background measurement, if one runs. Returns whether it
 * replaced the cached figure. */
bool node_caps_settle(node_caps *c);

/* Fills the machine fields of out (cores, RAM read now, SIMD, throughput,
 * hostname, software). The strings point into c, valid until the next call. */
void node_caps_fill(node_caps *c, Relais__Capabilities *out);

/* The memory available (rl_mem_read: MemAvailable or the cgroup's room, or
 * RELAIS_MEM_AVAILABLE; capped by node_mem_set_limit) and MemTotal, in
 * bytes (0 when unknown). What Hello reports as free and what an assignment
 * is checked against. */
uint64_t node_mem_available(uint64_t *total);
/* Caps what node_mem_available reports (relais-node --max-memory); 0 lifts the cap. */
void node_mem_set_limit(uint64_t bytes);

#endif
