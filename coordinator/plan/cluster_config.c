/* Cluster file loader (see cluster_config.h). libyaml's event parser feeds a
 * small tree of scalars, sequences and mappings, built with caps on depth
 * and node count and without aliases; the tree is then walked against the
 * schema, so each problem is reported at the line and column of the value
 * that causes it. */
#include "cluster_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>
#include "beacon.h"
#include "io_pin.h"
#include "util.h"

#define MAX_DEPTH 16      /* the schema needs 4 levels; anything deeper is a mistake or an attack */
#define MAX_YNODES 100000 /* bounds the tree a 1 MiB file of "[]," can build */
#define MAX_SCALAR 4096   /* longer than any path or endpoint */

struct cluster_config {
    char *key;           /* coordinator's secret certificate, resolved */
    char *listen;        /* endpoint bound for results */
    char *advertise;     /* endpoint the last node connects to */
    int io_cpu;          /* the CPU that handles messages (io_pin.h) */
    cluster_node *nodes; /* n_nodes entries; their strings are owned here */
    uint32_t n_nodes;
    rl_kv_type kv_type; /* the file's kv_type, when kv_type_given */
    bool kv_type_given;
    bool discover_on;          /* `discover` instead of `nodes` */
    cluster_discover discover; /* its strings owned here */
};

/* Where messages go and what they are prefixed with. */
typedef struct {
    const char *name; /* the file, as named by the caller */
    char *err;
    size_t errlen;
    const char *text; /* the input, to place reader errors (libyaml gives only an offset) */
    size_t len;
    size_t n_built; /* tree nodes built so far, against MAX_YNODES */
} ctx;

