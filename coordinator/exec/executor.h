/* The micro-batch executor: the one path every generation takes. The serving
 * scheduler (scheduler.h) drives it with many sessions; `relais run` and
 * `relais chat` drive it with one, through rl_xsession (below).
 *
 * A micro-batch is a list of segments, each some tokens of one session at
 * that session's next positions: a decode token, or a chunk of a prompt.
 * The executor runs the whole micro-batch through the model in one pass and
 * reports, for every segment that asked for it, the id sampled after its
 * last token and its top logits. Sessions' caches and samplers live where
 * the executor keeps them (this process for the local engine, the nodes for
 * a cluster); the caller only names sessions by id, takes positions back
 * with a segment's `rewind` and frees them with `drop`.
 *
 * Submission and completion are separate calls so that a pipeline of S
 * stages can hold S micro-batches in flight: the caller submits while
 * fewer than `depth` are outstanding and collects completions in order.
 *
 * Implementations: executor_local.c (the engine in this process),
 * executor_cluster.c (the nodes of a cluster, one micro-batch per stage in
 * flight); opened by executor_open.c; one session driven by
 * executor_session.c. */
#ifndef RELAIS_EXECUTOR_H
#define RELAIS_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cluster_session.h"
#include "kv.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"
#include "top_logits.h"

typedef struct {
    uint64_t session;   /* the scheduler's id of the session */
    const int32_t *ids; /* tokens to feed (borrowed until submit returns) */
    uint32_t n;         /* number of ids, >= 1 */
    uint32_t pos;       /* position of ids[0]; 0 creates the session (or, with rewind, starts it again) */
    uint32_t n_ctx;     /* positions the session may hold (its cache size) */
    bool sample;        /* sample an id after the last token */
    /* May use sgemm: a micro-batch of gemm_min rows or more whose segments
     * all allow it multiplies through sgemm, as one process computes a
     * prompt chunk (`run`, `chat`); otherwise the quantized kernels, whose
     * rows do not depend on what else shares the micro-batch (`serve`). */
    bool sgemm;
    const rl_sampler_params *sampling; /* the session's sampling (when sample) */
    uint32_t stream;                   /* a value other than the session's last starts a new sampler from
                                          `sampling` (its seed restarts); read when sample */
    uint32_t n_top;                    /* top logits to report with the sample (<= RL_MAX_TOP) */
    const int32_t *history;            /* ids for the penalties (when sample) */
    uint32_t n_history;
    /* Verifies a draft: samples after every one of its tokens, not only the
     * last (then sample is set too), each position with the history up to
     * it (history must end with the segment's ids) and its penalties' window
     * ending there. The ids per position come back in rl_xdone.verified; the
     * top logits only for the last. */
    bool verify;
    /* With verify, when the draft was sampled (a draft model at a
     * temperature above 0): for each of the segment's ids after its first,
     * in order, the distribution it was drawn from (its token is that id).
     * Each is then kept with probability min(1, p/q) and a rejected one
     * replaced by a draw from max(0, p - q) (rl_sampler_verify), which keeps
     * the target's distribution and accepts more than the equality rule.
     * NULL: a deterministic draft (kept when the target's sample equals it).
     * Borrowed until submit returns. */
    const rl_qdist *draft_q;
    /* The session first forgets its positions >= pos: the one way to take
     * positions back (a rejected draft's, a cached prompt's tail, a chat's
     * edited turn), in order with the micro-batches and without a round
     * trip. The caller chooses pos with rl_kv_truncate_for(&x->hp, ...): 0
     * (everything fed again) when a sliding ring no longer holds what
     * position pos would need. A rewind that is not exact fails the
     * micro-batch (a safety net: it never happens when pos was so chosen). */
    bool rewind;
    const uint8_t *mask; /* the ids the sample may take (rl_sampler_mask; ceil(n_vocab/8) bytes,
                            borrowed until submit returns); NULL: any */
} rl_xseg;

#define RL_XERR_LEN 256

