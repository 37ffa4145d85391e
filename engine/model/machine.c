/* The machine-facing probes of machine.h. They live in the engine because
 * they run its kernels and its thread pool, which nothing above the engine
 * may reach: the node reports rl_matvec_probe as its speed for the planner,
 * `relais bench` compares decode with rl_read_probe. */
#include "machine.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"
#include "matmul.h"
#include "quant.h"
#include "threadpool.h"
#include "util.h"

/* Q4_0, 4096 wide, 16384 rows: 37.7 MB, past the last-level cache of the
 * machines relais targets, so the figure is memory-bound as decode is. */
#define MATVEC_COLS 4096
#define MATVEC_ROWS 16384

#define READ_PASSES 5
#define READ_STREAMS 4
#define READ_RUN 64 /* words read from one stream before the next (8 cache lines) */

const char *rl_kernel_name(void) { return rl_kernels()->name; }

size_t rl_simd_names(const char **names, size_t cap) {
    const rl_cpu_features *f = rl_cpu();
    const struct {
        bool on;
        const char *name;
    } all[] = {{f->avx2, "avx2"},
               {f->avx512, "avx512"},
               {f->avx512vnni, "avx512vnni"},
               {f->neon, "neon"},
               /* the Pi 5's A76, not the Pi 4's A72: tells which integer kernel runs */
               {f->dotprod, "dotprod"}};
    size_t n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && n < cap; i++)
        if (all[i].on)
            names[n++] = all[i].name;
    return n;
}

double rl_matvec_probe(int threads, double seconds) {
    const size_t row_bytes = rl_dtype_row_bytes(RL_Q4_0, MATVEC_COLS);
    uint8_t *data = malloc(row_bytes * MATVEC_ROWS);
    float *x = malloc(MATVEC_COLS * sizeof *x), *y = malloc(MATVEC_ROWS * sizeof *y);
    rl_pool *pool = rl_pool_new(threads);
    rl_matmul *mm = pool ? rl_matmul_new(pool, MATVEC_COLS, 1) : NULL;
    double bps = 0;
    if (data && x && y && mm) {
        for (int i = 0; i < MATVEC_COLS; i++)
            x[i] = (float)((i * 7919) % 97) / 97.0f - 0.5f;
        rl_quantize_row(RL_Q4_0, x, data, MATVEC_COLS);
        for (int r = 1; r < MATVEC_ROWS; r++)
            memcpy(data + (size_t)r * row_bytes, data, row_bytes);
        rl_weight w = {.data = data,
                       .type = RL_Q4_0,
                       .rows = MATVEC_ROWS,
                       .cols = MATVEC_COLS,
                       .row_bytes = row_bytes,
                       .name = "benchmark"};
        rl_matmul_run(mm, &w, x, 1, y, false); /* warm-up: page faults, thread wake-up */
        int iters = 0;
        double t0 = rl_now_s(), t;
        do {
            rl_matmul_run(mm, &w, x, 1, y, false);
            iters++;
        } while ((t = rl_now_s() - t0) < seconds || iters < 3);
        bps = (double)row_bytes * MATVEC_ROWS * iters / t;
    }
    rl_matmul_destroy(&mm);
    rl_pool_destroy(&pool);
    free(data), free(x), free(y);
    return bps;
}

typedef struct {
    const uint64_t *buf;
    size_t words;       /* in buf */
    uint64_t sums[256]; /* per thread, so the reads are not optimised away */
} read_probe;

/* Each thread sums its share through four interleaved streams, 8 cache lines
 * of one then of the next, in loops the compiler turns into vector loads: a
 * plain sequential read, like the weights' during decode, with enough
 * independent loads in flight that memory, not the core, sets the pace. */
static void read_task(void *arg, int ith, int nth) {
    read_probe *p = arg;
    const size_t quarter = p->words / READ_STREAMS / READ_RUN * READ_RUN;
    long b, e;
    rl_split((long)(quarter / READ_RUN), ith, nth, &b, &e);
    uint64_t s[READ_STREAMS] = {0};
    for (size_t i = (size_t)b * READ_RUN; i < (size_t)e * READ_RUN; i += READ_RUN)
        for (int k = 0; k < READ_STREAMS; k++) {
            const uint64_t *q = p->buf + (size_t)k * quarter + i;
            for (int j = 0; j < READ_RUN; j++) /* a fixed-length reduction: vectorized */
                s[k] += q[j];
        }
    p->sums[ith % 256] = s[0] + s[1] + s[2] + s[3];
}

double rl_read_probe(int threads, size_t bytes) {
    read_probe p = {.words = bytes / sizeof(uint64_t)};
    uint64_t *buf = malloc(p.words * sizeof *buf);
    rl_pool *pool = rl_pool_new(threads);
    double best = 0;
    if (buf && pool) {
        memset(buf, 1, p.words * sizeof *buf); /* fault every page in before timing */
        p.buf = buf;
        rl_pool_run(pool, read_task, &p);
        for (int i = 0; i < READ_PASSES; i++) {
            const double t0 = rl_now_s();
            rl_pool_run(pool, read_task, &p);
            const double read = (double)(p.words / READ_STREAMS / READ_RUN * READ_RUN * READ_STREAMS) * sizeof *buf;
            const double gbps = read / (rl_now_s() - t0) / 1e9;
            best = gbps > best ? gbps : best;
        }
    }
    rl_pool_destroy(&pool);
    free(buf);
    return best;
}
