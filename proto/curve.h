/* CURVE identities and who may talk to whom.
 *
 * Key files are ZeroMQ/CZMQ certificates: NAME.key holds the key pair and is
 * kept private (mode 0600); NAME.pub holds only the public key and is what
 * gets copied to the other machines. A key is shown in logs by its
 * fingerprint: the first 8 bytes of the sha256 of the public key, in hex.
 *
 * curve_zap is a ZAP handler (ZeroMQ RFC 27) run in its owner's poll loop:
 * every CURVE peer connecting to a server socket of the owner's context is
 * looked up in an allow list that maps public keys to roles. An admitted peer
 * gets its role as ZAP User-Id and its key as the connection property
 * CURVE_ZAP_KEY_PROPERTY, both readable on every message it sends
 * (wire_msg_user, wire_msg_peer_key). Anyone else is refused, and the
 * refusal logged with the key's fingerprint, address and the reason. */
#ifndef RELAIS_CURVE_H
#define RELAIS_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CURVE_KEY_BYTES 32
#define CURVE_FP_LEN 17 /* 16 hex digits and the NUL */
#define CURVE_ZAP_KEY_PROPERTY "Peer-Key"

typedef struct {
    uint8_t public_key[CURVE_KEY_BYTES];
    uint8_t secret_key[CURVE_KEY_BYTES];
} curve_keys;

/* Loads the key pair of a secret certificate. When the file is missing and
 * `create` is set, makes a new pair and writes it there (mode 0600) along
 * with its public certificate (curve_public_path). 0, or -1 with err. */
int curve_keys_load(const char *path, bool create, curve_keys *out, char *err, size_t errlen);
/* Writes a new pair: secret_path (mode 0600) and public_path. Refuses to
 * overwrite either. 0, or -1 with err. */
int curve_keys_create(const char *secret_path, const char *public_path, curve_keys *out, char *err, size_t errlen);
/* The public key of a certificate file (public or secret). 0, or -1 with err. */
int curve_public_load(const char *path, uint8_t key[CURVE_KEY_BYTES], char *err, size_t errlen);
/* Writes a public certificate holding key at path (mode 0644), refusing
 * to replace a file. 0, or -1 with err. */
int curve_public_save(const char *path, const uint8_t key[CURVE_KEY_BYTES], char *err, size_t errlen);
/* The public certificate beside a secret one: "x/node.key" -> "x/node.pub";
 * a name not ending in ".key" gets ".pub" appended. */
void curve_public_path(const char *secret_path, char *out, size_t len);
/* 16 hex digits identifying a key in logs. */
void curve_fingerprint(const uint8_t key[CURVE_KEY_BYTES], char out[CURVE_FP_LEN]);

/* Makes sock a CURVE server with keys k (before bind). 0, or -1 with err. */
int curve_apply_server(void *sock, const curve_keys *k, char *err, size_t errlen);
/* Makes sock a CURVE client of the server holding server_key (before connect). */
int curve_apply_client(void *sock, const curve_keys *k, const uint8_t server_key[CURVE_KEY_BYTES], char *err,
                       size_t errlen);

/* ---- ZAP handler ---- */

typedef struct curve_zap curve_zap;

/* Binds the ZAP endpoint of zctx (one handler per context). `refusal` is the
 * reason logged for an unknown key, e.g. "not a trusted coordinator nor the
 * introduced neighbour". NULL with err. */
curve_zap *curve_zap_new(void *zctx, const char *refusal, char *err, size_t errlen);
void curve_zap_destroy(curve_zap **z); /* NULLs *z */
void *curve_zap_socket(curve_zap *z);  /* poll it for input, then curve_zap_handle */
/* Answers one pending request: true, or false when none was pending. */
bool curve_zap_handle(curve_zap *z);

/* Admits key with role (at most 15 characters). A key already admitted keeps
 * its first role, so a trusted coordinator stays one even when it is also
 * introduced as a neighbour. 0, or -1 when out of memory. */
int curve_zap_allow(curve_zap *z, const uint8_t key[CURVE_KEY_BYTES], const char *role);
/* Forgets every key of a role. Connections already admitted stay open; their
 * messages still carry the key, which receivers check. */
void curve_zap_forget_role(curve_zap *z, const char *role);
/* Admits the key of every certificate "*.pub" in dir with role. Returns the
 * count (0 is not an error), or -1 with err when dir cannot be read or a
 * certificate in it is unreadable. */
int curve_zap_allow_dir(curve_zap *z, const char *dir, const char *role, char *err, size_t errlen);
/* The role of key ("" when not admitted). */
const char *curve_zap_role(const curve_zap *z, const uint8_t key[CURVE_KEY_BYTES]);

#endif
