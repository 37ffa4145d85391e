/* LAN discovery: a node's UDP beacon (CZMQ zbeacon, IPv4 broadcast), what
 * it says, and the listener `relais discover` and `serve` use.
 *
 * A beacon announces where a node listens and who it is; it grants nothing.
 * The coordinator connects only to a key it trusts (a .pub in its trust
 * folder), and CURVE proves the node holds the matching secret, so a forged
 * beacon can at worst make a coordinator try an address and fail.
 *
 * The payload (format 1), big-endian, at most 112 bytes:
 *     0  "RLB"            magic
 *     3  u8  format       1; another value is a layout this reader does not know
 *     4  u16 protocol     the node's relais.proto PROTOCOL_VERSION
 *     6  u16 port         TCP port of its listen endpoint (the host is the sender's address)
 *     8  32 bytes         the node's CURVE public key
 *    40  u64 free_ram     bytes the node offers for weights and KV, read when sent
 *    48  u8  n            length of the name, 1..63
 *    49  n bytes          the node's name: letters, digits, '.', '_', '-'
 * Bytes after the name are reserved for fields a later writer adds without
 * changing the format; a reader ignores them. Everything else is checked
 * and a beacon that fails a check is ignored (beacon_decode says why). */
#ifndef RELAIS_BEACON_H
#define RELAIS_BEACON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "curve.h"

#define BEACON_DEFAULT_PORT 7700 /* UDP; the same number as a node's default TCP port */
#define BEACON_FORMAT 1
#define BEACON_NAME_MAX 63
#define BEACON_MAX_BYTES (49 + BEACON_NAME_MAX)
#define BEACON_INTERVAL_MS 1000

typedef struct {
    uint16_t protocol; /* the sender's protocol version */
    uint16_t port;     /* its TCP listen port */
    uint8_t key[CURVE_KEY_BYTES];
    uint64_t free_ram;
    char name[BEACON_NAME_MAX + 1];
} beacon_info;

/* The payload of b into out (BEACON_MAX_BYTES); its length, or 0 when b
 * cannot be sent (no port, or a name that is empty, too long or has other
 * characters). */
size_t beacon_encode(const beacon_info *b, uint8_t *out);
/* Checks and reads a payload. 0, or -1 with why in err. */
int beacon_decode(const uint8_t *data, size_t len, beacon_info *out, char *err, size_t errlen);
/* A name a beacon may carry: 1..63 of [A-Za-z0-9._-]. */
bool beacon_name_ok(const char *name);

/* ---- the zbeacon actor, announcing or listening ---- */

typedef struct beacon beacon;

/* Announces info every BEACON_INTERVAL_MS on UDP `port`, on the interface
 * ZSYS_INTERFACE names (default: the first that can broadcast). NULL with
 * err when no interface can broadcast or info cannot be encoded. */
beacon *beacon_announce_new(int port, const beacon_info *info, char *err, size_t errlen);
/* Announces info from now on (a node's free memory changes). 0, or -1 with err. */
int beacon_announce_update(beacon *b, const beacon_info *info, char *err, size_t errlen);

/* What a listener heard: the beacon and where it came from. */
typedef struct {
    beacon_info info;
    char ip[48];       /* the sender's address */
    char endpoint[80]; /* tcp://IP:PORT: where the node listens */
    char fp[CURVE_FP_LEN];
} beacon_heard;

/* Listens on UDP `port` for relais beacons. NULL with err. */
beacon *beacon_listen_new(int port, char *err, size_t errlen);
/* The next valid beacon, waiting at most timeout_ms: 1 with *out, 0 when
 * none came. A malformed one is skipped and logged (at most one line per
 * 10 s, with the count left out). */
int beacon_recv(beacon *b, int timeout_ms, beacon_heard *out);

void beacon_destroy(beacon **b); /* NULLs *b */

#endif