static int fail_at(ctx *c, uint32_t line, uint32_t col, const char *fmt, ...) {
    int n = snprintf(c->err, c->errlen, "%s:%u:%u: ", c->name, line, col);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int out_of_memory(ctx *c) {
    snprintf(c->err, c->errlen, "%s: out of memory", c->name);
    return -1;
}

/* ---- a small YAML tree ---- */

typedef enum { Y_SCALAR, Y_SEQ, Y_MAP } ykind;

typedef struct ynode ynode;
struct ynode {
    ykind kind;
    char *text;         /* scalar value, NUL-terminated; NULL for collections */
    bool null;          /* a plain scalar YAML reads as null: empty, ~, null */
    uint32_t line, col; /* 1-based start */
    ynode **kids;       /* sequence items, or mapping keys and values alternating */
    size_t n, cap;
};

static const char *kind_name(ykind k) { return k == Y_SCALAR ? "a scalar" : k == Y_SEQ ? "a list" : "a mapping"; }

static void ynode_free(ynode *y) {
    if (!y)
        return;
    for (size_t i = 0; i < y->n; i++)
        ynode_free(y->kids[i]);
    free(y->kids);
    free(y->text);
    free(y);
}

static bool plain_null(const yaml_event_t *ev) {
    const char *v = (const char *)ev->data.scalar.value;
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static ynode *ynode_new(ctx *c, const yaml_event_t *ev, ykind kind) {
    uint32_t line = (uint32_t)ev->start_mark.line + 1, col = (uint32_t)ev->start_mark.column + 1;
    if (++c->n_built > MAX_YNODES) {
        fail_at(c, line, col, "more than %d YAML values: this is not a cluster file", MAX_YNODES);
        return NULL;
    }
    if (kind == Y_SCALAR && ev->data.scalar.length > MAX_SCALAR) {
        fail_at(c, line, col, "a value of %zu bytes (at most %d)", ev->data.scalar.length, MAX_SCALAR);
        return NULL;
    }
    ynode *y = calloc(1, sizeof *y);
    if (y && kind == Y_SCALAR) {
        y->text = strdup((const char *)ev->data.scalar.value);
        y->null = plain_null(ev);
        if (!y->text) {
            free(y);
            y = NULL;
        }
    }
    if (!y) {
        out_of_memory(c);
        return NULL;
    }
    y->kind = kind;
    y->line = line;
    y->col = col;
    return y;
}

static int ynode_add(ctx *c, ynode *parent, ynode *kid) {
    ynode **k = rl_grow(parent->kids, &parent->cap, parent->n + 1, sizeof *k, 4);
    if (!k)
        return out_of_memory(c);
    parent->kids = k;
    parent->kids[parent->n++] = kid;
    return 0;
}

static int next_event(ctx *c, yaml_parser_t *p, yaml_event_t *ev) {
    if (yaml_parser_parse(p, ev))
        return 0;
    uint32_t line = (uint32_t)p->problem_mark.line + 1, col = (uint32_t)p->problem_mark.column + 1;
    if (p->error == YAML_MEMORY_ERROR)
        return out_of_memory(c);
    if (p->error == YAML_READER_ERROR) { /* bad bytes: the mark is unset, the offset is right */
        line = col = 1;
        for (size_t i = 0; i < p->problem_offset && i < c->len; i++, col++)
            if (c->text[i] == '\n')
                line++, col = 0;
    }
    return fail_at(c, line, col, "YAML syntax error: %s%s%s", p->problem ? p->problem : "malformed input",
                   p->context ? " " : "", p->context ? p->context : "");
}

/* Builds the node that starts with *ev (which this consumes), reading the
 * events of its contents; NULL with a message on error. */
static ynode *read_node(ctx *c, yaml_parser_t *p, yaml_event_t *ev, int depth) {
    uint32_t line = (uint32_t)ev->start_mark.line + 1, col = (uint32_t)ev->start_mark.column + 1;
    ynode *y = NULL;
    if (ev->type == YAML_ALIAS_EVENT)
        fail_at(c, line, col, "YAML aliases (*%s) are not supported in a cluster file", ev->data.alias.anchor);
    else if (depth > MAX_DEPTH)
        fail_at(c, line, col, "values nested more than %d levels deep", MAX_DEPTH);
    else if (ev->type == YAML_SCALAR_EVENT)
        y = ynode_new(c, ev, Y_SCALAR);
    else if (ev->type == YAML_SEQUENCE_START_EVENT || ev->type == YAML_MAPPING_START_EVENT)
        y = ynode_new(c, ev, ev->type == YAML_SEQUENCE_START_EVENT ? Y_SEQ : Y_MAP);
    else
        fail_at(c, line, col, "unexpected YAML event");
    yaml_event_type_t end = ev->type == YAML_SEQUENCE_START_EVENT ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT;
    yaml_event_delete(ev);
    if (!y || y->kind == Y_SCALAR)
        return y;
    for (;;) {
        yaml_event_t kid_ev;
        if (next_event(c, p, &kid_ev))
            break;
        if (kid_ev.type == end) {
            yaml_event_delete(&kid_ev);
            return y;
        }
        ynode *kid = read_node(c, p, &kid_ev, depth + 1);
        if (!kid || ynode_add(c, y, kid)) {
            ynode_free(kid);
            break;
        }
    }
    ynode_free(y);
    return NULL;
}

/* Parses one YAML document into a tree; *root is NULL for an empty file. */
static int read_tree(ctx *c, const char *text, size_t len, ynode **root) {
    yaml_parser_t p;
    *root = NULL;
    if (!yaml_parser_initialize(&p))
        return out_of_memory(c);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    yaml_event_t ev;
    int rc = -1;
    if (next_event(c, &p, &ev)) /* stream start */
        goto out;
    yaml_event_delete(&ev);
    if (next_event(c, &p, &ev))
        goto out;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        rc = 0;
        goto out;
    }
    yaml_event_delete(&ev); /* document start */
    if (next_event(c, &p, &ev) || !(*root = read_node(c, &p, &ev, 1)))
        goto out;
    if (next_event(c, &p, &ev)) /* document end */
        goto out;
    yaml_event_delete(&ev);
    if (next_event(c, &p, &ev))
        goto out;
    if (ev.type != YAML_STREAM_END_EVENT)
        fail_at(c, (uint32_t)ev.start_mark.line + 1, (uint32_t)ev.start_mark.column + 1,
                "a second YAML document: a cluster file holds one");
    else
        rc = 0;
    yaml_event_delete(&ev);
out:
    yaml_parser_delete(&p);
    if (rc) {
        ynode_free(*root);
        *root = NULL;
    }
    return rc;
}

/* ---- schema ---- */

/* Checks that `map` is a mapping whose keys are scalars among `keys`, each at
 * most once, and stores each key's value in vals (NULL when absent or null). */
static int take_fields(ctx *c, const ynode *map, const char *where, const char *const *keys, size_t n_keys,
                       const ynode **vals) {
    if (map->kind != Y_MAP)
        return fail_at(c, map->line, map->col, "%s: expected a mapping, found %s", where, kind_name(map->kind));
    for (size_t k = 0; k < n_keys; k++)
        vals[k] = NULL;
    bool seen[8] = {false}; /* n_keys <= 3 in this schema */
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (key->kind != Y_SCALAR)
            return fail_at(c, key->line, key->col, "%s: a key must be a plain name, found %s", where,
                           kind_name(key->kind));
        size_t k = 0;
        while (k < n_keys && strcmp(key->text, keys[k]))
            k++;
        if (k == n_keys) {
            char expected[128] = "";
            for (size_t j = 0; j < n_keys; j++)
                snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s%s", j ? ", " : "",
                         keys[j]);
            return fail_at(c, key->line, key->col, "%s: unknown key '%s' (expected %s)", where, key->text, expected);
        }
        if (seen[k])
            return fail_at(c, key->line, key->col, "%s: key '%s' appears twice", where, keys[k]);
        seen[k] = true;
        vals[k] = val->kind == Y_SCALAR && val->null ? NULL : val;
    }
    return 0;
}

