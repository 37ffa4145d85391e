/* Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c): the input handed
 * to a reader that only takes a path goes through an anonymous memory file
 * (memfd), so no harness writes to the disk at every execution. */
#ifndef RELAIS_FUZZ_UTIL_H
#define RELAIS_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes the input into a fresh memfd and its /proc path into path; the fd
 * (close it after use), or -1. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t pathlen) {
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, pathlen, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
