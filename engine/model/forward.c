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
 * a chunk, so chunking never changes a result.
 *
 * The attention works in tiles: up to ATT_ROWS rows of one segment against
 * one KV head (ATT_ROWS * G queries), so each key and value row is read once
 * per tile rather than once per row, and each head's positions are walked
 * through its own contiguous ring (kv.c) in blocks of ATT_BLOCK. Every score
 * is the same dot whatever tile it is in, each row's softmax is over its own
 * positions, and its weighted sum of values takes the positions in order, so
 * a row's output has the same bits alone, in a tile, in any micro-batch, on
 * any node. */
#include "forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "matmul.h"
#include "ops.h"
#include "quant.h"
#include "threadpool.h"
#include "util.h"

enum {
    ATT_ROWS = 16,  /* rows of a segment attended together: the cache's rows, from memory at depth, read once per 16 */
    ATT_BLOCK = 32, /* cache rows converted to f32 at a time: 16 KiB at head dim 128, in L1 */
    /* A tile's scores take at most this many floats (4 MiB) when it has more
     * than one row: deep in a long context tiles get fewer rows, rather than
     * each thread holding 16 * G rows of 131072 scores. */
    ATT_SCORES_MAX = 1 << 20,
};

/* A thread's attention scratch. */
typedef struct {
    float *q;     /* (ATT_ROWS * G, head_dim) the tile's queries */
    float *y;     /* (ATT_ROWS * G, head_dim) their outputs */
    float *blk;   /* (ATT_BLOCK, head_dim) cache rows in f32 */
    float *s;     /* (queries, the tile's positions) scores, then weights */
    size_t s_cap; /* floats s holds */
} att_scratch;

/* Rows [row, row + n) of the batch: one segment's, attended together. */
typedef struct {
    uint32_t seg, row, n;
} att_tile;

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
    att_scratch *scr;      /* (n_threads) */
    att_tile *tiles;       /* (max_batch) */
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
    c->scr = calloc((size_t)rl_pool_size(c->pool), sizeof *c->scr);
    c->tiles = malloc(B * sizeof *c->tiles);
    c->tok_seg = malloc(B * sizeof *c->tok_seg);
    c->tok_pos = malloc(B * sizeof *c->tok_pos);
    c->rope_cs = malloc(hp->head_dim * sizeof(float));
    if (rope_init(c, hp, err, errlen)) {
        rl_ctx_destroy(&c);
        return NULL;
    }
    if (!c->rope_cs || !c->tok_seg || !c->tok_pos || !c->mm || !c->h || !c->q || !c->k || !c->v || !c->att ||
        !c->gate || !c->up || !c->proj || !c->scr || !c->kt || !c->vt || !c->tiles)
        goto oom;
    const size_t tile_q = (size_t)ATT_ROWS * q_dim / hp->n_head_kv; /* floats of a tile's queries */
    for (int i = 0; i < rl_pool_size(c->pool); i++) {
        att_scratch *a = &c->scr[i];
        if (!(a->q = malloc(tile_q * sizeof(float))) || !(a->y = malloc(tile_q * sizeof(float))) ||
            !(a->blk = malloc((size_t)ATT_BLOCK * hp->head_dim * sizeof(float))))
            goto oom;
    }
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
    for (int i = 0; c->scr && c->pool && i < rl_pool_size(c->pool); i++) {
        free(c->scr[i].q);
        free(c->scr[i].y);
        free(c->scr[i].blk);
        free(c->scr[i].s);
    }
    free(c->scr);
    free(c->tiles);
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
    uint32_t *row0; /* (n_segs) first row of each segment */
    uint32_t n_tiles;
} att_task;

/* Where one KV head's rows of one layer are for one segment: positions
 * before the segment in its head's ring, the segment's own in the batch's
 * converted rows; both in the cache's type. */
typedef struct {
    const char *ring;    /* slot 0 of this head's ring */
    size_t ring_stride;  /* bytes from one slot to the next */
    uint32_t cap;        /* slots in the ring */
    const char *batch;   /* the segment's first row in kt / vt, at this head */
    size_t batch_stride; /* bytes from one batch row to the next */
    uint32_t pos0;       /* the segment's first position */
    rl_dtype type;
} kv_rows;

static kv_rows rows_of(const att_task *t, uint32_t s, uint32_t kvh, bool value) {
    const rl_hparams *hp = rl_model_hparams(t->c->model);
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const rl_segment *seg = &t->segs[s];
    const rl_dtype type = value ? rl_kv_types(seg->kv).v : rl_kv_types(seg->kv).k;
    kv_rows r = {
        .cap = rl_kv_slots(seg->kv, t->il),
        .batch = (value ? t->c->vt : t->c->kt) + (size_t)t->row0[s] * kv_dim * sizeof(float) +
            (size_t)kvh * rl_dtype_row_bytes(type, hp->head_dim),
        .batch_stride = kv_dim * sizeof(float),
        .pos0 = seg->pos0,
        .type = type,
    };
    r.ring = rl_kv_head(seg->kv, t->il, kvh, value, &r.ring_stride);
    return r;
}

