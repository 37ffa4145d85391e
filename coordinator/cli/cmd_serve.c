/* `relais serve`: the OpenAI-compatible HTTP server.
 *
 * The HTTP daemon starts first, so /health answers "loading" while the model
 * loads; then the executor (the engine in this process, or with --cluster
 * the nodes of a cluster file, the model's layers split over them), the
 * scheduler, and the server turns ready. SIGINT or SIGTERM shut it down in
 * order: every request in flight fails at once with an error (an SSE error
 * event, or 503), then the scheduler, the connections and the executor are
 * closed. A step that never completes (a node stopped or hung) must not hold
 * the exit up: past --shutdown-timeout a guard thread ends the process. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "commands.h"
#include "draft.h"
#include "forward.h"
#include "http_server.h"
#include "kv.h"
#include "log.h"
#include "mem.h"
#include "wire.h"

enum {
    OPT_HOST = CLI_OPT_FIRST_OWN,
    OPT_PORT,
    OPT_API_KEY,
    OPT_API_KEYS,
    OPT_MAX_SESSIONS,
    OPT_MAX_QUEUE,
    OPT_PREFILL_CHUNK,
    OPT_MAX_BODY,
    OPT_ALIAS,
    OPT_MAX_CONN,
    OPT_MAX_PER_IP,
    OPT_HEADER_TIMEOUT,
    OPT_SHUTDOWN_TIMEOUT,
    OPT_CACHE_MEM
};

#define DRAIN_WAIT_S 1.0 /* for the failed requests' replies to go out */

typedef struct {
    cli_common common;       /* model path, threads, context, window overrides */
    cli_draft draft;         /* --draft, --draft-max */
    rl_cluster_opts cluster; /* --cluster, --layers, --wire */
    rl_http_opts http;
    rl_sched_opts sched;
    uint32_t batch;        /* tokens per micro-batch */
    const char *alias;     /* model id to report (default: file name) */
    bool cache_mem_set;    /* --cache-mem given (else the default, set at load) */
    const char *key;       /* --api-key */
    const char *keys_file; /* --api-keys */
    char **keys;           /* owned: the accepted keys */
    size_t n_keys;
    unsigned shutdown_timeout; /* seconds from the signal to the exit, at most */
} serve_args;

static void usage(FILE *out) {
    fprintf(out,
            "usage: relais serve -m MODEL.gguf [options]\n\n"
            "OpenAI-compatible API: POST /v1/chat/completions, POST /v1/completions,\n"
            "GET /v1/models, GET /health, GET /metrics.\n\n"
            "  -m, --model FILE        GGUF model (default: $RELAIS_MODEL)\n"
            "      --host ADDR         address to listen on (default 127.0.0.1: this machine only)\n"
            "      --port N            port (default 8080; 0 = any free port, printed at start)\n"
            "      --api-key KEY       require 'Authorization: Bearer KEY'\n"
            "      --api-keys FILE     ... with any key of FILE (one per line, # comments)\n"
            "      --max-sessions N    requests generating at once, each with its KV cache (default 8)\n"
            "      --max-queue N       requests waiting beyond those; more get 429 (default 64)\n"
            "      --ctx N             positions per request, prompt + completion (default 4096 or\n"
            "                          the model's, if less); --ctx-beyond-file accepts more than\n"
            "                          the file's context\n"
            "      --kv-type T         KV cache type: f32, f16 (default) or q8_0; K,V apart (f16,q8_0)\n"
            "  -t, --threads N         worker threads (default: one per core)\n"
            "      --batch N           tokens per micro-batch (default 64)\n"
            "      --prefill-chunk N   most prompt tokens of one request per micro-batch (default: batch)\n"
            "      --cache-mem SIZE    prompt cache: KV a finished request keeps in its free session slot\n"
            "                          for the next one sharing its prefix (e.g. 512M, 2G; whole model,\n"
            "                          each node holding its layers' share; least recently used dropped\n"
            "                          first; default: what --max-sessions full contexts take, the KV\n"
            "                          the start-up check counted; 0: no cache)\n"
            "      --max-body BYTES    largest request body; more gets 413 (default 8 MiB)\n"
            "      --max-connections N         open HTTP connections at once (default 4096)\n"
            "      --max-connections-per-ip N  ... from one client address (default 64; 0: no limit)\n"
            "      --header-timeout SECONDS    a request's whole header must arrive within this,\n"
            "                          else the connection is closed (default 10)\n"
            "      --shutdown-timeout SECONDS  SIGTERM/SIGINT end the process within this even when\n"
            "                          a node does not answer (default 5; requests fail at once)\n"
            "      --alias NAME        model id reported by the API (default: the file name)\n"
            "      --swa-window W --swa-pattern P   sliding-window overrides, as for `relais run`\n" CLI_DRAFT_HELP
                RL_CLUSTER_HELP);
}

