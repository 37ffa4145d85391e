/* Certificates, fingerprints and the ZAP handler (see curve.h). Certificate
 * files are written in CZMQ's zcert format, so that they are interchangeable
 * with other ZeroMQ tools (but by write_cert, which zcert cannot do safely:
 * created private, renamed into place), and read back by a small strict
 * reader of the same format; everything on sockets goes through plain libzmq. */
#include "curve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>
#include "log.h"
#include "util.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ROLE_MAX 16

static bool all_zero(const uint8_t *p, size_t n) {
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

void curve_fingerprint(const uint8_t key[CURVE_KEY_BYTES], char out[CURVE_FP_LEN]) {
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, key, CURVE_KEY_BYTES);
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

void curve_public_path(const char *secret_path, char *out, size_t len) {
    size_t n = strlen(secret_path);
    if (n > 4 && !strcmp(secret_path + n - 4, ".key"))
        snprintf(out, len, "%.*s.pub", (int)(n - 4), secret_path);
    else
        snprintf(out, len, "%s.pub", secret_path);
}

#define CERT_MAX_BYTES (64 << 10)

/* One `name = value` line of the curve section: a 40-character Z85 key,
 * quoted or not. 1 when it is the key `name`, with out filled. */
static int key_line(const char *text, const char *name, uint8_t out[CURVE_KEY_BYTES]) {
    size_t n = strlen(name);
    if (strncmp(text, name, n))
        return 0;
    text += n + strspn(text + n, " \t");
    if (*text != '=')
        return 0;
    text += 1 + strspn(text + 1, " \t");
    char z85[41];
    size_t q = (*text == '"' || *text == '\'') ? 1 : 0;
    size_t len = strcspn(text + q, q ? (text[0] == '"' ? "\"" : "'") : " \t\r\n");
    if (len != 40)
        return 0;
    memcpy(z85, text + q, 40);
    z85[40] = '\0';
    return zmq_z85_decode(out, z85) ? 1 : 0;
}

/* Reads the keys of a ZeroMQ certificate, the ZPL text zcert writes:
 *     curve
 *         public-key = "<40 Z85 characters>"
 *         secret-key = "<40 Z85 characters>"   (secret certificates only)
 * Other sections (metadata) and comments are skipped. Read here rather than
 * with zcert_load, which leaks on a malformed file and tries other paths. */
static int read_cert(const char *path, uint8_t pub[CURVE_KEY_BYTES], uint8_t sec[CURVE_KEY_BYTES], bool *has_secret,
                     char *err, size_t errlen) {
    struct stat st;
    FILE *f;
    if (stat(path, &st) || !(f = fopen(path, "r"))) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > CERT_MAX_BYTES) {
        snprintf(err, errlen, "%s is not a certificate (a regular file of at most 64 KiB)", path);
        fclose(f);
        return -1;
    }
    char line[512], section[64] = "";
    bool has_public = false;
    *has_secret = false;
    while (fgets(line, sizeof line, f)) {
        size_t indent = strspn(line, " \t");
        const char *text = line + indent;
        if (*text == '#' || *text == '\n' || *text == '\0')
            continue;
        if (indent == 0)
            snprintf(section, sizeof section, "%.*s", (int)strcspn(text, " \t\r\n"), text);
        else if (!strcmp(section, "curve")) {
            has_public |= key_line(text, "public-key", pub);
            *has_secret |= key_line(text, "secret-key", sec);
        }
    }
    fclose(f);
    if (!has_public) {
        snprintf(err, errlen, "%s is not a ZeroMQ certificate (no curve public-key)", path);
        return -1;
    }
    if (*has_secret && all_zero(sec, CURVE_KEY_BYTES))
        *has_secret = false; /* zcert writes zeros for "no secret key" */
    return 0;
}

int curve_public_load(const char *path, uint8_t key[CURVE_KEY_BYTES], char *err, size_t errlen) {
    uint8_t sec[CURVE_KEY_BYTES];
    bool has_secret;
    int rc = read_cert(path, key, sec, &has_secret, err, errlen);
    sodium_memzero(sec, sizeof sec);
    return rc;
}

/* Writes one certificate in zcert's ZPL layout (so CZMQ tools read it) to a
 * temporary file created O_EXCL|O_NOFOLLOW with its final mode, then renames
 * it into place without replacing anything: no moment exists where a secret
 * key sits in a file others may read, and a link planted at the path is
 * neither followed nor overwritten. */
