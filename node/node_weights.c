/* A node's slice cache and the receiving side of a weight transfer (see
 * node_weights.h). Chunks are written where their offset says, so the file
 * on disk is always a prefix of the slice; one transfer at a time. */
#include "node_weights.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "filehash.h"
#include "log.h"
#include "util.h"

#define MAX_CACHED 256

typedef struct {
    uint8_t sha[32]; /* the model's */
    uint32_t l0, l1;
    bool head;
} slice_key;

typedef struct {
    bool active;
    slice_key key;
    char path[4096]; /* the slice file being written */
    int fd;
    uint64_t next;  /* bytes present: the offset expected next */
    uint64_t total; /* the slice's size; 0 until the first chunk */
    uint32_t left;  /* chunks still to come in the current window */
    int logged;     /* last tenth logged */
    double t0;
} transfer;

struct node_weights {
    char dir[3800];        /* --cache (room left for the file names) */
    char hash_cache[4200]; /* the node's file-hash cache */
    uint32_t chunk_bytes;
    transfer t;
    Relais__CachedSlice cached[MAX_CACHED];
    Relais__CachedSlice *cached_ptrs[MAX_CACHED];
    uint8_t cached_sha[MAX_CACHED][32];
};

node_weights *node_weights_new(const char *cache_dir, uint32_t chunk_bytes) {
    node_weights *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    snprintf(w->dir, sizeof w->dir, "%s", cache_dir);
    snprintf(w->hash_cache, sizeof w->hash_cache, "%s/model-hashes", cache_dir);
    w->chunk_bytes = chunk_bytes;
    w->t.fd = -1;
    return w;
}

void node_weights_destroy(node_weights **pw) {
    node_weights *w = pw ? *pw : NULL;
    if (!w)
        return;
    node_weights_stop(w);
    free(w);
    *pw = NULL;
}

/* ---- names ---- */

static slice_key key_of(const Relais__Assign *a) {
    slice_key k = {.l0 = a->layer_begin, .l1 = a->layer_end, .head = a->run_head};
    memcpy(k.sha, a->model_sha256.data, 32);
    return k;
}

static bool same_key(const slice_key *k, const ProtobufCBinaryData *sha, uint32_t l0, uint32_t l1, bool head) {
    return sha->len == 32 && !memcmp(sha->data, k->sha, 32) && l0 == k->l0 && l1 == k->l1 && head == k->head;
}

/* The slice's file; its hash file adds ".sha256". */
static void slice_path(const node_weights *w, const slice_key *k, char *path, size_t len) {
    char hex[65];
    filehash_hex(k->sha, hex);
    snprintf(path, len, "%s/slice-%s-%u-%u%s.gguf", w->dir, hex, k->l0, k->l1, k->head ? "-head" : "");
}

