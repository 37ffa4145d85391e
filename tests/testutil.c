/* The shared test helpers of testutil.h. Removal walks the tree with nftw
 * rather than running `rm -rf` through a shell, so a folder name is never
 * parsed by a shell and a failure is reported, not printed. */
#define _XOPEN_SOURCE 700
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

int tu_dir_new(char dir[TU_DIR_MAX], const char *name) {
    if (snprintf(dir, TU_DIR_MAX, "/tmp/relais-%s-XXXXXX", name) >= TU_DIR_MAX)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int tu_dir_remove(const char *dir) {
    return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

unsigned char *tu_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

int tu_run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = 0;
    char sink[4096];
    for (;;) {
        const int keep = out && n + 1 < cap;
        const size_t got = keep ? fread(out + n, 1, cap - 1 - n, p) : fread(sink, 1, sizeof sink, p);
        if (got == 0)
            break;
        if (keep)
            n += got;
    }
    if (out && cap)
        out[n] = '\0';
    const int st = pclose(p);
    if (st == -1)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1000 - WTERMSIG(st);
}
