/* Streaming-read probe (see bench_probe.h). Each thread sums its share of
 * the buffer through four interleaved streams, 8 cache lines of one then of
 * the next, in loops the compiler turns into vector loads: a plain
 * sequential read, like the weights' during decode, with enough independent
 * loads in flight that the memory system, not the core, sets the pace. */
#include "bench_probe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cli.h"
#include "threadpool.h"

#define PASSES 5
#define STREAMS 4
#define RUN 64     /* words read from one stream before the next (8 cache lines) */

typedef struct {
    const uint64_t *buf;
    size_t words;          /* in buf */
    uint64_t sums[256];    /* per thread, so the reads are not optimised away */
} probe;

static void read_task(void *arg, int ith, int nth) {
    probe *p = arg;
    const size_t quarter = p->words / STREAMS / RUN * RUN;
    long b, e;
    rl_split((long)(quarter / RUN), ith, nth, &b, &e);
    uint64_t s[STREAMS] = {0};
    for (size_t i = (size_t)b * RUN; i < (size_t)e * RUN; i += RUN)
        for (int k = 0; k < STREAMS; k++) {
            const uint64_t *q = p->buf + (size_t)k * quarter + i;
            for (int j = 0; j < RUN; j++)   /* a fixed-length reduction: vectorized */
                s[k] += q[j];
        }
    p->sums[ith % 256] = s[0] + s[1] + s[2] + s[3];
}

static double probe_here(int threads, size_t bytes) {
    probe p = {.words = bytes / sizeof(uint64_t)};
    uint64_t *buf = malloc(p.words * sizeof *buf);
    rl_pool *pool = rl_pool_new(threads);
    double best = 0;
    if (buf && pool) {
        memset(buf, 1, p.words * sizeof *buf);   /* fault every page in before timing */
        p.buf = buf;
        rl_pool_run(pool, read_task, &p);
        for (int i = 0; i < PASSES; i++) {
            const double t0 = cli_now_s();
            rl_pool_run(pool, read_task, &p);
            const double gbps = (double)(p.words / STREAMS / RUN * RUN * STREAMS) * sizeof *buf / (cli_now_s() - t0) / 1e9;
            best = gbps > best ? gbps : best;
        }
    }
    rl_pool_destroy(&pool);
    free(buf);
    return best;
}

/* In a child process, so that the buffer does not count in the peak RSS the
 * benchmark reports for the model. */
double bench_probe_gbps(int threads, size_t bytes) {
    int fd[2];
    double gbps = 0;
    if (pipe(fd) != 0)
        return 0;
    const pid_t pid = fork();
    if (pid == 0) {
        gbps = probe_here(threads, bytes);
        _exit(write(fd[1], &gbps, sizeof gbps) == (ssize_t)sizeof gbps ? 0 : 1);
    }
    close(fd[1]);
    if (pid < 0 || read(fd[0], &gbps, sizeof gbps) != (ssize_t)sizeof gbps)
        gbps = 0;
    close(fd[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return gbps;
}
