/* The floor under a cluster hop: what one ZeroMQ link costs on this machine
 * with nothing of relais in it. Two sides on loopback, each with its own
 * ZeroMQ context (so its own I/O thread, as every node has), bounce a
 * message of a Forward's size back and forth; the one-way time is half the
 * round trip, over the path a hop takes: the sender's I/O thread, TCP, the
 * receiver's I/O thread and a wake-up of each, with and without CURVE.
 * The cluster trace (bench/trace_hops.awk) measures each hop of the real
 * pipeline; the difference between the two is what relais adds.
 *
 *   link_bench [-n ROUNDS] [-g GAP_US] [BYTES...]
 *
 * (defaults: 1000 rounds, none apart, 8 and 16400 bytes). -g waits GAP_US
 * before each round, as a stage of a pipeline waits for its next token: the
 * threads on both sides are asleep when the message comes, and on a virtual
 * machine their CPUs may have halted. Prints one line per size and security:
 * median and minimum one-way microseconds. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct { /* one side of the link: its own context, so its own I/O thread, as a node has */
    void *ctx, *sock;
} side;

typedef struct { /* the keys of a CURVE link, Z85 text */
    char server_pub[41], server_sec[41], client_pub[41], client_sec[41];
} keys;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int open_side(side *s, const keys *k, bool server) {
    s->ctx = zmq_ctx_new();
    s->sock = s->ctx ? zmq_socket(s->ctx, ZMQ_PAIR) : NULL;
    if (!s->sock || !k)
        return s->sock ? 0 : -1;
    const int one = 1;
    if (server)
        return zmq_setsockopt(s->sock, ZMQ_CURVE_SERVER, &one, sizeof one) |
            zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, k->server_sec, 40);
    return zmq_setsockopt(s->sock, ZMQ_CURVE_SERVERKEY, k->server_pub, 40) |
        zmq_setsockopt(s->sock, ZMQ_CURVE_PUBLICKEY, k->client_pub, 40) |
        zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, k->client_sec, 40);
}

static void close_side(side *s) {
    if (s->sock)
        zmq_close(s->sock);
    if (s->ctx)
        zmq_ctx_term(s->ctx);
}

/* The echo side: returns every message until an empty one. */
static void *echo(void *arg) {
    void *sock = arg;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0 || zmq_msg_size(&m) == 0) {
            zmq_msg_close(&m);
            return NULL;
        }
        zmq_msg_send(&m, sock, 0);
    }
}

/* Bounces `bytes` over the connected socket; fills `rounds` one-way times
 * in us; 0 or -1. */
static int bounce(void *sock, size_t bytes, int rounds, int gap_us, double *oneway) {
    char *buf = calloc(bytes ? bytes : 1, 1);
    int rc = buf ? 0 : -1;
    for (int i = -10; rc == 0 && i < rounds; i++) { /* 10 rounds to warm up */
        if (gap_us)
            usleep((useconds_t)gap_us);
        const double t0 = now_us();
        zmq_msg_t m;
        zmq_msg_init(&m);
        rc = zmq_send(sock, buf, bytes, 0) < 0 || zmq_msg_recv(&m, sock, 0) < 0 ? -1 : 0;
        zmq_msg_close(&m);
        if (i >= 0)
            oneway[i] = (now_us() - t0) / 2;
    }
    zmq_send(sock, "", 0, 0); /* ends the echo */
    free(buf);
    return rc;
}

static int measure(size_t bytes, bool curve, int rounds, int gap_us) {
    keys k;
    side a = {0}, b = {0};
    pthread_t th;
    double *t = calloc((size_t)rounds, sizeof *t);
    int rc = t &&
            (!curve ||
             (zmq_curve_keypair(k.server_pub, k.server_sec) | zmq_curve_keypair(k.client_pub, k.client_sec)) == 0)
        ? 0
        : -1;
    rc = rc || open_side(&b, curve ? &k : NULL, true) || zmq_bind(b.sock, "tcp://127.0.0.1:*") ? -1 : 0;
    char endpoint[128];
    size_t len = sizeof endpoint;
    rc = rc || zmq_getsockopt(b.sock, ZMQ_LAST_ENDPOINT, endpoint, &len) || open_side(&a, curve ? &k : NULL, false) ||
            zmq_connect(a.sock, endpoint)
        ? -1
        : 0;
    if (rc == 0 && pthread_create(&th, NULL, echo, b.sock) == 0) {
        rc = bounce(a.sock, bytes, rounds, gap_us, t);
        pthread_join(th, NULL);
    } else {
        rc = -1;
    }
    if (rc == 0) {
        qsort(t, (size_t)rounds, sizeof *t, by_value);
        printf("%-6s %7zu bytes  %6d us apart   one way: median %6.1f us   min %6.1f us\n", curve ? "CURVE" : "plain",
               bytes, gap_us, t[rounds / 2], t[0]);
    } else {
        fprintf(stderr, "link_bench: the %zu-byte %s bounce failed: %s\n", bytes, curve ? "CURVE" : "plain",
                zmq_strerror(zmq_errno()));
    }
    close_side(&a);
    close_side(&b);
    free(t);
    return rc;
}

int main(int argc, char **argv) {
    int rounds = 1000, gap_us = 0, opt;
    while ((opt = getopt(argc, argv, "n:g:")) != -1) {
        if (opt == 'n')
            rounds = atoi(optarg);
        else if (opt == 'g')
            gap_us = atoi(optarg);
        else
            rounds = 0;
    }
    if (rounds < 1 || gap_us < 0) {
        fprintf(stderr, "usage: link_bench [-n ROUNDS] [-g GAP_US] [BYTES...]\n");
        return 2;
    }
    static const size_t defaults[] = {8, 16400};
    const int n = argc > optind ? argc - optind : 2;
    int rc = 0;
    for (int curve = 0; curve < 2; curve++)
        for (int i = 0; i < n; i++)
            rc |= measure(argc > optind ? (size_t)atol(argv[optind + i]) : defaults[i], curve, rounds, gap_us);
    return rc ? 1 : 0;
}