/* The longest run of positions from a (before end) whose rows lie one
 * stride apart: to the ring's wrap or the segment's start, or the batch's. */
static uint32_t run_at(const kv_rows *r, uint32_t a, uint32_t end, const char **row, size_t *stride) {
    if (a >= r->pos0) {
        *row = r->batch + (size_t)(a - r->pos0) * r->batch_stride;
        *stride = r->batch_stride;
        return end - a;
    }
    const uint32_t slot = a % r->cap, stop = end < r->pos0 ? end : r->pos0;
    *row = r->ring + (size_t)slot * r->ring_stride;
    *stride = r->ring_stride;
    return stop - a < r->cap - slot ? stop - a : r->cap - slot;
}

/* The positions a query at p sees on this layer: [first, p]. */
static uint32_t first_seen(uint32_t p, uint32_t span) { return p + 1 > span ? p + 1 - span : 0; }

/* s[i * w + j - lo] = q_i · k_j for the tile's nq queries and positions
 * [lo, end). F32 keys: the matrix-vector dot, as the goldens were checked
 * with; others converted to f32 a block at a time for kv_scores. */
static void tile_scores(const kv_rows *keys, uint32_t lo, uint32_t end, uint32_t hd, const float *q, int nq, float *blk,
                        float *s, size_t w) {
    const rl_kernel_set *ks = rl_kernels();
    for (uint32_t j = lo; j < end;) {
        const char *rows;
        size_t stride;
        const uint32_t n = run_at(keys, j, end, &rows, &stride);
        for (uint32_t b = 0; b < n; b += ATT_BLOCK) {
            const int nb = n - b < ATT_BLOCK ? (int)(n - b) : ATT_BLOCK;
            const char *k = rows + (size_t)b * stride;
            float *sj = s + (j + b - lo);
            if (keys->type == RL_F32)
                for (int r = 0; r < nb; r++)
                    for (int i = 0; i < nq; i++)
                        sj[(size_t)i * w + r] =
                            ks->vec_dot[RL_F32]((int)hd, k + (size_t)r * stride, q + (size_t)i * hd);
            else {
                ks->kv_rows[keys->type]((int)hd, k, stride, nb, blk);
                ks->kv_scores((int)hd, q, nq, blk, hd, nb, sj, w);
            }
        }
        j += n;
    }
}

/* y_i += sum over positions [a, end) of p[i * w + j - a] * v_j, in position
 * order, for nq queries. F32 values are read in place. */
static void tile_values(const kv_rows *values, uint32_t a, uint32_t end, uint32_t hd, const float *p, size_t w, int nq,
                        float *blk, float *y) {
    const rl_kernel_set *ks = rl_kernels();
    for (uint32_t j = a; j < end;) {
        const char *rows;
        size_t stride;
        const uint32_t n = run_at(values, j, end, &rows, &stride);
        for (uint32_t b = 0; b < n; b += ATT_BLOCK) {
            const int nb = n - b < ATT_BLOCK ? (int)(n - b) : ATT_BLOCK;
            const char *v = rows + (size_t)b * stride;
            const float *pj = p + (j + b - a);
            if (values->type == RL_F32)
                ks->kv_values((int)hd, pj, w, nq, (const float *)v, stride / sizeof(float), nb, y);
            else {
                ks->kv_rows[values->type]((int)hd, v, stride, nb, blk);
                ks->kv_values((int)hd, pj, w, nq, blk, hd, nb, y);
            }
        }
        j += n;
    }
}

/* The scores a tile needs: its queries times the positions from its first
 * row's first to its last row's own. */
static size_t tile_floats(const att_task *t, const att_tile *tl) {
    const rl_hparams *hp = rl_model_hparams(t->c->model);
    const uint32_t span = rl_kv_span(t->segs[tl->seg].kv, t->il), p0 = t->c->tok_pos[tl->row];
    return (size_t)tl->n * (hp->n_head / hp->n_head_kv) * (p0 + tl->n - first_seen(p0, span));
}

/* For the G query heads of each row of the tile that share KV head kvh
 * (GQA): out = softmax(q·K over the positions the row sees / sqrt(hd)) · V.
 * Scores for the tile's whole span of positions at once, a softmax per
 * query over its own part, then the values in stretches of positions that
 * the same rows see (the rows' first and last positions both grow with the
 * row), each stretch once for all of its rows. */