/* Reads keys, one per line; blank lines and # comments skipped. */
static int read_keys(serve_args *a) {
    FILE *f = fopen(a->keys_file, "r");
    if (!f) {
        fprintf(stderr, "relais serve: --api-keys %s: %s\n", a->keys_file, strerror(errno));
        return -1;
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *s = line + strspn(line, " \t"), *e = s + strlen(s);
        while (e > s && strchr(" \t\r\n", e[-1]))
            *--e = 0;
        if (!*s || *s == '#')
            continue;
        char **k = realloc(a->keys, (a->n_keys + 1) * sizeof *k);
        if (!k || !(k[a->n_keys] = strdup(s))) {
            a->keys = k ? k : a->keys;
            fclose(f);
            return -1;
        }
        a->keys = k;
        a->n_keys++;
    }
    fclose(f);
    if (a->n_keys == 0) {
        fprintf(stderr, "relais serve: --api-keys %s holds no key\n", a->keys_file);
        return -1;
    }
    return 0;
}

static int own_opt(serve_args *a, int opt, const char *arg) {
    int64_t v;
    switch (opt) {
    case OPT_HOST:
        a->http.host = arg;
        return 0;
    case OPT_PORT:
        return cli_parse_i64("--port", arg, 0, 65535, &v) ? -1 : (a->http.port = (uint16_t)v, 0);
    case OPT_API_KEY:
        if (!*arg)
            return fprintf(stderr, "relais serve: --api-key must not be empty\n"), -1;
        a->key = arg;
        return 0;
    case OPT_API_KEYS:
        a->keys_file = arg;
        return 0;
    case OPT_MAX_SESSIONS:
        return cli_parse_i64("--max-sessions", arg, 1, 4096, &v) ? -1 : (a->sched.max_sessions = (uint32_t)v, 0);
    case OPT_MAX_QUEUE:
        return cli_parse_i64("--max-queue", arg, 0, 1 << 20, &v) ? -1 : (a->sched.max_queue = (uint32_t)v, 0);
    case OPT_PREFILL_CHUNK:
        return cli_parse_i64("--prefill-chunk", arg, 1, 65536, &v) ? -1 : (a->sched.prefill_chunk = (uint32_t)v, 0);
    case OPT_MAX_BODY:
        return cli_parse_i64("--max-body", arg, 1024, 1 << 30, &v) ? -1 : (a->http.max_body = (size_t)v, 0);
    case OPT_MAX_CONN:
        return cli_parse_i64("--max-connections", arg, 16, 65536, &v) ? -1 : (a->http.max_connections = (unsigned)v, 0);
    case OPT_MAX_PER_IP:
        return cli_parse_i64("--max-connections-per-ip", arg, 0, 65536, &v) ? -1
                                                                            : (a->http.max_per_ip = (unsigned)v, 0);
    case OPT_HEADER_TIMEOUT:
        return cli_parse_i64("--header-timeout", arg, 1, 3600, &v) ? -1 : (a->http.header_timeout = (unsigned)v, 0);
    case OPT_SHUTDOWN_TIMEOUT:
        return cli_parse_i64("--shutdown-timeout", arg, 2, 3600, &v) ? -1 : (a->shutdown_timeout = (unsigned)v, 0);
    case OPT_ALIAS:
        a->alias = arg;
        return 0;
    case OPT_CACHE_MEM:
        if (rl_mem_parse_size(arg, &a->sched.cache_mem))
            return fprintf(stderr, "relais serve: --cache-mem %s is not a size (e.g. 512M, 2G, 0)\n", arg), -1;
        a->cache_mem_set = true;
        return 0;
    case CLI_OPT_BATCH:
        return cli_parse_i64("--batch", arg, 1, 4096, &v) ? -1 : (a->batch = (uint32_t)v, 0);
    default:
        usage(stderr);
        return -1;
    }
}

