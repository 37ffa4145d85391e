/* The llama forward pass over a layer range, written to read like the math:
 *
 *   for each layer:
 *     h   = rmsnorm(x) * attn_norm
 *     q,k,v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ;  rope(q, k)  (YaRN-scaled where the file says)
 *     q  *= 1 + beta ln(1 + floor(pos / L))  (mistral3's attention temperature; beta 0 elsewhere)
 *     x  += attention(q, K, V) · Woᵀ     (GQA, causal, windowed on sliding layers)
 *     h   = rmsnorm(x) * ffn_norm
 *     x  += (silu(h·Wgᵀ) * h·Wuᵀ) · Wdᵀ
 *
 * Attention of a batch reads keys before the batch from the session's cache
 * and keys inside the batch from the batch's own K/V rows; the batch is
 * written to the cache only afterwards. That way a sliding layer's ring of W
 * entries is never overwritten while a query of the same batch still needs
 * the key it held.
 *
 * The cache may hold keys and values in f16 or q8_0 (kv.h). The batch's own
 * K/V rows are converted to those types right after RoPE, and the attention
 * reads every key and value, the batch's as the cache's, in the cache's
 * type: a token sees the same bytes whether it was computed alone or inside
 * a chunk, so chunking never changes a result. */
#include "forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "matmul.h"
#include "ops.h"
#include "quant.h"
#include "threadpool.h"

struct rl_ctx {
    const rl_model *model; /* not owned */
    rl_pool *pool;         /* persistent workers */
    rl_matmul *mm;         /* matmul scratch */
    uint32_t max_batch;    /* tokens per chunk */
    uint32_t gemm_min;     /* chunks this long or longer use sgemm */
    float *h;              /* (max_batch, dim) normed input of a sub-block */
    float *q;              /* (max_batch, q_dim) */
    float *k;              /* (max_batch, kv_dim) */
    float *v;              /* (max_batch, kv_dim) */
    char *kt;              /* (max_batch) K rows in the cache's type, kv_dim * 4 bytes apart */
    char *vt;              /* (max_batch) V rows likewise */
    float *att;            /* (max_batch, q_dim) attention output */
    float *gate;           /* (max_batch, ffn_dim) */
    float *up;             /* (max_batch, ffn_dim) */
    float *proj;           /* (max_batch, dim) output of Wo / Wd */
    float **scores;        /* (n_threads, group, n_ctx_train + max_batch) attention weights */
    void **qq;             /* (n_threads, group, head_dim * 4 bytes) queries as Q8_0 for Q8_0 keys */
    uint32_t *tok_seg;     /* (max_batch) segment of each row of the batch */
    uint32_t *tok_pos;     /* (max_batch) position of each row */
    rl_rope_table rope;    /* the position-independent part of RoPE (YaRN included) */
    float *rope_cs;        /* (head_dim) cos, sin of one position */
};

/* The model's RoPE as a table: its base and, where the file asks, YaRN. */
static int rope_init(rl_ctx *c, const rl_hparams *hp, char *err, size_t errlen) {
    rl_rope_params p = rl_rope_params_plain(hp->rope_base);
    p.yarn = hp->rope_yarn;
    if (hp->rope_yarn) {
        p.factor = hp->rope_factor;
        p.orig_ctx = hp->rope_orig_ctx;
        p.beta_fast = hp->yarn_beta_fast;
        p.beta_slow = hp->yarn_beta_slow;
        p.log_mul = hp->yarn_log_mul;
        p.attn_factor = hp->rope_attn_factor;
    }
    if (rl_rope_table_init(&c->rope, &p, hp->head_dim)) {
        snprintf(err, errlen, "head dimension %u is beyond RoPE's table of %u pairs", hp->head_dim, RL_ROPE_MAX_PAIRS);
        return -1;
    }
    return 0;
}

