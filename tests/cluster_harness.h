/* A cluster on loopback for the tests: a temporary directory with a
 * coordinator key, a trust directory and N node keys, and N relais-node
 * processes listening on free 127.0.0.1 ports, each logging to its own file.
 * Every wait is bounded; harness_stop always kills and reaps the nodes and
 * removes the directory. */
#ifndef RELAIS_CLUSTER_HARNESS_H
#define RELAIS_CLUSTER_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>
#include "cluster_config.h"

#define HARNESS_MAX 4

typedef struct {
    char dir[256];                       /* the temporary directory */
    char coord_key[320], coord_pub[320]; /* the coordinator's certificates */
    int n;                               /* nodes running */
    pid_t pid[HARNESS_MAX];
    char key[HARNESS_MAX][320], pub[HARNESS_MAX][320], log[HARNESS_MAX][320];
    char address[HARNESS_MAX][64], name[HARNESS_MAX][16];
    cluster_node nodes[HARNESS_MAX]; /* for cluster_new */
} harness;

/* Makes the keys and starts n nodes serving models_dir. 0, or -1 with a
 * message on stderr (and everything started already stopped). */
int harness_start(harness *h, int n, const char *models_dir);
/* Stops the nodes (SIGTERM, then SIGKILL after 5 s) and removes the
 * directory (kept when RELAIS_KEEP_TEST_DIR is set). Returns how many nodes
 * did not stop cleanly with status 0. */
int harness_stop(harness *h);

/* Kills node i at once (SIGKILL) and reaps it: a machine that goes away. */
void harness_kill(harness *h, int i);

/* A 127.0.0.1 port nothing listens on right now (-1 if none could be had). */
int harness_free_port(void);

/* Whether node i's log contains needle, waiting up to timeout_ms for it. */
bool harness_log_contains(const harness *h, int i, const char *needle, int timeout_ms);

#endif
