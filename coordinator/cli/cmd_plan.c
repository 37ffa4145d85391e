/* `relais plan --cluster FILE -m MODEL`: which layers each node of a cluster
 * would run, with its memory (weights, KV, total against free) and its
 * expected share of the time per token, without loading or sending any
 * weights. The nodes' free RAM and measured speed come from their answers
 * to Hello, and the hop into each node (half its round trip from here) from
 * a few heartbeats; --assume-node-ram, --assume-node-speed and
 * --assume-node-link replace them (one value for every node or one per
 * node), and with ram and speed assumed the nodes are not contacted at all
 * (links count 0 unless assumed), which sizes a cluster that does not exist
 * yet. A model
 * that does not fit is reported with the nodes that are short and by how
 * much (exit code 1). --json prints the same as one object, a stable
 * interface for scripts. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "cluster.h"
#include "cluster_config.h"
#include "cluster_discover.h"
#include "commands.h"
#include "model.h"
#include "planner.h"

#define MIB(x) ((double)(x) / 1048576.0)

static void usage(FILE *out) {
    fprintf(out,
            "usage: relais plan --cluster FILE -m MODEL [options]\n"
            "\n"
            "Prints which layers each node of the cluster runs, the memory it needs and\n"
            "its expected share of the time per token. The nodes are asked for their\n"
            "free RAM and measured speed; no weights are loaded or sent.\n"
            "\n"
            "  --cluster FILE          the cluster file (deploy/cluster.example.yaml)\n"
            "  -m, --model FILE        GGUF model (default: $RELAIS_MODEL)\n"
            "  --ctx N                 positions of KV per session (default 4096 or the model's,\n"
            "                          if less; more than the model's is refused)\n"
            "  --sessions N            sessions each node keeps KV for (default 1)\n"
            "  --kv-type T             KV cache type: f32, f16 (default), q8_0, or K,V (f16,q8_0);\n"
            "                          default: the cluster file's kv_type, else f16\n"
            "  --layers A-B,C-D,...    check this split instead of planning one: one range\n"
            "                          per node in the file's order, inclusive, '-' for none\n"
            "  --allow-idle            a node may get no layers (a slow node is left out)\n"
            "  --head-on-coordinator   the coordinator runs the final norm and the head\n"
            "                          (default: the last node, so only ids travel back)\n"
            "  --reserve BYTES         per node, for activations and the runtime (default 64M)\n"
            "  --swa-window W, --swa-pattern P   sliding-window overrides, as for run\n"
            "  --assume-node-ram BYTES[,BYTES...]       free RAM of the nodes, instead of\n"
            "                          what they report\n"
            "  --assume-node-speed BYTES/S[,BYTES/S...] weight bytes a node's matvec streams\n"
            "                          per second, instead of what the nodes measured\n"
            "  --assume-node-link MS[,MS...]            milliseconds the hop into a node adds\n"
            "                          per token, instead of half its measured round trip\n"
            "                          Each takes one value for every node or one per\n"
            "                          node; sizes take K, M, G, T (powers of 1024). With\n"
            "                          ram and speed given, the nodes are not contacted\n"
            "  --timeout S             seconds to wait for the nodes' answers (default 10)\n"
            "  --json                  print the plan as JSON\n"
            "\n"
            "Exit code 0 when the model fits, 1 when it does not (or on an error), 2 for\n"
            "bad options.\n");
}

enum {
    OPT_CLUSTER = 1,
    OPT_CTX,
    OPT_SESSIONS,
    OPT_LAYERS,
    OPT_IDLE,
    OPT_HEAD_COORD,
    OPT_RESERVE,
    OPT_SWA_W,
    OPT_SWA_P,
    OPT_RAM,
    OPT_SPEED,
    OPT_TIMEOUT,
    OPT_JSON,
    OPT_KV_TYPE,
    OPT_LINK
};

typedef struct {
    const char *cluster;            /* the cluster file */
    const char *model;              /* the GGUF file */
    const char *layers;             /* a fixed split, or NULL */
    const char *ram, *speed, *link; /* --assume-node-* lists, or NULL */
    int64_t n_ctx;                  /* 0: 4096 capped at the model's */
    int64_t n_sessions;
    int64_t swa_window;      /* -1 keeps the file's */
    int64_t timeout_s;       /* for the nodes' answers to Hello */
    const char *swa_pattern; /* NULL keeps the file's */
    rl_kv_type kv_type;      /* the nodes' KV types */
    bool kv_type_set;        /* --kv-type given: overrides the cluster file's */
    double reserve;
    bool allow_idle, head_on_coordinator, json;
} plan_args;

