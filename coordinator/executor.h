/* The micro-batch executor: what the serving scheduler (scheduler.h) drives.
 *
 * A micro-batch is a list of segments, each some tokens of one session at
 * that session's next positions: a decode token, or a chunk of a prompt.
 * The executor runs the whole micro-batch through the model in one pass and
 * reports, for every segment that asked for it, the id sampled after its
 * last token. Sessions' caches and samplers live where the executor keeps
 * them (this process for the local engine, the nodes for a cluster); the
 * scheduler only names sessions by id and frees them with `drop`.
 *
 * Submission and completion are separate calls so that a pipeline of S
 * stages can hold S micro-batches in flight: the scheduler submits while
 * fewer than `depth` are outstanding and collects completions in order.
 *
 * Implementations: executor_local.c (the engine in this process),
 * executor_cluster.c (the nodes of a cluster, one micro-batch per stage in
 * flight). */
#ifndef RELAIS_EXECUTOR_H
#define RELAIS_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "backend_cluster.h"
#include "kv.h"
#include "model.h"
#include "sampler.h"

typedef struct {
    uint64_t session;                  /* the scheduler's id of the session */
    const int32_t *ids;                /* tokens to feed (borrowed until submit returns) */
    uint32_t n;                        /* number of ids, >= 1 */
    uint32_t pos;                      /* position of ids[0]; 0 creates the session */
    uint32_t n_ctx;                    /* positions the session may hold (its cache size) */
    bool sample;                       /* sample an id after the last token */
    const rl_sampler_params *sampling; /* the session's sampling; read when pos == 0 */
    const int32_t *history;            /* ids generated so far, for the penalties (when sample) */
    uint32_t n_history;
} rl_xseg;

#define RL_XERR_LEN 256

typedef struct {
    uint64_t batch;                    /* the id given to submit */
    int status;                        /* 0, or -1 with err: the whole micro-batch failed */
    char err[RL_XERR_LEN];
    uint32_t n_segs;                   /* as submitted */
    int32_t *ids;                      /* (n_segs) sampled id per segment, -1 where not sampled; owned by
                                          the executor, valid until the next call */
} rl_xdone;

/* One machine that runs part of the pipeline, for /health and /metrics. */
typedef struct {
    char name[64];
    char state[16];                    /* "ready", "loading", "lost" */
    char layers[24];                   /* "first-last" of the current plan; "" when it holds none */
    double busy_seconds;               /* time spent computing micro-batches */
    uint64_t bytes_in, bytes_out;      /* activations received and sent */
    uint64_t batches;
    uint32_t sessions;                 /* sessions holding a cache there */
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
    void (*destroy)(rl_executor *x);
} rl_executor_ops;

struct rl_executor {
    const rl_executor_ops *ops;
    uint32_t max_batch;                /* tokens per micro-batch */
    uint32_t depth;                    /* micro-batches to keep in flight (pipeline stages) */
    uint32_t n_vocab;
};

void rl_executor_destroy(rl_executor **x);   /* NULLs *x */

/* The nodes of the cluster file co->file (rl_cluster_open: planned or
 * --layers, -t threads per node) for up to max_sessions sessions of *n_ctx
 * positions and micro-batches of ro->batch tokens; depth = the pipeline's
 * stages. *model = the coordinator's part of the model (embedding and
 * tokenizer), owned by the executor. NULL with err. */
rl_executor *rl_executor_cluster_new(const rl_cluster_opts *co, const rl_runner_opts *ro, uint32_t max_sessions,
                                     uint32_t *n_ctx, const rl_model **model, char *err, size_t errlen);

/* The engine in this process: model at path, n_threads workers, micro-batches
 * of up to max_batch tokens. Uses the quantized kernels for every batch size
 * (gemm_min 0), so a session's results do not depend on which other sessions
 * share its micro-batches; sessions cache K and V in kv_type. NULL with err on failure. */
rl_executor *rl_executor_local_new(const rl_model *m, int n_threads, uint32_t max_batch, rl_kv_type kv_type,
                                   char *err, size_t errlen);

#endif