rl_ctx *rl_ctx_new(const rl_model *m, int n_threads, uint32_t max_batch, char *err, size_t errlen) {
    const rl_hparams *hp = rl_model_hparams(m);
    const size_t B = max_batch ? max_batch : 1;
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    rl_ctx *c = calloc(1, sizeof *c);
    if (!c)
        goto oom;
    c->model = m;
    c->max_batch = (uint32_t)B;
    c->gemm_min = RL_GEMM_MIN_DEFAULT;
    c->pool = rl_pool_new(n_threads);
    if (!c->pool)
        goto oom;
    uint32_t widest = hp->dim > hp->ffn_dim ? hp->dim : hp->ffn_dim;
    if (q_dim > widest)
        widest = (uint32_t)q_dim;
    c->mm = rl_matmul_new(c->pool, widest, (uint32_t)B);
    c->h = malloc(B * hp->dim * sizeof(float));
    c->q = malloc(B * q_dim * sizeof(float));
    c->k = malloc(B * kv_dim * sizeof(float));
    c->v = malloc(B * kv_dim * sizeof(float));
    c->kt = malloc(B * kv_dim * sizeof(float));
    c->vt = malloc(B * kv_dim * sizeof(float));
    c->att = malloc(B * q_dim * sizeof(float));
    c->gate = malloc(B * hp->ffn_dim * sizeof(float));
    c->up = malloc(B * hp->ffn_dim * sizeof(float));
    c->proj = malloc(B * hp->dim * sizeof(float));
    c->scores = calloc((size_t)rl_pool_size(c->pool), sizeof *c->scores);
    c->qq = calloc((size_t)rl_pool_size(c->pool), sizeof *c->qq);
    c->tok_seg = malloc(B * sizeof *c->tok_seg);
    c->tok_pos = malloc(B * sizeof *c->tok_pos);
    c->rope_cs = malloc(hp->head_dim * sizeof(float));
    if (rope_init(c, hp, err, errlen)) {
        rl_ctx_destroy(&c);
        return NULL;
    }
    if (!c->rope_cs || !c->tok_seg || !c->tok_pos || !c->mm || !c->h || !c->q || !c->k || !c->v || !c->att ||
        !c->gate || !c->up || !c->proj || !c->scores || !c->kt || !c->vt || !c->qq)
        goto oom;
    for (int i = 0; i < rl_pool_size(c->pool); i++)
        if (!(c->scores[i] = malloc((size_t)hp->n_head / hp->n_head_kv * (hp->n_ctx_train + B) * sizeof(float))) ||
            !(c->qq[i] = malloc(q_dim / hp->n_head_kv * sizeof(float))))
            goto oom;
    return c;
oom:
    snprintf(err, errlen, "cannot allocate the compute context (%u threads, batch %zu)", n_threads, B);
    rl_ctx_destroy(&c);
    return NULL;
}

void rl_ctx_destroy(rl_ctx **pc) {
    rl_ctx *c = pc ? *pc : NULL;
    if (!c)
        return;
    for (int i = 0; c->scores && c->pool && i < rl_pool_size(c->pool); i++)
        free(c->scores[i]);
    for (int i = 0; c->qq && c->pool && i < rl_pool_size(c->pool); i++)
        free(c->qq[i]);
    free(c->scores);
    free(c->qq);
    rl_matmul_destroy(&c->mm);
    rl_pool_destroy(&c->pool);
    free(c->h);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->kt);
    free(c->vt);
    free(c->att);
    free(c->gate);
    free(c->up);
    free(c->proj);
    free(c->tok_seg);
    free(c->tok_pos);
    free(c->rope_cs);
    free(c);
    *pc = NULL;
}

int rl_ctx_threads(const rl_ctx *c) { return rl_pool_size(c->pool); }
uint32_t rl_ctx_max_batch(const rl_ctx *c) { return c->max_batch; }
uint32_t rl_gemm_min_for(bool no_gemm, uint32_t gemm_min) {
    return no_gemm ? 0 : gemm_min ? gemm_min : RL_GEMM_MIN_DEFAULT;
}

void rl_ctx_set_gemm_min(rl_ctx *c, uint32_t n) { c->gemm_min = n; }
uint32_t rl_ctx_gemm_min(const rl_ctx *c) { return c->gemm_min; }

