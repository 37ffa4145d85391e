/* Content hashes of model files. A model is named on the wire by the sha256
 * of its whole file (Assign.model_sha256, Capabilities.models), on the
 * coordinator and on every node. Reading gigabytes on every start would cost
 * minutes on a Raspberry Pi, so hashes are remembered in a small text file
 * keyed by the file's real path, size and modification time: a file is read
 * again only when one of those changes. */
#ifndef RELAIS_FILEHASH_H
#define RELAIS_FILEHASH_H

#include <stddef.h>
#include <stdint.h>

#define FILEHASH_BYTES 32

/* Called while a file is read (bytes done of total). */
typedef void (*filehash_progress_fn)(void *ud, uint64_t done, uint64_t total);

/* sha256 of the file at path. cache_file (NULL: no cache) is looked up first
 * and updated after a computation; a cache that cannot be written is only
 * logged. progress may be NULL. 0, or -1 with err. */
int filehash_sha256(const char *path, const char *cache_file, filehash_progress_fn progress, void *ud,
                    uint8_t out[FILEHASH_BYTES], char *err, size_t errlen);
/* 64 lowercase hex digits and the NUL. */
void filehash_hex(const uint8_t h[FILEHASH_BYTES], char out[2 * FILEHASH_BYTES + 1]);

#endif
