/* The cluster file: which certificate the coordinator uses, where it listens
 * for results, and the nodes of the pipeline in order (the first node gets
 * the first layers). deploy/cluster.example.yaml documents the format:
 *
 *     coordinator: {key: FILE, listen: ENDPOINT, advertise: ENDPOINT, io_cpu: CPU|none}
 *     nodes: [{address: tcp://HOST:PORT, public_key: FILE, name: NAME}, ...]
 *     kv_type: f16          (optional: the nodes' KV cache types, as --kv-type)
 *
 * Loading validates everything it can without touching the network or the
 * key files: the YAML syntax, the keys (unknown, duplicate or missing ones),
 * the endpoints, duplicate node addresses and names. Every error names the
 * file, line and column. The file is untrusted input: its size, nesting and
 * node count are capped and YAML aliases are refused, so a hostile file gets
 * an error, never a crash or a blow-up. Relative key paths are resolved
 * against the directory of the YAML file, so a cluster directory can be moved
 * as a whole. The key files themselves are read by whoever connects. */
#ifndef RELAIS_CLUSTER_CONFIG_H
#define RELAIS_CLUSTER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kv.h"

#define CLUSTER_MAX_NODES 64                /* the planner's limit too */
#define CLUSTER_CONFIG_MAX_BYTES (1u << 20) /* a real cluster file is a few KiB */

typedef struct {
    const char *name;    /* the file's `name`, or HOST:PORT of the address when absent */
    const char *address; /* tcp://HOST:PORT, as written */
    const char *host;    /* HOST without IPv6 brackets */
    uint16_t port;
    const char *public_key; /* path of the node's public certificate, resolved */
    uint32_t line;          /* 1-based line of the node's entry, for messages */
} cluster_node;

typedef struct cluster_config cluster_config;

/* Reads and validates the YAML file at path. Returns NULL with a message
 * "PATH:LINE:COL: ..." (or "PATH: ..." for I/O problems) in err. */
cluster_config *cluster_config_load(const char *path, char *err, size_t errlen);
/* The same on a text in memory: `name` is used in messages, relative paths
 * are resolved against base_dir. */
cluster_config *cluster_config_parse(const char *text, size_t len, const char *name, const char *base_dir, char *err,
                                     size_t errlen);
void cluster_config_destroy(cluster_config **c); /* NULLs *c */

const char *cluster_config_key(const cluster_config *c);       /* coordinator's secret cert, resolved */
const char *cluster_config_listen(const cluster_config *c);    /* result endpoint to bind */
const char *cluster_config_advertise(const cluster_config *c); /* result endpoint as nodes reach it */
/* The CPU that handles messages (io_pin.h), or IO_PIN_NONE (also when absent). */
int cluster_config_io_cpu(const cluster_config *c);
/* The file's kv_type into *t; false (t untouched) when the file has none. */
bool cluster_config_kv_type(const cluster_config *c, rl_kv_type *t);
uint32_t cluster_config_n_nodes(const cluster_config *c); /* 1..CLUSTER_MAX_NODES */
/* Node i; NULL past the end. The nodes are one array: node 0 points at all of them. */
const cluster_node *cluster_config_node(const cluster_config *c, uint32_t i);

#endif