/* "8G", "1.5GiB", "64M", "123": bytes (K, M, G, T are powers of 1024). */
static int parse_size(const char *what, const char *s, size_t len, double *out) {
    static const char units[] = "KMGT";
    char buf[64], *end;
    if (len == 0 || len >= sizeof buf)
        goto bad;
    memcpy(buf, s, len);
    buf[len] = 0;
    errno = 0;
    double v = strtod(buf, &end);
    if (!(isdigit((unsigned char)buf[0]) || buf[0] == '.') || end == buf || errno || !isfinite(v))
        goto bad;
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (u) {
        v *= pow(1024.0, (double)(u - units + 1));
        end += 1 + 2 * !strcmp(end + 1, "iB");
    }
    end += !strcmp(end, "B");
    if (*end)
        goto bad;
    if (v > 9.0e18)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "relais plan: %s: '%.*s' is not a size (e.g. 4096, 64M, 7.5G)\n", what, (int)len, s);
    return -1;
}

/* A comma-separated list of one size for every node or one per node. */
static int parse_per_node(const char *what, const char *list, uint32_t n_nodes, double *out) {
    uint32_t count = 1;
    for (const char *p = list; *p; p++)
        count += *p == ',';
    if (count != 1 && count != n_nodes) {
        fprintf(stderr, "relais plan: %s: %u values for %u nodes (give one for all, or one per node)\n", what, count,
                n_nodes);
        return -1;
    }
    const char *p = list;
    for (uint32_t k = 0; k < count; k++) {
        size_t len = strcspn(p, ",");
        if (parse_size(what, p, len, &out[k]))
            return -1;
        p += len + (p[len] == ',');
    }
    for (uint32_t k = count; k < n_nodes; k++)
        out[k] = out[0];
    return 0;
}

static int parse_opt(int opt, const char *arg, plan_args *a) {
    switch (opt) {
    case OPT_CLUSTER:
        a->cluster = arg;
        return 0;
    case 'm':
        a->model = arg;
        return 0;
    case OPT_CTX:
        return cli_parse_i64("--ctx", arg, 1, 1 << 24, &a->n_ctx);
    case OPT_SESSIONS:
        return cli_parse_i64("--sessions", arg, 1, 1 << 16, &a->n_sessions);
    case OPT_LAYERS:
        a->layers = arg;
        return 0;
    case OPT_IDLE:
        a->allow_idle = true;
        return 0;
    case OPT_HEAD_COORD:
        a->head_on_coordinator = true;
        return 0;
    case OPT_RESERVE:
        return parse_size("--reserve", arg, strlen(arg), &a->reserve);
    case OPT_SWA_W:
        return cli_parse_i64("--swa-window", arg, 0, 1 << 24, &a->swa_window);
    case OPT_SWA_P:
        a->swa_pattern = arg;
        return 0;
    case OPT_RAM:
        a->ram = arg;
        return 0;
    case OPT_SPEED:
        a->speed = arg;
        return 0;
    case OPT_LINK:
        a->link = arg;
        return 0;
    case OPT_TIMEOUT:
        return cli_parse_i64("--timeout", arg, 1, 3600, &a->timeout_s);
    case OPT_JSON:
        a->json = true;
        return 0;
    case OPT_KV_TYPE: {
        char err[160];
        a->kv_type_set = true;
        if (rl_kv_type_parse(arg, &a->kv_type, err, sizeof err) == 0)
            return 0;
        fprintf(stderr, "relais plan: --kv-type: %s\n", err);
        return -1;
    }
    default:
        return -1; /* getopt already said what was wrong */
    }
}