static int parse_args(int argc, char **argv, serve_args *a) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"threads", required_argument, 0, 't'},
                                             {"ctx", required_argument, 0, CLI_OPT_CTX},
                                             {"swa-window", required_argument, 0, CLI_OPT_SWA_W},
                                             {"kv-type", required_argument, 0, CLI_OPT_KV_TYPE},
                                             {"ctx-beyond-file", no_argument, 0, CLI_OPT_CTX_BEYOND},
                                             {"swa-pattern", required_argument, 0, CLI_OPT_SWA_P},
                                             {"batch", required_argument, 0, CLI_OPT_BATCH},
                                             {"host", required_argument, 0, OPT_HOST},
                                             {"port", required_argument, 0, OPT_PORT},
                                             {"api-key", required_argument, 0, OPT_API_KEY},
                                             {"api-keys", required_argument, 0, OPT_API_KEYS},
                                             {"max-sessions", required_argument, 0, OPT_MAX_SESSIONS},
                                             {"max-queue", required_argument, 0, OPT_MAX_QUEUE},
                                             {"prefill-chunk", required_argument, 0, OPT_PREFILL_CHUNK},
                                             {"max-body", required_argument, 0, OPT_MAX_BODY},
                                             {"max-connections", required_argument, 0, OPT_MAX_CONN},
                                             {"max-connections-per-ip", required_argument, 0, OPT_MAX_PER_IP},
                                             {"header-timeout", required_argument, 0, OPT_HEADER_TIMEOUT},
                                             {"shutdown-timeout", required_argument, 0, OPT_SHUTDOWN_TIMEOUT},
                                             {"alias", required_argument, 0, OPT_ALIAS},
                                             {"cache-mem", required_argument, 0, OPT_CACHE_MEM},
                                             {"help", no_argument, 0, 'h'},
                                             CLI_DRAFT_LONGOPTS,
                                             RL_CLUSTER_LONGOPTS,
                                             {0, 0, 0, 0}};
    int opt;
    cli_common_init(&a->common, 0);
    a->http = (rl_http_opts){.host = "127.0.0.1",
                             .port = 8080,
                             .max_body = 8u << 20,
                             .max_connections = 4096,
                             .max_per_ip = 64,
                             .header_timeout = 10};
    a->sched = (rl_sched_opts){.max_sessions = 8, .max_queue = 64};
    a->batch = 64;
    a->shutdown_timeout = 5;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:t:h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            exit(0);
        }
        int rc = opt == CLI_OPT_BATCH ? 0 : cli_common_opt(&a->common, opt, optarg);
        if (rc == 0)
            rc = cli_draft_opt(&a->draft, opt, optarg);
        if (rc == 0)
            rc = rl_cluster_opt(&a->cluster, opt, optarg);
        if (rc < 0 || (rc == 0 && own_opt(a, opt, optarg)))
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "relais serve: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    char err[256];
    if (rl_cluster_opts_check(&a->cluster, err, sizeof err)) {
        fprintf(stderr, "relais serve: %s\n", err);
        return -1;
    }
    if (a->http.max_per_ip >= a->http.max_connections) {
        fprintf(stderr,
                "relais serve: --max-connections-per-ip %u must be below --max-connections %u, so that one "
                "client cannot take every connection\n",
                a->http.max_per_ip, a->http.max_connections);
        return -1;
    }
    if (a->key && a->keys_file) {
        fprintf(stderr, "relais serve: give --api-key or --api-keys, not both\n");
        return -1;
    }
    if (a->keys_file && read_keys(a))
        return -1;
    if (a->key) {
        if (!(a->keys = calloc(1, sizeof *a->keys)) || !(a->keys[0] = strdup(a->key)))
            return -1;
        a->n_keys = 1;
    }
    a->http.keys = a->keys;
    a->http.n_keys = a->n_keys;
    return cli_require_model(&a->common);
}

/* What the server runs on: the executor with its model and tokenizer, and the scheduler. */
typedef struct {
    rl_xengine e;
    rl_draft *draft; /* --draft: the scheduler's draft source */
    rl_sched *sched;
    rl_jg_vocab *json; /* the tokens' bytes for JSON output, made once */
} engine;

