/* relais-node: the daemon that holds one slice of a model for a relais
 * coordinator. This file reads the options (from a config file, then the
 * command line, which wins), installs the stop signals and runs the server. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "beacon.h"
#include "io_pin.h"
#include "log.h"
#include "node_server.h"

#define DEFAULT_LISTEN "tcp://0.0.0.0:7700"
#define DEFAULT_MAX_MESSAGE_MIB 64
#define DEFAULT_CHUNK_KIB 1024

/* Option values own their strings: the config file's lines are gone once it is read. */
typedef struct {
    char *listen, *key, *trust, *models, *cache, *name;
    long threads;
    long beacon_port; /* 0: off */
    long max_message_mib;
    long chunk_kib;
    unsigned long long max_memory;
    int io_cpu;
} node_options;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: relais-node --key FILE --trust DIR --models DIR --cache DIR [options]\n\n"
            "Holds a slice of a model's layers for a relais coordinator and runs it.\n\n"
            "  --listen ENDPOINT   where coordinators and the previous node connect (default " DEFAULT_LISTEN ")\n"
            "  --key FILE          this node's secret certificate; created (mode 0600, with FILE's .pub\n"
            "                      beside it) when missing. Give the .pub to the coordinator's cluster file.\n"
            "  --trust DIR         public certificates (*.pub) of the coordinators allowed to use this node\n"
            "  --models DIR        model files (*.gguf) this node can serve, known by their sha256\n"
            "  --cache DIR         hash and benchmark caches, and the slices received from a coordinator\n"
            "                      when the model is not in --models (created when missing)\n"
            "  --threads N         compute threads when the coordinator leaves it to the node (default: one\n"
            "                      per core)\n"
            "  --max-message-mib N largest message accepted (default %d)\n"
            "  --max-memory SIZE   offer at most SIZE bytes of RAM for weights and KV (suffix K, M or G;\n"
            "                      default: what the machine has available)\n"
            "  --weight-chunk-kib N  chunk size asked for when this node receives its slice from the\n"
            "                      coordinator because it lacks the model file (default %d)\n"
            "  --io-cpu CPU|none   receive and send messages on one CPU (default: none); saves wake-ups\n"
            "                      of idle CPUs per hop where they are slow (VMs); compute uses every core\n"
            "  --beacon PORT|off   announce this node on the LAN by UDP broadcast on PORT (its TCP port,\n"
            "                      key, name and free memory), so `relais discover` and a cluster file\n"
            "                      with `discover: true` find it (default: off; the usual PORT is %d).\n"
            "                      A beacon grants nothing: coordinators use only keys they trust\n"
            "  --name NAME         the name the beacon announces (default: the host name)\n"
            "  --config FILE       read options from FILE first; the command line overrides it\n"
            "  -h, --help          this text\n\n"
            "Config file: one `name = value` per line, names as the long options without the dashes,\n"
            "'#' starts a comment, e.g.\n"
            "    listen = tcp://0.0.0.0:7700\n"
            "    key = /etc/relais/node.key\n"
            "    trust = /etc/relais/trusted\n"
            "    models = /var/lib/relais/models\n"
            "    cache = /var/cache/relais\n"
            "    threads = 4\n"
            "    max-memory = 3G\n\n"
            "SIGINT or SIGTERM stops the node cleanly. RELAIS_LOG=debug|info|warn|error sets the log level;\n"
            "RELAIS_TRACE=1 logs the times of every Forward (see bench/trace_hops.awk).\n",
            DEFAULT_MAX_MESSAGE_MIB, DEFAULT_CHUNK_KIB, BEACON_DEFAULT_PORT);
}

