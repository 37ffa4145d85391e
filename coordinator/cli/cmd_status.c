/* `relais status`: what the nodes of a cluster are doing, from outside.
 *
 * Two sources, alone or together. `--server URL` reads GET /health of a
 * running `relais serve` (each node's state, layers, sessions and the KV
 * cache they hold, as the server sees them). `--cluster FILE` greets every
 * node of a cluster file with Hello, as the coordinator does before a plan,
 * each from its own short-lived link so that one silent node delays no
 * other: what answers gives its host, memory, cores and measured speed, and
 * the time its answer took (the server alone gives a node's mean compute
 * time per micro-batch instead of a speed). Hello asks nothing of a node's state, so this is
 * safe beside a serving coordinator; it uses the cluster file's coordinator
 * key and a result endpoint of its own on an ephemeral port. With both, the
 * rows are matched by node name.
 *
 * Prints a table (or --json); the exit status is 1 when any node is down (the
 * server reports it lost, or it did not answer Hello) or the server cannot
 * be read, 2 on a usage error. Only plain http:// is spoken. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "cluster.h"
#include "cluster_config.h"
#include "cluster_discover.h"
#include "commands.h"
#include "curve.h"
#include "io_pin.h"
#include "util.h"

#define MAX_REPLY (4u << 20) /* a /health of 64 nodes is a few KiB */

typedef struct {
    char name[64], address[160], fingerprint[CURVE_FP_LEN];
    char state[16]; /* the server's word ("ready", "loading", "lost") */
    char why[512];  /* why Hello went unanswered */
    char layers[24];
    bool from_server, greeted, answered;
    uint32_t sessions;
    uint64_t kv_bytes, batches;
    double busy_seconds;    /* the server's count of the node's compute time */
    cluster_node_info info; /* when answered */
    double hello_ms;
    /* for the Hello thread */
    const cluster_config *cfg;
    const cluster_node *node;
    int timeout_ms;
} st_row;

typedef struct {
    const char *server, *cluster, *key;
    bool json;
    int timeout_ms;
    st_row rows[CLUSTER_MAX_NODES * 2];
    uint32_t n;
    char server_status[32], model[128];
} st_args;

static void usage(FILE *out) {
    fprintf(out,
            "usage: relais status (--server URL [--api-key KEY] | --cluster FILE | both) [--json]\n\n"
            "The nodes of a cluster: name, address, key fingerprint, state, layers, memory, KV cache,\n"
            "when last seen, measured speed.\n\n"
            "  --server URL        a running `relais serve` (http://HOST:PORT): reads its /health\n"
            "  --api-key KEY       the server's key (needed when it has one: /health shows nodes only with it)\n"
            "  --cluster FILE      greets each node of a cluster file with Hello, with its coordinator key\n"
            "  --timeout MS        how long to wait for a node or the server (default 3000)\n"
            "  --json              one JSON object instead of the table\n\n"
            "Exit status 1 when a node is down (lost, or no answer) or the server cannot be read.\n");
}

/* ---- /health over plain HTTP ---- */

/* "http://HOST:PORT[/...]" -> host and port. 0, or -1 with err. */
static int parse_url(const char *url, char *host, size_t hostlen, char *port, size_t portlen, char *err,
                     size_t errlen) {
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "--server %s: give http://HOST:PORT (https is not spoken here)", url);
        return -1;
    }
    const char *h = url + 7, *end = h + strcspn(h, "/");
    const char *colon = NULL;
    if (*h == '[') { /* [IPv6]:port */
        const char *close = memchr(h, ']', (size_t)(end - h));
        if (!close) {
            snprintf(err, errlen, "--server %s: unclosed '['", url);
            return -1;
        }
        snprintf(host, hostlen, "%.*s", (int)(close - h - 1), h + 1);
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        snprintf(host, hostlen, "%.*s", (int)((colon ? colon : end) - h), h);
    }
    snprintf(port, portlen, "%.*s", colon ? (int)(end - colon - 1) : 2, colon ? colon + 1 : "80");
    if (!*host || !*port) {
        snprintf(err, errlen, "--server %s: no host or port", url);
        return -1;
    }
    return 0;
}

