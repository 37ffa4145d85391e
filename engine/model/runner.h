/* A generation session on one machine: the model, its tokenizer, a compute
 * context and one KV cache, behind the few calls the commands need (feed ids,
 * get the logits of the last one, truncate). `relais run`, `chat` and `bench`
 * are written against it. */
#ifndef RELAIS_RUNNER_H
#define RELAIS_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kv.h"
#include "model.h"
#include "tokenizer.h"

typedef struct {
    const char *model_path;
    uint32_t n_ctx;          /* 0 = 4096, capped at the model's context; above it is refused */
    bool ctx_beyond_file;    /* accept an n_ctx above the model's (--ctx-beyond-file) */
    int n_threads;           /* <= 0: one per core */
    uint32_t batch;          /* prefill chunk; 0 = 256 */
    uint32_t gemm_min;       /* chunks this long use sgemm; 0 = engine default */
    bool no_gemm;            /* always use the quantized kernels */
    int64_t swa_window;      /* -1 = the file's */
    const char *swa_pattern; /* NULL = the file's */
    bool progress;           /* show load and prefill progress on stderr */
    bool no_mmap;            /* read the weights into memory instead of mapping the file */
    bool file_layout;        /* keep the file's weight layout (no x16 rearrangement; slower) */
    rl_kv_type kv_type;      /* types of the cached keys and values (default f16) */
    bool kv_type_set;        /* kv_type was given (--kv-type): it overrides a cluster file's */
    bool no_yarn;            /* debug (rl_model_opts): plain RoPE where the file asks for YaRN */
    bool no_attn_temp;       /* debug (rl_model_opts): no attention temperature */
} rl_runner_opts;

rl_runner_opts rl_runner_opts_default(void);
/* The prefill chunk o asks for (its batch, or the default of 256). */
uint32_t rl_runner_batch(const rl_runner_opts *o);

/* How a model is loaded for o: its window overrides, mapping, layout and
 * load progress on stderr. What every command that loads a whole model uses. */
rl_model_opts rl_runner_model_opts(const rl_runner_opts *o);

/* Prefill progress on stderr, called as each chunk of a prompt completes:
 * shown only for prompts of more than one chunk, redrawn in place on a
 * terminal, one line per 10% otherwise (for log files). Shared by everything that
 * feeds prompts in chunks. */
void rl_show_prefill(uint32_t done, uint32_t total, uint32_t chunk);

typedef struct rl_runner rl_runner;

/* NULL with a message in err when the model cannot be loaded. */
rl_runner *rl_runner_new(const rl_runner_opts *o, char *err, size_t errlen);
void rl_runner_destroy(rl_runner **r); /* NULLs *r */

const rl_hparams *rl_runner_hparams(const rl_runner *r);
const rl_tokenizer *rl_runner_tokenizer(const rl_runner *r); /* owned by the runner */
const gguf_file *rl_runner_gguf(const rl_runner *r);
uint32_t rl_runner_ctx(const rl_runner *r);
uint32_t rl_runner_pos(const rl_runner *r); /* ids fed so far */
size_t rl_runner_kv_bytes(const rl_runner *r);
int rl_runner_threads(const rl_runner *r);

/* Feeds n ids at the current position; logits (n_vocab) of the last one are
 * written to `logits` when it is not NULL. -1 with err on a bad id or when
 * the context is full. */
int rl_runner_feed(rl_runner *r, const int32_t *ids, uint32_t n, float *logits, char *err, size_t errlen);
/* Forgets positions >= pos (rl_kv_truncate, as a segment's rewind does
 * where a session's cache lives); returns the position kept (pos, or 0 when
 * a sliding window cannot go back that far and everything must be fed again). */
uint32_t rl_runner_truncate(rl_runner *r, uint32_t pos);
/* Benchmarks only (relais bench --depth): the session holds len positions
 * of random keys and values (rl_kv_fill_random); -1 with err past the context. */
int rl_runner_fill_random(rl_runner *r, uint32_t len, char *err, size_t errlen);

/* Peak resident memory of this process so far, in MiB. */
double rl_peak_rss_mib(void);

#endif
