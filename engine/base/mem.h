/* Memory before it runs out: how much this process may still take, and the
 * check that the weights plus the KV caches of a run fit in it.
 *
 * KV pages are reserved lazily by the kernel, so without a check a small
 * machine starts fine and is killed hours later, when a long conversation
 * reaches the pages it never had. run, chat and serve check at start and
 * refuse with the figures and what would fit instead. The available memory
 * is the smaller of MemAvailable and the room left under this process's
 * cgroup limits (v2 memory.max, v1 memory.limit_in_bytes, every ancestor);
 * RELAIS_MEM_AVAILABLE (bytes, K/M/G/T suffixes) states it instead, for tests
 * and for a machine shared with other work. */
#ifndef RELAIS_MEM_H
#define RELAIS_MEM_H

#include <stddef.h>
#include <stdint.h>
#include "kv.h"
#include "model.h"

/* Memory that is not part of the weights or the KV cache (threads, compute
 * buffers, the runtime), counted on top of them. */
#define RL_MEM_RESERVE (64ull << 20)

typedef struct {
    uint64_t available; /* what the check uses: the smallest of the below that is known */
    uint64_t meminfo;   /* MemAvailable, 0 when unknown */
    uint64_t cgroup;    /* room under the cgroup limits, 0 when unlimited or unknown */
    uint64_t stated;    /* RELAIS_MEM_AVAILABLE, 0 when not set */
    uint64_t total;     /* MemTotal, 0 when unknown */
} rl_mem_info;

/* Reads the figures now. available is 0 when nothing is known (the check
 * then passes). -1 with err when RELAIS_MEM_AVAILABLE is set but not a size. */
int rl_mem_read(rl_mem_info *m, char *err, size_t errlen);

/* Parses "8G", "512M", "1024" (K, M, G, T: powers of 1024) into bytes; -1 if
 * it is not a size. */
int rl_mem_parse_size(const char *s, uint64_t *bytes);

/* Checks that weight_bytes plus n_sessions KV caches of n_ctx positions in
 * kv (and RL_MEM_RESERVE) fit in the memory available now. 0, or -1 with a
 * message giving the figures and what would fit: the largest --ctx, q8_0 KV,
 * more nodes. */
int rl_mem_check(const rl_hparams *hp, uint64_t weight_bytes, uint32_t n_ctx, uint32_t n_sessions, rl_kv_type kv,
                 char *err, size_t errlen);

/* The same for a model file before it is loaded: its hparams read with mo,
 * the context resolved from asked (rl_hparams_ctx), the KV type checked
 * against its heads, and the file's bytes counted as the weights. */
int rl_mem_check_file(const char *path, const rl_model_opts *mo, uint32_t asked_ctx, uint32_t n_sessions, rl_kv_type kv,
                      char *err, size_t errlen);

#endif
