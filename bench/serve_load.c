/* serve_load: a small load generator for `relais serve`, loopback only.
 *
 * C clients run at once, each sending R streamed /v1/completions requests one
 * after the other (HTTP/1.0, so the reply ends when the connection closes and
 * no chunked decoding is needed). For every request it records the time to
 * the first streamed event (time to first token: the server sends its
 * headers with the first token) and the completion tokens of the final
 * usage chunk. Prints one line:
 *   concurrency requests failed tokens seconds tokens_per_s ttft_p50_ms ttft_p95_ms
 * Every socket has a receive timeout, so a run is bounded in time.
 *
 * usage: serve_load PORT CONCURRENCY REQUESTS_PER_CLIENT MAX_TOKENS */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 256
#define TIMEOUT_S 300

typedef struct {
    int port;
    int client; /* index: makes each client's prompt different */
    int requests;
    int max_tokens;
    double *ttft; /* (requests) seconds, -1 for a failed request */
    long tokens;  /* completion tokens of the successful requests */
    int failed;
} client;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int connect_loopback(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {TIMEOUT_S, 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One streamed request; returns completion tokens (>= 0) and the time to the
 * first event in *ttft, or -1 on failure. */
static long one_request(const client *c, int k, double *ttft) {
    char body[512], head[256], buf[16384];
    int blen = snprintf(body, sizeof body,
                        "{\"prompt\":\"Client %d, request %d: tell me a long story about the sea and the "
                        "mountains.\",\"max_tokens\":%d,\"temperature\":0,\"stream\":true,"
                        "\"stream_options\":{\"include_usage\":true}}",
                        c->client, k, c->max_tokens);
    int hlen = snprintf(head, sizeof head,
                        "POST /v1/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\n\r\n",
                        blen);
    int fd = connect_loopback(c->port);
    if (fd < 0)
        return -1;
    double t0 = now_s();
    *ttft = -1;
    long tokens = -1;
    size_t have = 0;
    if (write(fd, head, (size_t)hlen) == hlen && write(fd, body, (size_t)blen) == blen) {
        ssize_t n;
        while ((n = read(fd, buf + have, sizeof buf - 1 - have)) > 0) {
            have += (size_t)n;
            buf[have] = 0;
            if (*ttft < 0 && strstr(buf, "\r\n\r\n") && strstr(buf, "data: "))
                *ttft = now_s() - t0;
            const char *u = strstr(buf, "\"completion_tokens\":");
            if (u)
                tokens = strtol(u + 20, NULL, 10);
            if (have > sizeof buf / 2) { /* keep the tail: the usage chunk comes last */
                memmove(buf, buf + have - 1024, 1024);
                have = 1024;
            }
        }
    }
    close(fd);
    return strncmp(buf, "HTTP/1.", 7) == 0 || tokens >= 0 ? tokens : -1;
}

static void *run_client(void *arg) {
    client *c = arg;
    for (int k = 0; k < c->requests; k++) {
        long t = one_request(c, k, &c->ttft[k]);
        if (t < 0 || c->ttft[k] < 0) {
            c->failed++;
            c->ttft[k] = -1;
        } else {
            c->tokens += t;
        }
    }
    return NULL;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *v, int n, double p) {
    if (n == 0)
        return 0;
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: serve_load PORT CONCURRENCY REQUESTS_PER_CLIENT MAX_TOKENS\n");
        return 2;
    }
    int port = atoi(argv[1]), conc = atoi(argv[2]), reqs = atoi(argv[3]), max_tokens = atoi(argv[4]);
    if (port <= 0 || port > 65535 || conc < 1 || conc > MAX_CLIENTS || reqs < 1 || reqs > 100 || max_tokens < 1) {
        fprintf(stderr, "serve_load: bad arguments (concurrency 1..%d, requests 1..100)\n", MAX_CLIENTS);
        return 2;
    }
    client cl[MAX_CLIENTS];
    pthread_t th[MAX_CLIENTS];
    double *all = calloc((size_t)conc * (size_t)reqs, sizeof *all);
    if (!all)
        return 1;
    double t0 = now_s();
    for (int i = 0; i < conc; i++) {
        cl[i] = (client){port, i, reqs, max_tokens, all + (size_t)i * (size_t)reqs, 0, 0};
        pthread_create(&th[i], NULL, run_client, &cl[i]);
    }
    long tokens = 0;
    int failed = 0;
    for (int i = 0; i < conc; i++) {
        pthread_join(th[i], NULL);
        tokens += cl[i].tokens;
        failed += cl[i].failed;
    }
    double secs = now_s() - t0;
    int n = 0;
    for (int i = 0; i < conc * reqs; i++)
        if (all[i] >= 0)
            all[n++] = all[i];
    qsort(all, (size_t)n, sizeof *all, by_value);
    printf("%d %d %d %ld %.2f %.2f %.0f %.0f\n", conc, conc * reqs, failed, tokens, secs, tokens / secs,
           percentile(all, n, 0.5) * 1000, percentile(all, n, 0.95) * 1000);
    free(all);
    return failed ? 1 : 0;
}
