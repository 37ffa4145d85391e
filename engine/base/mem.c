/* The memory check of run, chat and serve (mem.h): MemAvailable, the cgroup
 * limits walked from this process's cgroup up to the root, or the stated
 * figure; then weights + KV + a reserve against it, and on a shortfall the
 * largest context that fits and what the smaller KV types would need. */
#include "mem.h"

#include "gguf.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB(x) ((double)(x) / 1048576.0)

int rl_mem_parse_size(const char *s, uint64_t *bytes) {
    char *end;
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    double v = strtod(s, &end);
    static const char units[] = "KMGT";
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (*end && !u)
        return -1;
    for (int i = 0; u && i <= (int)(u - units); i++)
        v *= 1024.0;
    end += u != NULL;
    end += u && (*end == 'B' || *end == 'b') ? 1 : 0;
    if (*end || v >= 1.8e19)
        return -1;
    *bytes = (uint64_t)v;
    return 0;
}

/* A number from a one-line file; false when absent or not a number ("max"). */
static bool read_u64(const char *path, uint64_t *out) {
    FILE *f = fopen(path, "r");
    unsigned long long v;
    bool ok = f && fscanf(f, "%llu", &v) == 1;
    if (f)
        fclose(f);
    if (ok)
        *out = v;
    return ok;
}

/* Room under the limit of one cgroup directory (v2 or v1 names); 0 when it
 * has no limit. */
static uint64_t cgroup_room(const char *dir, bool v2) {
    char lim_path[4200], use_path[4200];
    snprintf(lim_path, sizeof lim_path, "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
    snprintf(use_path, sizeof use_path, "%s/%s", dir, v2 ? "memory.current" : "memory.usage_in_bytes");
    uint64_t limit, used = 0;
    if (!read_u64(lim_path, &limit) || limit >= (1ull << 62)) /* "max", or v1's "no limit" */
        return 0;
    read_u64(use_path, &used);
    return limit > used ? limit - used : 1; /* 1: at the limit, which is not "unlimited" */
}

/* The smallest room from the cgroup of this process up to the root of its
 * hierarchy; 0 when no level limits it. */
static uint64_t cgroup_available(void) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[4096], dir[4096];
    uint64_t best = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        const bool v2 = c1[1] == ':' && line[0] == '0';
        const bool v1 = !v2 && strstr(c1 + 1, "memory") && strstr(c1 + 1, "memory") < c2;
        if (!v2 && !v1)
            continue;
        snprintf(dir, sizeof dir, "/sys/fs/cgroup%s%s", v2 ? "" : "/memory", c2 + 1);
        for (;;) {
            uint64_t room = cgroup_room(dir, v2);
            if (room && (!best || room < best))
                best = room;
            char *slash = strrchr(dir, '/');
            if (!slash || slash - dir <= (ptrdiff_t)strlen(v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory"))
                break;
            *slash = 0;
        }
    }
    if (f)
        fclose(f);
    return best;
}

static void read_meminfo(rl_mem_info *m) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            m->meminfo = kb * 1024;
        else if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            m->total = kb * 1024;
    }
    if (f)
        fclose(f);
}

int rl_mem_read(rl_mem_info *m, char *err, size_t errlen) {
    *m = (rl_mem_info){0};
    read_meminfo(m);
    const char *stated = getenv("RELAIS_MEM_AVAILABLE");
    if (stated && *stated) {
        if (rl_mem_parse_size(stated, &m->stated)) {
            snprintf(err, errlen, "RELAIS_MEM_AVAILABLE='%s' is not a size (e.g. 4G, 512M)", stated);
            return -1;
        }
        m->available = m->stated;
        return 0;
    }
    m->cgroup = cgroup_available();
    m->available = m->meminfo;
    if (m->cgroup && (!m->available || m->cgroup < m->available))
        m->available = m->cgroup;
    return 0;
}

static uint64_t need_for(const rl_hparams *hp, uint64_t weights, uint32_t n_ctx, uint32_t n_sessions, rl_kv_type kv) {
    return weights + rl_kv_bytes_for(hp, 0, hp->n_layer, n_ctx, kv) * n_sessions + RL_MEM_RESERVE;
}