/* The text of a scalar field; a missing required field is reported at its
 * mapping. *out is NULL for an absent optional field. */
static int scalar_field(ctx *c, const ynode *map, const ynode *val, const char *where, const char *key, bool required,
                        const char **out) {
    *out = NULL;
    if (!val) {
        if (required)
            return fail_at(c, map->line, map->col, "%s: missing '%s'", where, key);
        return 0;
    }
    if (val->kind != Y_SCALAR)
        return fail_at(c, val->line, val->col, "%s.%s: expected a single value, found %s", where, key,
                       kind_name(val->kind));
    if (!*val->text)
        return fail_at(c, val->line, val->col, "%s.%s: empty value", where, key);
    *out = val->text;
    return 0;
}

/* A tcp://HOST:PORT endpoint, split. */
typedef struct {
    char host[256]; /* without IPv6 brackets */
    uint16_t port;  /* 0 with any_port */
    bool any_port;  /* the port is '*': chosen when the coordinator binds */
    bool wildcard;  /* *, 0.0.0.0 or :: (only valid to bind) */
    bool ipv6;
} endpoint;

static bool valid_hostname(const char *h) {
    size_t len = strlen(h), label = 0;
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (h[i] == '.' || !h[i]) {
            if (label == 0 || label > 63 || h[i - 1] == '-' || h[i - label] == '-')
                return false;
            label = 0;
        } else if (isalnum((unsigned char)h[i]) || h[i] == '-') {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

/* Splits and checks s; on error writes why and returns -1. */
static int endpoint_parse(const char *s, endpoint *e, char *why, size_t whylen) {
    memset(e, 0, sizeof *e);
    if (strncmp(s, "tcp://", 6)) {
        snprintf(why, whylen, "'%s' is not a tcp://HOST:PORT endpoint (only tcp is supported)", s);
        return -1;
    }
    const char *h = s + 6, *colon;
    size_t hlen;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        colon = close && close[1] == ':' ? close + 1 : NULL;
        h++;
        hlen = close ? (size_t)(close - h) : 0;
        e->ipv6 = true;
    } else {
        colon = strrchr(h, ':');
        hlen = colon ? (size_t)(colon - h) : 0;
        if (colon && memchr(h, ':', hlen)) {
            snprintf(why, whylen, "'%s': an IPv6 address goes in brackets, tcp://[ADDR]:PORT", s);
            return -1;
        }
    }
    if (!colon || hlen == 0 || hlen >= sizeof e->host) {
        snprintf(why, whylen, "'%s' is not tcp://HOST:PORT (%s)", s, !colon ? "no port" : "bad host");
        return -1;
    }
    memcpy(e->host, h, hlen);
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    e->any_port = !strcmp(colon + 1, "*");
    if (!e->any_port && (!isdigit((unsigned char)colon[1]) || *end || errno || port < 1 || port > 65535)) {
        snprintf(why, whylen, "'%s': the port must be a number in 1..65535 (or * where one is chosen)", s);
        return -1;
    }
    e->port = e->any_port ? 0 : (uint16_t)port;
    unsigned char addr[16];
    bool ok;
    if (e->ipv6) {
        ok = inet_pton(AF_INET6, e->host, addr) == 1;
        e->wildcard = ok && !memcmp(addr, (unsigned char[16]){0}, 16);
    } else if (!strcmp(e->host, "*")) {
        ok = e->wildcard = true;
    } else if (strspn(e->host, "0123456789.") == hlen) {
        ok = inet_pton(AF_INET, e->host, addr) == 1; /* all digits: must be a dotted quad */
        e->wildcard = ok && !memcmp(addr, (unsigned char[4]){0}, 4);
    } else {
        ok = valid_hostname(e->host);
    }
    if (!ok) {
        snprintf(why, whylen, "'%s': '%s' is not a valid %s", s, e->host,
                 e->ipv6                                      ? "IPv6 address"
                     : strspn(e->host, "0123456789.") == hlen ? "IPv4 address"
                                                              : "host name");
        return -1;
    }
    return 0;
}

/* Checks an endpoint field; `bind` allows a wildcard host, `any_port` the
 * port * (the coordinator's own endpoints: the port it is given at bind). */
static int endpoint_field(ctx *c, const ynode *val, const char *where, bool bind, bool any_port, endpoint *e) {
    char why[512];
    if (endpoint_parse(val->text, e, why, sizeof why))
        return fail_at(c, val->line, val->col, "%s: %s", where, why);
    if (e->any_port && !any_port)
        return fail_at(c, val->line, val->col, "%s: '%s': the port must be a number in 1..65535", where, val->text);
    if (e->wildcard && !bind)
        return fail_at(c, val->line, val->col,
                       "%s: '%s' is a wildcard address; give the address the "
                       "other machines reach it at",
                       where, val->text);
    return 0;
}

static char *resolve_path(const char *base_dir, const char *p) {
    if (p[0] == '/' || !base_dir || !*base_dir)
        return strdup(p);
    size_t n = strlen(base_dir) + strlen(p) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", base_dir, p);
    return out;
}

/* Any free port: the coordinator binds, then names the bound endpoint to the
 * last node in its Assign, so two coordinators (or tests) never collide. */
#define DEFAULT_LISTEN "tcp://0.0.0.0:*"

/* Nodes reach a coordinator bound on a wildcard at the loopback address by
 * default: right for a cluster on one machine, and documented as the value
 * to change for a real LAN. */
static char *default_advertise(const char *listen, const endpoint *le) {
    if (!le->wildcard)
        return strdup(listen);
    char buf[64];
    if (le->any_port)
        snprintf(buf, sizeof buf, le->ipv6 ? "tcp://[::1]:*" : "tcp://127.0.0.1:*");
    else
        snprintf(buf, sizeof buf, le->ipv6 ? "tcp://[::1]:%u" : "tcp://127.0.0.1:%u", le->port);
    return strdup(buf);
}

static int read_coordinator(ctx *c, const ynode *v, const char *base_dir, cluster_config *cfg) {
    static const char *const keys[] = {"key", "listen", "advertise", "io_cpu"};
    const ynode *vals[4];
    const char *key, *listen, *adv, *io_cpu;
    endpoint le, ae;
    if (take_fields(c, v, "coordinator", keys, 4, vals) ||
        scalar_field(c, v, vals[0], "coordinator", "key", true, &key) ||
        scalar_field(c, v, vals[1], "coordinator", "listen", false, &listen) ||
        scalar_field(c, v, vals[2], "coordinator", "advertise", false, &adv) ||
        scalar_field(c, v, vals[3], "coordinator", "io_cpu", false, &io_cpu))
        return -1;
    char why[128];
    cfg->io_cpu = IO_PIN_NONE;
    if (io_cpu && io_pin_parse(io_cpu, &cfg->io_cpu, why, sizeof why))
        return fail_at(c, vals[3]->line, vals[3]->col, "coordinator.io_cpu: %s", why);
    if (listen && endpoint_field(c, vals[1], "coordinator.listen", true, true, &le))
        return -1;
    if (adv && endpoint_field(c, vals[2], "coordinator.advertise", false, true, &ae))
        return -1;
    if (!listen) {
        listen = DEFAULT_LISTEN;
        endpoint_parse(listen, &le, NULL, 0);
    }
    cfg->key = resolve_path(base_dir, key);
    cfg->listen = strdup(listen);
    cfg->advertise = adv ? strdup(adv) : default_advertise(listen, &le);
    return cfg->key && cfg->listen && cfg->advertise ? 0 : out_of_memory(c);
}

static bool valid_name(const char *s) {
    if (strlen(s) > 64)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* Two nodes at the same host and port would be one process twice over. */
static int check_unique(ctx *c, const cluster_config *cfg, const cluster_node *n, const ynode *addr, const ynode *name,
                        uint32_t i) {
    for (uint32_t j = 0; j < i; j++) {
        const cluster_node *o = &cfg->nodes[j];
        if (o->port == n->port && !strcasecmp(o->host, n->host))
            return fail_at(c, addr->line, addr->col,
                           "nodes[%u].address: %s is also the address of nodes[%u] "
                           "(line %u)",
                           i, n->address, j, o->line);
        if (!strcmp(o->name, n->name))
            return fail_at(c, name ? name->line : addr->line, name ? name->col : addr->col,
                           "nodes[%u]: the name '%s' is also the name of nodes[%u] (line %u)", i, n->name, j, o->line);
    }
    return 0;
}

static int read_node_entry(ctx *c, const ynode *v, uint32_t i, const char *base_dir, cluster_config *cfg) {
    static const char *const keys[] = {"address", "public_key", "name"};
    const ynode *vals[3];
    const char *addr, *pub, *name;
    char where[32];
    snprintf(where, sizeof where, "nodes[%u]", i);
    endpoint e;
    if (take_fields(c, v, where, keys, 3, vals) || scalar_field(c, v, vals[0], where, "address", true, &addr) ||
        scalar_field(c, v, vals[1], where, "public_key", true, &pub) ||
        scalar_field(c, v, vals[2], where, "name", false, &name))
        return -1;
    snprintf(where, sizeof where, "nodes[%u].address", i);
    if (endpoint_field(c, vals[0], where, false, false, &e))
        return -1;
    if (name && !valid_name(name))
        return fail_at(c, vals[2]->line, vals[2]->col, "nodes[%u].name: at most 64 printable characters", i);
    char fallback[300];
    snprintf(fallback, sizeof fallback, e.ipv6 ? "[%s]:%u" : "%s:%u", e.host, e.port);
    cluster_node *n = &cfg->nodes[i];
    n->line = v->line;
    n->port = e.port;
    n->address = strdup(addr);
    n->host = strdup(e.host);
    n->name = strdup(name ? name : fallback);
    n->public_key = resolve_path(base_dir, pub);
    cfg->n_nodes = i + 1; /* counted now so destroy frees what was allocated */
    if (!n->address || !n->host || !n->name || !n->public_key)
        return out_of_memory(c);
    return check_unique(c, cfg, n, vals[0], vals[2], i);
}

/* discover.names: one pattern or a list of them. */
static int read_names(ctx *c, const ynode *v, cluster_discover *d) {
    const ynode *one = v;
    size_t n = v->kind == Y_SEQ ? v->n : 1;
    if (v->kind == Y_MAP || n > CLUSTER_DISCOVER_MAX_NAMES)
        return fail_at(c, v->line, v->col, "discover.names: a pattern or a list of at most %d patterns",
                       CLUSTER_DISCOVER_MAX_NAMES);
    for (size_t i = 0; i < n; i++) {
        one = v->kind == Y_SEQ ? v->kids[i] : v;
        if (one->kind != Y_SCALAR || !*one->text)
            return fail_at(c, one->line, one->col, "discover.names: each pattern is a non-empty text");
        if (!(d->names[d->n_names++] = strdup(one->text)))
            return out_of_memory(c);
    }
    return 0;
}

/* `discover: true|false` or its mapping. */
static int read_discover(ctx *c, const ynode *v, const char *base_dir, cluster_config *cfg) {
    cluster_discover *d = &cfg->discover;
    d->port = BEACON_DEFAULT_PORT;
    d->wait_s = CLUSTER_DISCOVER_WAIT_S;
    const char *trust = "trusted-nodes";
    if (v->kind == Y_SCALAR) {
        if (strcmp(v->text, "true") && strcmp(v->text, "false"))
            return fail_at(c, v->line, v->col, "discover: true, false, or a mapping (port, trust, names, wait)");
        cfg->discover_on = !strcmp(v->text, "true");
    } else {
        static const char *const keys[] = {"port", "trust", "names", "wait"};
        const ynode *vals[4];
        const char *port, *dir, *wait;
        if (take_fields(c, v, "discover", keys, 4, vals) ||
            scalar_field(c, v, vals[0], "discover", "port", false, &port) ||
            scalar_field(c, v, vals[1], "discover", "trust", false, &dir) ||
            scalar_field(c, v, vals[3], "discover", "wait", false, &wait) || (vals[2] && read_names(c, vals[2], d)))
            return -1;
        char *end;
        long p = port ? strtol(port, &end, 10) : BEACON_DEFAULT_PORT;
        if (port && (*end || p < 1 || p > 65535))
            return fail_at(c, vals[0]->line, vals[0]->col, "discover.port: a UDP port, 1..65535");
        double w = wait ? strtod(wait, &end) : CLUSTER_DISCOVER_WAIT_S;
        if (wait && (*end || !(w >= 0.5 && w <= 600)))
            return fail_at(c, vals[3]->line, vals[3]->col, "discover.wait: seconds, 0.5..600");
        d->port = (int)p, d->wait_s = w;
        trust = dir ? dir : trust;
        cfg->discover_on = true;
    }
    return (d->trust = resolve_path(base_dir, trust)) ? 0 : out_of_memory(c);
}

static int read_config(ctx *c, const ynode *root, const char *base_dir, cluster_config *cfg) {
    if (!root)
        return fail_at(c, 1, 1, "empty file: a cluster file has 'coordinator' and 'nodes'");
    static const char *const keys[] = {"coordinator", "nodes", "kv_type", "discover"};
    const ynode *vals[4];
    const char *kv_type;
    if (take_fields(c, root, "cluster file", keys, 4, vals) ||
        scalar_field(c, root, vals[2], "cluster file", "kv_type", false, &kv_type))
        return -1;
    char why[160];
    if (kv_type && rl_kv_type_parse(kv_type, &cfg->kv_type, why, sizeof why))
        return fail_at(c, vals[2]->line, vals[2]->col, "kv_type: %s", why);
    cfg->kv_type_given = kv_type != NULL;
    if (!vals[0])
        return fail_at(c, root->line, root->col, "cluster file: missing 'coordinator'");
    if (read_coordinator(c, vals[0], base_dir, cfg))
        return -1;
    const ynode *nodes = vals[1];
    if (vals[3] && read_discover(c, vals[3], base_dir, cfg))
        return -1;
    if (cfg->discover_on && nodes)
        return fail_at(c, nodes->line, nodes->col, "nodes: a cluster file lists its nodes or discovers them, not both");
    if (cfg->discover_on)
        return (cfg->nodes = calloc(CLUSTER_MAX_NODES, sizeof *cfg->nodes)) ? 0 : out_of_memory(c);
    if (!nodes)
        return fail_at(c, root->line, root->col,
                       "cluster file: missing 'nodes' (the list of nodes, or `discover: true` to find them)");
    if (nodes->kind != Y_SEQ)
        return fail_at(c, nodes->line, nodes->col, "nodes: expected a list, found %s", kind_name(nodes->kind));
    if (nodes->n == 0)
        return fail_at(c, nodes->line, nodes->col, "nodes: the list is empty; list at least one node");
    if (nodes->n > CLUSTER_MAX_NODES)
        return fail_at(c, nodes->line, nodes->col, "nodes: %zu nodes, at most %d are supported", nodes->n,
                       CLUSTER_MAX_NODES);
    if (!(cfg->nodes = calloc(CLUSTER_MAX_NODES, sizeof *cfg->nodes))) /* room for cluster_config_add_node */
        return out_of_memory(c);
    for (uint32_t i = 0; i < nodes->n; i++)
        if (read_node_entry(c, nodes->kids[i], i, base_dir, cfg))
            return -1;
    return 0;
}

cluster_config *cluster_config_parse(const char *text, size_t len, const char *name, const char *base_dir, char *err,
                                     size_t errlen) {
    ctx c = {.name = name, .err = err, .errlen = errlen, .text = text, .len = len};
    ynode *root;
    if (read_tree(&c, text, len, &root))
        return NULL;
    cluster_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        out_of_memory(&c);
    else if (read_config(&c, root, base_dir, cfg))
        cluster_config_destroy(&cfg);
    ynode_free(root);
    return cfg;
}

/* The directory part of path ("." when it has none). */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* Reads a regular file of at most CLUSTER_CONFIG_MAX_BYTES. Opened without
 * blocking so that a FIFO named by mistake is refused instead of waited on. */
static char *read_small_file(const char *path, size_t *len, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *text = NULL;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode))
        snprintf(err, errlen, "%s: not a regular file", path);
    else if (st.st_size > (off_t)CLUSTER_CONFIG_MAX_BYTES)
        snprintf(err, errlen, "%s: %lld bytes; a cluster file is at most %u bytes", path, (long long)st.st_size,
                 CLUSTER_CONFIG_MAX_BYTES);
    else if (!(text = malloc((size_t)st.st_size + 1)))
        snprintf(err, errlen, "%s: out of memory", path);
    else if (read(fd, text, (size_t)st.st_size) != (ssize_t)st.st_size) {
        snprintf(err, errlen, "%s: read error", path);
        free(text);
        text = NULL;
    }
    close(fd);
    *len = text ? (size_t)st.st_size : 0;
    return text;
}