typedef struct {
    uint64_t batch; /* the id given to submit */
    int status;     /* 0, or -1 with err: the whole micro-batch failed */
    char err[RL_XERR_LEN];
    uint32_t n_segs;   /* as submitted */
    int32_t *ids;      /* (n_segs) sampled id per segment, -1 where not sampled; owned by
                                          the executor, valid until the next call */
    const rl_top *top; /* (n_segs) top logits of each sampled segment, as asked; likewise */
    /* (the micro-batch's tokens) for each verifying segment, the id sampled
     * after each of its tokens at that token's row (segments' rows in the
     * order submitted); -1 elsewhere; likewise */
    const int32_t *verified;
} rl_xdone;

/* One machine that runs part of the pipeline, for /health and /metrics. */
typedef struct {
    char name[64];
    char state[16];               /* "ready", "loading", "late" (a micro-batch is overdue), "lost" */
    char layers[24];              /* "first-last" of the current plan; "" when it holds none */
    double busy_seconds;          /* time spent computing micro-batches */
    uint64_t bytes_in, bytes_out; /* activations received and sent */
    uint64_t batches;
    uint32_t sessions; /* sessions holding a cache there */
} rl_xnode;

typedef struct rl_executor rl_executor;

typedef struct {
    /* Queues a micro-batch of n segments (n >= 1, total tokens <= max_batch;
     * a session appears at most once). Returns 0, or -1 with err when it
     * cannot even be queued (then nothing of it ran). */
    int (*submit)(rl_executor *x, uint64_t batch, const rl_xseg *segs, uint32_t n, char *err, size_t errlen);
    /* The oldest outstanding micro-batch's completion, waiting at most
     * timeout_ms. Returns 1 with *done filled, 0 on timeout. */
    int (*wait)(rl_executor *x, int timeout_ms, rl_xdone *done);
    /* Forgets a session: its caches and sampler, everywhere. Only called when
     * no outstanding micro-batch holds the session. */
    void (*drop)(rl_executor *x, uint64_t session);
    /* Fills up to cap node descriptions; returns how many there are. */
    uint32_t (*nodes)(rl_executor *x, rl_xnode *out, uint32_t cap);
    /* One line on where it runs, for the closing statistics. */
    void (*describe)(rl_executor *x, char *buf, size_t len);
    void (*destroy)(rl_executor *x);
} rl_executor_ops;

struct rl_executor {
    const rl_executor_ops *ops;
    uint32_t max_batch; /* tokens per micro-batch */
    uint32_t depth;     /* micro-batches to keep in flight (pipeline stages) */
    uint32_t n_vocab;
    rl_hparams hp; /* the model's (a copy: a cluster's re-plan reloads it), for rl_kv_truncate_for */
};

void rl_executor_destroy(rl_executor **x); /* NULLs *x */

/* The nodes of the cluster file co->file (rl_cluster_open: planned or
 * --layers, -t threads per node) for up to max_sessions sessions of *n_ctx
 * positions and micro-batches of rl_runner_batch(ro) tokens; depth = the
 * pipeline's stages. *model = the coordinator's part of the model (embedding
 * and tokenizer), owned by the executor; *kv_type = the nodes' KV types
 * (read once: a re-plan keeps them). NULL with err. */
rl_executor *rl_executor_cluster_new(const rl_cluster_opts *co, const rl_runner_opts *ro, uint32_t max_sessions,
                                     uint32_t *n_ctx, const rl_model **model, rl_kv_type *kv_type, char *err,
                                     size_t errlen);

/* The engine in this process: model m (borrowed), n_threads workers,
 * micro-batches of up to max_batch tokens of which up to max_sessions
 * segments sample, sgemm for micro-batches of gemm_min rows or more whose
 * segments allow it (rl_gemm_min_for; 0: never); sessions cache K and V
 * in kv_type. NULL with err on failure. */
rl_executor *rl_executor_local_new(const rl_model *m, int n_threads, uint32_t max_batch, uint32_t max_sessions,
                                   uint32_t gemm_min, rl_kv_type kv_type, char *err, size_t errlen);

