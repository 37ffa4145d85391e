/* Threaded matrix products over quantized weights (see matmul.h). Rows of the
 * weight are split evenly across threads; every thread writes a disjoint set
 * of output columns, so no reduction is needed. */
#include "matmul.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include "quant.h"

#define GEMM_TILE_ROWS 64

struct rl_matmul {
    rl_pool *pool;           /* not owned */
    uint32_t max_cols;       /* widest input row */
    uint32_t max_batch;      /* most rows of x */
    void *act;               /* (max_batch, row bytes of the widest dot type) quantized x */
    size_t act_stride_max;   /* bytes of one quantized row at max_cols */
    float **tiles;           /* (n_threads) dequantized weight tiles (GEMM_TILE_ROWS, max_cols) */
};

typedef struct {
    rl_matmul *mm;
    const rl_weight *w;
    const float *x;          /* (n, cols) */
    uint32_t n;
    float *y;                /* (n, rows) */
    size_t act_stride;       /* bytes of one quantized activation row */
    rl_dtype act_type;       /* dot type of the weight */
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
    mm->act_stride_max = (size_t)max_cols * sizeof(float);   /* f32 is the widest dot type */
    mm->act = malloc(mm->act_stride_max * max_batch);
    mm->tiles = calloc((size_t)nth, sizeof *mm->tiles);
    bool ok = mm->act && mm->tiles;
    for (int i = 0; ok && i < nth; i++)
        ok = (mm->tiles[i] = malloc((size_t)GEMM_TILE_ROWS * max_cols * sizeof(float))) != NULL;
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
    for (int i = 0; mm->tiles && i < rl_pool_size(mm->pool); i++)
        free(mm->tiles[i]);
    free(mm->tiles);
    free(mm->act);
    free(mm);
    *pmm = NULL;
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

static void gemm_task(void *arg, int ith, int nth) {
    mm_task *t = arg;
    const rl_weight *w = t->w;
    float *tile = t->mm->tiles[ith];
    long b, e;
    rl_split(w->rows, ith, nth, &b, &e);
    for (long r0 = b; r0 < e; r0 += GEMM_TILE_ROWS) {
        int nr = (int)(e - r0 < GEMM_TILE_ROWS ? e - r0 : GEMM_TILE_ROWS);
        const float *wt;
        if (w->type == RL_F32) {
            wt = (const float *)w->data + (size_t)r0 * w->cols;
        } else {
            rl_dequantize_row(w->type, (const char *)w->data + (size_t)r0 * w->row_bytes, tile,
                              (int64_t)nr * w->cols);
            wt = tile;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)t->n, nr, (int)w->cols, 1.0f, t->x,
                    (int)w->cols, wt, (int)w->cols, 0.0f, t->y + r0, (int)w->rows);
    }
}

void rl_matmul_run(rl_matmul *mm, const rl_weight *w, const float *x, uint32_t n, float *y, bool gemm) {
    mm_task t = {.mm = mm, .w = w, .x = x, .n = n, .y = y};
    if (gemm) {
        rl_pool_run(mm->pool, gemm_task, &t);
        return;
    }
    t.act_type = rl_vec_dot_type(w->type);
    t.act_stride = act_row_bytes(t.act_type, w->cols);
    rl_pool_run(mm->pool, quantize_task, &t);
    rl_pool_run(mm->pool, vecdot_task, &t);
}
