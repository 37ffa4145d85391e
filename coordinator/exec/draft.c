/* Draft sources (see draft.h): prompt lookup, a small model in this
 * process, and a replayed id list for benchmarks. */
#include "draft.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "executor.h"
#include "top_logits.h"
#include "forward.h"
#include "model.h"

#define NGRAM_MAX 3 /* longest tail of ids prompt lookup tries to find again */

typedef enum { DRAFT_NGRAM, DRAFT_IDS, DRAFT_MODEL } draft_kind;

struct rl_draft {
    draft_kind kind;
    char name[64];
    int32_t *list; /* ids: the sequence replayed */
    size_t n_list;
    rl_model *model; /* model: the draft model, its executor and its one session */
    bool greedy;     /* model: drafts greedily whatever the request's sampling ("greedy:PATH") */
    bool no_q;       /* model: samples but keeps q to itself, so the target checks by equality ("eq:PATH") */
    rl_executor *x;
    rl_xsession *s;
    int32_t *held;  /* (n_ctx) the ids the draft's session holds, fed or sampled-not-fed */
    uint32_t n_fed; /* how many of them it has fed */
    uint32_t n_ctx;
};

void rl_draft_destroy(rl_draft **pd) {
    rl_draft *d = pd ? *pd : NULL;
    if (!d)
        return;
    rl_xsession_destroy(&d->s);
    rl_executor_destroy(&d->x);
    rl_model_destroy(&d->model);
    free(d->list), free(d->held), free(d);
    *pd = NULL;
}

const char *rl_draft_name(const rl_draft *d) { return d->name; }

