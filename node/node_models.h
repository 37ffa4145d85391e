/* The model files a node holds: every *.gguf in its --models directory,
 * known by the sha256 of its content (hashes cached in --cache, so only new
 * or changed files are read). A coordinator names the model it assigns by
 * hash; node_models_resolve turns that into a local path, says it is not
 * here, or refuses. */
#ifndef RELAIS_NODE_MODELS_H
#define RELAIS_NODE_MODELS_H

#include <stddef.h>
#include <stdint.h>
#include "relais.pb-c.h"

typedef struct {
    char name[256];  /* file name in the directory */
    char path[4096]; /* directory/name */
    uint64_t size;
    uint8_t sha256[32];
} node_model_file;

typedef struct node_models node_models;

/* dir: the --models directory; cache_dir: where the hash cache lives. NULL
 * with err when dir cannot be read. Scans once. Destroy with node_models_destroy. */
node_models *node_models_new(const char *dir, const char *cache_dir, char *err, size_t errlen);
void node_models_destroy(node_models **m); /* NULLs *m */

/* Rescans the directory (a stat per file; new or changed files are hashed).
 * A file that cannot be hashed is logged and left out. 0, or -1 with err
 * when the directory cannot be read. */
int node_models_scan(node_models *m, char *err, size_t errlen);
size_t node_models_count(const node_models *m);
const node_model_file *node_models_at(const node_models *m, size_t i);

/* Where the model with this hash is on this node. `name` is the file name
 * the coordinator knows it by: a local file of that name with another hash
 * is refused (and logged) as a different model. Returns ERR_NONE with path
 * filled, ERR_NONE with path empty when no file has the hash (the slice then
 * comes from the slice cache or a weight transfer), or ERR_MODEL with err. */
Relais__ErrorCode node_models_resolve(node_models *m, const uint8_t sha256[32], const char *name, char *path,
                                      size_t len, char *err, size_t errlen);

#endif