/* 0, 1 after --help, -1 on a bad option. */
static int parse_args(int argc, char **argv, plan_args *a) {
    static const struct option longopts[] = {{"cluster", required_argument, 0, OPT_CLUSTER},
                                             {"model", required_argument, 0, 'm'},
                                             {"ctx", required_argument, 0, OPT_CTX},
                                             {"sessions", required_argument, 0, OPT_SESSIONS},
                                             {"layers", required_argument, 0, OPT_LAYERS},
                                             {"allow-idle", no_argument, 0, OPT_IDLE},
                                             {"head-on-coordinator", no_argument, 0, OPT_HEAD_COORD},
                                             {"reserve", required_argument, 0, OPT_RESERVE},
                                             {"swa-window", required_argument, 0, OPT_SWA_W},
                                             {"swa-pattern", required_argument, 0, OPT_SWA_P},
                                             {"assume-node-ram", required_argument, 0, OPT_RAM},
                                             {"assume-node-speed", required_argument, 0, OPT_SPEED},
                                             {"timeout", required_argument, 0, OPT_TIMEOUT},
                                             {"json", no_argument, 0, OPT_JSON},
                                             {"help", no_argument, 0, 'h'},
                                             {"kv-type", required_argument, 0, OPT_KV_TYPE},
                                             {"assume-node-link", required_argument, 0, OPT_LINK},
                                             {0, 0, 0, 0}};
    *a = (plan_args){.n_sessions = 1,
                     .swa_window = -1,
                     .timeout_s = 10,
                     .reserve = (double)PLAN_DEFAULT_RESERVE,
                     .kv_type = RL_KV_TYPE_DEFAULT};
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "m:h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if (parse_opt(opt, optarg, a))
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "relais plan: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!a->model)
        a->model = getenv("RELAIS_MODEL");
    if (!a->cluster || !a->model || !*a->model) {
        fprintf(stderr, "relais plan: %s is required\n\n", !a->cluster ? "--cluster FILE" : "-m MODEL");
        usage(stderr);
        return -1;
    }
    return 0;
}

/* The free RAM and speed the nodes report at Hello, and their links
 * (cluster_measure_links), where not assumed. */
static int ask_nodes(const plan_args *a, const cluster_config *cfg, double *ram, double *speed, double *link_ms) {
    char err[1024];
    cluster *c = cluster_new(cluster_config_key(cfg), cluster_config_listen(cfg), cluster_config_advertise(cfg),
                             cluster_config_io_cpu(cfg), cluster_config_node(cfg, 0), cluster_config_n_nodes(cfg), err,
                             sizeof err);
    int ms = (int)a->timeout_s * 1000;
    if (c)
        cluster_set_timeouts(c, ms, ms, ms); /* only Hello is waited for */
    if (!c || cluster_hello(c, err, sizeof err) || (!a->link && cluster_measure_links(c, 3, NULL, err, sizeof err))) {
        fprintf(stderr, "relais plan: %s\n(--assume-node-ram and --assume-node-speed plan without the nodes)\n", err);
        cluster_destroy(&c);
        return -1;
    }
    for (uint32_t k = 0; k < cluster_config_n_nodes(cfg); k++) {
        const cluster_node_info *info = cluster_info(c, k);
        if (!a->ram)
            ram[k] = (double)info->free_ram;
        if (!a->speed)
            speed[k] = info->matvec_bytes_per_s;
        if (!a->link)
            link_ms[k] = info->rtt_s / 2 * 1e3;
    }
    cluster_destroy(&c);
    return 0;
}

/* Each node's free RAM and speed: the --assume-node-* lists, the nodes'
 * reports for what was not assumed. 0, 1 when the nodes could not be asked,
 * 2 for a bad list. */
static int node_caps(const plan_args *a, const cluster_config *cfg, plan_node *nodes) {
    uint32_t n = cluster_config_n_nodes(cfg);
    double ram[CLUSTER_MAX_NODES], speed[CLUSTER_MAX_NODES], link_ms[CLUSTER_MAX_NODES] = {0};
    if ((a->ram && parse_per_node("--assume-node-ram", a->ram, n, ram)) ||
        (a->speed && parse_per_node("--assume-node-speed", a->speed, n, speed)) ||
        (a->link && parse_per_node("--assume-node-link", a->link, n, link_ms)))
        return 2;
    for (uint32_t k = 0; a->speed && k < n; k++)
        if (!(speed[k] > 0)) {
            fprintf(stderr, "relais plan: --assume-node-speed: a node's speed must be more than 0\n");
            return 2;
        }
    if ((!a->ram || !a->speed) && ask_nodes(a, cfg, ram, speed, link_ms))
        return 1;
    for (uint32_t k = 0; k < n; k++)
        nodes[k] = (plan_node){cluster_config_node(cfg, k)->name, (uint64_t)ram[k], speed[k], link_ms[k] / 1e3};
    return 0;
}

static void stage_layers(const plan_stage *s, char *buf, size_t len) {
    char r[32];
    plan_stage_layers(s, r, sizeof r);
    snprintf(buf, len, "%s%s", r, s->head ? "+head" : "");
}