int rl_embed(const rl_model *m, const int32_t *ids, uint32_t n, float *x, char *err, size_t errlen) {
    const rl_weight *e = rl_model_embed(m);
    if (!e) {
        snprintf(err, errlen, "embed: this model instance has no token_embd bound");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= e->rows) {
            snprintf(err, errlen, "token id %d at index %u is outside the vocabulary of %u", ids[i], i, e->rows);
            return -1;
        }
        rl_dequantize_row(e->type, (const char *)e->data + (size_t)ids[i] * e->row_bytes, x + (size_t)i * e->cols,
                          e->cols);
    }
    return 0;
}

/* ---- attention ---- */

typedef struct {
    rl_ctx *c;
    const rl_segment *segs;
    uint32_t il;    /* absolute layer index */
    uint32_t n;     /* rows in the batch */
    uint32_t *row0; /* (n_segs) first row of each segment */
} att_task;

/* Where one KV head's rows of one layer are, seen from one row of the batch:
 * positions before the segment in the cache's ring, the segment's own in the
 * batch's converted rows; both in the cache's type. Worked out once per
 * (row, head) so the loop over tens of thousands of positions only indexes. */
typedef struct {
    const char *ring;    /* the cache's slot 0, at this head */
    size_t ring_stride;  /* bytes from one slot to the next */
    uint32_t cap;        /* slots in the ring */
    const char *batch;   /* the segment's first row in kt / vt, at this head */
    size_t batch_stride; /* bytes from one batch row to the next */
    uint32_t pos0;       /* the segment's first position */
} kv_rows;

static kv_rows rows_of(const att_task *t, uint32_t tok, uint32_t kvh, bool value) {
    const rl_hparams *hp = rl_model_hparams(t->c->model);
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const uint32_t s = t->c->tok_seg[tok];
    const rl_segment *seg = &t->segs[s];
    const rl_dtype type = value ? rl_kv_types(seg->kv).v : rl_kv_types(seg->kv).k;
    const size_t head = (size_t)kvh * rl_dtype_row_bytes(type, hp->head_dim);
    const char *slot0 = (value ? rl_kv_v : rl_kv_k)(seg->kv, t->il, 0);
    return (kv_rows){
        .ring = slot0 + head,
        .ring_stride = rl_dtype_row_bytes(type, kv_dim), /* kv.h: slot after slot, one row each */
        .cap = rl_kv_slots(seg->kv, t->il),
        .batch = (value ? t->c->vt : t->c->kt) + (size_t)t->row0[s] * kv_dim * sizeof(float) + head,
        .batch_stride = kv_dim * sizeof(float),
        .pos0 = seg->pos0,
    };
}

static inline const void *row_at(const kv_rows *r, uint32_t pos) {
    if (pos >= r->pos0)
        return r->batch + (size_t)(pos - r->pos0) * r->batch_stride;
    return r->ring + (size_t)(pos % r->cap) * r->ring_stride;
}

/* For the G query heads that share KV head kvh (GQA), out (head_dim) =
 * softmax(q·K over the visible positions / sqrt(hd)) · V. The group is done
 * together so each key and value row is fetched once for G heads rather than
 * G times; at 512 tokens of prefill the per-head version spent as long in
 * attention as in the matrix products. scores holds G rows of the span; qq
 * the G queries as Q8_0 when the keys are Q8_0 (an integer dot, as
 * llama.cpp does for a q8_0 cache). */
