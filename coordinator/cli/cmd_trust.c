/* `relais trust NODE.pub | FINGERPRINT`: adds a node's key to the
 * coordinator's trust folder, the only way a discovered node becomes one a
 * cluster with `discover` uses. By file, the certificate's public key is
 * written anew into the folder (so a secret key given by mistake is never
 * copied). By fingerprint, the node is first heard on the LAN (its beacon
 * carries the whole key), shown, and trusted only after a "y" on the
 * terminal or --yes. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>
#include "cli.h"
#include "cluster_config.h"
#include "cluster_discover.h"
#include "commands.h"
#include "curve.h"
#include "util.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: relais trust (--cluster FILE | --trust DIR) NODE.pub | FINGERPRINT [options]\n"
            "\n"
            "Adds a node's public key to the coordinator's trust folder, so that a cluster\n"
            "file with `discover` takes the node in. FINGERPRINT (from `relais discover`,\n"
            "8 to 16 hex digits) is looked up among the beacons heard; the node is shown\n"
            "and trusted only after you confirm (or with --yes).\n"
            "\n"
            "  --cluster FILE   the trust folder is the file's discover.trust (default\n"
            "                   trusted-nodes beside the file)\n"
            "  --trust DIR      the trust folder itself (created when missing)\n"
            "  --name NAME      the certificate's name in the folder (default: the file's\n"
            "                   name, or the name the node announces)\n"
            "  --port N         UDP port of the beacons (default: the file's, else %d)\n"
            "  --seconds S      how long to listen for the fingerprint (default 5)\n"
            "  -y, --yes        do not ask\n",
            BEACON_DEFAULT_PORT);
}

typedef struct {
    cli_beacon beacon;
    const char *name, *what;
    bool yes;
} trust_args;

enum { OPT_NAME = CLI_OPT_FIRST_OWN };

static int parse_args(int argc, char **argv, trust_args *a) {
    static const struct option longopts[] = {CLI_BEACON_LONGOPTS,
                                             {"name", required_argument, 0, OPT_NAME},
                                             {"yes", no_argument, 0, 'y'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    *a = (trust_args){.beacon.ms = 5000};
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "yh", longopts, NULL)) != -1) {
        int rc = cli_beacon_opt(&a->beacon, opt, optarg);
        if (rc < 0)
            return -1;
        if (rc)
            continue;
        if (opt == 'h') {
            usage(stdout);
            return 1;
        } else if (opt == 'y') {
            a->yes = true;
        } else if (opt == OPT_NAME) {
            a->name = optarg;
        } else {
            usage(stderr);
            return -1;
        }
    }
    if (optind + 1 != argc || (!a->beacon.cluster == !a->beacon.trust)) {
        fprintf(stderr, "relais trust: give one NODE.pub or FINGERPRINT, and --cluster FILE or --trust DIR\n\n");
        usage(stderr);
        return -1;
    }
    a->what = argv[optind];
    if (a->name && !beacon_name_ok(a->name)) {
        fprintf(stderr, "relais trust: --name: 1 to %d of letters, digits, '.', '_' and '-'\n", BEACON_NAME_MAX);
        return -1;
    }
    return 0;
}

static bool is_fingerprint(const char *s) {
    size_t n = strlen(s);
    if (n < 8 || n > 16)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* The one node heard whose fingerprint starts with fp. 0, or -1 with err. */
static int find_by_fingerprint(const trust_args *a, int port, const char *dir, beacon_heard *out, char *err,
                               size_t errlen) {
    discovery *d = discovery_new(NULL, dir, port, err, errlen);
    if (!d)
        return -1;
    int found = -1, matches = 0;
    for (double end = rl_now_s() + a->beacon.ms / 1e3; matches == 0 && rl_now_s() < end;) {
        discovery_listen(d, 250);
        for (uint32_t i = 0; i < discovery_count(d); i++)
            if (!strncasecmp(discovery_at(d, i)->heard.fp, a->what, strlen(a->what)))
                found = (int)i, matches++;
    }
    if (matches == 1)
        *out = discovery_at(d, (uint32_t)found)->heard;
    else if (matches > 1)
        rl_errf(err, errlen, "%d nodes have a fingerprint starting with %s: give more digits", matches, a->what);
    else
        rl_errf(err, errlen, "no node with fingerprint %s announced itself on UDP port %d within %.1f s (%u heard)",
                a->what, port, a->beacon.ms / 1e3, discovery_count(d));
    discovery_destroy(&d);
    return matches == 1 ? 0 : -1;
}

