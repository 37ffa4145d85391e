/* The cluster file: which certificate the coordinator uses, where it listens
 * for results, and the nodes of the pipeline in order (the first node gets
 * the first layers). deploy/cluster.example.yaml documents the format:
 *
 *     coordinator: {key: FILE, listen: ENDPOINT, advertise: ENDPOINT, io_cpu: CPU|none}
 *     nodes: [{address: tcp://HOST:PORT, public_key: FILE, name: NAME}, ...]
 *     kv_type: f16          (optional: the nodes' KV cache types, as --kv-type)
 *
 * Instead of `nodes`, `discover: true` (or a mapping {port: UDP-PORT, trust:
 * DIR, names: [PATTERN, ...], wait: SECONDS}) takes the nodes from the LAN:
 * those whose beacon (proto/beacon.h) carries a key in the trust folder
 * (default `trusted-nodes` beside the file) and whose announced name matches
 * a pattern (fnmatch; default: any). The file then holds no node until the
 * coordinator adds those it hears (cluster_config_add_node; see
 * coordinator/cluster/cluster_discover.h).
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

#define CLUSTER_DISCOVER_MAX_NAMES 16
#define CLUSTER_DISCOVER_WAIT_S 3.0 /* beacons come every second: three chances to hear each node */

/* The file's `discover`. */
typedef struct {
    int port;                                      /* UDP port of the beacons (BEACON_DEFAULT_PORT when absent) */
    const char *trust;                             /* the folder of trusted node certificates (*.pub), resolved */
    const char *names[CLUSTER_DISCOVER_MAX_NAMES]; /* fnmatch patterns a node's name must match one of */
    uint32_t n_names;                              /* 0: any name */
    double wait_s;                                 /* how long to listen before the first plan */
} cluster_discover;

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
/* 1..CLUSTER_MAX_NODES; with discover, 0 until nodes are added. */
uint32_t cluster_config_n_nodes(const cluster_config *c);
/* The file's discover settings; NULL when it lists its nodes. */
const cluster_discover *cluster_config_discover(const cluster_config *c);
/* Whether a name passes the discover name patterns (any name without them). */
bool cluster_discover_name_ok(const cluster_discover *d, const char *name);
/* Adds a node (a discovered one) at the end: its name, tcp://HOST:PORT
 * address and public certificate. 0, or -1 with err (a bad endpoint, a name
 * or address already there, CLUSTER_MAX_NODES reached, out of memory). */
int cluster_config_add_node(cluster_config *c, const char *name, const char *address, const char *public_key, char *err,
                            size_t errlen);
/* Node i; NULL past the end. The nodes are one array: node 0 points at all of them. */
const cluster_node *cluster_config_node(const cluster_config *c, uint32_t i);

#endif