cluster_config *cluster_config_load(const char *path, char *err, size_t errlen) {
    size_t len;
    char *text = read_small_file(path, &len, err, errlen);
    if (!text)
        return NULL;
    char *dir = dir_of(path);
    cluster_config *cfg = NULL;
    if (!dir)
        snprintf(err, errlen, "%s: out of memory", path);
    else
        cfg = cluster_config_parse(text, len, path, dir, err, errlen);
    free(text);
    free(dir);
    return cfg;
}

void cluster_config_destroy(cluster_config **c) {
    if (!c || !*c)
        return;
    cluster_config *cfg = *c;
    for (uint32_t i = 0; i < cfg->n_nodes; i++) {
        cluster_node *n = &cfg->nodes[i];
        free((char *)n->name);
        free((char *)n->address);
        free((char *)n->host);
        free((char *)n->public_key);
    }
    free(cfg->nodes);
    for (uint32_t i = 0; i < cfg->discover.n_names; i++)
        free((char *)cfg->discover.names[i]);
    free((char *)cfg->discover.trust);
    free(cfg->key);
    free(cfg->listen);
    free(cfg->advertise);
    free(cfg);
    *c = NULL;
}

const char *cluster_config_key(const cluster_config *c) { return c->key; }
const char *cluster_config_listen(const cluster_config *c) { return c->listen; }
const char *cluster_config_advertise(const cluster_config *c) { return c->advertise; }
int cluster_config_io_cpu(const cluster_config *c) { return c->io_cpu; }

