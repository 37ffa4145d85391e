/* Decode's inner loop alone: one token through quantized weight matrices
 * (rl_matmul_run with a batch of 1), reported as the bytes of weights read
 * per second. It separates the kernels from the rest of a forward pass, and
 * it reports the best of several passes: on a shared machine a pass can only
 * be slowed by others, never sped up, so the best pass is the figure that
 * compares across kernel versions when whole-model runs swing by 2x.
 *
 *   matvec_bench [-t THREADS] [-r PASSES] [-m MIB] [-k K,K...] [--rows R] [--file-layout] TYPE...
 *
 * -k runs products of K tokens at once (K <= 16: a draft being verified, or
 * serve's decode tokens of several sessions) and prints for each K the
 * tokens per second and their ratio to the first K's rate, both in wall
 * time and in CPU time (see time_batch); a product that reads each weight
 * once for all K tokens and is bound by memory approaches K times.
 *
 * TYPE is a weight type (q4_0, q8_0, q4_K, q5_K, q6_K). The weights are
 * Ministral-8B's FFN shape (12288 x 4096), as many matrices as make MIB
 * (default 512) so that they cannot sit in a cache, quantized from random
 * floats and rearranged to the x16 layout as a model load does (unless
 * --file-layout). Prints one line per type: GB/s, ms per pass and the pass's
 * checksum (so the work is not optimised away, and so two kernel versions can
 * be seen to agree). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "dtype.h"
#include "matmul.h"
#include "quant.h"
#include "threadpool.h"
#include "x16.h"

#define ROWS 12288 /* default; --rows R (a multiple of 16) for a smaller matrix, as under qemu */
#define COLS 4096
#define MAX_BATCH 16

typedef struct {
    int threads, passes;
    uint32_t rows; /* rows per matrix */
    size_t mib;
    bool file_layout;
    uint32_t batches[MAX_BATCH]; /* tokens per product, -k */
    int n_batches;
} options;