static void print_header(const plan_args *a, const plan_model *m, const plan_input *in) {
    uint32_t n_slide = 0;
    uint64_t w = 0;
    for (uint32_t i = 0; i < m->hp.n_layer; i++) {
        n_slide += m->hp.sliding[i] && m->hp.swa_window > 0;
        w += m->layer_bytes[i];
    }
    printf("model    %s: %u layers", a->model, m->hp.n_layer);
    if (n_slide)
        printf(" (%u sliding over %u positions)", n_slide, m->hp.swa_window);
    printf(", %.1f MiB of layer weights, head %.1f MiB\n", MIB(w), MIB(m->head_bytes));
    char kv[160];
    printf("context  %u positions x %u session%s; reserve %.1f MiB per node; head on the %s\n", in->n_ctx,
           in->n_sessions, in->n_sessions > 1 ? "s" : "", MIB(in->reserve),
           in->head_on_coordinator ? "coordinator" : "last node");
    printf("cache    %s, per session\n", rl_kv_describe(&m->hp, in->kv_type, in->n_ctx, kv, sizeof kv));
    printf("nodes    free RAM %s, speed %s, link %s (ms/token counts it)\n\n",
           a->ram ? "as given by --assume-node-ram" : "as the nodes report it",
           a->speed ? "as given by --assume-node-speed" : "as the nodes measured it",
           a->link                  ? "as given by --assume-node-link"
               : a->ram && a->speed ? "0 (not measured)"
                                    : "half the round trip");
}

static void print_table(const plan_args *a, const cluster_config *cfg, const plan_model *m, const plan_input *in,
                        const plan *p) {
    int wn = 4, wa = 7, wl = 6;
    char layers[48];
    for (uint32_t k = 0; k < plan_n_stages(p); k++) {
        const cluster_node *n = cluster_config_node(cfg, k);
        stage_layers(plan_stage_at(p, k), layers, sizeof layers);
        wn = (int)strlen(n->name) > wn ? (int)strlen(n->name) : wn;
        wa = (int)strlen(n->address) > wa ? (int)strlen(n->address) : wa;
        wl = (int)strlen(layers) > wl ? (int)strlen(layers) : wl;
    }
    print_header(a, m, in);
    printf("%-*s  %-*s  %-*s  %11s  %9s  %9s  %9s  %11s  %7s  %9s  %6s\n", wn, "node", wa, "address", wl, "layers",
           "weights MiB", "KV MiB", "total MiB", "free MiB", "speed GiB/s", "link ms", "ms/token", "time");
    double total_ms = 0;
    for (uint32_t k = 0; k < plan_n_stages(p); k++) {
        const cluster_node *n = cluster_config_node(cfg, k);
        const plan_stage *s = plan_stage_at(p, k);
        stage_layers(s, layers, sizeof layers);
        printf("%-*s  %-*s  %-*s  %11.1f  %9.1f  %9.1f  %9.1f  %11.2f  %7.2f  %9.2f  %5.1f%%%s\n", wn, n->name, wa,
               n->address, wl, layers, MIB(s->weight_bytes + s->head_bytes), MIB(s->kv_bytes), MIB(s->need_bytes),
               MIB(s->free_bytes), in->nodes[k].speed / (1024.0 * 1024 * 1024), in->nodes[k].link_s * 1e3,
               s->time_s * 1e3, s->share * 100, s->need_bytes > s->free_bytes ? "  SHORT" : "");
        total_ms += s->time_s * 1e3;
    }
    printf("%-*s  %-*s  %-*s  %11s  %9s  %9.1f  %9.1f  %11s  %7s  %9.2f\n\n", wn, "total", wa, "", wl, "", "", "",
           MIB(plan_total_need(p)), MIB(plan_total_free(p)), "", "", total_ms);
    if (plan_fits(p)) {
        char split[CLUSTER_MAX_NODES * 16];
        plan_format_ranges(p, split, sizeof split);
        printf("fits; to pin this split: --layers %s\n", split);
    } else {
        fputs(plan_problem(p), stdout);
    }
}

