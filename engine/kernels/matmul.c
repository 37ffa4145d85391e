/* Threaded matrix products over quantized weights (see matmul.h). Every
 * thread writes a disjoint set of output columns, so no reduction is needed:
 * the matrix-vector and sgemm paths split the rows evenly, the packed path
 * hands out tiles of 16 rows from a shared counter. */
#include "matmul.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "quant.h"

#define GEMM_TILE_ROWS 64     /* weight rows dequantized per sgemm call */
#define QGEMM_GRAB 2          /* tiles a thread claims at a time */
#define SERIAL_QUANTIZE_MAX 4 /* batches this small are quantized by the calling thread */
#define PREFETCH_AHEAD 4096   /* bytes of lead of the x16 stream's prefetch */
/* The packed path serves every batch size of a quantized weight: a token's
 * result must not depend on the batch it comes in (one session's logits are
 * bit-identical alone and batched with others), and with the x16 layout it
 * streams a single token's weights about as fast as the matrix-vector path
 * (bench/, 2-core Zen 5). sgemm over dequantized tiles is 5x slower than the
 * packed kernel at 256 and 512 tokens, so it stays for float weights only. */
#define DEFAULT_QGEMM_MIN 1
#define DEFAULT_SGEMM_MIN UINT32_MAX

/* A thread's run of tiles; its own cache line, so that claiming one does not
 * take the line from the other threads. */
typedef struct {
    _Alignas(64) atomic_uint next; /* next unclaimed tile */
    uint32_t end;                  /* one past the run's last tile */
} tile_range;

struct rl_matmul {
    rl_pool *pool;         /* not owned */
    uint32_t max_cols;     /* widest input row */
    uint32_t max_batch;    /* most rows of x */
    uint32_t qgemm_min;    /* batches this long use the packed integer kernel */
    uint32_t sgemm_min;    /* ...and this long sgemm, when the caller allows it */
    void *act;             /* (max_batch, row bytes of the widest dot type) quantized x */
    size_t act_stride_max; /* bytes of one quantized row at max_cols */
    rl_qg_act_buf qact;    /* x quantized for the packed kernel */
    rl_qg_tile **tiles;    /* (n_threads) a packed tile */
    float **acc;           /* (n_threads) (max_batch, RL_QG_ROWS) sums of the tile being computed */
    float **rows;          /* (n_threads) GEMM_TILE_ROWS dequantized rows for sgemm */
    tile_range *ranges;    /* (n_threads) the packed path's tiles, a contiguous run per thread */
};

typedef struct {
    rl_matmul *mm;
    const rl_weight *w;
    const float *x; /* (n, cols) */
    uint32_t n;
    float *y;          /* (n, rows) */
    size_t act_stride; /* bytes of one quantized activation row */
    rl_dtype act_type; /* dot type of the weight */
    rl_qg_format fmt;  /* packed format of the weight */
} mm_task;

static size_t act_row_bytes(rl_dtype t, uint32_t cols) {
    return t == RL_F32 ? (size_t)cols * sizeof(float) : rl_dtype_row_bytes(t, cols);
}

rl_matmul *rl_matmul_new(rl_pool *pool, uint32_t max_cols, uint32_t max_batch) {
    rl_matmul *mm = calloc(1, sizeof *mm);
    if (!mm)
        return NULL;
    int nth = rl_pool_size(pool);
    mm->pool = pool;
    mm->max_cols = max_cols;
    mm->max_batch = max_batch;
    mm->qgemm_min = DEFAULT_QGEMM_MIN;
    mm->sgemm_min = DEFAULT_SGEMM_MIN;
    mm->act_stride_max = (size_t)max_cols * sizeof(float); /* f32 is the widest dot type */
    mm->act = malloc(mm->act_stride_max * max_batch);
    mm->tiles = calloc((size_t)nth, sizeof *mm->tiles);
    mm->acc = calloc((size_t)nth, sizeof *mm->acc);
    mm->rows = calloc((size_t)nth, sizeof *mm->rows);
    mm->ranges = aligned_alloc(64, (size_t)nth * sizeof *mm->ranges);
    bool ok = mm->act && mm->tiles && mm->acc && mm->rows && mm->ranges &&
        rl_qg_act_buf_init(&mm->qact, max_batch, max_cols) == 0;
    for (int i = 0; ok && i < nth; i++) {
        mm->tiles[i] = aligned_alloc(64, sizeof(rl_qg_tile));
        mm->acc[i] = malloc((size_t)max_batch * RL_QG_ROWS * sizeof(float));
        mm->rows[i] = malloc((size_t)GEMM_TILE_ROWS * max_cols * sizeof(float));
        ok = mm->tiles[i] && mm->acc[i] && mm->rows[i];
    }
    if (!ok)
        rl_matmul_destroy(&mm);
    /* We parallelise over weight tiles ourselves; OpenBLAS threads would fight ours. */
    openblas_set_num_threads(1);
    return mm;
}