static double clock_s(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

#define HUGE_PAGE (2u << 20)

/* Matrices of type t filling about o->mib MiB, quantized from floats in
 * [-1, 1), in huge pages where the kernel gives them, as a model load
 * holds them (engine/model/model.c); NULL out of memory. */
static rl_weight *make_weights(rl_dtype t, const options *o, int *count) {
    const size_t rb = rl_dtype_row_bytes(t, COLS);
    const int n = (int)(o->mib * 1024 * 1024 / (rb * o->rows)) + 1;
    rl_weight *w = calloc((size_t)n, sizeof *w);
    float *row = malloc(COLS * sizeof *row);
    unsigned seed = 1;
    for (int m = 0; w && row && m < n; m++) {
        const size_t bytes = (rb * o->rows + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
        char *data = aligned_alloc(HUGE_PAGE, bytes);
        if (!data)
            break;
        (void)madvise(data, bytes, MADV_HUGEPAGE); /* a hint: without it the pages are small */
        for (uint32_t r = 0; r < o->rows; r++) {
            for (int c = 0; c < COLS; c++)
                row[c] = (float)(rand_r(&seed) % 2000 - 1000) / 1000.0f;
            rl_quantize_row(t, row, data + (size_t)r * rb, COLS);
        }
        if (!o->file_layout && rl_x16_repack(t, data, rb, 0, o->rows / 16) != 0)
            break;
        w[m] = (rl_weight){.data = data,
                           .type = t,
                           .rows = o->rows,
                           .cols = COLS,
                           .row_bytes = rb,
                           .name = "bench",
                           .x16 = !o->file_layout};
        *count = m + 1;
    }
    free(row);
    return w;
}

/* Seconds of the best of o->passes passes of a k-token product through
 * the n matrices w (after one warm-up pass), and in *cpu the fewest seconds
 * of CPU time (all threads) a pass took: on a machine others share, wall
 * time measures the share the scheduler gave, CPU time the kernels' own
 * cost. *sum gets a checksum. */
static double time_batch(rl_matmul *mm, const rl_weight *w, int n, const float *x, uint32_t k, float *y,
                         const options *o, double *cpu, double *sum) {
    double best = 1e30;
    *cpu = 1e30;
    for (int p = 0; p < o->passes + 1; p++) {
        const double t0 = now_s(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        *sum = 0;
        for (int m = 0; m < n; m++) {
            rl_matmul_run(mm, &w[m], x, k, y, false);
            *sum += y[(size_t)(k - 1) * o->rows + m % o->rows];
        }
        const double dt = now_s() - t0, dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (p > 0 && dt < best)
            best = dt;
        if (p > 0 && dc < *cpu)
            *cpu = dc;
    }
    return best;
}

static int bench_type(rl_dtype t, const options *o, rl_matmul *mm) {
    int n = 0;
    rl_weight *w = make_weights(t, o, &n);
    float *x = malloc((size_t)MAX_BATCH * COLS * sizeof *x), *y = malloc((size_t)MAX_BATCH * o->rows * sizeof *y);
    if (!w || !n || !x || !y) {
        fprintf(stderr, "matvec_bench: out of memory for %zu MiB of %s\n", o->mib, rl_dtype_name(t));
        return -1;
    }
    for (size_t c = 0; c < (size_t)MAX_BATCH * COLS; c++) /* each token a different row */
        x[c] = (float)((long)(c * 7919 % 2001) - 1000) / 1000.0f;
    const double bytes = (double)n * o->rows * rl_dtype_row_bytes(t, COLS);
    double one = 0, one_cpu = 0;
    for (int b = 0; b < o->n_batches; b++) {
        const uint32_t k = o->batches[b];
        double sum, cpu;
        const double dt = time_batch(mm, w, n, x, k, y, o, &cpu, &sum);
        if (b == 0) { /* seconds per token at the first batch size */
            one = dt / k;
            one_cpu = cpu / k;
        }
        if (o->n_batches == 1 && k == 1)
            printf("%-6s %2d threads %-6s %7.1f GB/s %8.2f ms/pass  %d x %ux%u  checksum %.6g\n", rl_dtype_name(t),
                   o->threads, rl_kernels()->name, bytes / dt / 1e9, dt * 1e3, n, o->rows, COLS, sum);
        else /* tokens/s: tokens through every matrix of the pass per second */
            printf("%-6s %2d threads %-6s K=%-2u %6.1f GB/s %8.2f ms/pass %7.1f tok/s x%.2f %8.2f cpu-ms x%.2f  "
                   "checksum %.6g\n",
                   rl_dtype_name(t), o->threads, rl_kernels()->name, k, bytes / dt / 1e9, dt * 1e3, k / dt,
                   one * k / dt, cpu * 1e3, one_cpu * k / cpu, sum);
    }
    for (int m = 0; m < n; m++)
        free((void *)w[m].data);
    free(w);
    free(x);
    free(y);
    return 0;
}

/* "1,2,4,8,16" into o->batches; -1 on a bad list. */
static int parse_batches(const char *s, options *o) {
    o->n_batches = 0;
    for (char *end; *s; s = *end == ',' ? end + 1 : end) {
        const long k = strtol(s, &end, 10);
        if (end == s || k < 1 || k > MAX_BATCH || o->n_batches == MAX_BATCH || (*end && *end != ','))
            return -1;
        o->batches[o->n_batches++] = (uint32_t)k;
    }
    return o->n_batches > 0 ? 0 : -1;
}

static int parse(int argc, char **argv, options *o, int *first_type) {
    *o = (options){.threads = 2, .passes = 10, .rows = ROWS, .mib = 512, .batches = {1}, .n_batches = 1};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--file-layout"))
            o->file_layout = true;
        else if (i + 1 < argc && !strcmp(argv[i], "-t"))
            o->threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-r"))
            o->passes = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-k")) {
            if (parse_batches(argv[++i], o) != 0)
                return -1;
        } else if (i + 1 < argc && !strcmp(argv[i], "-m"))
            o->mib = (size_t)atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--rows"))
            o->rows = (uint32_t)atol(argv[++i]);
        else
            return -1;
    }
    *first_type = i;
    return i < argc && o->threads > 0 && o->passes > 0 && o->mib > 0 && o->rows >= 16 && o->rows % 16 == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    options o;
    int first;
    if (parse(argc, argv, &o, &first) != 0) {
        fprintf(stderr,
                "usage: matvec_bench [-t THREADS] [-r PASSES] [-m MIB] [-k K,K...] [--rows R] [--file-layout] TYPE...\n"
                "  R: rows per matrix, a multiple of 16 (default 12288)\n"
                "  TYPE: q4_0 q8_0 q4_K q5_K q6_K\n");
        return 2;
    }
    rl_pool *pool = rl_pool_new(o.threads);
    rl_matmul *mm = pool ? rl_matmul_new(pool, COLS, MAX_BATCH) : NULL;
    int rc = mm ? 0 : 1;
    for (int i = first; rc == 0 && i < argc; i++) {
        const int t = rl_dtype_from_name(argv[i]);
        if (t < 0 || !rl_x16_supported((rl_dtype)t)) {
            fprintf(stderr, "matvec_bench: '%s' is not a type with a batched kernel\n", argv[i]);
            rc = 2;
        } else if (bench_type((rl_dtype)t, &o, mm) != 0) {
            rc = 1;
        }
    }
    rl_matmul_destroy(&mm);
    rl_pool_destroy(&pool);
    return rc;
}
