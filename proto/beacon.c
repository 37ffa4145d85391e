/* The beacon payload and the zbeacon actor around it (see beacon.h). CZMQ
 * is used for zbeacon alone; its process-wide setup would install its own
 * SIGINT/SIGTERM handlers and log to stdout, so beacon_init puts the
 * program's handlers back and sends CZMQ's log lines to stderr, where they
 * cannot mix with a command's --json output. */
#include "beacon.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include "log.h"
#include "util.h"

#define MAGIC "RLB"
#define MAGIC_LEN 3
#define BAD_LOG_GAP_S 10.0

struct beacon {
    zactor_t *actor;
    int port;
    double bad_logged_s; /* when a malformed beacon was last logged (rl_now_s) */
    unsigned bad_left_out;
};

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

bool beacon_name_ok(const char *name) {
    size_t n = strlen(name);
    return n >= 1 && n <= BEACON_NAME_MAX &&
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

size_t beacon_encode(const beacon_info *b, uint8_t *out) {
    if (!b->port || !beacon_name_ok(b->name))
        return 0;
    const size_t n = strlen(b->name);
    memcpy(out, MAGIC, MAGIC_LEN);
    out[3] = BEACON_FORMAT;
    put16(out + 4, b->protocol);
    put16(out + 6, b->port);
    memcpy(out + 8, b->key, CURVE_KEY_BYTES);
    for (int i = 0; i < 8; i++)
        out[40 + i] = (uint8_t)(b->free_ram >> (56 - 8 * i));
    out[48] = (uint8_t)n;
    memcpy(out + 49, b->name, n);
    return 49 + n;
}

int beacon_decode(const uint8_t *d, size_t len, beacon_info *out, char *err, size_t errlen) {
    if (len < MAGIC_LEN + 1 || memcmp(d, MAGIC, MAGIC_LEN))
        return rl_errf(err, errlen, "not a relais beacon");
    if (d[3] != BEACON_FORMAT)
        return rl_errf(err, errlen, "beacon format %u (this relais reads format %d)", d[3], BEACON_FORMAT);
    if (len < 50 || len < 49u + d[48])
        return rl_errf(err, errlen, "a beacon of %zu bytes is cut short", len);
    const uint8_t n = d[48];
    memset(out, 0, sizeof *out);
    out->protocol = get16(d + 4);
    out->port = get16(d + 6);
    memcpy(out->key, d + 8, CURVE_KEY_BYTES);
    for (int i = 0; i < 8; i++)
        out->free_ram = out->free_ram << 8 | d[40 + i];
    if (n <= BEACON_NAME_MAX)
        memcpy(out->name, d + 49, n);
    if (!out->port)
        return rl_errf(err, errlen, "a beacon with port 0");
    if (n > BEACON_NAME_MAX || memchr(d + 49, 0, n) || !beacon_name_ok(out->name))
        return rl_errf(err, errlen, "a beacon whose name is not 1-%d of [A-Za-z0-9._-]", BEACON_NAME_MAX);
    uint8_t acc = 0;
    for (int i = 0; i < CURVE_KEY_BYTES; i++)
        acc |= out->key[i];
    if (!acc)
        return rl_errf(err, errlen, "a beacon with an all-zero key");
    return 0;
}

/* CZMQ's global setup, once, undone where it is in the way (see the top). */
static void beacon_init(void) {
    static bool done;
    if (done)
        return;
    done = true;
    zsys_init();
    zsys_handler_set(NULL); /* restores the handlers installed before zsys_init */
    zsys_set_logstream(stderr);
}

static beacon *beacon_new(int port, char *err, size_t errlen) {
    if (port < 1 || port > 65535) {
        rl_errf(err, errlen, "beacon port %d is not in 1..65535", port);
        return NULL;
    }
    beacon_init();
    beacon *b = calloc(1, sizeof *b);
    if (!b || !(b->actor = zactor_new(zbeacon, NULL))) {
        free(b);
        rl_errf(err, errlen, "cannot start the beacon: out of memory");
        return NULL;
    }
    b->port = port;
    zsock_send(b->actor, "si", "CONFIGURE", port);
    char *host = zstr_recv(b->actor);
    const bool ok = host && *host;
    zstr_free(&host);
    if (!ok) {
        rl_errf(err, errlen, "no network interface can broadcast beacons on UDP port %d (ZSYS_INTERFACE=%s)", port,
                zsys_interface());
        beacon_destroy(&b);
    }
    return b;
}

beacon *beacon_announce_new(int port, const beacon_info *info, char *err, size_t errlen) {
    beacon *b = beacon_new(port, err, errlen);
    if (b && beacon_announce_update(b, info, err, errlen))
        beacon_destroy(&b);
    return b;
}

int beacon_announce_update(beacon *b, const beacon_info *info, char *err, size_t errlen) {
    uint8_t buf[BEACON_MAX_BYTES];
    size_t n = beacon_encode(info, buf);
    if (!n)
        return rl_errf(err, errlen,
                       "cannot announce '%s' on port %u: a beacon needs a port and a name of 1-%d of "
                       "[A-Za-z0-9._-]",
                       info->name, info->port, BEACON_NAME_MAX);
    zsock_send(b->actor, "sbi", "PUBLISH", buf, n, BEACON_INTERVAL_MS);
    return 0;
}

beacon *beacon_listen_new(int port, char *err, size_t errlen) {
    beacon *b = beacon_new(port, err, errlen);
    if (b)
        zsock_send(b->actor, "sb", "SUBSCRIBE", MAGIC, (size_t)MAGIC_LEN); /* other programs' beacons: not ours */
    return b;
}

/* A malformed relais beacon: logged at most once per BAD_LOG_GAP_S, so a
 * broken or hostile sender cannot fill the log. */
static void log_bad(beacon *b, const char *ip, const char *why) {
    const double now = rl_now_s();
    if (b->bad_logged_s > 0 && now - b->bad_logged_s < BAD_LOG_GAP_S) {
        b->bad_left_out++;
        return;
    }
    rl_log(RL_LOG_WARN, "ignored a beacon from %s: %s (%u malformed beacons not logged since the last line)", ip, why,
           b->bad_left_out);
    b->bad_left_out = 0;
    b->bad_logged_s = now;
}

int beacon_recv(beacon *b, int timeout_ms, beacon_heard *out) {
    const double end = rl_now_s() + timeout_ms / 1e3;
    for (;;) {
        const double left = end - rl_now_s();
        zmq_pollitem_t item = {zsock_resolve(b->actor), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, left > 0 ? (long)(left * 1e3) : 0) <= 0)
            return 0;
        char *ip = NULL;
        zframe_t *payload = NULL;
        if (zsock_recv(b->actor, "sf", &ip, &payload) || !ip || !payload) {
            zstr_free(&ip);
            zframe_destroy(&payload);
            return 0;
        }
        char why[160];
        int rc = beacon_decode(zframe_data(payload), zframe_size(payload), &out->info, why, sizeof why);
        if (rc)
            log_bad(b, ip, why);
        else {
            snprintf(out->ip, sizeof out->ip, "%s", ip);
            snprintf(out->endpoint, sizeof out->endpoint, "tcp://%s:%u", ip, out->info.port);
            curve_fingerprint(out->info.key, out->fp);
        }
        zstr_free(&ip);
        zframe_destroy(&payload);
        if (rc == 0)
            return 1;
    }
}

void beacon_destroy(beacon **pb) {
    beacon *b = pb ? *pb : NULL;
    if (!b)
        return;
    zactor_destroy(&b->actor);
    free(b);
    *pb = NULL;
}