static int write_cert(const char *path, const uint8_t pub[CURVE_KEY_BYTES], const uint8_t *sec, char *err,
                      size_t errlen) {
    char tmp[4200], z_pub[41], z_sec[41];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    zmq_z85_encode(z_pub, pub, CURVE_KEY_BYTES);
    if (sec)
        zmq_z85_encode(z_sec, sec, CURVE_KEY_BYTES);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, sec ? 0600 : 0644);
    if (fd < 0)
        return rl_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    FILE *f = fdopen(fd, "w");
    int ok = f != NULL;
    if (ok) {
        fprintf(f, "#   ****  Generated by relais (ZeroMQ CURVE certificate, zcert format)  ****\n");
        fprintf(f, "#   %s\n\nmetadata\ncurve\n    public-key = \"%s\"\n",
                sec ? "ZeroMQ CURVE **Secret** Certificate: keep it private (mode 0600)"
                    : "ZeroMQ CURVE Public Certificate",
                z_pub);
        if (sec)
            fprintf(f, "    secret-key = \"%s\"\n", z_sec);
        ok = !ferror(f) && fflush(f) == 0 && fsync(fd) == 0;
        ok = (fclose(f) == 0) && ok;
    } else {
        close(fd);
    }
    sodium_memzero(z_sec, sizeof z_sec);
    if (ok && renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
        return 0;
    const int e = errno;
    unlink(tmp);
    if (ok && e == EEXIST)
        return rl_errf(err, errlen, "%s already exists; not overwriting a key", path);
    return rl_errf(err, errlen, "cannot write %s: %s", path, strerror(e));
}

int curve_public_save(const char *path, const uint8_t key[CURVE_KEY_BYTES], char *err, size_t errlen) {
    return write_cert(path, key, NULL, err, errlen);
}

int curve_keys_create(const char *secret_path, const char *public_path, curve_keys *out, char *err, size_t errlen) {
    struct stat st;
    const char *paths[] = {secret_path, public_path};
    for (int i = 0; i < 2; i++)
        if (lstat(paths[i], &st) == 0)
            return rl_errf(err, errlen, "%s already exists; not overwriting a key", paths[i]);
    curve_keys k;
    if (crypto_box_keypair(k.public_key, k.secret_key)) /* CURVE keys are Curve25519 box keys */
        return rl_errf(err, errlen, "cannot generate a CURVE key pair");
    int rc = write_cert(secret_path, k.public_key, k.secret_key, err, errlen);
    if (rc == 0 && (rc = write_cert(public_path, k.public_key, NULL, err, errlen)))
        unlink(secret_path); /* half a pair is no pair */
    if (rc == 0 && out)
        *out = k;
    sodium_memzero(&k, sizeof k);
    return rc;
}

int curve_keys_load(const char *path, bool create, curve_keys *out, char *err, size_t errlen) {
    struct stat st;
    if (create && stat(path, &st) && errno == ENOENT) {
        char pub[4096];
        curve_public_path(path, pub, sizeof pub);
        if (curve_keys_create(path, pub, out, err, errlen))
            return -1;
        char fp[CURVE_FP_LEN];
        curve_fingerprint(out->public_key, fp);
        rl_log(RL_LOG_INFO, "created key pair %s (public certificate %s, fingerprint %s)", path, pub, fp);
        return 0;
    }
    bool has_secret;
    if (read_cert(path, out->public_key, out->secret_key, &has_secret, err, errlen))
        return -1;
    if (!has_secret) {
        snprintf(err, errlen, "%s holds no secret key (is it a public .pub certificate?)", path);
        return -1;
    }
    /* As ssh does: a secret others could have read is not used. */
    if (stat(path, &st) == 0 && (st.st_mode & 077)) {
        sodium_memzero(out->secret_key, CURVE_KEY_BYTES);
        return rl_errf(err, errlen,
                       "%s holds a secret key but is accessible by group or others (mode %03o); "
                       "run: chmod 600 %s",
                       path, (unsigned)(st.st_mode & 0777), path);
    }
    return 0;
}

