/* `relais keygen -o NAME`: makes a CURVE key pair for a coordinator or a
 * node. NAME.key is the secret certificate (created mode 0600, so it is
 * never readable by others, not even while being written) and NAME.pub the
 * public one, to copy to the machines that must recognise this one. Both are
 * CZMQ certificate files. Existing files are kept unless --force is given.
 * Scripts drive this command, so its options and its output lines are kept
 * stable: "public key  <Z85>" and "fingerprint <16 hex digits>". */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>
#include "commands.h"
#include "curve.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: relais keygen -o NAME [--force]\n"
            "\n"
            "Writes a CURVE key pair: NAME.key, the secret certificate (mode 0600; it\n"
            "stays on this machine), and NAME.pub, the public certificate (copy it to a\n"
            "node's --trust directory for a coordinator, or name it as a node's\n"
            "public_key in the cluster file). Prints the public key and its fingerprint,\n"
            "the short form logs show.\n"
            "\n"
            "  -o, --output NAME   write NAME.key and NAME.pub\n"
            "  -f, --force         replace existing files (the old key is lost)\n");
}

/* Removes path so a fresh file takes its place; a missing file is fine. */
static int remove_old(const char *path) {
    struct stat st;
    if (lstat(path, &st) && errno == ENOENT)
        return 0;
    if (S_ISDIR(st.st_mode) || unlink(path)) {
        fprintf(stderr, "relais keygen: cannot replace %s: %s\n", path,
                S_ISDIR(st.st_mode) ? "a directory" : strerror(errno));
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, const char **name, bool *force) {
    static const struct option longopts[] = {{"output", required_argument, 0, 'o'},
                                             {"force", no_argument, 0, 'f'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:fh", longopts, NULL)) != -1) {
        if (opt == 'o') {
            *name = optarg;
        } else if (opt == 'f') {
            *force = true;
        } else {
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 1 : -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "relais keygen: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!*name || !**name) {
        fprintf(stderr, "relais keygen: -o NAME is required\n\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

int cmd_keygen(int argc, char **argv) {
    const char *name = NULL;
    bool force = false;
    int rc = parse_args(argc, argv, &name, &force);
    if (rc)
        return rc > 0 ? 0 : 2;
    char key_path[4096], pub_path[4096];
    if ((size_t)snprintf(key_path, sizeof key_path, "%s.key", name) >= sizeof key_path ||
        (size_t)snprintf(pub_path, sizeof pub_path, "%s.pub", name) >= sizeof pub_path) {
        fprintf(stderr, "relais keygen: the name is too long\n");
        return 2;
    }
    const char *paths[] = {key_path, pub_path};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (!force && lstat(paths[i], &st) == 0) {
            fprintf(stderr, "relais keygen: %s already exists; give --force to replace the pair\n", paths[i]);
            return 1;
        }
        if (force && remove_old(paths[i]))
            return 1;
    }
    curve_keys k;
    char err[512];
    if (curve_keys_create(key_path, pub_path, &k, err, sizeof err)) {
        fprintf(stderr, "relais keygen: %s\n", err);
        return 1;
    }
    char z85[41], fp[CURVE_FP_LEN];
    zmq_z85_encode(z85, k.public_key, CURVE_KEY_BYTES);
    curve_fingerprint(k.public_key, fp);
    explicit_bzero(k.secret_key, sizeof k.secret_key);
    printf("public key  %s\nfingerprint %s\nwrote %s (secret, mode 0600) and %s\n", z85, fp, key_path, pub_path);
    return 0;
}
