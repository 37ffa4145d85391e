/* Going on after a lost node (see cluster_recover.h): the re-plan, the
 * replay of a session's ids on the new pipeline, and what is logged about
 * them. */
#include "cluster_recover.h"

#include <stdio.h>
#include <stdlib.h>
#include "log.h"

#define RECOVER_TRIES 4 /* re-plans after one loss, while nodes keep going */

uint32_t cluster_replay_chunks(const cluster_replay *r, uint32_t max_batch, cluster_chunk *out, bool *sgemm) {
    uint32_t k = 0, next = 0; /* next: the first sgemm chunk not reached yet */
    for (uint32_t pos = 0; pos < r->n;) {
        if (next < r->n_sgemm && r->sgemm[next].pos == pos && r->sgemm[next].n <= r->n - pos) {
            out[k] = r->sgemm[next++];
            sgemm[k++] = true;
        } else {
            uint32_t end = next < r->n_sgemm ? r->sgemm[next].pos : r->n;
            if (end > r->n || end <= pos) /* chunks past the ids (or out of order) are not there to replay */
                end = r->n;
            out[k] = (cluster_chunk){pos, end - pos < max_batch ? end - pos : max_batch};
            sgemm[k++] = false;
        }
        pos = out[k - 1].pos + out[k - 1].n;
    }
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

int cluster_replay_session(cluster *c, const cluster_replay *r, uint32_t max_batch, int32_t *id, rl_top *top,
                           int32_t *verified, char *err, size_t errlen) {
    const uint32_t verify = r->sampling && r->verify <= r->n ? r->verify : 0;
    cluster_replay head = *r; /* the ids before a verifying segment, replayed as before */
    head.n = r->n - verify;
    cluster_chunk *chunks = malloc((r->n ? r->n : 1) * sizeof *chunks);
    bool *sgemm = malloc(r->n ? r->n : 1);
    uint64_t session = 0;
    uint32_t n_verified = 0;
    cluster_batch_result res = {.cap = 1,
                                .sessions = &session,
                                .ids = id,
                                .top = top,
                                .verified = verified,
                                .n_verified = &n_verified,
                                .cap_verified = verify};
    int rc = chunks && sgemm ? 0 : -1;
    if (rc)
        snprintf(err, errlen, "out of memory");
    uint32_t n_chunks = rc ? 0 : cluster_replay_chunks(&head, max_batch, chunks, sgemm);
    if (verify)
        chunks[n_chunks] = (cluster_chunk){head.n, verify}, sgemm[n_chunks++] = false;
    *id = -1;
    for (uint32_t k = 0; rc == 0 && k < n_chunks; k++) {
        cluster_seg g = {.session = r->session,
                         .ids = r->ids + chunks[k].pos,
                         .n = chunks[k].n,
                         .pos = chunks[k].pos,
                         .n_ctx = r->n_ctx,
                         .sgemm = sgemm[k],
                         .sampling = k + 1 == n_chunks ? r->sampling : NULL,
                         .verify = verify && k + 1 == n_chunks};
        uint64_t step = cluster_batch_send(c, &g, 1, err, errlen);
        rc = !step || await_step(c, step, &res, err, errlen) ? -1 : 0;
    }
    if (rc == 0 && r->sampling && (res.n != 1 || session != r->session || n_verified != verify)) {
        snprintf(err, errlen, "the replay of session %llu sampled no id", (unsigned long long)r->session);
        rc = -1;
    }
    free(chunks), free(sgemm);
    return rc;
}

/* One re-plan and replay. 0, or -1 with why_not; *nobody says whether no
 * node answered at all. */
static int recover_once(cluster *c, const rl_cluster_opts *o, const rl_runner_opts *ro, uint32_t max_sessions,
                        bool *answered, cluster_replay_fn replay, void *ud, bool *nobody, char *why_not, size_t len) {
    int rc = rl_cluster_replan(c, o, ro, max_sessions, answered, why_not, len);
    *nobody = true;
    for (uint32_t i = 0; i < cluster_n_nodes(c); i++)
        *nobody &= !answered[i];
    for (uint32_t i = 0; rc == 0 && i < cluster_n_nodes(c); i++)
        if (!answered[i])
            rl_log(RL_LOG_WARN, "node %s left out: it did not answer", cluster_node_name(c, i));
    return rc == 0 ? replay(ud, answered, why_not, len) : -1;
}

int cluster_recover(cluster *c, const rl_cluster_opts *o, const rl_runner_opts *ro, uint32_t max_sessions,
                    const char *why, bool *answered, cluster_replay_fn replay, void *ud, char *err, size_t errlen) {
    char lost[256], why_not[512];
    snprintf(lost, sizeof lost, "%s", why); /* `why` may be err, or the cluster's own, which the re-plan rewrites */
    rl_log(RL_LOG_WARN, "%s: re-planning over the nodes that answer", lost);
    /* More nodes may go while one re-plan runs: then another, over those
     * that still answer, until none does. */
    bool nobody = false;
    int rc = -1;
    for (int k = 0; rc && !nobody && k < RECOVER_TRIES; k++) {
        if (k)
            rl_log(RL_LOG_WARN, "the re-plan failed (%s): planning again", why_not);
        rc = recover_once(c, o, ro, max_sessions, answered, replay, ud, &nobody, why_not, sizeof why_not);
    }
    if (rc) {
        snprintf(err, errlen, "%s; the re-plan failed: %s", lost, why_not);
        return -1;
    }
    char desc[512];
    cluster_describe(c, desc, sizeof desc);
    rl_log(RL_LOG_WARN, "re-planned over %u nodes, resuming on the %s", cluster_n_stages(c), desc);
    return 0;
}