static int unhex(const char *s, uint8_t out[32]) {
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* Parses "slice-<hex>-<l0>-<l1>[-head].gguf": 0, or -1 for another name. */
static int parse_name(const char *name, slice_key *k) {
    char hex[65], rest[16] = "";
    int n = 0;
    if (sscanf(name, "slice-%64[0-9a-f]-%u-%u%n", hex, &k->l0, &k->l1, &n) != 3 || strlen(hex) != 64 ||
        strlen(name + n) >= sizeof rest)
        return -1;
    snprintf(rest, sizeof rest, "%s", name + n);
    k->head = !strcmp(rest, "-head.gguf");
    return (k->head || !strcmp(rest, ".gguf")) ? unhex(hex, k->sha) : -1;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- the cache ---- */

Relais__CachedSlice **node_weights_cached(node_weights *w, size_t *n) {
    DIR *d = opendir(w->dir);
    struct dirent *de;
    char sidecar[4200];
    *n = 0;
    while (d && *n < MAX_CACHED && (de = readdir(d))) {
        slice_key k;
        snprintf(sidecar, sizeof sidecar, "%s/%s.sha256", w->dir, de->d_name);
        if (parse_name(de->d_name, &k) || !exists(sidecar))
            continue;
        Relais__CachedSlice *c = &w->cached[*n];
        relais__cached_slice__init(c);
        memcpy(w->cached_sha[*n], k.sha, 32);
        c->model_sha256 = (ProtobufCBinaryData){32, w->cached_sha[*n]};
        c->layer_begin = k.l0, c->layer_end = k.l1, c->head = k.head;
        w->cached_ptrs[(*n)++] = c;
    }
    if (d)
        closedir(d);
    return w->cached_ptrs;
}

static void discard(const char *path) {
    char sidecar[4200];
    snprintf(sidecar, sizeof sidecar, "%s.sha256", path);
    unlink(sidecar);
    unlink(path);
}

bool node_weights_lookup(node_weights *w, const Relais__Assign *a, char *path, size_t len) {
    slice_key k = key_of(a);
    char sidecar[4200], want[80] = "", have[65], err[512];
    uint8_t got[32];
    slice_path(w, &k, path, len);
    snprintf(sidecar, sizeof sidecar, "%s.sha256", path);
    FILE *f = fopen(sidecar, "r");
    if (!f)
        return false; /* never received, or only in part */
    bool read_ok = fgets(want, sizeof want, f) != NULL;
    fclose(f);
    want[strcspn(want, "\n")] = '\0';
    if (read_ok && !filehash_sha256(path, w->hash_cache, NULL, NULL, got, err, sizeof err)) {
        filehash_hex(got, have);
        if (!strcmp(have, want)) {
            rl_log(RL_LOG_INFO, "slice found in the cache: %s", path);
            return true;
        }
        snprintf(err, sizeof err, "its sha256 is %.16s..., it was received as %.16s...", have, want);
    }
    rl_log(RL_LOG_WARN, "cached slice %s is damaged (%s): deleted, it will be received again", path,
           read_ok ? err : "unreadable hash file");
    discard(path);
    return false;
}

/* ---- receiving ---- */

void node_weights_stop(node_weights *w) {
    if (w->t.fd >= 0)
        close(w->t.fd);
    w->t.fd = -1;
    w->t.active = false;
}

bool node_weights_receiving(const node_weights *w) { return w->t.active; }

void node_weights_progress(const node_weights *w, uint64_t *done, uint64_t *total) {
    *done = w->t.next;
    *total = w->t.total;
}

static void fill_request(node_weights *w, Relais__WeightRequest *r) {
    relais__weight_request__init(r);
    r->model_sha256 = (ProtobufCBinaryData){32, w->t.key.sha};
    r->layer_begin = w->t.key.l0;
    r->layer_end = w->t.key.l1;
    r->head = w->t.key.head;
    r->offset = w->t.next;
    r->chunk_bytes = w->chunk_bytes;
    r->chunks = NODE_WEIGHTS_WINDOW;
    w->t.left = NODE_WEIGHTS_WINDOW;
}

Relais__ErrorCode node_weights_begin(node_weights *w, const Relais__Assign *a, Relais__WeightRequest *req, char *err,
                                     size_t errlen) {
    node_weights_stop(w);
    transfer *t = &w->t;
    *t = (transfer){.key = key_of(a), .fd = -1, .logged = -1, .t0 = rl_now_s()};
    slice_path(w, &t->key, t->path, sizeof t->path);
    struct stat st;
    if ((t->fd = open(t->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0 || fstat(t->fd, &st)) {
        snprintf(err, errlen, "cache %s: %s", t->path, strerror(errno));
        node_weights_stop(w);
        return RELAIS__ERROR_CODE__ERR_INTERNAL;
    }
    t->next = (uint64_t)st.st_size;
    t->active = true;
    rl_log(RL_LOG_INFO, "receiving layers %u-%u%s from the coordinator%s", t->key.l0, t->key.l1 - 1,
           t->key.head ? " and the head" : "", t->next ? "" : " (not in the cache)");
    if (t->next)
        rl_log(RL_LOG_INFO, "resuming the partial slice at %.1f MiB", t->next / 1048576.0);
    fill_request(w, req);
    return RELAIS__ERROR_CODE__ERR_NONE;
}

/* The chunk's fields against the transfer: 0 (take it), 1 (a repeat:
 * ignore it) or -1 with err. */
static int check_chunk(const transfer *t, const Relais__WeightChunk *c, uint32_t chunk_bytes, char *err,
                       size_t errlen) {
    const uint64_t len = c->data.len, end = c->offset + len;
    const bool last = c->total && end == c->total;
    if (c->offset < t->next && end <= t->next && !last)
        return 1;
    if (c->total == 0 || (t->total && c->total != t->total))
        snprintf(err, errlen, "a chunk says the slice has %llu bytes, %s", (unsigned long long)c->total,
                 t->total ? "not as the earlier ones said" : "which no slice has");
    else if (t->next > c->total)
        snprintf(err, errlen, "the partial slice in the cache (%llu bytes) is longer than the slice (%llu bytes)",
                 (unsigned long long)t->next, (unsigned long long)c->total);
    else if (c->offset != t->next)
        snprintf(err, errlen, "a chunk at byte %llu, expected byte %llu", (unsigned long long)c->offset,
                 (unsigned long long)t->next);
    else if (len > chunk_bytes || end > c->total || (len == 0 && !last))
        snprintf(err, errlen, "a chunk of %llu bytes at byte %llu of %llu (chunks of at most %u bytes were asked)",
                 (unsigned long long)len, (unsigned long long)c->offset, (unsigned long long)c->total, chunk_bytes);
    else if (last != (c->slice_sha256.len != 0) || (last && c->slice_sha256.len != 32))
        snprintf(err, errlen, "%s chunk with a %zu-byte slice hash", last ? "the last" : "a", c->slice_sha256.len);
    else
        return 0;
    return -1;
}

static void log_progress(transfer *t) {
    int tenth = (int)(t->next * 10 / t->total);
    if (tenth == t->logged)
        return;
    t->logged = tenth;
    double dt = rl_now_s() - t->t0;
    rl_log(RL_LOG_INFO, "received %.1f of %.1f MiB (%d%%, %.1f MiB/s)", t->next / 1048576.0, t->total / 1048576.0,
           tenth * 10, dt > 0 ? t->next / 1048576.0 / dt : 0.0);
}

/* The slice is all there: its hash against the coordinator's, then the
 * hash file that makes it a cached slice. */
static node_weights_status finish(node_weights *w, const Relais__WeightChunk *c, Relais__ErrorCode *code, char *err,
                                  size_t errlen) {
    transfer *t = &w->t;
    char have[65], want[65], sidecar[4200], tmp[4300], why[512];
    uint8_t got[32];
    bool synced = fsync(t->fd) == 0;
    node_weights_stop(w);
    *code = RELAIS__ERROR_CODE__ERR_INTERNAL;
    if (!synced || filehash_sha256(t->path, w->hash_cache, NULL, NULL, got, why, sizeof why)) {
        snprintf(err, errlen, "cache %s: %s", t->path, synced ? why : strerror(errno));
        return NODE_WEIGHTS_FAILED;
    }
    filehash_hex(got, have);
    filehash_hex(c->slice_sha256.data, want);
    if (strcmp(have, want)) {
        snprintf(err, errlen,
                 "the received slice has sha256 %.16s..., the coordinator's %.16s...: discarded, the "
                 "next assignment receives it again",
                 have, want);
        unlink(t->path);
        *code = RELAIS__ERROR_CODE__ERR_MODEL;
        return NODE_WEIGHTS_FAILED;
    }
    snprintf(sidecar, sizeof sidecar, "%s.sha256", t->path);
    snprintf(tmp, sizeof tmp, "%s.tmp", sidecar);
    FILE *f = fopen(tmp, "w");
    bool ok = f && fprintf(f, "%s\n", have) > 0;
    if (f && fclose(f))
        ok = false;
    if (!ok || rename(tmp, sidecar)) {
        snprintf(err, errlen, "cache %s: %s", sidecar, strerror(errno));
        unlink(tmp);
        return NODE_WEIGHTS_FAILED;
    }
    rl_log(RL_LOG_INFO, "slice received and verified (sha256 %.16s...) in %.1f s: %s", have, rl_now_s() - t->t0,
           t->path);
    *code = RELAIS__ERROR_CODE__ERR_NONE;
    return NODE_WEIGHTS_DONE;
}

static node_weights_status failed(node_weights *w, bool drop_file, Relais__ErrorCode code, Relais__ErrorCode *out) {
    node_weights_stop(w);
    if (drop_file)
        unlink(w->t.path);
    *out = code;
    return NODE_WEIGHTS_FAILED;
}

node_weights_status node_weights_chunk(node_weights *w, const Relais__WeightChunk *c, Relais__WeightRequest *next,
                                       char *path, size_t len, Relais__ErrorCode *code, char *err, size_t errlen) {
    transfer *t = &w->t;
    *code = RELAIS__ERROR_CODE__ERR_NONE;
    if (!t->active || !same_key(&t->key, &c->model_sha256, c->layer_begin, c->layer_end, c->head)) {
        rl_log(RL_LOG_DEBUG, "a weight chunk for no transfer under way (left over from an earlier one): ignored");
        return NODE_WEIGHTS_IGNORED;
    }
    int rc = check_chunk(t, c, w->chunk_bytes, err, errlen);
    if (rc > 0)
        return NODE_WEIGHTS_IGNORED;
    if (rc < 0)
        return failed(w, c->total && t->next > c->total, RELAIS__ERROR_CODE__ERR_MALFORMED, code);
    errno = 0;
    if (c->data.len && pwrite(t->fd, c->data.data, c->data.len, (off_t)c->offset) != (ssize_t)c->data.len) {
        snprintf(err, errlen, "cache %s: %s", t->path, errno ? strerror(errno) : "short write");
        return failed(w, false, RELAIS__ERROR_CODE__ERR_INTERNAL, code);
    }
    t->total = c->total;
    t->next += c->data.len;
    log_progress(t);
    if (t->next == t->total) {
        snprintf(path, len, "%s", t->path);
        return finish(w, c, code, err, errlen);
    }
    if (--t->left)
        return NODE_WEIGHTS_WAIT;
    fill_request(w, next);
    return NODE_WEIGHTS_MORE;
}
