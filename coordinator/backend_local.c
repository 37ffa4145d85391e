/* The local backend: the whole model in this process (engine/runner.c),
 * sampling here, with the full id history for the penalties. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend.h"
#include "runner.h"

typedef struct {
    rl_backend base;       /* must be first */
    rl_runner *runner;     /* model, cache, threads */
    rl_sampler *sampler;   /* current stream's sampler */
    uint32_t n_top;        /* top logits per step */
    float *logits;         /* (n_vocab) */
    int32_t *history;      /* (n_ctx) ids fed, for the penalties */
} local_backend;

static int local_begin(rl_backend *b, const rl_sampler_params *p, uint32_t n_top, char *err, size_t errlen) {
    local_backend *l = (local_backend *)b;
    rl_sampler_destroy(&l->sampler);
    l->sampler = rl_sampler_new(p, b->hp->n_vocab);
    l->n_top = n_top > RL_MAX_TOP ? RL_MAX_TOP : n_top;
    if (!l->sampler) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int local_step(rl_backend *b, const int32_t *ids, uint32_t n, rl_step_result *out, char *err,
                      size_t errlen) {
    local_backend *l = (local_backend *)b;
    if (!l->sampler) {
        snprintf(err, errlen, "step before begin");
        return -1;
    }
    if (rl_runner_feed(l->runner, ids, n, l->logits, err, errlen))
        return -1;
    memcpy(l->history + b->pos, ids, n * sizeof *ids);
    b->pos += n;
    out->n_top = l->n_top < b->hp->n_vocab ? l->n_top : b->hp->n_vocab;
    rl_top_logits(l->logits, b->hp->n_vocab, out->n_top, out->top_ids, out->top_vals);
    out->id = rl_sampler_sample(l->sampler, l->logits, l->history, b->pos);
    return 0;
}

static uint32_t local_truncate(rl_backend *b, uint32_t pos) {
    local_backend *l = (local_backend *)b;
    return b->pos = rl_runner_truncate(l->runner, pos);
}

static void local_describe(const rl_backend *b, char *buf, size_t len) {
    const local_backend *l = (const local_backend *)b;
    snprintf(buf, len, "one process, %d threads, KV %.1f MiB", rl_runner_threads(l->runner),
             rl_runner_kv_bytes(l->runner) / 1048576.0);
}

static void local_destroy(rl_backend *b) {
    local_backend *l = (local_backend *)b;
    rl_sampler_destroy(&l->sampler);
    rl_runner_destroy(&l->runner);
    free(l->logits);
    free(l->history);
    free(l);
}

static const rl_backend_ops LOCAL_OPS = {local_begin, local_step, local_truncate, local_describe, local_destroy};

rl_backend *rl_backend_local_new(const rl_runner_opts *o, char *err, size_t errlen) {
    local_backend *l = calloc(1, sizeof *l);
    if (!l || !(l->runner = rl_runner_new(o, err, errlen))) {
        if (l)
            local_destroy(&l->base);
        else
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->base.ops = &LOCAL_OPS;
    l->base.tok = rl_runner_tokenizer(l->runner);
    l->base.hp = rl_runner_hparams(l->runner);
    l->base.file = rl_runner_gguf(l->runner);
    l->base.n_ctx = rl_runner_ctx(l->runner);
    l->logits = malloc((size_t)l->base.hp->n_vocab * sizeof *l->logits);
    l->history = malloc((size_t)l->base.n_ctx * sizeof *l->history);
    if (!l->logits || !l->history) {
        snprintf(err, errlen, "out of memory");
        local_destroy(&l->base);
        return NULL;
    }
    return &l->base;
}

void rl_backend_destroy(rl_backend **pb) {
    if (pb && *pb) {
        (*pb)->ops->destroy(*pb);
        *pb = NULL;
    }
}
