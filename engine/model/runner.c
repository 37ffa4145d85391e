/* Single-process generation session: embedding, all layers, head, one KV
 * cache. The building block of `relais run`, `chat` and `bench`. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "forward.h"
#include "kv.h"
#include "log.h"
#include "mem.h"

struct rl_runner {
    rl_model *model;   /* all layers, embedding and head */
    rl_tokenizer *tok; /* from the model's metadata */
    rl_ctx *ctx;       /* threads and scratch */
    rl_kv *kv;         /* the session's cache */
    float *x;          /* (batch, dim) activations of the chunk being fed */
    uint32_t batch;    /* chunk size */
    bool progress;     /* show prefill progress */
};

rl_runner_opts rl_runner_opts_default(void) {
    rl_runner_opts o = {0};
    o.swa_window = -1;
    o.progress = true;
    o.kv_type = RL_KV_TYPE_DEFAULT;
    return o;
}

uint32_t rl_runner_batch(const rl_runner_opts *o) { return o->batch ? o->batch : 256; }

/* Load progress on stderr: redrawn in place on a terminal, one line per
 * 10% otherwise (a log file should not fill with carriage returns). */
static void show_progress(void *ud, uint64_t done, uint64_t total) {
    static int last = -1;
    const bool tty = ud != NULL;
    if (total < (64u << 20)) /* small models load before anyone would look */
        return;
    int pct = (int)(done * 100 / total);
    if (pct == last || (!tty && pct / 10 == last / 10 && done < total))
        return;
    last = pct;
    fprintf(stderr, "%srelais: loading weights %3d%% (%llu / %llu MiB)%s", tty ? "\r" : "", pct,
            (unsigned long long)(done >> 20), (unsigned long long)(total >> 20), tty && done < total ? "" : "\n");
    if (done >= total)
        last = -1;
    fflush(stderr);
}

rl_model_opts rl_runner_model_opts(const rl_runner_opts *o) {
    static const char tty_flag; /* any address: show_progress only tells NULL from not */
    rl_model_opts mo = rl_model_opts_default();
    mo.swa_window = o->swa_window;
    mo.swa_pattern = o->swa_pattern;
    mo.no_mmap = o->no_mmap;
    mo.no_yarn = o->no_yarn;
    mo.no_attn_temp = o->no_attn_temp;
    mo.file_layout = o->file_layout;
    mo.n_ctx_beyond = o->ctx_beyond_file ? o->n_ctx : 0;
    if (o->progress) {
        mo.progress = show_progress;
        mo.progress_ud = isatty(STDERR_FILENO) ? (void *)&tty_flag : NULL;
    }
    return mo;
}

void rl_show_prefill(uint32_t done, uint32_t total, uint32_t chunk) {
    if (total <= chunk) /* one chunk: nothing to wait for between updates */
        return;
    const bool tty = isatty(STDERR_FILENO);
    const uint32_t before = done > chunk ? done - chunk : 0;
    if (!tty && (uint64_t)before * 10 / total == (uint64_t)done * 10 / total)
        return;
    fprintf(stderr, "%srelais: prefill %3u%% (%u / %u tokens)%s", tty ? "\r" : "",
            (unsigned)((uint64_t)done * 100 / total), done, total, tty && done < total ? "" : "\n");
    fflush(stderr);
}