static void attend_group(const att_task *t, uint32_t tok, uint32_t kvh, float *scores, void *qq) {
    const rl_hparams *hp = rl_model_hparams(t->c->model);
    const uint32_t hd = hp->head_dim, G = hp->n_head / hp->n_head_kv;
    const rl_kv *kv = t->segs[t->c->tok_seg[tok]].kv;
    const rl_kv_type kt = rl_kv_types(kv);
    const uint32_t p = t->c->tok_pos[tok], cap = rl_kv_span(kv, t->il);
    const uint32_t first = p + 1 > cap ? p + 1 - cap : 0, n = p - first + 1;
    const size_t head0 = (size_t)tok * hp->n_head + (size_t)kvh * G;
    const float *q = t->c->q + head0 * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const rl_kernel_set *ks = rl_kernels();
    const rl_vec_dot_fn dot_f32 = ks->vec_dot[RL_F32];
    const rl_kv_dot_fn dot = ks->kv_dot[kt.k];
    const rl_kv_axpy_fn axpy = ks->kv_axpy[kt.v];
    const char *qa = (const char *)q;
    size_t q_row = (size_t)hd * sizeof(float);
    if (kt.k == RL_Q8_0) {
        q_row = rl_dtype_row_bytes(RL_Q8_0, hd);
        for (uint32_t g = 0; g < G; g++)
            ks->quantize_q8_0(q + (size_t)g * hd, (char *)qq + g * q_row, (int)hd);
        qa = qq;
    }
    const kv_rows keys = rows_of(t, tok, kvh, false), values = rows_of(t, tok, kvh, true);
    for (uint32_t j = first; j <= p; j++) {
        const void *k = row_at(&keys, j);
        float *s = scores + j - first;
        if (kt.k == RL_F32) /* the matrix-vector dot, as the goldens were checked with */
            for (uint32_t g = 0; g < G; g++)
                s[(size_t)g * n] = dot_f32((int)hd, k, qa + g * q_row);
        else
            dot((int)hd, k, qa, q_row, (int)G, s, n);
    }
    for (uint32_t g = 0; g < G; g++) {
        float *s = scores + (size_t)g * n;
        for (uint32_t j = 0; j < n; j++)
            s[j] *= scale;
        rl_softmax(s, n);
    }
    float *out = t->c->att + head0 * hd;
    memset(out, 0, (size_t)G * hd * sizeof(float));
    for (uint32_t j = first; j <= p; j++)
        axpy((int)hd, scores + j - first, n, row_at(&values, j), (int)G, out);
}

static void attention_task(void *arg, int ith, int nth) {
    att_task *t = arg;
    const uint32_t n_kv = rl_model_hparams(t->c->model)->n_head_kv;
    long b, e;
    rl_split((long)t->n * n_kv, ith, nth, &b, &e);
    for (long i = b; i < e; i++)
        attend_group(t, (uint32_t)(i / n_kv), (uint32_t)(i % n_kv), t->c->scores[ith], t->c->qq[ith]);
}

/* Converts each segment's new K/V rows (f32, after RoPE) to its cache's
 * types, into kt / vt; an f32 cache's rows are copied as they are. */
static void convert_kv(rl_ctx *c, const att_task *t, uint32_t n_segs) {
    const rl_hparams *hp = rl_model_hparams(c->model);
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    for (uint32_t s = 0; s < n_segs; s++) {
        const rl_kv_type kt = rl_kv_types(t->segs[s].kv);
        for (uint32_t i = 0; i < t->segs[s].n; i++) {
            const size_t row = t->row0[s] + i;
            rl_quantize_row(kt.k, c->k + row * kv_dim, c->kt + row * kv_dim * sizeof(float), (int64_t)kv_dim);
            rl_quantize_row(kt.v, c->v + row * kv_dim, c->vt + row * kv_dim * sizeof(float), (int64_t)kv_dim);
        }
    }
}

/* Writes each segment's new K/V rows into its cache; rows a ring would
 * overwrite within the same batch are skipped. */
static void store_kv(rl_ctx *c, const att_task *t, uint32_t n_segs) {
    const rl_hparams *hp = rl_model_hparams(c->model);
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    for (uint32_t s = 0; s < n_segs; s++) {
        const rl_segment *seg = &t->segs[s];
        const rl_kv_type kt = rl_kv_types(seg->kv);
        const size_t k_row = rl_dtype_row_bytes(kt.k, kv_dim), v_row = rl_dtype_row_bytes(kt.v, kv_dim);
        const uint32_t cap = rl_kv_slots(seg->kv, t->il);
        for (uint32_t i = seg->n > cap ? seg->n - cap : 0; i < seg->n; i++) {
            size_t row = t->row0[s] + i;
            memcpy(rl_kv_k(seg->kv, t->il, seg->pos0 + i), c->kt + row * kv_dim * sizeof(float), k_row);
            memcpy(rl_kv_v(seg->kv, t->il, seg->pos0 + i), c->vt + row * kv_dim * sizeof(float), v_row);
        }
    }
}