void rl_matmul_destroy(rl_matmul **pmm) {
    rl_matmul *mm = pmm ? *pmm : NULL;
    if (!mm)
        return;
    for (int i = 0; i < rl_pool_size(mm->pool); i++) {
        free(mm->tiles ? mm->tiles[i] : NULL);
        free(mm->acc ? mm->acc[i] : NULL);
        free(mm->rows ? mm->rows[i] : NULL);
    }
    free(mm->tiles);
    free(mm->acc);
    free(mm->rows);
    free(mm->ranges);
    rl_qg_act_buf_free(&mm->qact);
    free(mm->act);
    free(mm);
    *pmm = NULL;
}

void rl_matmul_set_batch_paths(rl_matmul *mm, uint32_t qgemm_min, uint32_t sgemm_min) {
    mm->qgemm_min = qgemm_min;
    mm->sgemm_min = sgemm_min;
}

static void quantize_task(void *arg, int ith, int nth) {
    mm_task *t = arg;
    const rl_kernel_set *ks = rl_kernels();
    long b, e;
    rl_split(t->n, ith, nth, &b, &e);
    for (long i = b; i < e; i++) {
        const float *x = t->x + (size_t)i * t->w->cols;
        char *dst = (char *)t->mm->act + (size_t)i * t->act_stride;
        if (t->act_type == RL_Q8_0)
            ks->quantize_q8_0(x, dst, (int)t->w->cols);
        else if (t->act_type == RL_Q8_K)
            ks->quantize_q8_K(x, dst, (int)t->w->cols);
        else
            memcpy(dst, x, (size_t)t->w->cols * sizeof(float));
    }
}

static void vecdot_task(void *arg, int ith, int nth) {
    mm_task *t = arg;
    const rl_weight *w = t->w;
    rl_vec_dot_fn dot = rl_kernels()->vec_dot[w->type];
    long b, e;
    rl_split(w->rows, ith, nth, &b, &e);
    for (long r = b; r < e; r++) {
        const void *wr = (const char *)w->data + (size_t)r * w->row_bytes;
        for (uint32_t i = 0; i < t->n; i++) {
            const void *a = (const char *)t->mm->act + (size_t)i * t->act_stride;
            t->y[(size_t)i * w->rows + r] = dot((int)w->cols, wr, a);
        }
    }
}

static void qgemm_act_task(void *arg, int ith, int nth) {
    mm_task *t = arg;
    long b, e;
    rl_split(t->n, ith, nth, &b, &e);
    rl_qg_act_rows(rl_kernels()->quantize_q8_0, t->fmt, t->x, t->w->cols, (uint32_t)b, (uint32_t)e, &t->mm->qact);
}

/* Requests [p, p + n) into the caches. The x16 layout is read as one stream,
 * but for a single token the hardware prefetcher alone keeps it 20-30% below
 * the bandwidth of the matrix-vector path; PREFETCH_AHEAD bytes of lead
 * closes the gap (measured from 2 to 16 KiB: all alike). Prefetches past the
 * end of the weight are harmless. */
static void prefetch(const char *p, size_t n) {
    for (size_t off = 0; off < n; off += 64)
        __builtin_prefetch(p + off);
}

/* Computes one tile of RL_QG_ROWS rows: packed one chunk of columns at a
 * time (so the packed weights stay in L1), every chunk applied to all the
 * tokens before the next is packed. */
static void qgemm_tile(const mm_task *t, const rl_qg_act *act, uint32_t k, rl_qg_tile *tile, float *acc) {
    const rl_weight *w = t->w;
    const rl_kernel_set *ks = rl_kernels();
    const uint32_t r0 = k * RL_QG_ROWS;
    const int rows = (int)(w->rows - r0 < RL_QG_ROWS ? w->rows - r0 : RL_QG_ROWS);
    const char *wr = (const char *)w->data + (size_t)r0 * w->row_bytes;
    const bool x16 = w->x16 && rows == RL_QG_ROWS; /* a partial group keeps the file's layout */
    const bool gemv = x16 && ks->qg_gemv && t->n <= ks->qg_gemv_max;
    const size_t chunk_bytes = rl_dtype_row_bytes(w->type, RL_QG_CHUNK) * RL_QG_ROWS; /* a full chunk in x16 */
    memset(acc, 0, (size_t)t->n * RL_QG_ROWS * sizeof *acc);
    for (uint32_t c0 = 0; c0 < w->cols; c0 += RL_QG_CHUNK) {
        const uint32_t nc = w->cols - c0 < RL_QG_CHUNK ? w->cols - c0 : RL_QG_CHUNK;
        if (x16) {
            const char *src = wr + (size_t)(c0 / RL_QG_CHUNK) * chunk_bytes;
            prefetch(src + PREFETCH_AHEAD,
                     nc == RL_QG_CHUNK ? chunk_bytes : rl_dtype_row_bytes(w->type, nc) * RL_QG_ROWS);
            if (gemv) {
                ks->qg_gemv(w->type, src, nc, act, c0, acc);
                continue;
            }
            ks->qg_unpack(w->type, src, nc, tile);
        } else
            ks->qg_pack(w->type, wr, w->row_bytes, rows, c0, nc, tile);
        ks->qg_kernel(tile, act, c0, acc);
    }
    for (uint32_t j = 0; j < t->n; j++)
        memcpy(t->y + (size_t)j * w->rows + r0, acc + (size_t)j * RL_QG_ROWS, (size_t)rows * sizeof *acc);
}

