/* A node's capabilities and its cached matvec self-benchmark (see node_caps.h). */
#include "node_caps.h"

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
    double matvec;       /* measured weight bytes per second (0 if the benchmark could not run) */
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

static double cached_benchmark(const char *cache_dir, int threads) {
    char path[4096], key[4600], line[4600];
    double bps = 0;
    snprintf(path, sizeof path, "%s/matvec-benchmark", cache_dir);
    bench_key(threads, key, sizeof key);
    FILE *f = fopen(path, "r");
    if (f) {
        bool hit = fgets(line, sizeof line, f) && (line[strcspn(line, "\n")] = '\0', !strcmp(line, key)) &&
            fscanf(f, "%lf", &bps) == 1 && bps > 0;
        fclose(f);
        if (hit)
            return bps;
    }
    double t0 = rl_now_s();
    bps = rl_matvec_probe(threads, BENCH_SECONDS);
    rl_log(RL_LOG_INFO, "matvec self-benchmark: %.2f GB/s of Q4_0 weights (%.2f s)", bps / 1e9, rl_now_s() - t0);
    if (bps > 0 && (f = fopen(path, "w"))) {
        fprintf(f, "%s\n%.6g\n", key, bps);
        if (fclose(f))
            rl_log(RL_LOG_WARN, "cannot write %s", path);
    }
    return bps;
}

node_caps *node_caps_new(const char *cache_dir, int threads) {
    node_caps *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    int n = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    c->matvec = cached_benchmark(cache_dir, n);
    c->n_simd = rl_simd_names(c->simd, sizeof c->simd / sizeof c->simd[0]);
    if (gethostname(c->hostname, sizeof c->hostname - 1))
        snprintf(c->hostname, sizeof c->hostname, "unknown");
    snprintf(c->software, sizeof c->software, "relais-node, protocol %u, %s kernels", WIRE_VERSION, rl_kernel_name());
    return c;
}

void node_caps_destroy(node_caps **pc) {
    if (pc && *pc) {
        free(*pc);
        *pc = NULL;
    }
}

double node_caps_matvec(const node_caps *c) { return c->matvec; }

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
    out->matvec_bytes_per_s = c->matvec;
    out->hostname = c->hostname;
    out->software = c->software;
}
