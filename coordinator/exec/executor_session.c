/* One session driven through an executor, as `relais run` and `relais chat`
 * use it (see executor.h, rl_xsession). A step is cut into micro-batches of
 * one segment, max_batch tokens each, that may use sgemm: the chunks one
 * process has always computed, so a run's output is that of before the
 * executor carried it. Up to `depth` of them are in flight, so a cluster's
 * stages overlap a long prompt; only the last one samples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "executor.h"
#include "runner.h"

#define SESSION 1    /* the executor's id of the one session */
#define WAIT_MS 1000 /* one wait; a step waits as long as the executor says it lives */

struct rl_xsession {
    rl_executor *x; /* borrowed */
    uint32_t n_ctx;
    bool progress;
    bool held;    /* the executor holds the session */
    int32_t *ids; /* (n_ctx) the ids the session holds, for the penalties */
    uint32_t pos;
    rl_sampler_params params;
    uint32_t stream; /* counts begin(): a new value restarts the sampler */
    uint32_t n_top;
    uint64_t next_batch;
};

rl_xsession *rl_xsession_new(rl_executor *x, uint32_t n_ctx, bool progress) {
    rl_xsession *s = calloc(1, sizeof *s);
    if (s && !(s->ids = malloc((n_ctx ? n_ctx : 1) * sizeof *s->ids)))
        free(s), s = NULL;
    if (s)
        s->x = x, s->n_ctx = n_ctx, s->progress = progress;
    return s;
}

void rl_xsession_destroy(rl_xsession **ps) {
    rl_xsession *s = ps ? *ps : NULL;
    if (!s)
        return;
    if (s->held)
        s->x->ops->drop(s->x, SESSION);
    free(s->ids);
    free(s);
    *ps = NULL;
}

void rl_xsession_begin(rl_xsession *s, const rl_sampler_params *p, uint32_t n_top) {
    s->params = *p;
    s->n_top = n_top < RL_MAX_TOP ? n_top : RL_MAX_TOP;
    s->stream++;
}

/* The segment of a step of n ids (fed from s->pos) that starts `done` ids in:
 * up to max_batch of them, the last one sampling. */
static rl_xseg segment(const rl_xsession *s, uint32_t done, uint32_t n) {
    const uint32_t chunk = n - done < s->x->max_batch ? n - done : s->x->max_batch;
    const uint32_t pos = s->pos + done;
    return (rl_xseg){.session = SESSION,
                     .ids = s->ids + pos,
                     .n = chunk,
                     .pos = pos,
                     .n_ctx = s->n_ctx,
                     .sample = done + chunk == n,
                     .sgemm = true,
                     .sampling = &s->params,
                     .stream = s->stream,
                     .n_top = s->n_top,
                     .history = s->ids,
                     .n_history = s->pos + n};
}

/* Submits and collects the step's micro-batches; the last one's sample in
 * *id and *top. 0, or -1 with err (after every submitted one came back). */
static int run_step(rl_xsession *s, uint32_t n, int32_t *id, rl_top *top, char *err, size_t errlen) {
    uint32_t sent = 0, through = 0, flying = 0;
    int rc = 0;
    while (through < n && (rc == 0 || flying)) {
        while (rc == 0 && sent < n && flying < s->x->depth) {
            rl_xseg g = segment(s, sent, n);
            if ((rc = s->x->ops->submit(s->x, ++s->next_batch, &g, 1, err, errlen)) == 0)
                sent += g.n, flying++, s->held = true;
        }
        rl_xdone d;
        if (flying == 0 || s->x->ops->wait(s->x, WAIT_MS, &d) != 1)
            continue;
        flying--;
        const rl_xseg g = segment(s, through, n);
        through += g.n;
        if (d.status && rc == 0)
            snprintf(err, errlen, "%s", d.err), rc = -1;
        if (rc == 0 && s->progress)
            rl_show_prefill(through, n, s->x->max_batch);
        if (rc == 0 && g.sample) {
            *id = d.ids[0];
            if (top)
                *top = d.top[0];
        }
    }
    return rc;
}

int rl_xsession_step(rl_xsession *s, const int32_t *ids, uint32_t n, int32_t *id, rl_top *top, char *err,
                     size_t errlen) {
    if (s->stream == 0 || n == 0) {
        snprintf(err, errlen, s->stream ? "a step needs at least one id" : "step before begin");
        return -1;
    }
    if ((uint64_t)s->pos + n > s->n_ctx) {
        snprintf(err, errlen, "%u more tokens would exceed the context of %u (%u used)", n, s->n_ctx, s->pos);
        return -1;
    }
    if (s->pos == 0 && s->held) { /* cleared (a sliding window's truncate): the session starts again */
        s->x->ops->drop(s->x, SESSION);
        s->held = false;
    }
    memcpy(s->ids + s->pos, ids, n * sizeof *ids);
    if (run_step(s, n, id, top, err, errlen)) {
        char why[256]; /* part of the ids may have gone in: bring the session back */
        int64_t kept = s->held ? s->x->ops->truncate(s->x, SESSION, s->pos, why, sizeof why) : 0;
        if (kept >= 0)
            s->pos = (uint32_t)kept;
        return -1;
    }
    s->pos += n;
    return 0;
}

int64_t rl_xsession_truncate(rl_xsession *s, uint32_t pos, char *err, size_t errlen) {
    if (pos >= s->pos)
        return s->pos;
    int64_t kept = s->held ? s->x->ops->truncate(s->x, SESSION, pos, err, errlen) : pos;
    if (kept >= 0)
        s->pos = (uint32_t)kept;
    return kept;
}
