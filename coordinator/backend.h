/* A generation backend: where `relais run` and `relais chat` send their ids.
 * One step feeds ids at the session's current position and samples the next
 * id after the last of them (and reports the top logits when asked). The
 * sampling happens where the logits are — in this process for the local
 * backend, on the last node for a cluster — so only ids travel back.
 *
 * Implementations: backend_local.c (engine/runner.c in this process) and
 * backend_cluster.c (the pipeline of nodes). */
#ifndef RELAIS_BACKEND_H
#define RELAIS_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"
#include "runner.h"
#include "sampler.h"
#include "tokenizer.h"

#define RL_MAX_TOP 64

typedef struct {
    int32_t id;                     /* sampled after the last fed id */
    uint32_t n_top;                 /* top logits reported (as asked) */
    int32_t top_ids[RL_MAX_TOP];    /* largest first */
    float top_vals[RL_MAX_TOP];
} rl_step_result;

typedef struct rl_backend rl_backend;

typedef struct {
    /* Starts a new generation stream: the sampler (and its seed) and how many
     * top logits each step reports. The cache is kept. */
    int (*begin)(rl_backend *b, const rl_sampler_params *p, uint32_t n_top, char *err, size_t errlen);
    /* Feeds n ids; samples the next. -1 with err (bad id, context full, node lost). */
    int (*step)(rl_backend *b, const int32_t *ids, uint32_t n, rl_step_result *out, char *err, size_t errlen);
    /* Forgets positions >= pos; returns the position kept (pos, or 0 when a
     * sliding window forces a clear). */
    uint32_t (*truncate)(rl_backend *b, uint32_t pos);
    /* One line on where it runs, for the closing statistics. */
    void (*describe)(const rl_backend *b, char *buf, size_t len);
    void (*destroy)(rl_backend *b);
} rl_backend_ops;

struct rl_backend {
    const rl_backend_ops *ops;
    const rl_tokenizer *tok;        /* owned by the implementation */
    const rl_hparams *hp;           /* owned by the implementation */
    const gguf_file *file;          /* the model file, for the chat template */
    uint32_t n_ctx;                 /* positions a session may hold */
    uint32_t pos;                   /* positions fed so far */
};

/* A backend running the whole model in this process. */
rl_backend *rl_backend_local_new(const rl_runner_opts *o, char *err, size_t errlen);

void rl_backend_destroy(rl_backend **b);   /* NULLs *b */

#endif