static int parse_long(const char *what, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "relais-node: %s: '%s' is not an integer in [%ld, %ld]\n", what, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* SIZE: bytes, or with a K, M or G suffix (powers of 1024). */
static int parse_size(const char *what, const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = !*end ? 0 : !strcmp(end, "K") ? 10 : !strcmp(end, "M") ? 20 : !strcmp(end, "G") ? 30 : -1;
    if (errno || end == s || *s == '-' || shift < 0 || v > (~0ULL >> shift)) {
        fprintf(stderr, "relais-node: %s: '%s' is not a size (bytes, or a number with K, M or G)\n", what, s);
        return -1;
    }
    *out = v << shift;
    return 0;
}

static int set_string(char **slot, const char *v) {
    free(*slot);
    *slot = strdup(v);
    return *slot ? 0 : -1;
}

/* Sets option `name` (long option name) to v. 0, or -1 with a message. */
static int set_option(node_options *o, const char *name, const char *v) {
    char **strings[] = {&o->listen, &o->key, &o->trust, &o->models, &o->cache, &o->name};
    const char *names[] = {"listen", "key", "trust", "models", "cache", "name"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i]))
            return set_string(strings[i], v);
    if (!strcmp(name, "threads"))
        return parse_long("threads", v, 0, 4096, &o->threads);
    if (!strcmp(name, "max-message-mib"))
        return parse_long("max-message-mib", v, 1, 4096, &o->max_message_mib);
    if (!strcmp(name, "weight-chunk-kib"))
        return parse_long("weight-chunk-kib", v, 4, 16384, &o->chunk_kib);
    if (!strcmp(name, "beacon")) {
        if (!strcmp(v, "off")) {
            o->beacon_port = 0;
            return 0;
        }
        return parse_long("beacon", v, 1, 65535, &o->beacon_port);
    }
    if (!strcmp(name, "max-memory"))
        return parse_size("max-memory", v, &o->max_memory);
    if (!strcmp(name, "io-cpu")) {
        char why[128];
        if (io_pin_parse(v, &o->io_cpu, why, sizeof why) == 0)
            return 0;
        fprintf(stderr, "relais-node: io-cpu: %s\n", why);
        return -1;
    }
    fprintf(stderr, "relais-node: unknown option '%s'\n", name);
    return -1;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n", s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int read_config(node_options *o, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "relais-node: config %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int rc = 0;
    for (int no = 1; rc == 0 && fgets(line, sizeof line, f); no++) {
        line[strcspn(line, "#")] = '\0';
        char *s = trim(line), *eq = strchr(s, '=');
        if (!*s)
            continue;
        if (!eq) {
            fprintf(stderr, "relais-node: %s:%d: expected `name = value`\n", path, no);
            rc = -1;
            break;
        }
        *eq = '\0';
        if ((rc = set_option(o, trim(s), trim(eq + 1))))
            fprintf(stderr, "relais-node: in %s:%d\n", path, no);
    }
    fclose(f);
    return rc;
}

static int parse_args(int argc, char **argv, node_options *o) {
    static const struct option longopts[] = {{"listen", required_argument, 0, 0},
                                             {"key", required_argument, 0, 0},
                                             {"trust", required_argument, 0, 0},
                                             {"models", required_argument, 0, 0},
                                             {"cache", required_argument, 0, 0},
                                             {"threads", required_argument, 0, 0},
                                             {"max-message-mib", required_argument, 0, 0},
                                             {"config", required_argument, 0, 0},
                                             {"weight-chunk-kib", required_argument, 0, 0},
                                             {"max-memory", required_argument, 0, 0},
                                             {"io-cpu", required_argument, 0, 0},
                                             {"beacon", required_argument, 0, 0},
                                             {"name", required_argument, 0, 0},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    for (int i = 1; i < argc - 1; i++) /* the config file first, so the command line overrides it */
        if (!strcmp(argv[i], "--config") && read_config(o, argv[i + 1]))
            return -1;
    int opt, idx;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            exit(0);
        }
        if (opt != 0) {
            usage(stderr);
            return -1;
        }
        if (strcmp(longopts[idx].name, "config") && set_option(o, longopts[idx].name, optarg))
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "relais-node: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->key || !o->trust || !o->models || !o->cache) {
        fprintf(stderr, "relais-node: --key, --trust, --models and --cache are required (see --help)\n");
        return -1;
    }
    if (o->chunk_kib * 1024 + (64 << 10) > o->max_message_mib << 20) { /* 64 KiB for the rest of a chunk message */
        fprintf(stderr, "relais-node: --weight-chunk-kib %ld does not fit --max-message-mib %ld\n", o->chunk_kib,
                o->max_message_mib);
        return -1;
    }
    return 0;
}

static void free_options(node_options *o) {
    free(o->listen), free(o->key), free(o->trust), free(o->models), free(o->cache), free(o->name);
}

int main(int argc, char **argv) {
    node_options o = {
        .max_message_mib = DEFAULT_MAX_MESSAGE_MIB, .chunk_kib = DEFAULT_CHUNK_KIB, .io_cpu = IO_PIN_NONE};
    if (set_string(&o.listen, DEFAULT_LISTEN) || parse_args(argc, argv, &o)) {
        free_options(&o);
        return 2;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    node_config cfg = {.listen = o.listen,
                       .key = o.key,
                       .trust = o.trust,
                       .models = o.models,
                       .cache = o.cache,
                       .threads = (int)o.threads,
                       .max_message = (int64_t)o.max_message_mib << 20,
                       .max_memory = o.max_memory,
                       .chunk_bytes = (uint32_t)o.chunk_kib * 1024,
                       .io_cpu = o.io_cpu,
                       .beacon_port = (int)o.beacon_port,
                       .name = o.name};
    char err[1024];
    node_server *s = node_server_new(&cfg, err, sizeof err);
    int rc = 1;
    if (!s)
        fprintf(stderr, "relais-node: %s\n", err);
    else
        rc = node_server_run(s, &g_stop) ? 1 : 0;
    node_server_destroy(&s);
    free_options(&o);
    return rc;
}
