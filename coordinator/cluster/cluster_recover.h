/* Going on after a lost node, for the cluster executor (executor_cluster.c)
 * that `relais serve`, `run` and `chat` all drive.
 *
 * The coordinator keeps every session's ids. When the pipeline breaks, it
 * greets the nodes again, plans the layers over those that answer
 * (rl_cluster_replan) and feeds each session's ids again from position 0, so
 * that the new stages rebuild their caches. The replay computes every token
 * with the kernels that first computed it: the chunks that went through
 * sgemm are cut as they were, every other token (the quantized kernels,
 * whose rows do not depend on their batch) goes in micro-batches as long as
 * they can be. The caches and logits are then those of an unbroken run; the
 * sample after the last id comes from a sampler made anew on the new head
 * stage, which skips the draws its stream made before
 * (cluster_sampling.samples_before), so a seeded stream goes on where it
 * was. */
#ifndef RELAIS_CLUSTER_RECOVER_H
#define RELAIS_CLUSTER_RECOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cluster.h"
#include "cluster_session.h"

/* Positions [pos, pos + n) of a session, fed as one micro-batch. */
typedef struct {
    uint32_t pos, n;
} cluster_chunk;

/* One session as a replay feeds it. */
typedef struct {
    uint64_t session;
    const int32_t *ids; /* every id it holds, by position from 0 */
    uint32_t n;
    uint32_t n_ctx;             /* its context (0: the assignment's) */
    const cluster_chunk *sgemm; /* (n_sgemm) the chunks sgemm computed, in order */
    uint32_t n_sgemm;
    const cluster_sampling *sampling; /* sample after the last id; NULL: do not */
    uint32_t verify;                  /* with sampling: the last this many ids verify a draft, sampled after each */
} cluster_replay;

/* The micro-batches of a replay of r (room for r->n in out): the sgemm
 * chunks as they were, the tokens between them in chunks of up to
 * max_batch. Returns their count; sgemm[k] says whether out[k] is one of
 * the sgemm ones. */
uint32_t cluster_replay_chunks(const cluster_replay *r, uint32_t max_batch, cluster_chunk *out, bool *sgemm);

/* Feeds r again on c's new pipeline, one micro-batch at a time. The id
 * sampled after the last one (when r->sampling) in *id, its top logits in
 * *top; with r->verify, the last ids go as one verifying segment and the id
 * sampled after each is in verified (r->verify of them). 0, or -1 with err. */
int cluster_replay_session(cluster *c, const cluster_replay *r, uint32_t max_batch, int32_t *id, rl_top *top,
                           int32_t *verified, char *err, size_t errlen);

/* Feeds every session of the caller again (cluster_replay_session), once
 * the new plan is assigned; answered[i] says which nodes it was made over.
 * 0, or -1 with err. */
typedef int (*cluster_replay_fn)(void *ud, const bool *answered, char *err, size_t errlen);

/* After the pipeline was lost (why, which may be err or the cluster's own
 * reason: it is copied first): logs it, re-plans over the nodes that
 * answer (answered[i], n_nodes flags, says who did; --layers gives way to
 * the planner when some did not), names those left out, runs replay(ud) and
 * logs the new pipeline; when that fails while some node answered (another
 * node went meanwhile), it plans again, a few times. 0, or -1 with err
 * ("why; the re-plan failed: ..."): no node answered, the model does not
 * fit those that did, or the replay kept failing. */
int cluster_recover(cluster *c, const rl_cluster_opts *o, const rl_runner_opts *ro, uint32_t max_sessions,
                    const char *why, bool *answered, cluster_replay_fn replay, void *ud, char *err, size_t errlen);

#endif