/* The threads as the startup line says them: -t's count, or (-t not given,
 * which the engine and the nodes read as "one per core") what that means
 * here, and on a cluster what the nodes were told (Assign.threads, which a
 * node caps at its own CPUs, 0 leaving it to its own --threads). */
static void describe_threads(int n_threads, bool on_nodes, char *buf, size_t len) {
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (on_nodes && n_threads > 0)
        snprintf(buf, len, "%d thread%s per node (at most its CPUs)", n_threads, n_threads == 1 ? "" : "s");
    else if (on_nodes)
        snprintf(buf, len, "each node's own threads (its --threads, default one per core)");
    else if (n_threads > 0)
        snprintf(buf, len, "%d thread%s", n_threads, n_threads == 1 ? "" : "s");
    else
        snprintf(buf, len, "one thread per core (%ld)", cores > 0 ? cores : 1);
}

static int load(const serve_args *a, rl_serve *app, engine *en, char *err, size_t errlen) {
    rl_runner_opts ro = a->common.runner;
    ro.batch = a->batch;
    if (rl_xengine_open(&en->e, &a->cluster, &ro, a->sched.max_sessions, err, errlen))
        return -1;
    const uint32_t n_ctx = en->e.n_ctx;
    const rl_hparams *hp = rl_model_hparams(en->e.view);
    rl_sched_opts so = a->sched;
    so.n_ctx = n_ctx;
    if (a->draft.spec &&
        !(en->draft = rl_draft_new(a->draft.spec, en->e.tok, a->common.runner.n_threads, n_ctx, err, errlen)))
        return -1;
    so.draft = en->draft, so.draft_max = a->draft.k_max;
    so.hp = hp;
    so.kv_type = en->e.kv_type;
    if (!a->cache_mem_set) /* the sessions' KV the memory check counted: cached sessions live in free slots */
        so.cache_mem = rl_kv_bytes_for(hp, 0, hp->n_layer, n_ctx, en->e.kv_type) * so.max_sessions;
    if (!(en->sched = rl_sched_new(en->e.x, en->e.tok, &so, err, errlen)))
        return -1;
    app->model =
        (rl_oai_model){en->e.tok, rl_chat_template_detect(en->e.tok, rl_model_gguf(en->e.view)), n_ctx, app->model_id};
    if (!(en->json = rl_oai_json_vocab_new(en->e.tok))) {
        snprintf(err, errlen, "out of memory for the vocabulary's bytes");
        return -1;
    }
    app->json = en->json;
    app->sched = en->sched;
    app->x = en->e.x;
    app->hp = *hp;
    app->kv_type = en->e.kv_type;
    app->max_sessions = so.max_sessions;
    /* A session's KV: in one process opening the engine logged it already */
    char kv[160] = "", desc[150];
    if (a->cluster.file)
        snprintf(kv, sizeof kv, " (%s each)", rl_kv_describe(hp, en->e.kv_type, n_ctx, desc, sizeof desc));
    char threads[96];
    describe_threads(a->common.runner.n_threads, a->cluster.file != NULL, threads, sizeof threads);
    rl_log(RL_LOG_INFO,
           "serve: %s, template %s, context %u per request, up to %u sessions%s, "
           "micro-batches of %u tokens, %u in flight, %s, prompt cache %.1f MiB",
           app->model_id, rl_chat_template_name(app->model.tpl), n_ctx, so.max_sessions, kv, a->batch, en->e.x->depth,
           threads, so.cache_mem / 1048576.0);
    return 0;
}

static void unload(engine *en) {
    rl_sched_destroy(&en->sched);
    rl_draft_destroy(&en->draft);
    rl_jg_vocab_destroy(&en->json);
    rl_xengine_close(&en->e);
}

static void model_id_of(const serve_args *a, char *out, size_t len) {
    const char *p = a->alias;
    if (!p) {
        p = strrchr(a->common.runner.model_path, '/');
        p = p ? p + 1 : a->common.runner.model_path;
    }
    snprintf(out, len, "%s", p);
    size_t n = strlen(out);
    if (!a->alias && n > 5 && !strcmp(out + n - 5, ".gguf"))
        out[n - 5] = 0;
}

/* After the signal, the shutdown gets its time, then the process ends: a
 * micro-batch waiting on a stopped node, or a load that hangs, would
 * otherwise hold the exit up for ever (the requests have all been answered
 * with an error by then). */
