/* Going on after a lost node (see cluster_recover.h): the re-plan, the
 * replay of a session's ids on the new pipeline, and what is logged about
 * them, for the server's executor and the run/chat backend alike. */
#include "cluster_recover.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include "forward.h"
#include "log.h"

uint32_t cluster_replay_chunks(const uint8_t *starts, uint32_t n, uint32_t max_batch, uint32_t gemm_min,
                               uint32_t *sizes) {
    if (!starts)
        gemm_min = 0;
    const uint32_t join = gemm_min == 0 || gemm_min - 1 > max_batch ? max_batch : gemm_min - 1;
    uint32_t k = 0, open = 0;   /* open: tokens of the joined Forward being filled */
    for (uint32_t pos = 0; pos < n;) {
        uint32_t end = pos + 1;   /* the step that began at pos ends where the next one begins */
        while (end < n && !(starts && starts[end]))
            end++;
        while (pos < end) {
            const uint32_t m = end - pos < max_batch ? end - pos : max_batch;   /* a Forward of the first feeding */
            if (gemm_min && m >= gemm_min) {   /* sgemm then: the same cut again */
                if (open)
                    sizes[k++] = open, open = 0;
                sizes[k++] = m;
            } else {
                for (uint32_t left = m; left;) {
                    const uint32_t take = join - open < left ? join - open : left;
                    open += take, left -= take;
                    if (open == join)
                        sizes[k++] = open, open = 0;
                }
            }
            pos += m;
        }
    }
    if (open)
        sizes[k++] = open;
    return k;
}

/* The answer to the micro-batch `step`, waiting as long as the pipeline
 * lives. 0, or -1 with err. */
static int await_step(cluster *c, uint64_t step, cluster_batch_result *r, char *err, size_t errlen) {
    int rc;
    do
        rc = cluster_batch_wait(c, 1000, r, err, errlen);
    while (rc == 0 || (rc > 0 && r->step != step));
    if (rc > 0 && r->status)
        snprintf(err, errlen, "%s", r->err);
    return rc < 0 || r->status ? -1 : 0;
}

/* A session of the server: one micro-batch at a time, each waited for. */
static int replay_batches(cluster *c, const cluster_replay *r, const uint32_t *sizes, uint32_t n_chunks,
                          rl_step_result *out, char *err, size_t errlen) {
    uint64_t session = 0;
    int32_t id = -1;
    cluster_batch_result res = {.cap = 1, .sessions = &session, .ids = &id};
    for (uint32_t k = 0, pos = 0; k < n_chunks; pos += sizes[k++]) {
        cluster_seg g = {.session = r->session, .ids = r->ids + pos, .n = sizes[k], .pos = pos, .n_ctx = r->n_ctx,
                         .sampling = k + 1 == n_chunks ? r->sampling : NULL};
        uint64_t step = cluster_batch_send(c, &g, 1, err, errlen);
        if (!step || await_step(c, step, &res, err, errlen))
            return -1;
    }
    *out = (rl_step_result){.id = res.n && session == r->session ? id : -1};
    return 0;
}

int cluster_replay_session(cluster *c, const cluster_replay *r, const rl_runner_opts *ro, rl_step_result *out,
                           char *err, size_t errlen) {
    assert(r->sampling || !r->starts);   /* a step always samples */
    uint32_t *sizes = malloc((r->n ? r->n : 1) * sizeof *sizes);
    if (!sizes) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const uint32_t n_chunks = cluster_replay_chunks(r->starts, r->n, rl_runner_batch(ro),
                                                    rl_gemm_min_for(ro->no_gemm, ro->gemm_min), sizes);
    int rc = r->starts ? cluster_step_chunks(c, r->session, 0, r->ids, sizes, n_chunks, r->sampling, out, err, errlen)
                       : replay_batches(c, r, sizes, n_chunks, out, err, errlen);
    free(sizes);
    return rc;
}

int cluster_recover(cluster *c, const rl_cluster_opts *o, const rl_runner_opts *ro, uint32_t max_sessions,
                    const char *why, bool *answered, cluster_replay_fn replay, void *ud, char *err, size_t errlen) {
    char lost[256], why_not[512];
    snprintf(lost, sizeof lost, "%s", why);   /* `why` may be err, or the cluster's own, which the re-plan rewrites */
    rl_log(RL_LOG_WARN, "%s: re-planning over the nodes that answer", lost);
    int rc = rl_cluster_replan(c, o, ro, max_sessions, answered, why_not, sizeof why_not);
    for (uint32_t i = 0; rc == 0 && i < cluster_n_nodes(c); i++)
        if (!answered[i])
            rl_log(RL_LOG_WARN, "node %s left out: it did not answer", cluster_node_name(c, i));
    if (rc == 0)
        rc = replay(ud, answered, why_not, sizeof why_not);
    if (rc) {
        snprintf(err, errlen, "%s; the re-plan failed: %s", lost, why_not);
        return -1;
    }
    char desc[512];
    cluster_describe(c, desc, sizeof desc);
    rl_log(RL_LOG_WARN, "re-planned over %u nodes, resuming on the %s", cluster_n_stages(c), desc);
    return 0;
}