static int parse_ids(rl_draft *d, const char *s, char *err, size_t errlen) {
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    if (!(d->list = malloc(cap * sizeof *d->list))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (const char *p = s; *p;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            snprintf(err, errlen, "--draft ids:LIST: '%s' is not a comma-separated list of token ids", s);
            return -1;
        }
        d->list[d->n_list++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* The draft model's vocabulary against the target's, token by token. */
static int same_vocab(const rl_tokenizer *draft, const rl_tokenizer *target, const char *path, char *err,
                      size_t errlen) {
    const uint32_t nd = rl_tok_n_vocab(draft), nt = rl_tok_n_vocab(target);
    for (uint32_t i = 0; i < nd && i < nt; i++) {
        const char *a = rl_tok_text(draft, (int32_t)i), *b = rl_tok_text(target, (int32_t)i);
        if (strcmp(a ? a : "", b ? b : "")) {
            snprintf(err, errlen, "draft %s: token %u is '%.40s', the target's is '%.40s': the vocabularies differ",
                     path, i, a ? a : "", b ? b : "");
            return -1;
        }
    }
    if (nd != nt) {
        snprintf(err, errlen, "draft %s has %u tokens, the target %u: the vocabularies differ", path, nd, nt);
        return -1;
    }
    return 0;
}

static int open_model(rl_draft *d, const char *path, const rl_tokenizer *target, int n_threads, uint32_t n_ctx,
                      char *err, size_t errlen) {
    rl_model_opts mo = rl_model_opts_default();
    if (!(d->model = rl_model_load(path, &mo, err, errlen)))
        return -1;
    rl_tokenizer *tok = rl_tok_new(rl_model_gguf(d->model), err, errlen);
    int rc = tok ? same_vocab(tok, target, path, err, errlen) : -1;
    rl_tok_destroy(&tok);
    if (rc)
        return -1;
    const rl_hparams *hp = rl_model_hparams(d->model);
    d->n_ctx = n_ctx < hp->n_ctx_train ? n_ctx : hp->n_ctx_train;
    if (!(d->x =
              rl_executor_local_new(d->model, n_threads, 256, 1, RL_GEMM_MIN_DEFAULT, RL_KV_TYPE_DEFAULT, err, errlen)))
        return -1;
    if (!(d->s = rl_xsession_new(d->x, d->n_ctx, false)) || !(d->held = malloc(d->n_ctx * sizeof *d->held))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rl_sampler_params greedy = rl_sampler_defaults(); /* its top logits are what a sampled draft draws from */
    rl_xsession_begin(d->s, &greedy, RL_MAX_TOP);
    const char *slash = strrchr(path, '/');
    snprintf(d->name, sizeof d->name, "%s", slash ? slash + 1 : path);
    return 0;
}

rl_draft *rl_draft_new(const char *spec, const rl_tokenizer *target, int n_threads, uint32_t n_ctx, char *err,
                       size_t errlen) {
    rl_draft *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int rc;
    if (!strcmp(spec, "ngram")) {
        d->kind = DRAFT_NGRAM, rc = 0;
        snprintf(d->name, sizeof d->name, "ngram");
    } else if (!strncmp(spec, "ids:", 4)) {
        d->kind = DRAFT_IDS, rc = parse_ids(d, spec + 4, err, errlen);
        snprintf(d->name, sizeof d->name, "ids");
    } else if (!target) {
        snprintf(err, errlen, "a draft model needs the target's tokenizer to compare vocabularies");
        rc = -1;
    } else {
        d->greedy = !strncmp(spec, "greedy:", 7);
        d->no_q = !strncmp(spec, "eq:", 3);
        const char *path = spec + (d->greedy ? 7 : d->no_q ? 3 : 0);
        d->kind = DRAFT_MODEL, rc = open_model(d, path, target, n_threads, n_ctx, err, errlen);
    }
    if (rc)
        rl_draft_destroy(&d);
    return d;
}

/* The ids after the latest earlier occurrence of the last m ids, longest m
 * first. */
static uint32_t ngram(const int32_t *ids, uint32_t n, int32_t *out, uint32_t k) {
    for (uint32_t m = NGRAM_MAX; m >= 1; m--) {
        if (n <= m)
            continue;
        const int32_t *tail = ids + n - m;
        for (uint32_t j = n - m; j-- > 0;) {
            if (memcmp(ids + j, tail, m * sizeof *ids))
                continue;
            uint32_t c = 0;
            while (c < k && j + m + c < n)
                out[c] = ids[j + m + c], c++;
            return c;
        }
    }
    return 0;
}

/* The draft model's id after a step that gave greedy and top: greedy, or
 * under sampling parameters sp that sample, a draw from its q (into *q). */
static int32_t model_pick(const rl_draft *d, int32_t greedy, const rl_top *top, const rl_sampler_params *sp,
                          rl_rng *rng, rl_qdist *q) {
    q->n = 0;
    if (d->greedy || !sp || !(sp->temperature > 0.0f) || top->n == 0)
        return greedy;
    const int32_t id = rl_sampler_draft_q(sp, top->ids, top->vals, top->n, d->held, d->n_fed, rl_rng_uniform(rng), q);
    if (d->no_q)
        q->n = 0;
    return id;
}

/* The draft model's continuation: its session keeps what it shares with ids
 * (a rewind), feeds the rest, then its own guesses one by one. */
static uint32_t from_model(rl_draft *d, const rl_sampler_params *sp, rl_rng *rng, const int32_t *ids, uint32_t n,
                           int32_t *out, rl_qdist *q, uint32_t k) {
    char err[256];
    rl_top top;
    uint32_t common = 0;
    while (common < d->n_fed && common < n && d->held[common] == ids[common])
        common++;
    if (common == n) /* a step needs an id to feed: take the last one back */
        common = n - 1;
    if (n + k > d->n_ctx)
        k = n < d->n_ctx ? d->n_ctx - n : 0;
    if (k == 0)
        return 0;
    d->n_fed = rl_xsession_rewind(d->s, common);
    memcpy(d->held + d->n_fed, ids + d->n_fed, (n - d->n_fed) * sizeof *ids);
    if (rl_xsession_step(d->s, d->held + d->n_fed, n - d->n_fed, &out[0], &top, err, sizeof err))
        return d->n_fed = 0, 0;
    d->n_fed = n;
    out[0] = model_pick(d, out[0], &top, sp, rng, &q[0]);
    uint32_t c = 1;
    for (; c < k; c++) {
        d->held[d->n_fed] = out[c - 1];
        if (rl_xsession_step(d->s, &out[c - 1], 1, &out[c], &top, err, sizeof err))
            break;
        d->n_fed++;
        out[c] = model_pick(d, out[c], &top, sp, rng, &q[c]);
    }
    return c;
}

void rl_draft_seed(rl_rng *rng, uint64_t seed) { rl_rng_seed(rng, seed ^ 0x6472616674ull); /* "draft" */ }

uint32_t rl_draft_propose(rl_draft *d, const rl_sampler_params *sp, rl_rng *rng, const int32_t *ids, uint32_t n,
                          int32_t *out, rl_qdist *q, uint32_t k) {
    k = k < RL_DRAFT_MAX ? k : RL_DRAFT_MAX;
    if (n == 0 || k == 0)
        return 0;
    for (uint32_t i = 0; i < k; i++)
        q[i].n = 0;
    switch (d->kind) {
    case DRAFT_NGRAM:
        return ngram(ids, n, out, k);
    case DRAFT_IDS: {
        uint32_t c = 0;
        while (c < k && n + c < d->n_list)
            out[c] = d->list[n + c], c++;
        return c;
    }
    case DRAFT_MODEL:
        return from_model(d, sp, rng, ids, n, out, q, k);
    }
    return 0;
}
