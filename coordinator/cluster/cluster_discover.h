/* The coordinator's side of LAN discovery: listening to the nodes' beacons
 * (proto/beacon.h), telling trusted keys from the others, and turning a
 * cluster file with `discover` into one that names its nodes.
 *
 * A key is trusted when a public certificate in the trust folder holds it
 * (the file's discover.trust, or the folder given to `relais discover` and
 * `relais trust`), or when the cluster file names it as a node's
 * public_key. Nothing here ever adds a key to the folder: `relais trust`
 * does, when a person asks. A node is taken into a cluster only when its
 * key is trusted, its name passes the file's patterns and it speaks this
 * coordinator's protocol version. */
#ifndef RELAIS_CLUSTER_DISCOVER_H
#define RELAIS_CLUSTER_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "beacon.h"
#include "cluster_config.h"

/* One node heard. */
typedef struct {
    beacon_heard heard;           /* its latest beacon */
    char trusted[4096 + 256 + 2]; /* the certificate that makes it trusted; "" when none does */
    double first_s, last_s;       /* when it was first and last heard (rl_now_s) */
} discovered;

typedef struct discovery discovery;

/* Listens on UDP `port` (0: the file's discover.port, else the default),
 * trusting the keys of trust_dir (NULL: the file's discover.trust) and of
 * the file's nodes (cfg may be NULL). A missing trust folder trusts nothing.
 * NULL with err. */
discovery *discovery_new(const cluster_config *cfg, const char *trust_dir, int port, char *err, size_t errlen);
void discovery_destroy(discovery **d); /* NULLs *d */

/* Takes the beacons that arrive within ms. Returns how many nodes were
 * heard for the first time. */
int discovery_listen(discovery *d, int ms);
/* Reads the trust folder again (a key trusted meanwhile counts from now). */
void discovery_reload_trust(discovery *d);
uint32_t discovery_count(const discovery *d);
const discovered *discovery_at(const discovery *d, uint32_t i); /* in the order first heard */
/* Whether node i may join a cluster of cfg: trusted, its name passes the
 * patterns, our protocol version. why (may be NULL) says what is missing. */
bool discovery_usable(const discovery *d, uint32_t i, const cluster_config *cfg, char *why, size_t whylen);

/* Adds to cfg every usable node heard that it lacks (by key), sorted by
 * name so the pipeline's order does not depend on which beacon came first.
 * Returns how many were added, or -1 with err. */
int discovery_add_nodes(discovery *d, cluster_config *cfg, char *err, size_t errlen);

/* For a running cluster c opened from cfg: takes the beacons that arrived
 * (without waiting) and re-reads the trust folder now and then; a usable
 * node c lacks is added (cluster_add_node), and a node of c that is out of
 * the pipeline and announces another address is pointed there. Returns how
 * many changed (a re-plan takes them in; `what` names the last), 0 when
 * none did. */
struct cluster;
int discovery_update_cluster(discovery *d, struct cluster *c, const cluster_config *cfg, char *what, size_t len);

/* Whether a certificate in dir holds key; its path then in path. */
bool discovery_dir_trusts(const char *dir, const uint8_t key[CURVE_KEY_BYTES], char *path, size_t len);

/* The cluster file at path; with `discover`, its nodes are those usable
 * ones heard within discover.wait seconds (an error names what was heard
 * and why none is usable when none is). NULL with err. */
cluster_config *cluster_config_open(const char *path, char *err, size_t errlen);

#endif