static int set_keys(void *sock, const curve_keys *k, char *err, size_t errlen) {
    if (zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->public_key, CURVE_KEY_BYTES) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->secret_key, CURVE_KEY_BYTES)) {
        snprintf(err, errlen, "cannot set CURVE keys: %s", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

int curve_apply_server(void *sock, const curve_keys *k, char *err, size_t errlen) {
    int one = 1;
    if (set_keys(sock, k, err, errlen))
        return -1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one)) {
        snprintf(err, errlen, "cannot make a CURVE server: %s", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

int curve_apply_client(void *sock, const curve_keys *k, const uint8_t server_key[CURVE_KEY_BYTES], char *err,
                       size_t errlen) {
    if (set_keys(sock, k, err, errlen))
        return -1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_key, CURVE_KEY_BYTES)) {
        snprintf(err, errlen, "cannot set the CURVE server key: %s", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- ZAP handler ---- */

typedef struct {
    uint8_t key[CURVE_KEY_BYTES];
    char role[ROLE_MAX];
} zap_entry;

struct curve_zap {
    void *rep;          /* REP socket bound at the context's ZAP endpoint */
    zap_entry *allowed; /* (n_allowed) admitted keys and their roles */
    size_t n_allowed, cap;
    char refusal[160];     /* the reason logged for an unknown key */
    double last_refusal_s; /* when a refusal was last logged (rl_now_s) */
    unsigned suppressed;   /* refusals not logged since then */
};

/* At most one refusal line per REFUSAL_LOG_GAP_S: a peer retrying with the
 * wrong key (or someone scanning the port) must not fill the disk. The next
 * line logged says how many were left out. Returns whether to log now. */
#define REFUSAL_LOG_GAP_S 5.0
static bool refusal_log_due(curve_zap *z, unsigned *left_out) {
    const double now = rl_now_s();
    if (z->last_refusal_s > 0 && now - z->last_refusal_s < REFUSAL_LOG_GAP_S) {
        z->suppressed++;
        return false;
    }
    *left_out = z->suppressed;
    z->suppressed = 0;
    z->last_refusal_s = now;
    return true;
}

curve_zap *curve_zap_new(void *zctx, const char *refusal, char *err, size_t errlen) {
    curve_zap *z = calloc(1, sizeof *z);
    if (!z) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int linger = 0;
    z->rep = zmq_socket(zctx, ZMQ_REP);
    if (!z->rep || zmq_setsockopt(z->rep, ZMQ_LINGER, &linger, sizeof linger) || zmq_bind(z->rep, ZAP_ENDPOINT)) {
        snprintf(err, errlen, "cannot start the ZAP handler: %s", zmq_strerror(errno));
        curve_zap_destroy(&z);
        return NULL;
    }
    snprintf(z->refusal, sizeof z->refusal, "%s", refusal);
    return z;
}

void curve_zap_destroy(curve_zap **pz) {
    curve_zap *z = pz ? *pz : NULL;
    if (!z)
        return;
    if (z->rep)
        zmq_close(z->rep);
    free(z->allowed);
    free(z);
    *pz = NULL;
}

void *curve_zap_socket(curve_zap *z) { return z->rep; }

const char *curve_zap_role(const curve_zap *z, const uint8_t key[CURVE_KEY_BYTES]) {
    for (size_t i = 0; i < z->n_allowed; i++)
        if (!memcmp(z->allowed[i].key, key, CURVE_KEY_BYTES))
            return z->allowed[i].role;
    return "";
}

int curve_zap_allow(curve_zap *z, const uint8_t key[CURVE_KEY_BYTES], const char *role) {
    if (*curve_zap_role(z, key))
        return 0;
    if (z->n_allowed == z->cap) {
        size_t cap = z->cap ? 2 * z->cap : 8;
        zap_entry *a = realloc(z->allowed, cap * sizeof *a);
        if (!a)
            return -1;
        z->allowed = a, z->cap = cap;
    }
    zap_entry *e = &z->allowed[z->n_allowed++];
    memcpy(e->key, key, CURVE_KEY_BYTES);
    snprintf(e->role, sizeof e->role, "%s", role);
    return 0;
}

void curve_zap_forget_role(curve_zap *z, const char *role) {
    size_t k = 0;
    for (size_t i = 0; i < z->n_allowed; i++)
        if (strcmp(z->allowed[i].role, role))
            z->allowed[k++] = z->allowed[i];
    z->n_allowed = k;
}

static bool has_suffix(const char *name, const char *suffix) {
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && !strcmp(name + n - k, suffix);
}

/* A trust folder holds public certificates only: a secret key found there
 * (a .pub that holds one, or a .key file) was copied by mistake and is
 * refused, so the mistake is fixed before the secret spreads further. */
static int trust_entry(curve_zap *z, const char *path, bool is_pub, const char *role, char *err, size_t errlen) {
    uint8_t key[CURVE_KEY_BYTES], sec[CURVE_KEY_BYTES];
    bool has_secret = false;
    int rc = read_cert(path, key, sec, &has_secret, err, errlen);
    sodium_memzero(sec, sizeof sec);
    if (rc == 0 && has_secret)
        return rl_errf(err, errlen,
                       "%s holds a secret key: a trust folder takes only public certificates (.pub); "
                       "move it out and copy the matching .pub instead",
                       path);
    if (rc || !is_pub)
        return is_pub ? -1 : 0; /* an unreadable .key that holds no secret is not ours to judge */
    return curve_zap_allow(z, key, role);
}

int curve_zap_allow_dir(curve_zap *z, const char *dir, const char *role, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const bool is_pub = has_suffix(de->d_name, ".pub");
        if (!is_pub && !has_suffix(de->d_name, ".key"))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (trust_entry(z, path, is_pub, role, err, errlen)) {
            count = -1;
            break;
        }
        count += is_pub;
    }
    closedir(d);
    return count;
}

/* A ZAP request: version, request id, domain, address, routing id,
 * mechanism, then the credentials (for CURVE, the client's public key). */
enum {
    ZAP_VERSION,
    ZAP_REQUEST_ID,
    ZAP_DOMAIN,
    ZAP_ADDRESS,
    ZAP_ROUTING_ID,
    ZAP_MECHANISM,
    ZAP_CREDENTIALS,
    ZAP_FRAMES
};

static void frame_text(zmq_msg_t *f, char *out, size_t len) {
    size_t n = zmq_msg_size(f) < len - 1 ? zmq_msg_size(f) : len - 1;
    memcpy(out, zmq_msg_data(f), n);
    out[n] = '\0';
}

/* ZMTP metadata: name length (1 byte), name, value length (4 bytes, big
 * endian), value. */
static size_t encode_property(uint8_t *out, const char *name, const char *value) {
    size_t nl = strlen(name), vl = strlen(value);
    out[0] = (uint8_t)nl;
    memcpy(out + 1, name, nl);
    out[1 + nl] = (uint8_t)(vl >> 24), out[2 + nl] = (uint8_t)(vl >> 16);
    out[3 + nl] = (uint8_t)(vl >> 8), out[4 + nl] = (uint8_t)vl;
    memcpy(out + 5 + nl, value, vl);
    return 5 + nl + vl;
}

static void reply(curve_zap *z, zmq_msg_t *request_id, const char *status, const char *text, const char *user,
                  const uint8_t *key) {
    uint8_t meta[128];
    size_t meta_len = 0;
    if (key) {
        char z85[41];
        zmq_z85_encode(z85, key, CURVE_KEY_BYTES);
        meta_len = encode_property(meta, CURVE_ZAP_KEY_PROPERTY, z85);
    }
    zmq_send(z->rep, "1.0", 3, ZMQ_SNDMORE);
    zmq_msg_send(request_id, z->rep, ZMQ_SNDMORE);
    zmq_send(z->rep, status, strlen(status), ZMQ_SNDMORE);
    zmq_send(z->rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->rep, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(z->rep, meta, meta_len, 0);
}

static void decide(curve_zap *z, zmq_msg_t *frames, int n) {
    char mech[32], address[128], fp[CURVE_FP_LEN] = "-";
    frame_text(&frames[ZAP_MECHANISM], mech, sizeof mech);
    frame_text(&frames[ZAP_ADDRESS], address, sizeof address);
    const uint8_t *key = NULL;
    if (n > ZAP_CREDENTIALS && zmq_msg_size(&frames[ZAP_CREDENTIALS]) == CURVE_KEY_BYTES) {
        key = zmq_msg_data(&frames[ZAP_CREDENTIALS]);
        curve_fingerprint(key, fp);
    }
    if (strcmp(mech, "CURVE") || !key) {
        unsigned left_out;
        if (refusal_log_due(z, &left_out))
            rl_log(RL_LOG_WARN,
                   "refused a %s peer from %s: only CURVE peers are admitted (%u refusals not logged "
                   "since the last line)",
                   mech, address, left_out);
        reply(z, &frames[ZAP_REQUEST_ID], "400", "CURVE required", "", NULL);
        return;
    }
    const char *role = curve_zap_role(z, key);
    if (!*role) {
        char z85[41];
        zmq_z85_encode(z85, key, CURVE_KEY_BYTES);
        unsigned left_out;
        if (refusal_log_due(z, &left_out))
            rl_log(RL_LOG_WARN,
                   "refused a peer from %s with key %s (%s): %s (%u refusals not logged since the "
                   "last line)",
                   address, fp, z85, z->refusal, left_out);
        reply(z, &frames[ZAP_REQUEST_ID], "400", "key not admitted", "", NULL);
        return;
    }
    rl_log(RL_LOG_DEBUG, "admitted %s %s from %s", role, fp, address);
    reply(z, &frames[ZAP_REQUEST_ID], "200", "OK", role, key);
}

bool curve_zap_handle(curve_zap *z) {
    zmq_msg_t frames[ZAP_FRAMES];
    int n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t scratch, *f = n < ZAP_FRAMES ? &frames[n] : &scratch; /* frames past the key are dropped */
        zmq_msg_init(f);
        if (zmq_msg_recv(f, z->rep, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(f);
            if (n == 0)
                return false;
            break;
        }
        more = zmq_msg_more(f);
        if (f == &scratch)
            zmq_msg_close(f);
        else
            n++;
    }
    if (n > ZAP_MECHANISM)
        decide(z, frames, n);
    else /* libzmq never sends this; a REP socket must still answer */
        zmq_send(z->rep, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
    return true;
}
