/* Cached sha256 of files (see filehash.h). The cache is one line per file:
 *     <64 hex> <size> <mtime seconds>.<nanoseconds> <real path>
 * rewritten whole (to a temporary file, then renamed) when an entry is added,
 * so a stale line for the same path is dropped and a crash never leaves a
 * torn cache. A line that does not parse is ignored. */
#include "filehash.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "log.h"

#define READ_CHUNK (4u << 20)

typedef struct {
    char path[PATH_MAX]; /* real path of the file */
    uint64_t size;
    int64_t mtime_s, mtime_ns;
} file_id;

void filehash_hex(const uint8_t h[FILEHASH_BYTES], char out[2 * FILEHASH_BYTES + 1]) {
    for (int i = 0; i < FILEHASH_BYTES; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static int parse_hex(const char *s, uint8_t h[FILEHASH_BYTES]) {
    for (int i = 0; i < FILEHASH_BYTES; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        h[i] = (uint8_t)v;
    }
    return 0;
}

/* Parses one cache line; 0 when it is well formed. */
static int parse_line(char *line, uint8_t h[FILEHASH_BYTES], file_id *id) {
    line[strcspn(line, "\n")] = '\0';
    unsigned long long size;
    long long s, ns;
    int off = 0;
    if (strlen(line) < 2 * FILEHASH_BYTES + 2 || parse_hex(line, h) || line[2 * FILEHASH_BYTES] != ' ' ||
        sscanf(line + 2 * FILEHASH_BYTES + 1, "%llu %lld.%lld %n", &size, &s, &ns, &off) != 3 || off == 0)
        return -1;
    snprintf(id->path, sizeof id->path, "%s", line + 2 * FILEHASH_BYTES + 1 + off);
    id->size = size, id->mtime_s = s, id->mtime_ns = ns;
    return 0;
}

static int same(const file_id *a, const file_id *b) {
    return !strcmp(a->path, b->path) && a->size == b->size && a->mtime_s == b->mtime_s && a->mtime_ns == b->mtime_ns;
}

static int cache_lookup(const char *cache_file, const file_id *id, uint8_t out[FILEHASH_BYTES]) {
    FILE *f = fopen(cache_file, "r");
    if (!f)
        return -1;
    char line[PATH_MAX + 128];
    int found = -1;
    while (found && fgets(line, sizeof line, f)) {
        file_id e;
        uint8_t h[FILEHASH_BYTES];
        if (!parse_line(line, h, &e) && same(&e, id)) {
            memcpy(out, h, FILEHASH_BYTES);
            found = 0;
        }
    }
    fclose(f);
    return found;
}

static int write_entry(FILE *f, const uint8_t h[FILEHASH_BYTES], const file_id *id) {
    char hex[2 * FILEHASH_BYTES + 1];
    filehash_hex(h, hex);
    return fprintf(f, "%s %llu %lld.%09lld %s\n", hex, (unsigned long long)id->size, (long long)id->mtime_s,
                   (long long)id->mtime_ns, id->path) < 0;
}

/* Rewrites the cache with every other path's entry and this one. */
static void cache_store(const char *cache_file, const file_id *id, const uint8_t h[FILEHASH_BYTES]) {
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", cache_file, (long)getpid());
    FILE *out = fopen(tmp, "w");
    if (!out) {
        rl_log(RL_LOG_WARN, "cannot write the hash cache %s: %s", tmp, strerror(errno));
        return;
    }
    FILE *in = fopen(cache_file, "r");
    char line[PATH_MAX + 128];
    int bad = 0;
    while (in && fgets(line, sizeof line, in)) {
        file_id e;
        uint8_t eh[FILEHASH_BYTES];
        if (!parse_line(line, eh, &e) && strcmp(e.path, id->path))
            bad |= write_entry(out, eh, &e);
    }
    if (in)
        fclose(in);
    bad |= write_entry(out, h, id);
    bad |= fclose(out) != 0;
    if (bad || rename(tmp, cache_file)) {
        rl_log(RL_LOG_WARN, "cannot update the hash cache %s: %s", cache_file, strerror(errno));
        unlink(tmp);
    }
}

static int hash_fd(int fd, uint64_t total, filehash_progress_fn progress, void *ud, uint8_t out[FILEHASH_BYTES],
                   const char *path, char *err, size_t errlen) {
    unsigned char *buf = malloc(READ_CHUNK);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    uint64_t done = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: read: %s", path, strerror(errno));
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
        done += (uint64_t)n;
        if (progress)
            progress(ud, done, total);
    }
    crypto_hash_sha256_final(&st, out);
    free(buf);
    return rc;
}

int filehash_sha256(const char *path, const char *cache_file, filehash_progress_fn progress, void *ud,
                    uint8_t out[FILEHASH_BYTES], char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    file_id id;
    if (fd < 0 || fstat(fd, &st) || !realpath(path, id.path)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", path);
        close(fd);
        return -1;
    }
    id.size = (uint64_t)st.st_size;
    id.mtime_s = st.st_mtim.tv_sec, id.mtime_ns = st.st_mtim.tv_nsec;
    if (strchr(id.path, '\n')) /* one entry per line: such a path is hashed every time */
        cache_file = NULL;
    if (cache_file && !cache_lookup(cache_file, &id, out)) {
        close(fd);
        return 0;
    }
    int rc = hash_fd(fd, id.size, progress, ud, out, path, err, errlen);
    close(fd);
    if (rc == 0 && cache_file)
        cache_store(cache_file, &id, out);
    return rc;
}
