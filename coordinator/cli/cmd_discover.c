/* `relais discover`: the relais nodes announcing themselves on the LAN
 * (relais-node --beacon), heard for a few seconds, as a table or as JSON
 * (a stable interface for scripts). Each is marked trusted when the
 * coordinator's trust folder (or the cluster file's node list) holds its
 * key; `relais trust FINGERPRINT` is how a person adds one. Listening never
 * changes what is trusted. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#include "cli.h"
#include "cluster_config.h"
#include "cluster_discover.h"
#include "commands.h"
#include "wire.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: relais discover [--cluster FILE | --trust DIR] [options]\n"
            "\n"
            "Lists the relais nodes whose beacons (relais-node --beacon PORT) this machine\n"
            "hears, with their address, key fingerprint, protocol and free memory, and\n"
            "whether the coordinator trusts their key.\n"
            "\n"
            "  --cluster FILE   trust what the cluster file trusts: its discover.trust folder\n"
            "                   (default trusted-nodes beside it) and its nodes' keys; its\n"
            "                   discover.port and discover.names apply too\n"
            "  --trust DIR      the folder of trusted node certificates (*.pub) instead\n"
            "  --port N         UDP port of the beacons (default: the file's, else %d)\n"
            "  --seconds S      how long to listen (default 3; nodes announce every second)\n"
            "  --json           print the nodes as JSON\n"
            "\n"
            "Exit code 0 when at least one node was heard, 1 when none was, 2 for bad options.\n",
            BEACON_DEFAULT_PORT);
}

typedef struct {
    cli_beacon beacon;
    bool json;
} discover_args;

enum { OPT_JSON = CLI_OPT_FIRST_OWN };

/* 0, 1 after --help, -1 on a bad option. */
static int parse_args(int argc, char **argv, discover_args *a) {
    static const struct option longopts[] = {
        CLI_BEACON_LONGOPTS, {"json", no_argument, 0, OPT_JSON}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    *a = (discover_args){.beacon.ms = 3000};
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int rc = cli_beacon_opt(&a->beacon, opt, optarg);
        if (rc < 0)
            return -1;
        if (rc)
            continue;
        if (opt == 'h') {
            usage(stdout);
            return 1;
        } else if (opt == OPT_JSON) {
            a->json = true;
        } else {
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "relais discover: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

static void print_table(const discovery *d, const cluster_config *cfg) {
    printf("%-16s  %-24s  %-16s  %8s  %10s  %s\n", "name", "address", "fingerprint", "protocol", "free MiB", "trusted");
    for (uint32_t i = 0; i < discovery_count(d); i++) {
        const discovered *n = discovery_at(d, i);
        char why[256];
        bool usable = discovery_usable(d, i, cfg, why, sizeof why);
        printf("%-16s  %-24s  %-16s  %8u  %10.0f  %s%s%s\n", n->heard.info.name, n->heard.endpoint, n->heard.fp,
               n->heard.info.protocol, n->heard.info.free_ram / 1048576.0, *n->trusted ? "yes" : "no",
               usable ? "" : ": ", usable ? "" : why);
    }
    if (!discovery_count(d))
        printf("(no node heard)\n");
}

static void print_json(const discovery *d, const cluster_config *cfg, const discover_args *a, int port) {
    json_t *nodes = json_array();
    for (uint32_t i = 0; i < discovery_count(d); i++) {
        const discovered *n = discovery_at(d, i);
        char why[256], z85[41];
        bool usable = discovery_usable(d, i, cfg, why, sizeof why);
        zmq_z85_encode(z85, n->heard.info.key, CURVE_KEY_BYTES);
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:I, s:b, s:b}", "name", n->heard.info.name, "address",
                      n->heard.endpoint, "ip", n->heard.ip, "port", (int)n->heard.info.port, "fingerprint", n->heard.fp,
                      "public_key", z85, "protocol", (int)n->heard.info.protocol, "free_ram",
                      (json_int_t)n->heard.info.free_ram, "trusted", *n->trusted != '\0', "usable", usable);
        json_object_set_new(o, "trusted_by", *n->trusted ? json_string(n->trusted) : json_null());
        json_object_set_new(o, "why_not", usable ? json_null() : json_string(why));
        json_array_append_new(nodes, o);
    }
    json_t *root = json_pack("{s:i, s:f, s:o}", "beacon_port", port, "seconds", a->beacon.ms / 1e3, "nodes", nodes);
    char *text = json_dumps(root, JSON_INDENT(2));
    if (text)
        puts(text);
    free(text);
    json_decref(root);
}

int cmd_discover(int argc, char **argv) {
    discover_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc > 0 ? 0 : 2;
    char err[1024];
    cluster_config *cfg;
    int port;
    if (cli_beacon_setup(&a.beacon, "discover", &cfg, &port))
        return 1;
    discovery *d = discovery_new(cfg, a.beacon.trust, port, err, sizeof err);
    if (!d) {
        fprintf(stderr, "relais discover: %s\n", err);
        cluster_config_destroy(&cfg);
        return 1;
    }
    discovery_listen(d, (int)a.beacon.ms);
    if (a.json)
        print_json(d, cfg, &a, port);
    else
        print_table(d, cfg);
    rc = discovery_count(d) ? 0 : 1;
    discovery_destroy(&d);
    cluster_config_destroy(&cfg);
    return rc;
}
