/* A node's capabilities and its cached matvec self-benchmark (see node_caps.h). */
#include "node_caps.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "log.h"
#include "machine.h"
#include "mem.h"
#include "util.h"
#include "wire.h"

#define BENCH_SECONDS 0.3

struct node_caps {
    pthread_mutex_t lock; /* guards matvec: the background measurement may replace it */
    double matvec;        /* measured weight bytes per second (0 if the benchmark could not run) */
    int threads;          /* the benchmark's */
    char path[4200];      /* the cache file */
    char key[4600];       /* what its figure depends on */
    pthread_t thread;     /* the background measurement, while measuring */
    bool measuring;
    bool replaced;       /* it replaced the cached figure */
    const char *simd[5]; /* names of the SIMD features found */
    size_t n_simd;
    char hostname[256];
    char software[96];
};

/* What the cached figure depends on: this binary, the CPU, the threads. */
static void bench_key(int threads, char *key, size_t len) {
    char exe[4096] = "", cpu[256] = "";
    struct stat st = {0};
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0)
        exe[n] = '\0', stat(exe, &st);
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && !cpu[0] && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) || !strncmp(line, "Model", 5) || !strncmp(line, "CPU part", 8)) {
            const char *v = strchr(line, ':');
            snprintf(cpu, sizeof cpu, "%.255s", v ? v + 1 + strspn(v + 1, " \t") : line);
            cpu[strcspn(cpu, "\n")] = '\0';
        }
    if (f)
        fclose(f);
    struct utsname u;
    if (!cpu[0] && uname(&u) == 0)
        snprintf(cpu, sizeof cpu, "%s", u.machine);
    snprintf(key, len, "exe %lld %lld cpu %s threads %d", (long long)st.st_size, (long long)st.st_mtime, cpu, threads);
}

/* The cached figure for key, or 0 when there is none for it. */
static double read_cache(const char *path, const char *key) {
    char line[4600];
    double bps = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    bool hit = fgets(line, sizeof line, f) && (line[strcspn(line, "\n")] = '\0', !strcmp(line, key)) &&
        fscanf(f, "%lf", &bps) == 1 && bps > 0;
    fclose(f);
    return hit ? bps : 0;
}

static void write_cache(const char *path, const char *key, double bps) {
    FILE *f = fopen(path, "w");
    if (!f || (fprintf(f, "%s\n%.6g\n", key, bps), fclose(f)))
        rl_log(RL_LOG_WARN, "cannot write %s", path);
}

static double measure(int threads) {
    double t0 = rl_now_s(), bps = rl_matvec_probe(threads, BENCH_SECONDS);
    rl_log(RL_LOG_INFO, "matvec self-benchmark: %.2f GB/s of Q4_0 weights (%.2f s)", bps / 1e9, rl_now_s() - t0);
    return bps;
}

/* The background measurement at a start with a cached figure. */
static void *remeasure(void *arg) {
    node_caps *c = arg;
    double bps = measure(c->threads);
    pthread_mutex_lock(&c->lock);
    const double cached = c->matvec;
    c->replaced = bps > 0 && fabs(bps - cached) > cached / 3;
    if (c->replaced)
        c->matvec = bps;
    pthread_mutex_unlock(&c->lock);
    if (c->replaced) {
        rl_log(RL_LOG_WARN, "matvec figure %.2f GB/s from the cache is off by more than a third: %.2f GB/s from now on",
               cached / 1e9, bps / 1e9);
        write_cache(c->path, c->key, bps);
    }
    return NULL;
}

/* The cached figure, measured again in the background; or, without one,
 * measured now and cached. */
static void benchmark(node_caps *c, const char *cache_dir) {
    snprintf(c->path, sizeof c->path, "%s/matvec-benchmark", cache_dir);
    bench_key(c->threads, c->key, sizeof c->key);
    if ((c->matvec = read_cache(c->path, c->key)) > 0) {
        c->measuring = pthread_create(&c->thread, NULL, remeasure, c) == 0;
        return;
    }
    if ((c->matvec = measure(c->threads)) > 0)
        write_cache(c->path, c->key, c->matvec);
}

node_caps *node_caps_new(const char *cache_dir, int threads) {
    node_caps *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    c->threads = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    benchmark(c, cache_dir);
    c->n_simd = rl_simd_names(c->simd, sizeof c->simd / sizeof c->simd[0]);
    if (gethostname(c->hostname, sizeof c->hostname - 1))
        snprintf(c->hostname, sizeof c->hostname, "unknown");
    snprintf(c->software, sizeof c->software, "relais-node, protocol %u, %s kernels", WIRE_VERSION, rl_kernel_name());
    return c;
}

bool node_caps_settle(node_caps *c) {
    if (c->measuring)
        pthread_join(c->thread, NULL);
    c->measuring = false;
    return c->replaced;
}

void node_caps_destroy(node_caps **pc) {
    if (pc && *pc) {
        node_caps_settle(*pc);
        pthread_mutex_destroy(&(*pc)->lock);
        free(*pc);
        *pc = NULL;
    }
}

double node_caps_matvec(node_caps *c) {
    pthread_mutex_lock(&c->lock);
    double bps = c->matvec;
    pthread_mutex_unlock(&c->lock);
    return bps;
}

/* --max-memory: what this node offers at most (0 = no limit). A process-wide
 * setting, because the whole daemon shares the one budget. */
static uint64_t g_mem_limit;

void node_mem_set_limit(uint64_t bytes) { g_mem_limit = bytes; }

uint64_t node_mem_available(uint64_t *total) {
    rl_mem_info m;
    char err[160];
    if (rl_mem_read(&m, err, sizeof err)) /* a malformed RELAIS_MEM_AVAILABLE: as if unknown */
        rl_log(RL_LOG_WARN, "%s", err);
    if (total)
        *total = m.total;
    const uint64_t avail = m.available;
    return g_mem_limit && (!avail || g_mem_limit < avail) ? g_mem_limit : avail;
}

void node_caps_fill(node_caps *c, Relais__Capabilities *out) {
    out->cores = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    out->free_ram = node_mem_available(&out->total_ram);
    out->simd = (char **)c->simd;
    out->n_simd = c->n_simd;
    out->matvec_bytes_per_s = node_caps_matvec(c);
    out->hostname = c->hostname;
    out->software = c->software;
}