static void *shutdown_guard(void *arg) {
    const unsigned secs = *(const unsigned *)arg;
    struct timespec ts = {(time_t)secs, 0};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
    rl_log(RL_LOG_WARN, "serve: the shutdown did not finish within %u s (a node not answering?): exiting now", secs);
    _exit(0);
    return NULL;
}

/* The model loads on a thread of its own, so that the main thread can wait
 * for the signals from the start: the kernel hands a process's signal to
 * its main thread first, and a library's thread started before main (such
 * as OpenBLAS's) does not block them. */
typedef struct {
    const serve_args *a;
    rl_serve *app;
    engine *en;
    atomic_int state; /* 0 loading, 1 loaded, -1 failed */
} loader;

static void *loader_main(void *arg) {
    loader *l = arg;
    char err[512];
    if (load(l->a, l->app, l->en, err, sizeof err)) {
        fprintf(stderr, "relais serve: %s\n", err);
        atomic_store(&l->app->ready, -1);
        atomic_store(&l->state, -1);
        return NULL;
    }
    atomic_store(&l->app->ready, 1);
    fprintf(stderr, "relais serve: ready\n");
    atomic_store(&l->state, 1);
    return NULL;
}

/* A stop signal that reached a thread started before the mask was set
 * (OpenBLAS starts its pool from a library constructor, before main): the
 * handler notes it and wait_signal sees it within one slice. */
static volatile sig_atomic_t stray_signal;

static void note_signal(int sig) { stray_signal = sig; }

/* Waits for SIGINT or SIGTERM (its number), or for the load to fail (0). */
static int wait_signal(const sigset_t *set, loader *l) {
    const struct timespec slice = {0, 100 * 1000000L};
    for (;;) {
        int sig = sigtimedwait(set, NULL, &slice);
        if (sig > 0)
            return sig;
        if (stray_signal)
            return stray_signal;
        if (atomic_load(&l->state) < 0)
            return 0;
    }
}

int cmd_serve(int argc, char **argv) {
    serve_args a = {0};
    rl_serve app = {.created = (int64_t)time(NULL)};
    engine en = {0};
    rl_http *http = NULL;
    char err[512];
    int rc = 1;
    /* signals are taken by wait_signal; every thread started here inherits the mask */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    struct sigaction note = {.sa_handler = note_signal};
    sigemptyset(&note.sa_mask);
    sigaction(SIGINT, &note, NULL);
    sigaction(SIGTERM, &note, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* freed caches go back to the system instead of staying in the heap */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    atomic_init(&app.ready, 0);
    if (parse_args(argc, argv, &a) || !(app.metrics = rl_metrics_new()))
        goto out;
    model_id_of(&a, app.model_id, sizeof app.model_id);
    if (!(http = rl_http_start(&app, &a.http, err, sizeof err))) {
        fprintf(stderr, "relais serve: %s\n", err);
        goto out;
    }
    fprintf(stderr, "relais serve: listening on http://%s:%u\n", a.http.host, rl_http_port(http));
    loader l = {.a = &a, .app = &app, .en = &en};
    atomic_init(&l.state, 0);
    pthread_t loading;
    if (pthread_create(&loading, NULL, loader_main, &l) != 0) {
        fprintf(stderr, "relais serve: cannot start the loading thread\n");
        goto out;
    }
    const int sig = wait_signal(&stop, &l);
    if (sig) {
        fprintf(stderr, "relais serve: %s, shutting down\n", sig == SIGINT ? "interrupted" : "terminated");
        pthread_t guard;
        if (pthread_create(&guard, NULL, shutdown_guard, &a.shutdown_timeout) == 0)
            pthread_detach(guard);
    }
    pthread_join(loading, NULL); /* a load still going on is bounded by the guard */
    if (atomic_load(&l.state) < 0)
        goto out;
    rl_http_drain(http, DRAIN_WAIT_S);
    rc = 0;
out:
    if (en.sched)
        rl_sched_shutdown(en.sched);
    rl_http_stop(&http);
    unload(&en);
    rl_metrics_destroy(&app.metrics);
    for (size_t i = 0; i < a.n_keys; i++)
        free(a.keys[i]);
    free(a.keys);
    return rc;
}
