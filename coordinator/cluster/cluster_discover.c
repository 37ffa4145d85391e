/* Discovery on the coordinator's side (see cluster_discover.h): a table of
 * the nodes heard, keyed by public key, and the trusted keys read from the
 * trust folder and the cluster file. */
#include "cluster_discover.h"

#include "cluster.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "util.h"
#include "wire.h"

#define MAX_HEARD 256   /* nodes remembered; more on one LAN is a flood, not a cluster */
#define MAX_TRUSTED 256 /* certificates read from the trust folder */

typedef struct {
    uint8_t key[CURVE_KEY_BYTES];
    char path[4096 + 256 + 2];
} trusted_key;

struct discovery {
    beacon *listener;
    double trust_read_s;  /* when the trust folder was last read (rl_now_s) */
    char trust_dir[4096]; /* "" when none */
    trusted_key *trusted; /* (n_trusted) the folder's, then the cluster file's */
    uint32_t n_trusted, n_folder;
    discovered heard[MAX_HEARD];
    uint32_t n_heard;
};

static void add_trusted(discovery *d, const uint8_t *key, const char *path) {
    if (d->n_trusted == MAX_TRUSTED * 2)
        return;
    trusted_key *t = &d->trusted[d->n_trusted++];
    memcpy(t->key, key, CURVE_KEY_BYTES);
    snprintf(t->path, sizeof t->path, "%s", path);
}

/* The folder's *.pub files; an unreadable one is skipped with a warning
 * (it trusts nothing, and the others still count). */
static void read_folder(discovery *d) {
    d->n_trusted = 0;
    DIR *dir = *d->trust_dir ? opendir(d->trust_dir) : NULL;
    struct dirent *de;
    while (dir && (de = readdir(dir)) && d->n_trusted < MAX_TRUSTED) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".pub"))
            continue;
        char path[4096 + 256 + 2], why[256];
        uint8_t key[CURVE_KEY_BYTES];
        snprintf(path, sizeof path, "%s/%s", d->trust_dir, de->d_name);
        if (curve_public_load(path, key, why, sizeof why))
            rl_log(RL_LOG_WARN, "trust folder: %s", why);
        else
            add_trusted(d, key, path);
    }
    if (dir)
        closedir(dir);
    d->n_folder = d->n_trusted;
}

/* The keys a cluster file names as its nodes': trusted as well. */
static void read_file_nodes(discovery *d, const cluster_config *cfg) {
    for (uint32_t i = 0; cfg && i < cluster_config_n_nodes(cfg); i++) {
        uint8_t key[CURVE_KEY_BYTES];
        char why[256];
        const cluster_node *n = cluster_config_node(cfg, i);
        if (curve_public_load(n->public_key, key, why, sizeof why) == 0)
            add_trusted(d, key, n->public_key);
    }
}

static const char *trusted_path(const discovery *d, const uint8_t *key) {
    for (uint32_t i = 0; i < d->n_trusted; i++)
        if (!memcmp(d->trusted[i].key, key, CURVE_KEY_BYTES))
            return d->trusted[i].path;
    return "";
}

static void mark_trust(discovery *d) {
    for (uint32_t i = 0; i < d->n_heard; i++)
        snprintf(d->heard[i].trusted, sizeof d->heard[i].trusted, "%s", trusted_path(d, d->heard[i].heard.info.key));
}

