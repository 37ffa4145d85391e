/* One session driven through an executor, as `relais run` and `relais chat`
 * use it (see executor.h, rl_xsession). A step is cut into micro-batches of
 * one segment, max_batch tokens each, that may use sgemm: the chunks one
 * process has always computed, so a run's output is that of before the
 * executor carried it. Up to `depth` of them are in flight, so a cluster's
 * stages overlap a long prompt; only the last one samples.
 *
 * With a draft source (rl_xsession_set_draft), rl_xsession_next feeds the
 * last sampled id and the draft's guesses behind it as one segment that
 * verifies them: the target samples after every position, the guesses
 * equal to its own samples are kept with its id after them, and the next
 * segment drops the rest from the cache (rl_xseg.rewind, as rl_xsession_rewind
 * does for a chat's edited turn: no round trip). A draft model
 * that samples sends the distributions it drew from with the segment
 * (rl_xseg.draft_q): the target then keeps each guess with probability
 * min(1, p/q) and replaces a rejected one by its own residual draw, so
 * what it returns is again the kept guesses and its id after them.
 * Verification uses the quantized kernels
 * (never sgemm), whose rows do not depend on how many share the pass, so
 * greedy output is that of one id per pass, id for id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "draft.h"
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
    rl_draft *draft;   /* borrowed; NULL: no speculation */
    uint32_t k_max, k; /* most ids drafted per pass; the current number (adaptive) */
    bool verifying;    /* the step under way verifies a draft */
    uint32_t n_held;   /* positions the executor holds (at most); past pos, the next segment drops them */
    int32_t verified[RL_DRAFT_MAX + 1]; /* its ids per position */
    rl_qdist q[RL_DRAFT_MAX];           /* a sampled draft's distributions (q[0].n 0: a deterministic one) */
    rl_rng draft_rng;                   /* the draws of a sampled draft, seeded by begin() */
    rl_xspec_stats stats;
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
    rl_draft_seed(&s->draft_rng, p->seed);
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
                     .sgemm = !s->verifying,
                     .verify = s->verifying && done + chunk == n,
                     .draft_q = s->verifying && done + chunk == n && s->q[0].n ? s->q : NULL,
                     .rewind = s->n_held > pos,
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
                sent += g.n, flying++, s->held = true, s->n_held = g.pos + g.n > s->n_held ? g.pos + g.n : s->n_held;
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
        if (rc == 0 && g.verify)
            memcpy(s->verified, d.verified, g.n * sizeof *s->verified);
        if (rc == 0 && g.sample) {
            *id = d.ids[0];
            if (top)
                *top = d.top[0];
        }
    }
    return rc;
}

/* Feeds the n ids at s->ids[s->pos..]: 0, or -1 with err and the session
 * back where it was (part of the ids may have gone in: the next step's
 * rewind takes them back). */
static int feed(rl_xsession *s, uint32_t n, int32_t *id, rl_top *top, char *err, size_t errlen) {
    if (run_step(s, n, id, top, err, errlen)) {
        rl_xsession_rewind(s, s->pos);
        return -1;
    }
    s->pos += n;
    s->n_held = s->pos;
    return 0;
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
    memcpy(s->ids + s->pos, ids, n * sizeof *ids);
    return feed(s, n, id, top, err, errlen);
}

void rl_xsession_set_draft(rl_xsession *s, rl_draft *d, uint32_t k_max) {
    s->draft = d;
    s->k_max = k_max < RL_DRAFT_MAX ? k_max : RL_DRAFT_MAX;
    s->k = s->k_max;
}

rl_xspec_stats rl_xsession_spec_stats(const rl_xsession *s) { return s->stats; }

/* The ids the draft guesses behind id (put at s->ids[s->pos]), at most as
 * many as the context, the micro-batch and cap leave room for. */
static uint32_t draft_ids(rl_xsession *s, int32_t id, uint32_t cap) {
    uint32_t k = s->k < cap - 1 ? s->k : cap - 1;
    if (k + 1 > s->x->max_batch)
        k = s->x->max_batch - 1;
    if ((uint64_t)s->pos + 1 + k > s->n_ctx)
        k = s->pos + 1 < s->n_ctx ? s->n_ctx - s->pos - 1 : 0;
    if (k == 0)
        return 0;
    s->ids[s->pos] = id;
    return rl_draft_propose(s->draft, &s->params, &s->draft_rng, s->ids, s->pos + 1, s->ids + s->pos + 1, s->q, k);
}

/* After a pass that verified k drafted ids of which a were accepted: the
 * session keeps them (positions up to from + 1 + a); the executor drops the
 * rest with the next segment (a sliding ring keeps RL_KV_SLACK slots for
 * it, so this rewind is always exact). */
static void keep_accepted(rl_xsession *s, uint32_t from, uint32_t a) { rl_xsession_rewind(s, from + 1 + a); }

int rl_xsession_next(rl_xsession *s, int32_t id, int32_t *out, uint32_t cap, uint32_t *n_out, rl_top *top, char *err,
                     size_t errlen) {
    s->stats.passes++;
    const uint32_t from = s->pos;
    const uint32_t k = s->draft && s->n_top == 0 && cap > 1 && s->stream ? draft_ids(s, id, cap) : 0;
    *n_out = 1;
    if (k == 0) {
        s->stats.produced++;
        return rl_xsession_step(s, &id, 1, out, top, err, errlen);
    }
    int32_t draft[RL_DRAFT_MAX], last;
    memcpy(draft, s->ids + from + 1, k * sizeof *draft);
    s->verifying = true;
    int rc = feed(s, k + 1, &last, NULL, err, errlen);
    s->verifying = false;
    if (rc)
        return -1;
    uint32_t a = 0;
    while (a < k && s->verified[a] == draft[a])
        a++;
    memcpy(out, s->verified, (a + 1) * sizeof *out);
    *n_out = a + 1;
    s->stats.drafted += k, s->stats.accepted += a, s->stats.produced += a + 1;
    if (a == k && k == s->k)
        s->k = s->k + 1 < s->k_max ? s->k + 1 : s->k_max;
    else if (a < k)
        s->k = a + 1 < s->k ? a + 1 : s->k;
    keep_accepted(s, from, a);
    return 0;
}

uint32_t rl_xsession_rewind(rl_xsession *s, uint32_t pos) {
    const uint32_t to = pos < s->pos ? pos : s->pos;
    if (to < s->n_held) /* decided here, from the model's layout: the nodes are not asked */
        s->pos = rl_kv_truncate_for(&s->x->hp, s->n_ctx, s->n_held, to);
    return s->pos;
}