static void attend_tile(const att_task *t, const att_tile *tl, uint32_t kvh, att_scratch *a) {
    const rl_hparams *hp = rl_model_hparams(t->c->model);
    const uint32_t hd = hp->head_dim, G = hp->n_head / hp->n_head_kv, nr = tl->n;
    const size_t q_dim = (size_t)hp->n_head * hd, gsz = (size_t)G * hd;
    const uint32_t span = rl_kv_span(t->segs[tl->seg].kv, t->il), p0 = t->c->tok_pos[tl->row];
    const uint32_t lo = first_seen(p0, span), end = p0 + nr;
    const size_t w = end - lo;
    const int nq = (int)(nr * G);
    const float scale = 1.0f / sqrtf((float)hd);
    for (uint32_t r = 0; r < nr; r++)
        memcpy(a->q + r * gsz, t->c->q + (tl->row + r) * q_dim + kvh * gsz, gsz * sizeof(float));
    const kv_rows keys = rows_of(t, tl->seg, kvh, false), values = rows_of(t, tl->seg, kvh, true);
    tile_scores(&keys, lo, end, hd, a->q, nq, a->blk, a->s, w);
    for (uint32_t i = 0; i < (uint32_t)nq; i++) {
        const uint32_t p = p0 + i / G, first = first_seen(p, span), n = p - first + 1;
        float *si = a->s + i * w + (first - lo);
        if (keys.type == RL_F32) { /* the goldens' softmax, libm's expf */
            for (uint32_t j = 0; j < n; j++)
                si[j] *= scale;
            rl_softmax(si, n);
        } else
            rl_kernels()->kv_softmax(si, (int)n, scale);
    }
    memset(a->y, 0, nr * gsz * sizeof(float));
    for (uint32_t x = lo; x < end;) {
        /* the rows that see position x: ra's last is x or later, rb's first x or before */
        uint32_t ra = 0, rb = nr - 1;
        while (p0 + ra < x)
            ra++;
        while (first_seen(p0 + rb, span) > x)
            rb--;
        uint32_t y = p0 + ra + 1; /* up to where ra stops seeing or rb + 1 starts */
        if (rb + 1 < nr && first_seen(p0 + rb + 1, span) < y)
            y = first_seen(p0 + rb + 1, span);
        tile_values(&values, x, y, hd, a->s + ra * G * w + (x - lo), w, (int)((rb - ra + 1) * G), a->blk,
                    a->y + ra * gsz);
        x = y;
    }
    for (uint32_t r = 0; r < nr; r++)
        memcpy(t->c->att + (tl->row + r) * q_dim + kvh * gsz, a->y + r * gsz, gsz * sizeof(float));
}

/* Task i is tile i mod n_tiles for KV head i / n_tiles, dealt to thread i
 * mod nth: the threads work on one head at a time (its rows stay in the
 * shared cache while every tile reads them), and a prompt's later tiles,
 * which see more positions, are shared out evenly. */
static void attention_task(void *arg, int ith, int nth) {
    att_task *t = arg;
    const uint32_t n_kv = rl_model_hparams(t->c->model)->n_head_kv;
    for (long i = ith; i < (long)t->n_tiles * n_kv; i += nth)
        attend_tile(t, &t->c->tiles[i % t->n_tiles], (uint32_t)(i / t->n_tiles), &t->c->scr[ith]);
}

/* Cuts each segment into tiles and makes every thread's score buffer large
 * enough for the largest. 0, or -1 when memory runs out. */
static int plan_tiles(rl_ctx *c, att_task *t, uint32_t n_segs, char *err, size_t errlen) {
    size_t need = 1;
    t->n_tiles = 0;
    for (uint32_t s = 0; s < n_segs; s++)
        for (uint32_t i = 0; i < t->segs[s].n; i += c->tiles[t->n_tiles++].n) {
            att_tile *tl = &c->tiles[t->n_tiles];
            *tl = (att_tile){s, t->row0[s] + i, t->segs[s].n - i < ATT_ROWS ? t->segs[s].n - i : ATT_ROWS};
            while (tl->n > 1 && tile_floats(t, tl) > ATT_SCORES_MAX)
                tl->n /= 2;
            const size_t f = tile_floats(t, tl);
            need = f > need ? f : need;
        }
    for (int i = 0; i < rl_pool_size(c->pool); i++) {
        att_scratch *a = &c->scr[i];
        float *s = rl_grow(a->s, &a->s_cap, need, sizeof(float), 4096);
        if (!s)
            return rl_errf(err, errlen, "cannot allocate %zu MiB of attention scores", need * sizeof(float) >> 20);
        a->s = s;
    }
    return 0;
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
        const uint32_t cap = rl_kv_slots(seg->kv, t->il);
        for (uint32_t i = seg->n > cap ? seg->n - cap : 0; i < seg->n; i++) {
            size_t row = t->row0[s] + i;
            rl_kv_put(seg->kv, t->il, seg->pos0 + i, c->kt + row * kv_dim * sizeof(float),
                      c->vt + row * kv_dim * sizeof(float));
        }
    }
}

/* ---- one layer ---- */

static int attention_block(rl_ctx *c, att_task *t, uint32_t n_segs, uint32_t n, float *x, bool gemm, char *err,
                           size_t errlen) {
    const uint32_t il = t->il;
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
    if (plan_tiles(c, t, n_segs, err, errlen))
        return -1;
    rl_pool_run(c->pool, attention_task, t);
    store_kv(c, t, n_segs);
    rl_matmul_run(c->mm, &L->wo, c->att, n, c->proj, gemm);
    rl_add(x, c->proj, n * hp->dim);
    return 0;
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
        att_task t = {.c = c, .segs = segs, .il = il, .row0 = row0};
        if (attention_block(c, &t, n_segs, (uint32_t)rows, x, gemm, err, errlen)) {
            free(row0);
            return -1;
        }
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