static int connect_to(const char *host, const char *port, int timeout_ms, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen)) {
            snprintf(err, errlen, "cannot connect to %s port %s: %s", host, port, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* GET path; the body (malloc'd) and the status. NULL with err. */
static char *http_get(const st_args *a, const char *path, int *status, char *err, size_t errlen) {
    char host[256], port[16];
    if (parse_url(a->server, host, sizeof host, port, sizeof port, err, errlen))
        return NULL;
    int fd = connect_to(host, port, a->timeout_ms, err, errlen);
    if (fd < 0)
        return NULL;
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s:%s\r\n%s%s%sConnection: close\r\n\r\n", path, host,
                     port, a->key ? "Authorization: Bearer " : "", a->key ? a->key : "", a->key ? "\r\n" : "");
    char *buf = NULL;
    size_t len = 0;
    if (n >= (int)sizeof req || write(fd, req, (size_t)n) != n) {
        snprintf(err, errlen, "cannot send the request to %s", a->server);
        goto fail;
    }
    if (!(buf = malloc(MAX_REPLY + 1)))
        goto fail;
    for (ssize_t got; len < MAX_REPLY && (got = read(fd, buf + len, MAX_REPLY - len)) != 0; len += (size_t)got)
        if (got < 0) {
            snprintf(err, errlen, "%s%s: %s", a->server, path, errno == EAGAIN ? "no answer in time" : strerror(errno));
            goto fail;
        }
    buf[len] = 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/%*s %d", status) != 1 || !body) {
        snprintf(err, errlen, "%s%s: not an HTTP reply", a->server, path);
        goto fail;
    }
    memmove(buf, body + 4, len - (size_t)(body + 4 - buf) + 1);
    close(fd);
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

static st_row *row_named(st_args *a, const char *name) {
    for (uint32_t i = 0; i < a->n; i++)
        if (!strcmp(a->rows[i].name, name))
            return &a->rows[i];
    if (a->n == sizeof a->rows / sizeof a->rows[0])
        return NULL;
    st_row *r = &a->rows[a->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    return r;
}

/* The server's nodes from /health. 0, or -1 with err. */
static int read_server(st_args *a, char *err, size_t errlen) {
    int status = 0;
    char *body = http_get(a, "/health", &status, err, errlen);
    if (!body)
        return -1;
    json_error_t je;
    json_t *h = json_loads(body, 0, &je);
    free(body);
    const char *st = h ? json_string_value(json_object_get(h, "status")) : NULL;
    if (!st) {
        snprintf(err, errlen, "%s/health (HTTP %d): not the /health of relais serve", a->server, status);
        json_decref(h);
        return -1;
    }
    if (!json_is_array(json_object_get(h, "nodes")) && (!strcmp(st, "ok") || !strcmp(st, "degraded"))) {
        snprintf(err, errlen, "%s/health is %s and shows its nodes only with the server's API key: pass --api-key",
                 a->server, st);
        snprintf(a->server_status, sizeof a->server_status, "%s", st);
        json_decref(h);
        return -1;
    }
    snprintf(a->server_status, sizeof a->server_status, "%s", st);
    const char *model = json_string_value(json_object_get(h, "model"));
    snprintf(a->model, sizeof a->model, "%s", model ? model : "");
    size_t i;
    json_t *nd;
    json_array_foreach(json_object_get(h, "nodes"), i, nd) {
        const char *name = json_string_value(json_object_get(nd, "name"));
        st_row *r = name ? row_named(a, name) : NULL;
        if (!r)
            continue;
        r->from_server = true;
        const char *s = json_string_value(json_object_get(nd, "state")),
                   *l = json_string_value(json_object_get(nd, "layers"));
        snprintf(r->state, sizeof r->state, "%s", s ? s : "?");
        snprintf(r->layers, sizeof r->layers, "%s", l ? l : "");
        r->sessions = (uint32_t)json_integer_value(json_object_get(nd, "sessions"));
        r->kv_bytes = (uint64_t)json_integer_value(json_object_get(nd, "kv_bytes"));
        r->batches = (uint64_t)json_integer_value(json_object_get(nd, "batches"));
        r->busy_seconds = json_number_value(json_object_get(nd, "busy_seconds"));
    }
    json_decref(h);
    return 0;
}

/* ---- Hello to the nodes of a cluster file ---- */

/* One node, over a link of its own (a thread per node). */
static void *greet(void *arg) {
    st_row *r = arg;
    char err[512];
    bool answered = false;
    double t0 = (rl_now_s() * 1e3);
    cluster *c =
        cluster_new(cluster_config_key(r->cfg), "tcp://127.0.0.1:*", NULL, IO_PIN_NONE, r->node, 1, err, sizeof err);
    if (c && cluster_hello_some(c, r->timeout_ms, &answered, err, sizeof err) == 1 && answered) {
        r->answered = true;
        r->hello_ms = (rl_now_s() * 1e3) - t0;
        r->info = *cluster_info(c, 0);
    } else {
        snprintf(r->why, sizeof r->why, "%s", strncmp(err, "no node answered: ", 18) ? err : err + 18);
    }
    cluster_destroy(&c);
    return NULL;
}

static int greet_cluster(st_args *a, cluster_config **cfg, char *err, size_t errlen) {
    if (!(*cfg = cluster_config_open(a->cluster, err, errlen)))
        return -1;
    uint32_t n = cluster_config_n_nodes(*cfg);
    pthread_t th[CLUSTER_MAX_NODES];
    st_row *rows[CLUSTER_MAX_NODES];
    for (uint32_t i = 0; i < n; i++) {
        const cluster_node *nd = cluster_config_node(*cfg, i);
        st_row *r = rows[i] = row_named(a, nd->name);
        if (!r) {
            snprintf(err, errlen, "too many nodes");
            return -1;
        }
        snprintf(r->address, sizeof r->address, "%s", nd->address);
        uint8_t key[CURVE_KEY_BYTES];
        char why[256];
        if (curve_public_load(nd->public_key, key, why, sizeof why) == 0)
            curve_fingerprint(key, r->fingerprint);
        r->greeted = true;
        r->cfg = *cfg, r->node = nd, r->timeout_ms = a->timeout_ms;
    }
    for (uint32_t i = 0; i < n; i++)
        if (pthread_create(&th[i], NULL, greet, rows[i])) {
            greet(rows[i]);
            th[i] = 0;
        }
    for (uint32_t i = 0; i < n; i++)
        if (th[i])
            pthread_join(th[i], NULL);
    return 0;
}

/* ---- output ---- */

static bool is_down(const st_row *r) {
    return (r->from_server && !strcmp(r->state, "lost")) || (r->greeted && !r->answered);
}

static const char *state_of(const st_row *r) {
    if (r->greeted && !r->answered)
        return "down";
    return r->from_server ? r->state : "up";
}

static void gib(char *out, size_t len, double bytes) { snprintf(out, len, "%.1f GiB", bytes / (1024.0 * 1024 * 1024)); }

static void print_table(const st_args *a) {
    if (a->server)
        printf("server %s: %s%s%s\n\n", a->server, a->server_status, *a->model ? ", model " : "", a->model);
    printf("%-12s %-26s %-16s %-10s %-7s %-19s %-12s %-9s %s\n", "NAME", "ADDRESS", "KEY", "STATE", "LAYERS",
           "MEMORY free/total", "KV (sessions)", "SEEN", "SPEED");
    for (uint32_t i = 0; i < a->n; i++) {
        const st_row *r = &a->rows[i];
        char mem[40] = "-", kv[40] = "-", seen[24] = "-", speed[40] = "-", f[16], t[16];
        if (r->answered) {
            gib(f, sizeof f, (double)r->info.free_ram), gib(t, sizeof t, (double)r->info.total_ram);
            snprintf(mem, sizeof mem, "%s/%s", f, t);
            snprintf(seen, sizeof seen, "now %.0fms", r->hello_ms);
            if (r->info.matvec_bytes_per_s > 0)
                snprintf(speed, sizeof speed, "%.2f GB/s", r->info.matvec_bytes_per_s / 1e9);
        } else if (r->greeted)
            snprintf(seen, sizeof seen, "no answer");
        if (!r->answered && r->batches) /* without Hello: the server's mean time per micro-batch */
            snprintf(speed, sizeof speed, "%.2f ms/batch", r->busy_seconds * 1e3 / (double)r->batches);
        if (r->from_server)
            snprintf(kv, sizeof kv, "%.1f MiB (%u)", (double)r->kv_bytes / 1048576.0, r->sessions);
        printf("%-12s %-26s %-16s %-10s %-7s %-19s %-12s %-9s %s\n", r->name, *r->address ? r->address : "-",
               *r->fingerprint ? r->fingerprint : "-", state_of(r), *r->layers ? r->layers : "-", mem, kv, seen, speed);
    }
    /* the reasons of the nodes down, in full, below the table */
    for (uint32_t i = 0; i < a->n; i++)
        if (a->rows[i].greeted && !a->rows[i].answered)
            printf("%s: %s\n", a->rows[i].name, a->rows[i].why);
}

static int print_json(const st_args *a, uint32_t down) {
    json_t *nodes = json_array();
    for (uint32_t i = 0; i < a->n; i++) {
        const st_row *r = &a->rows[i];
        json_t *o =
            json_pack("{s:s, s:s?, s:s?, s:s, s:b}", "name", r->name, "address", *r->address ? r->address : NULL,
                      "fingerprint", *r->fingerprint ? r->fingerprint : NULL, "state", state_of(r), "down", is_down(r));
        if (r->from_server)
            json_object_update_new(o,
                                   json_pack("{s:s, s:i, s:I, s:I, s:f}", "layers", r->layers, "sessions",
                                             (int)r->sessions, "kv_bytes", (json_int_t)r->kv_bytes, "batches",
                                             (json_int_t)r->batches, "busy_seconds", r->busy_seconds));
        if (r->greeted)
            json_object_set_new(o, "answered", json_boolean(r->answered));
        if (r->greeted && !r->answered)
            json_object_set_new(o, "error", json_string(r->why));
        if (r->answered)
            json_object_update_new(o,
                                   json_pack("{s:s, s:i, s:I, s:I, s:f, s:f, s:s}", "hostname", r->info.hostname,
                                             "cores", (int)r->info.cores, "free_ram", (json_int_t)r->info.free_ram,
                                             "total_ram", (json_int_t)r->info.total_ram, "speed_bytes_per_s",
                                             r->info.matvec_bytes_per_s, "hello_ms", r->hello_ms, "software",
                                             r->info.software));
        json_array_append_new(nodes, o);
    }
    json_t *top = json_pack("{s:o, s:i}", "nodes", nodes, "down", (int)down);
    if (a->server)
        json_object_set_new(
            top, "server",
            json_pack("{s:s, s:s, s:s}", "url", a->server, "status", a->server_status, "model", a->model));
    char *text = json_dumps(top, JSON_INDENT(2));
    json_decref(top);
    if (!text)
        return -1;
    puts(text);
    free(text);
    return 0;
}

/* ---- the command ---- */

static int parse_args(int argc, char **argv, st_args *a) {
    enum { OPT_SERVER = 1, OPT_KEY, OPT_CLUSTER, OPT_JSON, OPT_TIMEOUT };
    static const struct option opts[] = {{"server", required_argument, 0, OPT_SERVER},
                                         {"api-key", required_argument, 0, OPT_KEY},
                                         {"cluster", required_argument, 0, OPT_CLUSTER},
                                         {"json", no_argument, 0, OPT_JSON},
                                         {"timeout", required_argument, 0, OPT_TIMEOUT},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int64_t v;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case OPT_SERVER:
            a->server = optarg;
            break;
        case OPT_KEY:
            a->key = optarg;
            break;
        case OPT_CLUSTER:
            a->cluster = optarg;
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_TIMEOUT:
            if (cli_parse_i64("--timeout", optarg, 1, 600000, &v))
                return -1;
            a->timeout_ms = (int)v;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc || (!a->server && !a->cluster)) {
        fprintf(stderr, "relais status: %s\n",
                optind < argc ? "unexpected argument" : "give --server URL or --cluster FILE");
        usage(stderr);
        return -1;
    }
    return 0;
}

int cmd_status(int argc, char **argv) {
    st_args *a = calloc(1, sizeof *a);
    if (!a)
        return 1;
    a->timeout_ms = 3000;
    int rc = parse_args(argc, argv, a);
    if (rc) {
        free(a);
        return rc > 0 ? 0 : 2;
    }
    char err[512];
    cluster_config *cfg = NULL;
    bool failed = false;
    if (a->server && read_server(a, err, sizeof err)) {
        fprintf(stderr, "relais status: %s\n", err);
        if (!a->server_status[0])
            snprintf(a->server_status, sizeof a->server_status, "unreachable");
        failed = true;
    }
    if (a->cluster && greet_cluster(a, &cfg, err, sizeof err)) {
        fprintf(stderr, "relais status: %s\n", err);
        cluster_config_destroy(&cfg);
        free(a);
        return 2;
    }
    uint32_t down = 0;
    for (uint32_t i = 0; i < a->n; i++)
        down += is_down(&a->rows[i]);
    if (a->json)
        print_json(a, down);
    else
        print_table(a);
    failed |= a->server && !failed && strcmp(a->server_status, "ok") != 0;
    cluster_config_destroy(&cfg);
    free(a);
    return failed || down ? 1 : 0;
}
