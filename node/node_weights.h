/* A node's slice cache and the receiving side of a weight transfer.
 *
 * A node assigned a model it does not hold gets its slice from the
 * coordinator (see coordinator/cluster/weights_send.h) and keeps it in --cache as
 *     slice-<model sha256>-<first layer>-<last layer + 1>[-head].gguf
 * with the slice's verified sha256 beside it in the same name + ".sha256".
 * The .sha256 file is written only after the whole slice arrived and its
 * hash matched the coordinator's, so a slice file without one is a partial
 * transfer: the next request resumes at its size (the coordinator's slice
 * bytes never change). A cached slice is checked against its .sha256 before
 * use (through the node's hash cache, so an unchanged file is not read
 * again); a damaged one is deleted and received again. */
#ifndef RELAIS_NODE_WEIGHTS_H
#define RELAIS_NODE_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "relais.pb-c.h"

#define NODE_WEIGHTS_WINDOW 4 /* chunks asked for at once */

typedef struct node_weights node_weights;

/* cache_dir: the node's --cache; chunk_bytes: data bytes per chunk asked
 * for. NULL when out of memory. */
node_weights *node_weights_new(const char *cache_dir, uint32_t chunk_bytes);
void node_weights_destroy(node_weights **w); /* NULLs *w; a transfer under way stays resumable */

/* The complete slices in the cache, for Capabilities.slices: *n entries,
 * owned by w, valid until the next call. */
Relais__CachedSlice **node_weights_cached(node_weights *w, size_t *n);

/* Whether the slice an Assign describes is cached and intact: true with
 * its path. A cached slice whose content no longer has its hash is logged
 * and deleted (false). */
bool node_weights_lookup(node_weights *w, const Relais__Assign *a, char *path, size_t len);

/* Starts receiving that slice, or resumes it from the partial file: *req is
 * the first request (its fields point into w until the next call). Any
 * transfer under way is abandoned first. ERR_NONE, or a code with err. */
Relais__ErrorCode node_weights_begin(node_weights *w, const Relais__Assign *a, Relais__WeightRequest *req, char *err,
                                     size_t errlen);
/* Abandons the transfer under way (its partial file stays for a resume). */
void node_weights_stop(node_weights *w);
bool node_weights_receiving(const node_weights *w);
/* Bytes of the slice present and its size (0 before the first chunk). */
void node_weights_progress(const node_weights *w, uint64_t *done, uint64_t *total);

typedef enum {
    NODE_WEIGHTS_IGNORED, /* not for the transfer under way, or a repeat: nothing changed */
    NODE_WEIGHTS_WAIT,    /* written; more of this window is on its way */
    NODE_WEIGHTS_MORE,    /* written; send *next for the next window */
    NODE_WEIGHTS_DONE,    /* the slice is complete and verified: load `path` */
    NODE_WEIGHTS_FAILED   /* the transfer is abandoned: *code and err say why */
} node_weights_status;

/* Takes one chunk. Every field is checked against the transfer under way
 * (model, layers, offset, size, chunk size, the hash on the last chunk). */
node_weights_status node_weights_chunk(node_weights *w, const Relais__WeightChunk *c, Relais__WeightRequest *next,
                                       char *path, size_t len, Relais__ErrorCode *code, char *err, size_t errlen);

#endif