rl_runner *rl_runner_new(const rl_runner_opts *o, char *err, size_t errlen) {
    rl_runner *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rl_model_opts mo = rl_runner_model_opts(o);
    /* weights and KV checked against the memory there is before any is taken */
    if (rl_mem_check_file(o->model_path, &mo, o->n_ctx, 1, o->kv_type, err, errlen))
        goto fail;
    r->model = rl_model_load(o->model_path, &mo, err, errlen);
    if (!r->model)
        goto fail;
    r->tok = rl_tok_new(rl_model_gguf(r->model), err, errlen);
    if (!r->tok)
        goto fail;
    const rl_hparams *hp = rl_model_hparams(r->model);
    r->batch = rl_runner_batch(o);
    r->progress = o->progress;
    r->ctx = rl_ctx_new(r->model, o->n_threads, r->batch, err, errlen);
    if (!r->ctx)
        goto fail;
    rl_ctx_set_gemm_min(r->ctx, rl_gemm_min_for(o->no_gemm, o->gemm_min));
    uint32_t n_ctx;
    if (rl_hparams_ctx(hp, o->n_ctx, &n_ctx, err, errlen) ||
        !(r->kv = rl_kv_new(hp, 0, hp->n_layer, n_ctx, o->kv_type, err, errlen)))
        goto fail;
    char kv[160];
    rl_log(RL_LOG_INFO, "%s", rl_kv_describe(hp, o->kv_type, rl_kv_ctx(r->kv), kv, sizeof kv));
    r->x = malloc((size_t)r->batch * hp->dim * sizeof(float));
    if (!r->x) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return r;
fail:
    rl_runner_destroy(&r);
    return NULL;
}

void rl_runner_destroy(rl_runner **pr) {
    rl_runner *r = pr ? *pr : NULL;
    if (!r)
        return;
    free(r->x);
    rl_kv_destroy(&r->kv);
    rl_ctx_destroy(&r->ctx);
    rl_tok_destroy(&r->tok);
    rl_model_destroy(&r->model);
    free(r);
    *pr = NULL;
}

const rl_hparams *rl_runner_hparams(const rl_runner *r) { return rl_model_hparams(r->model); }
const rl_tokenizer *rl_runner_tokenizer(const rl_runner *r) { return r->tok; }
const gguf_file *rl_runner_gguf(const rl_runner *r) { return rl_model_gguf(r->model); }
uint32_t rl_runner_ctx(const rl_runner *r) { return rl_kv_ctx(r->kv); }
uint32_t rl_runner_pos(const rl_runner *r) { return rl_kv_len(r->kv); }
size_t rl_runner_kv_bytes(const rl_runner *r) { return rl_kv_bytes(r->kv); }
int rl_runner_threads(const rl_runner *r) { return rl_ctx_threads(r->ctx); }

int rl_runner_feed(rl_runner *r, const int32_t *ids, uint32_t n, float *logits, char *err, size_t errlen) {
    const uint32_t dim = rl_model_hparams(r->model)->dim;
    if ((uint64_t)rl_kv_len(r->kv) + n > rl_kv_ctx(r->kv)) {
        snprintf(err, errlen, "%u more tokens would exceed the context of %u (%u used)", n, rl_kv_ctx(r->kv),
                 rl_kv_len(r->kv));
        return -1;
    }
    for (uint32_t done = 0; done < n;) {
        uint32_t chunk = n - done < r->batch ? n - done : r->batch;
        if (rl_embed(r->model, ids + done, chunk, r->x, err, errlen) ||
            rl_forward_layers(r->ctx, r->kv, r->x, chunk, rl_kv_len(r->kv), err, errlen))
            return -1;
        done += chunk;
        if (r->progress)
            rl_show_prefill(done, n, r->batch);
        if (done == n && logits)
            return rl_head(r->ctx, r->x + (size_t)(chunk - 1) * dim, logits, err, errlen);
    }
    return 0;
}

uint32_t rl_runner_truncate(rl_runner *r, uint32_t pos) { return rl_kv_truncate(r->kv, pos); }

int rl_runner_fill_random(rl_runner *r, uint32_t len, char *err, size_t errlen) {
    if (len >= rl_kv_ctx(r->kv)) {
        snprintf(err, errlen, "depth %u leaves no room in the context of %u", len, rl_kv_ctx(r->kv));
        return -1;
    }
    rl_kv_fill_random(r->kv, len, len);
    return 0;
}

double rl_peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}
