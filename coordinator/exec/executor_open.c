/* Opening the executor a command runs on (see executor.h, rl_xengine): the
 * nodes of a cluster file, or the engine in this process. `relais run`,
 * `chat` and `serve` open it the same way, so the only thing that differs
 * between them is how many sessions they drive and whether a segment may
 * use sgemm. */
#include <stdio.h>
#include <string.h>
#include "executor.h"
#include "forward.h"
#include "kv.h"
#include "log.h"
#include "mem.h"

/* The model loaded here once the memory check passed: the weights and
 * every session's KV at the full context (the context and the KV type are
 * checked there too, before any memory is taken). */
static int open_local(rl_xengine *e, const rl_runner_opts *ro, uint32_t max_sessions, char *err, size_t errlen) {
    rl_model_opts mo = rl_runner_model_opts(ro);
    if (rl_mem_check_file(ro->model_path, &mo, ro->n_ctx, max_sessions, ro->kv_type, err, errlen) ||
        !(e->model = rl_model_load(ro->model_path, &mo, err, errlen)))
        return -1;
    e->view = e->model;
    e->kv_type = ro->kv_type;
    const rl_hparams *hp = rl_model_hparams(e->model);
    if (rl_hparams_ctx(hp, ro->n_ctx, &e->n_ctx, err, errlen) || rl_kv_type_check(ro->kv_type, hp, err, errlen))
        return -1;
    char kv[160];
    rl_log(RL_LOG_INFO, "%s", rl_kv_describe(hp, ro->kv_type, e->n_ctx, kv, sizeof kv));
    e->x = rl_executor_local_new(e->model, ro->n_threads, rl_runner_batch(ro), max_sessions,
                                 rl_gemm_min_for(ro->no_gemm, ro->gemm_min), ro->kv_type, err, errlen);
    return e->x ? 0 : -1;
}

int rl_xengine_open(rl_xengine *e, const rl_cluster_opts *co, const rl_runner_opts *ro, uint32_t max_sessions,
                    char *err, size_t errlen) {
    memset(e, 0, sizeof *e);
    int rc = rl_cluster_opts_check(co, err, errlen);
    if (rc == 0 && co->file) {
        if (!(e->x = rl_executor_cluster_new(co, ro, max_sessions, &e->n_ctx, &e->view, &e->kv_type, err, errlen)))
            rc = -1;
    } else if (rc == 0)
        rc = open_local(e, ro, max_sessions, err, errlen);
    if (rc == 0 && !(e->tok = rl_tok_new(rl_model_gguf(e->view), err, errlen)))
        rc = -1;
    if (rc)
        rl_xengine_close(e);
    return rc;
}

void rl_xengine_close(rl_xengine *e) {
    rl_tok_destroy(&e->tok);
    rl_executor_destroy(&e->x); /* the cluster's holds the model the tokenizer was read from */
    rl_model_destroy(&e->model);
    memset(e, 0, sizeof *e);
}
