/* Model files of a node by content hash (see node_models.h). */
#include "node_models.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "filehash.h"
#include "log.h"

struct node_models {
    char dir[4096];         /* the --models directory */
    char cache_file[4096];  /* hash cache in the --cache directory */
    node_model_file *files; /* (n) files found by the last scan */
    size_t n, cap;
};

node_models *node_models_new(const char *dir, const char *cache_dir, char *err, size_t errlen) {
    node_models *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    snprintf(m->cache_file, sizeof m->cache_file, "%s/model-hashes", cache_dir);
    if (node_models_scan(m, err, errlen))
        node_models_destroy(&m);
    return m;
}

void node_models_destroy(node_models **pm) {
    node_models *m = pm ? *pm : NULL;
    if (!m)
        return;
    free(m->files);
    free(m);
    *pm = NULL;
}

static bool is_gguf(const char *name) {
    size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, ".gguf") && name[0] != '.';
}

/* Hashing a model is slow (minutes for gigabytes on a Pi) and happens once
 * per file version: say so, and how far it got. */
typedef struct {
    const char *name;
    int last_quarter; /* last 25% step logged, -1 before the first */
} hash_log;

static void hash_progress(void *ud, uint64_t done, uint64_t total) {
    hash_log *h = ud;
    int quarter = total ? (int)(done * 4 / total) : 4;
    if (h->last_quarter < 0)
        rl_log(RL_LOG_INFO, "hashing %s (%llu MiB), once: the hash is kept in the cache", h->name,
               (unsigned long long)(total >> 20));
    if (quarter > h->last_quarter && quarter > 0 && total >= (64u << 20))
        rl_log(RL_LOG_INFO, "hashing %s: %d%%", h->name, quarter * 25);
    h->last_quarter = quarter;
}

static int add_file(node_models *m, const char *name) {
    node_model_file f = {0};
    char err[512];
    struct stat st;
    snprintf(f.name, sizeof f.name, "%s", name);
    if (snprintf(f.path, sizeof f.path, "%s/%s", m->dir, name) >= (int)sizeof f.path || stat(f.path, &st) ||
        !S_ISREG(st.st_mode))
        return 0;
    f.size = (uint64_t)st.st_size;
    hash_log h = {name, -1};
    if (filehash_sha256(f.path, m->cache_file, hash_progress, &h, f.sha256, err, sizeof err)) {
        rl_log(RL_LOG_WARN, "model file left out: %s", err);
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 8;
        node_model_file *a = realloc(m->files, cap * sizeof *a);
        if (!a)
            return -1;
        m->files = a, m->cap = cap;
    }
    m->files[m->n++] = f;
    return 0;
}

int node_models_scan(node_models *m, char *err, size_t errlen) {
    DIR *d = opendir(m->dir);
    if (!d) {
        snprintf(err, errlen, "models directory %s: %s", m->dir, strerror(errno));
        return -1;
    }
    m->n = 0;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)))
        if (is_gguf(de->d_name))
            rc = add_file(m, de->d_name);
    closedir(d);
    if (rc)
        snprintf(err, errlen, "out of memory");
    return rc;
}

size_t node_models_count(const node_models *m) { return m->n; }
const node_model_file *node_models_at(const node_models *m, size_t i) { return i < m->n ? &m->files[i] : NULL; }

Relais__ErrorCode node_models_resolve(node_models *m, const uint8_t sha256[32], const char *name, char *path,
                                      size_t len, char *err, size_t errlen) {
    char want[65];
    filehash_hex(sha256, want);
    if (node_models_scan(m, err, errlen))
        return RELAIS__ERROR_CODE__ERR_MODEL;
    for (size_t i = 0; i < m->n; i++)
        if (!memcmp(m->files[i].sha256, sha256, 32)) {
            snprintf(path, len, "%s", m->files[i].path);
            return RELAIS__ERROR_CODE__ERR_NONE;
        }
    for (size_t i = 0; i < m->n; i++)
        if (*name && !strcmp(m->files[i].name, name)) {
            char have[65];
            filehash_hex(m->files[i].sha256, have);
            snprintf(err, errlen,
                     "model %s: this node's file has sha256 %.16s..., the coordinator's has %.16s...: "
                     "a different model under the same name",
                     name, have, want);
            rl_log(RL_LOG_WARN, "refused an assignment: %s", err);
            return RELAIS__ERROR_CODE__ERR_MODEL;
        }
    rl_log(RL_LOG_INFO,
           "model %s (sha256 %.16s...) is not held here: its slice comes from the cache or the "
           "coordinator",
           *name ? name : "unnamed", want);
    *path = '\0';
    return RELAIS__ERROR_CODE__ERR_NONE;
}
