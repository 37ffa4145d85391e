/* Going on after a lost node, shared by `relais serve --cluster`
 * (executor_cluster.c) and `relais run|chat --cluster` (backend_cluster.c).
 *
 * The coordinator keeps every session's ids. When the pipeline breaks, it
 * greets the nodes again, plans the layers over those that answer
 * (rl_cluster_replan) and feeds each session's ids again from position 0, so
 * that the new stages rebuild their caches. The replay computes every token
 * with the kernels that first computed it (cluster_replay_chunks), so the
 * caches and logits are those of an unbroken run; the sample after the last
 * id comes from a sampler made anew on the new head stage, which skips the
 * draws its stream made before (cluster_sampling.samples_before), so a
 * seeded stream goes on where it was. */
#ifndef RELAIS_CLUSTER_RECOVER_H
#define RELAIS_CLUSTER_RECOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "backend_cluster.h"
#include "cluster.h"

/* One session as a replay feeds it. */
typedef struct {
    uint64_t session;
    const int32_t *ids;                 /* every id it holds, by position from 0 */
    uint32_t n;
    const uint8_t *starts;              /* (n) 1 where a cluster_step began when the ids were first fed; NULL
                                           for a session fed as micro-batches (the quantized kernels at every
                                           size: any cut computes the same) */
    uint32_t n_ctx;                     /* micro-batches: its context (0: the assignment's) */
    const cluster_sampling *sampling;   /* sample after the last id; NULL: do not */
} cluster_replay;

/* The Forwards of a replay of n ids into sizes (room for n), their count.
 * A first feeding cut each step (starts) into max_batch Forwards; those of
 * gemm_min tokens or more (sgemm) are cut again the same way, while shorter
 * ones, whose tokens were each computed as alone, are joined up to
 * gemm_min - 1 tokens (max_batch with gemm_min 0). starts NULL: one step
 * with gemm_min 0. */
uint32_t cluster_replay_chunks(const uint8_t *starts, uint32_t n, uint32_t max_batch, uint32_t gemm_min,
                               uint32_t *sizes);

/* Feeds r again on c's new pipeline, assigned with ro: through single-session
 * steps when r->starts is set, else as micro-batches of one segment. The id
 * sampled after the last one (when r->sampling) in *out. 0, or -1 with err. */
int cluster_replay_session(cluster *c, const cluster_replay *r, const rl_runner_opts *ro, rl_step_result *out,
                           char *err, size_t errlen);

/* Feeds every session of the caller again (cluster_replay_session), once
 * the new plan is assigned; answered[i] says which nodes it was made over.
 * 0, or -1 with err. */
typedef int (*cluster_replay_fn)(void *ud, const bool *answered, char *err, size_t errlen);

/* After the pipeline was lost (why, which may be err or the cluster's own
 * reason: it is copied first): logs it, re-plans over the nodes that
 * answer (answered[i], n_nodes flags, says who did; --layers gives way to
 * the planner when some did not), names those left out, runs replay(ud) and
 * logs the new pipeline. 0, or -1 with err ("why; the re-plan failed: ..."):
 * no node answered, the model does not fit those that did, or the replay
 * failed. */
int cluster_recover(cluster *c, const rl_cluster_opts *o, const rl_runner_opts *ro, uint32_t max_sessions,
                    const char *why, bool *answered, cluster_replay_fn replay, void *ud, char *err, size_t errlen);

#endif