static void print_json(const plan_args *a, const cluster_config *cfg, const plan_model *m, const plan_input *in,
                       const plan *p) {
    char split[CLUSTER_MAX_NODES * 16], layers[32];
    plan_format_ranges(p, split, sizeof split);
    json_t *nodes = json_array();
    for (uint32_t k = 0; k < plan_n_stages(p); k++) {
        const cluster_node *n = cluster_config_node(cfg, k);
        const plan_stage *s = plan_stage_at(p, k);
        plan_stage_layers(s, layers, sizeof layers);
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f}", "name",
                              n->name, "address", n->address, "layers", layers, "layer_begin", (json_int_t)s->l0,
                              "layer_end", (json_int_t)s->l1, "head", s->head, "weight_bytes",
                              (json_int_t)s->weight_bytes, "kv_bytes", (json_int_t)s->kv_bytes, "head_bytes",
                              (json_int_t)s->head_bytes, "reserve_bytes", (json_int_t)s->reserve_bytes, "need_bytes",
                              (json_int_t)s->need_bytes, "free_bytes", (json_int_t)s->free_bytes, "speed_bytes_per_s",
                              in->nodes[k].speed, "time_s", s->time_s, "time_share", s->share);
        json_object_set_new(o, "link_s", json_real(in->nodes[k].link_s)); /* the node's; time_s counts it when used */
        json_array_append_new(nodes, o);
    }
    json_t *root =
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:b, s:s, s:I, s:I, s:o, s:s, s:s}", "model", a->model, "n_layer",
                  (json_int_t)m->hp.n_layer, "n_ctx", (json_int_t)in->n_ctx, "n_sessions", (json_int_t)in->n_sessions,
                  "reserve_bytes", (json_int_t)in->reserve, "head_on_coordinator", in->head_on_coordinator, "fits",
                  plan_fits(p), "split", split, "total_need_bytes", (json_int_t)plan_total_need(p), "total_free_bytes",
                  (json_int_t)plan_total_free(p), "nodes", nodes, "free_ram_from", a->ram ? "assumed" : "nodes",
                  "speed_from", a->speed ? "assumed" : "nodes");
    json_object_set_new(root, "problem", plan_fits(p) ? json_null() : json_string(plan_problem(p)));
    char kt[32];
    json_object_set_new(root, "kv_type", json_string(rl_kv_type_str(in->kv_type, kt, sizeof kt)));
    json_object_set_new(root, "kv_bytes_per_token",
                        json_integer((json_int_t)rl_kv_bytes_per_token(&m->hp, in->kv_type)));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (text)
        puts(text);
    free(text);
    json_decref(root);
}

/* Plans for the loaded model and cluster and prints; the exit code. */
static int plan_and_print(const plan_args *a, const cluster_config *cfg, const plan_model *m) {
    uint32_t n = cluster_config_n_nodes(cfg);
    plan_node nodes[CLUSTER_MAX_NODES];
    plan_range ranges[CLUSTER_MAX_NODES];
    char err[512];
    if (a->layers && plan_parse_ranges(a->layers, m->hp.n_layer, n, ranges, err, sizeof err)) {
        fprintf(stderr, "relais plan: --layers %s: %s\n", a->layers, err);
        return 2;
    }
    int rc = node_caps(a, cfg, nodes);
    if (rc)
        return rc;
    plan_input in = plan_input_default();
    in.hp = &m->hp;
    in.layer_bytes = m->layer_bytes;
    in.head_bytes = m->head_bytes;
    in.nodes = nodes;
    in.n_nodes = n;
    if (rl_hparams_ctx(&m->hp, (uint32_t)a->n_ctx, &in.n_ctx, err, sizeof err)) {
        fprintf(stderr, "relais plan: %s\n", err);
        return 2;
    }
    in.n_sessions = (uint32_t)a->n_sessions;
    in.kv_type = a->kv_type;
    if (!a->kv_type_set)
        cluster_config_kv_type(cfg, &in.kv_type);
    if (rl_kv_type_check(in.kv_type, &m->hp, err, sizeof err)) {
        fprintf(stderr, "relais plan: %s\n", err);
        return 2;
    }
    in.reserve = (uint64_t)a->reserve;
    in.head_on_coordinator = a->head_on_coordinator;
    in.allow_idle = a->allow_idle;
    in.ranges = a->layers ? ranges : NULL;
    plan *p = plan_new(&in, err, sizeof err);
    if (!p) {
        fprintf(stderr, "relais plan: %s\n", err);
        return 1;
    }
    if (a->json)
        print_json(a, cfg, m, &in, p);
    else
        print_table(a, cfg, m, &in, p);
    rc = plan_fits(p) ? 0 : 1;
    plan_destroy(&p);
    return rc;
}

int cmd_plan(int argc, char **argv) {
    plan_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc > 0 ? 0 : 2;
    char err[1024];
    cluster_config *cfg = cluster_config_open(a.cluster, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "relais plan: %s\n", err);
        return 1;
    }
    plan_model m;
    rl_model_opts mo = rl_model_opts_default();
    mo.swa_window = a.swa_window;
    mo.swa_pattern = a.swa_pattern;
    if (plan_model_read(a.model, &mo, &m, err, sizeof err)) {
        fprintf(stderr, "relais plan: %s\n", err);
        rc = 1;
    } else {
        rc = plan_and_print(&a, cfg, &m);
    }
    plan_model_free(&m);
    cluster_config_destroy(&cfg);
    return rc;
}