bool cluster_config_kv_type(const cluster_config *c, rl_kv_type *t) {
    if (c->kv_type_given)
        *t = c->kv_type;
    return c->kv_type_given;
}
uint32_t cluster_config_n_nodes(const cluster_config *c) { return c->n_nodes; }

const cluster_node *cluster_config_node(const cluster_config *c, uint32_t i) {
    return i < c->n_nodes ? &c->nodes[i] : NULL;
}

const cluster_discover *cluster_config_discover(const cluster_config *c) {
    return c->discover_on ? &c->discover : NULL;
}

bool cluster_discover_name_ok(const cluster_discover *d, const char *name) {
    for (uint32_t i = 0; i < d->n_names; i++)
        if (fnmatch(d->names[i], name, 0) == 0)
            return true;
    return d->n_names == 0;
}

int cluster_config_add_node(cluster_config *c, const char *name, const char *address, const char *public_key, char *err,
                            size_t errlen) {
    endpoint e;
    char why[160] = "";
    if (c->n_nodes == CLUSTER_MAX_NODES)
        return rl_errf(err, errlen, "node %s: the cluster has %d nodes already", name, CLUSTER_MAX_NODES);
    if (endpoint_parse(address, &e, why, sizeof why) || e.any_port || e.wildcard)
        return rl_errf(err, errlen, "node %s: %s is not a node's address%s%s", name, address, *why ? ": " : "", why);
    for (uint32_t j = 0; j < c->n_nodes; j++)
        if (!strcmp(c->nodes[j].name, name) || (c->nodes[j].port == e.port && !strcasecmp(c->nodes[j].host, e.host)))
            return rl_errf(err, errlen, "node %s at %s: that name or address is taken by node %s", name, address,
                           c->nodes[j].name);
    cluster_node *n = &c->nodes[c->n_nodes];
    *n = (cluster_node){.name = strdup(name),
                        .address = strdup(address),
                        .host = strdup(e.host),
                        .port = e.port,
                        .public_key = strdup(public_key)};
    c->n_nodes++; /* counted now so destroy frees what was allocated */
    if (!n->name || !n->address || !n->host || !n->public_key)
        return rl_errf(err, errlen, "out of memory");
    return 0;
}