/* Claims up to QGEMM_GRAB tiles of range r; false when it has none left. */
static bool claim(tile_range *r, uint32_t *k0, uint32_t *k1) {
    const uint32_t k = atomic_fetch_add(&r->next, QGEMM_GRAB);
    if (k >= r->end)
        return false;
    *k0 = k;
    *k1 = k + QGEMM_GRAB < r->end ? k + QGEMM_GRAB : r->end;
    return true;
}

/* Each thread streams its own contiguous run of tiles, so that the weights
 * reach it as one sequential read the prefetchers follow: with tiles dealt
 * from one shared counter every thread's stream jumped each QGEMM_GRAB tiles,
 * and decode read 8-30% slower (bench/matvec_bench, relais bench). A fixed
 * split alone is worse: two threads on a shared machine rarely run at the
 * same speed, and the faster one waited at the end of every matrix (a third
 * of decode time, measured). So a thread that finishes its run takes tiles
 * from the others' runs. */
static void qgemm_task(void *arg, int ith, int nth) {
    mm_task *t = arg;
    const rl_qg_act act = rl_qg_act_view(&t->mm->qact, t->fmt, t->n, t->w->cols);
    for (int i = 0; i < nth; i++) {
        tile_range *r = &t->mm->ranges[(ith + i) % nth];
        for (uint32_t k0, k1; claim(r, &k0, &k1);)
            for (uint32_t k = k0; k < k1; k++)
                qgemm_tile(t, &act, k, t->mm->tiles[ith], t->mm->acc[ith]);
    }
}

static void gemm_task(void *arg, int ith, int nth) {
    mm_task *t = arg;
    const rl_weight *w = t->w;
    float *tile = t->mm->rows[ith];
    long b, e;
    rl_split(w->rows, ith, nth, &b, &e);
    for (long r0 = b; r0 < e; r0 += GEMM_TILE_ROWS) {
        int nr = (int)(e - r0 < GEMM_TILE_ROWS ? e - r0 : GEMM_TILE_ROWS);
        const float *wt;
        if (w->type == RL_F32) {
            wt = (const float *)w->data + (size_t)r0 * w->cols;
        } else {
            rl_dequantize_row(w->type, (const char *)w->data + (size_t)r0 * w->row_bytes, tile, (int64_t)nr * w->cols);
            wt = tile;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)t->n, nr, (int)w->cols, 1.0f, t->x, (int)w->cols, wt,
                    (int)w->cols, 0.0f, t->y + r0, (int)w->rows);
    }
}

void rl_matmul_run(rl_matmul *mm, const rl_weight *w, const float *x, uint32_t n, float *y, bool gemm) {
    mm_task t = {.mm = mm, .w = w, .x = x, .n = n, .y = y, .fmt = rl_qg_format_of(w->type)};
    const bool packed = t.fmt.sub != 0;
    if (!w->x16 && gemm && (!packed || n >= mm->sgemm_min)) {
        rl_pool_run(mm->pool, gemm_task, &t);
    } else if (w->x16 || (packed && n >= mm->qgemm_min)) { /* only the packed path reads x16 */
        const int nth = rl_pool_size(mm->pool);
        for (int i = 0; i < nth; i++) {
            long b, e;
            rl_split((w->rows + RL_QG_ROWS - 1) / RL_QG_ROWS, i, nth, &b, &e);
            atomic_init(&mm->ranges[i].next, (uint32_t)b);
            mm->ranges[i].end = (uint32_t)e;
        }
        if (n <= SERIAL_QUANTIZE_MAX) /* a few rows: cheaper than a round trip through the pool */
            rl_qg_act_rows(rl_kernels()->quantize_q8_0, t.fmt, x, w->cols, 0, n, &mm->qact);
        else
            rl_pool_run(mm->pool, qgemm_act_task, &t);
        rl_pool_run(mm->pool, qgemm_task, &t);
    } else {
        t.act_type = rl_vec_dot_type(w->type);
        t.act_stride = act_row_bytes(t.act_type, w->cols);
        rl_pool_run(mm->pool, quantize_task, &t);
        rl_pool_run(mm->pool, vecdot_task, &t);
    }
}