/* ---- opening: what a command runs on ---- */
typedef struct {
    rl_executor *x;
    rl_model *model;      /* the whole model, when it runs in this process */
    const rl_model *view; /* the model the tokenizer comes from (model, or the cluster's embedding) */
    rl_tokenizer *tok;
    uint32_t n_ctx;     /* positions per session */
    rl_kv_type kv_type; /* of the sessions' caches (here or on the nodes) */
} rl_xengine;

/* The executor of the nodes of co->file, or of the engine in this process
 * (the model loaded here, micro-batches of rl_runner_batch(ro) tokens),
 * for up to max_sessions sessions, and the model's tokenizer. 0, or -1
 * with err (then *e holds nothing). */
int rl_xengine_open(rl_xengine *e, const rl_cluster_opts *co, const rl_runner_opts *ro, uint32_t max_sessions,
                    char *err, size_t errlen);
void rl_xengine_close(rl_xengine *e); /* frees what *e holds and zeroes it */

/* ---- one session, as `relais run` and `relais chat` drive it ----
 *
 * Each step feeds ids at the session's next position, as micro-batches of
 * one segment of up to max_batch tokens that may use sgemm (so a run
 * computes exactly as one process always has), up to `depth` of them in
 * flight, and returns the id sampled after the last one with its top
 * logits. The session holds the ids it fed, for the penalties. */
typedef struct rl_xsession rl_xsession;

/* A session of up to n_ctx positions on x (borrowed). progress: show the
 * prefill of prompts of several micro-batches on stderr. NULL out of memory. */
rl_xsession *rl_xsession_new(rl_executor *x, uint32_t n_ctx, bool progress);
void rl_xsession_destroy(rl_xsession **s); /* NULLs *s; drops the session on the executor */
/* Starts a new sampling stream (the sampler and its seed restart; the
 * cache is kept) reporting n_top top logits per step. */
void rl_xsession_begin(rl_xsession *s, const rl_sampler_params *p, uint32_t n_top);
/* Feeds n >= 1 ids; *id = the id sampled after the last, *top its top
 * logits (top may be NULL). -1 with err (bad id, context full, node lost
 * for good): the session then holds what it held before. */
int rl_xsession_step(rl_xsession *s, const int32_t *ids, uint32_t n, int32_t *id, rl_top *top, char *err,
                     size_t errlen);
/* Forgets positions >= pos with the next step (its first segment's rewind:
 * no round trip); returns the position that step feeds from: pos, or 0 when
 * a sliding ring cannot go back that far and everything is fed again
 * (rl_kv_truncate_for). */
uint32_t rl_xsession_rewind(rl_xsession *s, uint32_t pos);

/* ---- speculation: a draft's ids checked in one pass (draft.h) ---- */
typedef struct rl_draft rl_draft;

/* Decodes with draft d (borrowed; NULL: one id per pass) proposing up to
 * k_max ids per pass, fewer after rejections (shrinks to what was accepted
 * and grows by one with each pass that accepts all). */
void rl_xsession_set_draft(rl_xsession *s, rl_draft *d, uint32_t k_max);
/* Feeds id (the one sampled last) and returns the ids that follow in
 * out[0..*n_out), 1 <= *n_out <= cap. Without a draft, or with top logits
 * asked, or when the draft has no guess: the one sampled after id, as
 * rl_xsession_step (*top its top logits; top may be NULL). With one: the
 * draft's ids behind id, verified in one pass; those equal to what the
 * target sampled before them are accepted, then the target's own next id
 * (*top untouched). The session then holds id and out but its last (which,
 * as step's *id, is fed next); rejected positions are forgotten
 * everywhere with the next step (rl_xseg.rewind). -1 with err as step. */
int rl_xsession_next(rl_xsession *s, int32_t id, int32_t *out, uint32_t cap, uint32_t *n_out, rl_top *top, char *err,
                     size_t errlen);

typedef struct {
    uint64_t passes;   /* rl_xsession_next calls */
    uint64_t drafted;  /* ids drafted and verified */
    uint64_t accepted; /* of which accepted */
    uint64_t produced; /* ids returned by rl_xsession_next */
} rl_xspec_stats;
rl_xspec_stats rl_xsession_spec_stats(const rl_xsession *s);

#endif