/* The largest context whose need fits avail (0 when not even one position). */
static uint32_t largest_ctx(const rl_hparams *hp, uint64_t weights, uint32_t n_max, uint32_t n_sessions, rl_kv_type kv,
                            uint64_t avail) {
    uint32_t lo = 0, hi = n_max;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (need_for(hp, weights, mid, n_sessions, kv) <= avail)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Where the figure came from, for the message. */
static void describe_source(const rl_mem_info *m, char *buf, size_t n) {
    if (m->stated)
        snprintf(buf, n, "as RELAIS_MEM_AVAILABLE states");
    else if (m->cgroup && m->cgroup == m->available)
        snprintf(buf, n, "under this process's cgroup limit; MemAvailable %.0f MiB", MIB(m->meminfo));
    else
        snprintf(buf, n, "MemAvailable%s", m->cgroup ? "" : "; no cgroup limit");
}

int rl_mem_check(const rl_hparams *hp, uint64_t weight_bytes, uint32_t n_ctx, uint32_t n_sessions, rl_kv_type kv,
                 char *err, size_t errlen) {
    rl_mem_info m;
    if (rl_mem_read(&m, err, errlen))
        return -1;
    const uint64_t need = need_for(hp, weight_bytes, n_ctx, n_sessions, kv);
    if (!m.available || need <= m.available)
        return 0;
    char kvs[32], src[160], alt[200] = "";
    rl_kv_type_str(kv, kvs, sizeof kvs);
    describe_source(&m, src, sizeof src);
    const uint32_t fit = largest_ctx(hp, weight_bytes, n_ctx, n_sessions, kv, m.available);
    const rl_kv_type q8 = {RL_Q8_0, RL_Q8_0};
    char why[160];
    if ((kv.k != RL_Q8_0 || kv.v != RL_Q8_0) && rl_kv_type_check(q8, hp, why, sizeof why) == 0) {
        const uint64_t nq = need_for(hp, weight_bytes, n_ctx, n_sessions, q8);
        snprintf(alt, sizeof alt, "; --kv-type q8_0 at this context needs %.0f MiB%s", MIB(nq),
                 nq <= m.available ? " (fits)" : "");
    }
    char ctx_hint[160];
    const uint64_t per_session = rl_kv_bytes_for(hp, 0, hp->n_layer, n_ctx, kv);
    const uint64_t fixed = weight_bytes + RL_MEM_RESERVE;
    const uint64_t sessions_fit = m.available > fixed && per_session ? (m.available - fixed) / per_session : 0;
    if (fit >= 1) {
        int k = snprintf(ctx_hint, sizeof ctx_hint, "--ctx %u at most (KV %s)", fit, kvs);
        if (n_sessions > 1 && sessions_fit >= 1)
            snprintf(ctx_hint + k, sizeof ctx_hint - (size_t)k, "; %llu session%s at this context",
                     (unsigned long long)sessions_fit, sessions_fit == 1 ? "" : "s");
    } else { /* the weights and the reserve alone are too much: only more machines help */
        snprintf(ctx_hint, sizeof ctx_hint, "no context: the weights alone do not fit");
        alt[0] = 0;
    }
    snprintf(err, errlen,
             "not enough memory: the weights need %.0f MiB and the KV cache %.0f MiB (%s, context %u, %u "
             "session%s), %.0f MiB with the %.0f MiB reserve, but %.0f MiB is available (%s). What would fit: "
             "%s%s; or more nodes (a --cluster spreads the layers and their KV)",
             MIB(weight_bytes), MIB(rl_kv_bytes_for(hp, 0, hp->n_layer, n_ctx, kv) * n_sessions), kvs, n_ctx,
             n_sessions, n_sessions == 1 ? "" : "s", MIB(need), MIB(RL_MEM_RESERVE), MIB(m.available), src, ctx_hint,
             alt);
    return -1;
}

int rl_mem_check_file(const char *path, const rl_model_opts *mo, uint32_t asked_ctx, uint32_t n_sessions, rl_kv_type kv,
                      char *err, size_t errlen) {
    rl_hparams hp;
    uint32_t n_ctx;
    gguf_file *f = gguf_open(path, err, errlen);
    int rc = !f || rl_hparams_read(f, mo, &hp, err, errlen) || rl_hparams_ctx(&hp, asked_ctx, &n_ctx, err, errlen) ||
            rl_kv_type_check(kv, &hp, err, errlen) ||
            rl_mem_check(&hp, gguf_file_size(f), n_ctx, n_sessions, kv, err, errlen)
        ? -1
        : 0;
    gguf_close(&f);
    return rc;
}