discovery *discovery_new(const cluster_config *cfg, const char *trust_dir, int port, char *err, size_t errlen) {
    const cluster_discover *cd = cfg ? cluster_config_discover(cfg) : NULL;
    discovery *d = calloc(1, sizeof *d);
    if (!d || !(d->trusted = calloc(MAX_TRUSTED * 2, sizeof *d->trusted))) {
        free(d);
        rl_errf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(d->trust_dir, sizeof d->trust_dir, "%s", trust_dir ? trust_dir : cd ? cd->trust : "");
    read_folder(d);
    read_file_nodes(d, cfg);
    if (!(d->listener = beacon_listen_new(port ? port : cd ? cd->port : BEACON_DEFAULT_PORT, err, errlen)))
        discovery_destroy(&d);
    return d;
}

void discovery_destroy(discovery **pd) {
    discovery *d = pd ? *pd : NULL;
    if (!d)
        return;
    beacon_destroy(&d->listener);
    free(d->trusted);
    free(d);
    *pd = NULL;
}

void discovery_reload_trust(discovery *d) {
    /* the cluster file's keys follow the folder's: keep them */
    uint32_t n_file = d->n_trusted - d->n_folder;
    trusted_key *file = malloc((n_file ? n_file : 1) * sizeof *file);
    if (!file)
        return;
    memcpy(file, d->trusted + d->n_folder, n_file * sizeof *file);
    read_folder(d);
    for (uint32_t i = 0; i < n_file; i++)
        add_trusted(d, file[i].key, file[i].path);
    free(file);
    mark_trust(d);
}

bool discovery_dir_trusts(const char *dir, const uint8_t key[CURVE_KEY_BYTES], char *path, size_t len) {
    discovery *d = calloc(1, sizeof *d);
    if (d && (d->trusted = calloc(MAX_TRUSTED * 2, sizeof *d->trusted))) {
        snprintf(d->trust_dir, sizeof d->trust_dir, "%s", dir);
        read_folder(d);
    }
    snprintf(path, len, "%s", d && d->trusted ? trusted_path(d, key) : "");
    if (d)
        free(d->trusted);
    free(d);
    return *path != '\0';
}

/* Records one beacon; 1 when its key is new. */
static int record(discovery *d, const beacon_heard *h) {
    for (uint32_t i = 0; i < d->n_heard; i++)
        if (!memcmp(d->heard[i].heard.info.key, h->info.key, CURVE_KEY_BYTES)) {
            d->heard[i].heard = *h; /* a node that moved, or whose memory changed */
            d->heard[i].last_s = rl_now_s();
            return 0;
        }
    if (d->n_heard == MAX_HEARD)
        return 0;
    discovered *n = &d->heard[d->n_heard++];
    n->heard = *h;
    n->first_s = n->last_s = rl_now_s();
    snprintf(n->trusted, sizeof n->trusted, "%s", trusted_path(d, h->info.key));
    return 1;
}

int discovery_listen(discovery *d, int ms) {
    const double end = rl_now_s() + ms / 1e3;
    int added = 0;
    beacon_heard h;
    while (beacon_recv(d->listener, 0, &h) == 1) /* what already arrived */
        added += record(d, &h);
    for (double left = ms / 1e3; left > 0; left = end - rl_now_s())
        if (beacon_recv(d->listener, (int)(left * 1e3) + 1, &h) == 1)
            added += record(d, &h);
    return added;
}

uint32_t discovery_count(const discovery *d) { return d->n_heard; }
const discovered *discovery_at(const discovery *d, uint32_t i) { return i < d->n_heard ? &d->heard[i] : NULL; }

bool discovery_usable(const discovery *d, uint32_t i, const cluster_config *cfg, char *why, size_t whylen) {
    const discovered *n = &d->heard[i];
    const cluster_discover *cd = cfg ? cluster_config_discover(cfg) : NULL;
    char scratch[8];
    if (!why)
        why = scratch, whylen = sizeof scratch;
    if (!*n->trusted)
        return rl_errf(why, whylen, "key %s is not trusted (relais trust %s)", n->heard.fp, n->heard.fp), false;
    if (n->heard.info.protocol != WIRE_VERSION)
        return rl_errf(why, whylen, "it speaks protocol %u, this coordinator %u", n->heard.info.protocol, WIRE_VERSION),
               false;
    if (cd && !cluster_discover_name_ok(cd, n->heard.info.name))
        return rl_errf(why, whylen, "its name matches none of discover.names"), false;
    *why = '\0';
    return true;
}

static int by_name(const void *a, const void *b) {
    const discovered *x = *(const discovered *const *)a, *y = *(const discovered *const *)b;
    int c = strcmp(x->heard.info.name, y->heard.info.name);
    return c ? c : strcmp(x->heard.endpoint, y->heard.endpoint);
}

/* Whether cfg already has a node with this key. */
static bool config_has(const cluster_config *cfg, const uint8_t *key) {
    for (uint32_t i = 0; i < cluster_config_n_nodes(cfg); i++) {
        uint8_t k[CURVE_KEY_BYTES];
        char why[256];
        if (curve_public_load(cluster_config_node(cfg, i)->public_key, k, why, sizeof why) == 0 &&
            !memcmp(k, key, CURVE_KEY_BYTES))
            return true;
    }
    return false;
}

int discovery_add_nodes(discovery *d, cluster_config *cfg, char *err, size_t errlen) {
    const discovered *take[MAX_HEARD];
    uint32_t n = 0;
    for (uint32_t i = 0; i < d->n_heard; i++)
        if (discovery_usable(d, i, cfg, NULL, 0) && !config_has(cfg, d->heard[i].heard.info.key))
            take[n++] = &d->heard[i];
    qsort(take, n, sizeof *take, by_name);
    for (uint32_t i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s", take[i]->heard.info.name);
        for (uint32_t j = 0; j < cluster_config_n_nodes(cfg); j++)
            if (!strcmp(cluster_config_node(cfg, j)->name, name)) /* two nodes announce one name */
                snprintf(name, sizeof name, "%s@%s", take[i]->heard.info.name, take[i]->heard.endpoint + 6);
        if (cluster_config_add_node(cfg, name, take[i]->heard.endpoint, take[i]->trusted, err, errlen))
            return -1;
        rl_log(RL_LOG_INFO, "discovered node %s at %s (key %s, %s)", name, take[i]->heard.endpoint, take[i]->heard.fp,
               take[i]->trusted);
    }
    return (int)n;
}

/* Why a discovering cluster has no node: what was heard, and why each was
 * not taken. */
static void explain_none(discovery *d, const cluster_config *cfg, const char *path, char *err, size_t errlen) {
    const cluster_discover *cd = cluster_config_discover(cfg);
    size_t len = (size_t)snprintf(err, errlen, "%s: no trusted node answered discovery within %.1f s on UDP port %d",
                                  path, cd->wait_s, cd->port);
    for (uint32_t i = 0; i < d->n_heard && len < errlen; i++) {
        char why[256];
        discovery_usable(d, i, cfg, why, sizeof why);
        len += (size_t)snprintf(err + len, errlen - len, "%s %s at %s: %s", i ? ";" : ":", d->heard[i].heard.info.name,
                                d->heard[i].heard.endpoint, why);
    }
}

cluster_config *cluster_config_open(const char *path, char *err, size_t errlen) {
    cluster_config *cfg = cluster_config_load(path, err, errlen);
    const cluster_discover *cd = cfg ? cluster_config_discover(cfg) : NULL;
    if (!cd)
        return cfg;
    discovery *d = discovery_new(cfg, NULL, 0, err, errlen);
    if (!d) {
        cluster_config_destroy(&cfg);
        return NULL;
    }
    discovery_listen(d, (int)(cd->wait_s * 1e3));
    int n = discovery_add_nodes(d, cfg, err, errlen);
    if (n == 0)
        explain_none(d, cfg, path, err, errlen);
    if (n <= 0)
        cluster_config_destroy(&cfg);
    discovery_destroy(&d);
    return cfg;
}

/* Node i of c, by key; c's node count when it has none. */
static uint32_t cluster_index_of(const cluster *c, const uint8_t *key) {
    uint32_t i = 0;
    while (i < cluster_n_nodes(c) && memcmp(cluster_node_key(c, i), key, CURVE_KEY_BYTES))
        i++;
    return i;
}

#define TRUST_REREAD_S 5.0 /* `relais trust` while serve runs: seen within this */

int discovery_update_cluster(discovery *d, cluster *c, const cluster_config *cfg, char *what, size_t len) {
    discovery_listen(d, 0);
    if (rl_now_s() - d->trust_read_s > TRUST_REREAD_S) {
        discovery_reload_trust(d);
        d->trust_read_s = rl_now_s();
    }
    int changed = 0;
    *what = '\0';
    for (uint32_t k = 0; k < d->n_heard; k++) {
        const discovered *n = &d->heard[k];
        if (!discovery_usable(d, k, cfg, NULL, 0))
            continue;
        uint32_t i = cluster_index_of(c, n->heard.info.key);
        char err[512];
        if (i == cluster_n_nodes(c)) {
            cluster_node spec = {.name = n->heard.info.name, .address = n->heard.endpoint, .public_key = n->trusted};
            if (cluster_add_node(c, &spec, err, sizeof err)) {
                rl_log(RL_LOG_WARN, "discovered node %s not taken in: %s", n->heard.info.name, err);
                continue;
            }
            snprintf(what, len, "node %s appeared at %s", n->heard.info.name, n->heard.endpoint);
        } else if (strcmp(cluster_node_address(c, i), n->heard.endpoint) && !cluster_node_in_pipeline(c, i)) {
            if (cluster_node_readdress(c, i, n->heard.endpoint, err, sizeof err)) {
                rl_log(RL_LOG_WARN, "%s", err);
                continue;
            }
            snprintf(what, len, "node %s is back at %s", cluster_node_name(c, i), n->heard.endpoint);
        } else {
            continue;
        }
        rl_log(RL_LOG_INFO, "discovery: %s", what);
        changed++;
    }
    return changed;
}
