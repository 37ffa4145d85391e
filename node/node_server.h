/* The relais-node daemon's server: one ROUTER socket (CURVE server with the
 * node's key) that coordinators and the previous node connect to, the ZAP
 * handler that decides who may connect, and the dispatch of every message.
 *
 * Roles come from ZAP: a key in the --trust directory is a "coordinator" and
 * may send anything a node takes; the key a coordinator's Assign names as the
 * previous hop is a "neighbour" and may only send Forward. Every bad message
 * (undecodable, other protocol version, wrong role, inconsistent fields) is
 * logged and answered with an Error; the server keeps serving. */
#ifndef RELAIS_NODE_SERVER_H
#define RELAIS_NODE_SERVER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *listen;   /* ZeroMQ endpoint to bind, e.g. tcp://0.0.0.0:7700 */
    const char *key;      /* the node's secret certificate; created when missing */
    const char *trust;    /* directory of trusted coordinators' public certificates (*.pub) */
    const char *models;   /* directory of model files (*.gguf) */
    const char *cache;    /* hash and benchmark caches and received slices; created when missing */
    int threads;          /* compute threads when the coordinator leaves it to the node; <= 0: one per core */
    int64_t max_message;  /* inbound message limit in bytes */
    uint64_t max_memory;  /* the most RAM this node offers for weights and KV; 0: what the machine has free */
    uint32_t chunk_bytes; /* weight transfer: data bytes per chunk asked for (below max_message) */
    int io_cpu;           /* the CPU that handles messages (io_pin.h), or IO_PIN_NONE */
    int beacon_port;      /* UDP port to announce this node on (beacon.h); 0: no beacon */
    const char *name;     /* the name the beacon announces; NULL: the host name */
} node_config;

typedef struct node_server node_server;

/* Loads the key, the trusted certificates and the model list, measures (or
 * recalls) the matvec throughput and binds. NULL with err. */
node_server *node_server_new(const node_config *cfg, char *err, size_t errlen);
void node_server_destroy(node_server **s); /* NULLs *s */

/* Serves until *stop becomes non-zero (checked at least twice a second).
 * 0 on a clean stop, -1 when the socket fails. */
int node_server_run(node_server *s, volatile sig_atomic_t *stop);

#endif