static bool confirm(const trust_args *a) {
    if (a->yes)
        return true;
    if (!isatty(STDIN_FILENO)) {
        fprintf(stderr, "relais trust: not a terminal to ask on: check the key above and give --yes\n");
        return false;
    }
    fprintf(stderr, "Trust this node's key? [y/N] ");
    char line[16];
    return fgets(line, sizeof line, stdin) && (line[0] == 'y' || line[0] == 'Y');
}

/* The base name of path without ".pub". */
static void file_stem(const char *path, char *out, size_t len) {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && !strcmp(base + n - 4, ".pub"))
        n -= 4;
    snprintf(out, len, "%.*s", (int)n, base);
}

/* Writes key into dir as NAME.pub, unless the folder already trusts it. */
static int write_trust(const char *dir, const char *name, const uint8_t *key) {
    char err[1024], path[4096 + 80];
    if (mkdir(dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "relais trust: cannot make %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (discovery_dir_trusts(dir, key, path, sizeof path)) {
        printf("already trusted: %s\n", path);
        return 0;
    }
    snprintf(path, sizeof path, "%s/%s.pub", dir, name);
    if (curve_public_save(path, key, err, sizeof err)) {
        fprintf(stderr, "relais trust: %s\n", err);
        return 1;
    }
    char fp[CURVE_FP_LEN];
    curve_fingerprint(key, fp);
    printf("trusted %s: %s\n", fp, path);
    return 0;
}

int cmd_trust(int argc, char **argv) {
    trust_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc > 0 ? 0 : 2;
    char err[1024], name[BEACON_NAME_MAX + 1];
    cluster_config *cfg;
    int port;
    if (cli_beacon_setup(&a.beacon, "trust", &cfg, &port))
        return 1;
    const cluster_discover *cd = cfg ? cluster_config_discover(cfg) : NULL;
    if (cfg && !cd) {
        fprintf(stderr,
                "relais trust: %s lists its nodes (no `discover`): it has no trust folder; name the node's "
                ".pub in its nodes instead, or give --trust DIR\n",
                a.beacon.cluster);
        cluster_config_destroy(&cfg);
        return 1;
    }
    const char *dir = a.beacon.trust ? a.beacon.trust : cd->trust;
    uint8_t key[CURVE_KEY_BYTES];
    rc = 1;
    if (access(a.what, F_OK) == 0 || !is_fingerprint(a.what)) {
        if (curve_public_load(a.what, key, err, sizeof err))
            fprintf(stderr, "relais trust: %s\n", err);
        else {
            file_stem(a.what, name, sizeof name);
            rc = write_trust(dir, a.name ? a.name : beacon_name_ok(name) ? name : "node", key);
        }
    } else {
        beacon_heard h;
        if (find_by_fingerprint(&a, port, dir, &h, err, sizeof err))
            fprintf(stderr, "relais trust: %s\n", err);
        else {
            char z85[41];
            zmq_z85_encode(z85, h.info.key, CURVE_KEY_BYTES);
            printf("node         %s at %s\nfingerprint  %s\npublic key   %s\nprotocol     %u\nfree memory  %.0f MiB\n",
                   h.info.name, h.endpoint, h.fp, z85, h.info.protocol, h.info.free_ram / 1048576.0);
            fflush(stdout);
            rc = confirm(&a) ? write_trust(dir, a.name ? a.name : h.info.name, h.info.key) : 1;
        }
    }
    cluster_config_destroy(&cfg);
    return rc;
}