/* ---- one layer ---- */

static void attention_block(rl_ctx *c, att_task *t, uint32_t n_segs, float *x, bool gemm) {
    const uint32_t il = t->il, n = t->n;
    const rl_hparams *hp = rl_model_hparams(c->model);
    const rl_layer *L = rl_model_layer(c->model, il);
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    for (uint32_t i = 0; i < n; i++)
        rl_rmsnorm(c->h + i * hp->dim, x + i * hp->dim, L->attn_norm, hp->dim, hp->norm_eps);
    rl_matmul_run(c->mm, &L->wq, c->h, n, c->q, gemm);
    rl_matmul_run(c->mm, &L->wk, c->h, n, c->k, gemm);
    rl_matmul_run(c->mm, &L->wv, c->h, n, c->v, gemm);
    for (uint32_t i = 0; i < n; i++) {
        rl_rope_cos_sin(&c->rope, c->tok_pos[i], c->rope_cs);
        rl_rope_apply(c->q + i * q_dim, hp->n_head, hp->head_dim, c->rope_cs);
        rl_rope_apply(c->k + i * kv_dim, hp->n_head_kv, hp->head_dim, c->rope_cs);
        if (hp->attn_temp_scale != 0.0f) /* mistral3: queries sharpen past each original context */
            rl_scale(c->q + i * q_dim, rl_attn_temp(hp->attn_temp_scale, hp->rope_orig_ctx, c->tok_pos[i]),
                     (uint32_t)q_dim);
    }
    convert_kv(c, t, n_segs);
    rl_pool_run(c->pool, attention_task, t);
    store_kv(c, t, n_segs);
    rl_matmul_run(c->mm, &L->wo, c->att, n, c->proj, gemm);
    rl_add(x, c->proj, n * hp->dim);
}

static void ffn_block(rl_ctx *c, uint32_t il, float *x, uint32_t n, bool gemm) {
    const rl_hparams *hp = rl_model_hparams(c->model);
    const rl_layer *L = rl_model_layer(c->model, il);
    for (uint32_t i = 0; i < n; i++)
        rl_rmsnorm(c->h + i * hp->dim, x + i * hp->dim, L->ffn_norm, hp->dim, hp->norm_eps);
    rl_matmul_run(c->mm, &L->w_gate, c->h, n, c->gate, gemm);
    rl_matmul_run(c->mm, &L->w_up, c->h, n, c->up, gemm);
    rl_swiglu(c->gate, c->up, n * hp->ffn_dim);
    rl_matmul_run(c->mm, &L->w_down, c->gate, n, c->proj, gemm);
    rl_add(x, c->proj, n * hp->dim);
}

/* Checks the segments against the model instance and the caches; fills the
 * per-row segment and position tables. */
static int check_segments(rl_ctx *c, const rl_segment *segs, uint32_t n_segs, uint32_t *row0, char *err,
                          size_t errlen) {
    const rl_hparams *hp = rl_model_hparams(c->model);
    uint32_t l0, l1, rows = 0;
    rl_model_range(c->model, &l0, &l1);
    for (uint32_t s = 0; s < n_segs; s++) {
        const rl_segment *g = &segs[s];
        uint32_t k0, k1;
        rl_kv_range(g->kv, &k0, &k1);
        if (k0 != l0 || k1 != l1) {
            snprintf(err, errlen, "segment %u: the cache holds layers [%u, %u) but the model instance runs [%u, %u)", s,
                     k0, k1, l0, l1);
            return -1;
        }
        if (rl_kv_ctx(g->kv) > hp->n_ctx_train) {
            snprintf(err, errlen, "segment %u: the cache's context %u exceeds the model's %u", s, rl_kv_ctx(g->kv),
                     hp->n_ctx_train);
            return -1;
        }
        if (g->pos0 != rl_kv_len(g->kv)) {
            snprintf(err, errlen, "segment %u starts at position %u but its session holds %u positions", s, g->pos0,
                     rl_kv_len(g->kv));
            return -1;
        }
        if (g->n == 0 || (uint64_t)g->pos0 + g->n > rl_kv_ctx(g->kv)) {
            snprintf(err, errlen, "segment %u: positions %u..%llu do not fit the context of %u", s, g->pos0,
                     (unsigned long long)g->pos0 + g->n - 1, rl_kv_ctx(g->kv));
            return -1;
        }
        for (uint32_t o = 0; o < s; o++)
            if (segs[o].kv == g->kv) {
                snprintf(err, errlen, "segments %u and %u share one session's cache", o, s);
                return -1;
            }
        if ((uint64_t)rows + g->n > c->max_batch) {
            snprintf(err, errlen, "batch of more than %u tokens", c->max_batch);
            return -1;
        }
        row0[s] = rows;
        for (uint32_t i = 0; i < g->n; i++) {
            c->tok_seg[rows + i] = s;
            c->tok_pos[rows + i] = g->pos0 + i;
        }
        rows += g->n;
    }
    return (int)rows;
}

int rl_forward_batch(rl_ctx *c, const rl_segment *segs, uint32_t n_segs, float *x, char *err, size_t errlen) {
    uint32_t *row0 = malloc((n_segs ? n_segs : 1) * sizeof *row0);
    if (!row0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rows = check_segments(c, segs, n_segs, row0, err, errlen);
    if (rows <= 0) {
        if (rows == 0)
            snprintf(err, errlen, "empty batch");
        free(row0);
        return -1;
    }
    uint32_t l0, l1;
    rl_model_range(c->model, &l0, &l1);
    const bool gemm = c->gemm_min > 0 && (uint32_t)rows >= c->gemm_min;
    for (uint32_t il = l0; il < l1; il++) {
        att_task t = {.c = c, .segs = segs, .il = il, .n = (uint32_t)rows, .row0 = row0};
        attention_block(c, &t, n_segs, x, gemm);
        ffn_block(c, il, x, (uint32_t)rows, gemm);
    }
    for (uint32_t s = 0; s < n_segs; s++)
        rl_kv_set_len(segs[s].kv, segs[s].pos0 + segs[s].n);
    free(row0);
    return 0;
}

int rl_forward_layers(rl_ctx *c, rl_kv *kv, float *x, uint32_t n, uint32_t pos0, char *err, size_t errlen) {
    const uint32_t dim = rl_model_hparams(c->model)->dim;
    if (pos0 != rl_kv_len(kv)) {
        snprintf(err, errlen, "batch starts at position %u but the session holds %u positions", pos0, rl_kv_len(kv));
        return -1;
    }
    for (uint32_t done = 0; done < n;) {
        rl_segment seg = {kv, pos0 + done, n - done < c->max_batch ? n - done : c->max_batch};
        if (rl_forward_batch(c, &seg, 1, x + (size_t)done * dim, err, errlen))
            return -1;
        done += seg.n;
    }
    return 0;
}

int rl_head_rows(rl_ctx *c, const float *x, uint32_t n, float *logits, char *err, size_t errlen) {
    const rl_hparams *hp = rl_model_hparams(c->model);
    const rl_weight *out = rl_model_output(c->model);
    if (!out) {
        snprintf(err, errlen, "head: this model instance has no output head bound");
        return -1;
    }
    if (n == 0 || n > c->max_batch) {
        snprintf(err, errlen, "head: %u rows for a batch of at most %u", n, c->max_batch);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        rl_rmsnorm(c->h + (size_t)i * hp->dim, x + (size_t)i * hp->dim, rl_model_output_norm(c->model), hp->dim,
                   hp->norm_eps);
    /* The head always uses the quantized kernels: a row's logits must not
     * depend on how many other rows share its batch. */
    rl_matmul_run(c->mm, out, c->h, n, logits, false);
    return 0;
}

int rl_head(rl_ctx *c, const float *x, float *logits, char *err, size_t errlen) {
    return rl_head_rows(c, x, 1, logits, err, errlen);
}
