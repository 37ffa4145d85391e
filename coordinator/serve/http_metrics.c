/* Server counters and their Prometheus rendering (see http_metrics.h). */
#include "http_metrics.h"
#include "util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const EP_NAMES[EP_COUNT] = {"chat_completions", "completions", "models", "health",
                                               "metrics",          "web",         "other"};
/* The statuses the server replies with; anything else counts as "other". */
static const int CODES[] = {200, 400, 401, 404, 405, 413, 429, 500, 503};
#define N_CODES (sizeof CODES / sizeof CODES[0])
/* Time-to-first-token histogram bounds, seconds. */
static const double TTFT_BOUNDS[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define N_BOUNDS (sizeof TTFT_BOUNDS / sizeof TTFT_BOUNDS[0])

struct rl_metrics {
    pthread_mutex_t lock;                     /* guards everything below */
    uint64_t requests[EP_COUNT][N_CODES + 1]; /* by endpoint and status (last: other) */
    uint64_t ttft_bucket[N_BOUNDS + 1];       /* non-cumulative; last: above every bound */
    double ttft_sum;
    uint64_t ttft_count;
    uint64_t prompt_tokens, generated_tokens; /* of requests that ran */
};

rl_metrics *rl_metrics_new(void) {
    rl_metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void rl_metrics_destroy(rl_metrics **pm) {
    if (pm && *pm) {
        pthread_mutex_destroy(&(*pm)->lock);
        free(*pm);
        *pm = NULL;
    }
}

void rl_metrics_request(rl_metrics *m, rl_endpoint ep, int status) {
    size_t k = 0;
    while (k < N_CODES && CODES[k] != status)
        k++;
    pthread_mutex_lock(&m->lock);
    m->requests[ep][k]++;
    pthread_mutex_unlock(&m->lock);
}

void rl_metrics_ttft(rl_metrics *m, double seconds) {
    size_t b = 0;
    while (b < N_BOUNDS && seconds > TTFT_BOUNDS[b])
        b++;
    pthread_mutex_lock(&m->lock);
    m->ttft_bucket[b]++;
    m->ttft_sum += seconds;
    m->ttft_count++;
    pthread_mutex_unlock(&m->lock);
}

void rl_metrics_tokens(rl_metrics *m, uint64_t prompt, uint64_t generated) {
    pthread_mutex_lock(&m->lock);
    m->prompt_tokens += prompt;
    m->generated_tokens += generated;
    pthread_mutex_unlock(&m->lock);
}

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} page;

static void put(page *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(page *pg, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = pg->oom ? 0 : vsnprintf(pg->p + pg->len, pg->cap - pg->len, fmt, ap);
        va_end(ap);
        if (pg->oom || (size_t)n < pg->cap - pg->len) {
            pg->len += pg->oom ? 0 : (size_t)n;
            return;
        }
        char *p = rl_grow(pg->p, &pg->cap, pg->len + (size_t)n + 1, 1, 4096);
        if (!p) {
            pg->oom = true;
            return;
        }
        pg->p = p;
    }
}

static void head(page *pg, const char *name, const char *type, const char *help) {
    put(pg, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric without labels: its head and its one value. */
typedef struct {
    const char *name, *type, *help;
    uint64_t value;
} scalar;

static void put_scalars(page *pg, const scalar *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        head(pg, s[i].name, s[i].type, s[i].help);
        put(pg, "%s %llu\n", s[i].name, (unsigned long long)s[i].value);
    }
}

static void render_requests(page *pg, const rl_metrics *m) {
    head(pg, "relais_requests_total", "counter", "HTTP requests by endpoint and status.");
    for (int e = 0; e < EP_COUNT; e++)
        for (size_t k = 0; k <= N_CODES; k++)
            if (m->requests[e][k]) {
                char code[8] = "other";
                if (k < N_CODES)
                    snprintf(code, sizeof code, "%d", CODES[k]);
                put(pg, "relais_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n", EP_NAMES[e], code,
                    (unsigned long long)m->requests[e][k]);
            }
    const scalar tokens[] = {
        {"relais_prompt_tokens_total", "counter", "Prompt tokens of the requests that ran.", m->prompt_tokens},
        {"relais_generated_tokens_total", "counter", "Tokens generated for the requests.", m->generated_tokens},
    };
    put_scalars(pg, tokens, sizeof tokens / sizeof tokens[0]);
    head(pg, "relais_time_to_first_token_seconds", "histogram", "From a request's arrival to its first token.");
    uint64_t cum = 0;
    for (size_t b = 0; b < N_BOUNDS; b++) {
        cum += m->ttft_bucket[b];
        put(pg, "relais_time_to_first_token_seconds_bucket{le=\"%g\"} %llu\n", TTFT_BOUNDS[b], (unsigned long long)cum);
    }
    put(pg, "relais_time_to_first_token_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)m->ttft_count);
    put(pg, "relais_time_to_first_token_seconds_sum %.6f\n", m->ttft_sum);
    put(pg, "relais_time_to_first_token_seconds_count %llu\n", (unsigned long long)m->ttft_count);
}

static void render_sched(page *pg, const rl_sched_stats *st, bool ready) {
    const rl_pcache_stats *c = &st->cache;
    const scalar all[] = {
        {"relais_ready", "gauge", "1 once the model is loaded and requests are served.", ready ? 1 : 0},
        {"relais_queue_depth", "gauge", "Requests waiting for a session slot.", st->queued},
        {"relais_active_sessions", "gauge", "Requests holding a session (KV cache).", st->active},
        {"relais_batches_total", "counter", "Micro-batches completed.", st->batches},
        {"relais_batch_tokens_total", "counter", "Tokens in the completed micro-batches.", st->batch_tokens},
        {"relais_draft_tokens_total", "counter", "Ids drafted for speculative decoding and verified.", st->drafted},
        {"relais_draft_accepted_total", "counter", "Drafted ids the target accepted.", st->accepted},
        {"relais_cache_hits_total", "counter", "Requests that reused a cached session's KV (prompt cache).", c->hits},
        {"relais_cache_tokens_total", "counter", "Prompt positions taken from the prompt cache, not fed again.",
         c->tokens},
        {"relais_cache_evictions_total", "counter", "Cached sessions dropped for the budget or a session slot.",
         c->evictions},
        {"relais_cache_sessions", "gauge", "Finished sessions keeping their KV for reuse.", c->sessions},
        {"relais_cache_bytes", "gauge", "KV bytes of the cached sessions (whole model, all nodes).", c->bytes},
    };
    put_scalars(pg, all, sizeof all / sizeof all[0]);
}

static void render_nodes(page *pg, const rl_xnode *nodes, uint32_t n) {
    head(pg, "relais_node_stage_seconds_total", "counter", "Time each node spent computing micro-batches.");
    for (uint32_t i = 0; i < n; i++)
        put(pg, "relais_node_stage_seconds_total{node=\"%s\"} %.6f\n", nodes[i].name, nodes[i].busy_seconds);
    head(pg, "relais_node_bytes_total", "counter", "Activation bytes each node received and sent.");
    for (uint32_t i = 0; i < n; i++) {
        put(pg, "relais_node_bytes_total{node=\"%s\",direction=\"in\"} %llu\n", nodes[i].name,
            (unsigned long long)nodes[i].bytes_in);
        put(pg, "relais_node_bytes_total{node=\"%s\",direction=\"out\"} %llu\n", nodes[i].name,
            (unsigned long long)nodes[i].bytes_out);
    }
    head(pg, "relais_node_batches_total", "counter", "Micro-batches each node ran.");
    for (uint32_t i = 0; i < n; i++)
        put(pg, "relais_node_batches_total{node=\"%s\"} %llu\n", nodes[i].name, (unsigned long long)nodes[i].batches);
    head(pg, "relais_node_sessions", "gauge", "Sessions holding a KV cache on each node.");
    for (uint32_t i = 0; i < n; i++)
        put(pg, "relais_node_sessions{node=\"%s\"} %u\n", nodes[i].name, nodes[i].sessions);
}

char *rl_metrics_render(rl_metrics *m, const rl_sched_stats *st, const rl_xnode *nodes, uint32_t n_nodes, bool ready) {
    page pg = {.p = malloc(4096), .cap = 4096};
    if (!pg.p)
        return NULL;
    pthread_mutex_lock(&m->lock);
    render_requests(&pg, m);
    pthread_mutex_unlock(&m->lock);
    render_sched(&pg, st, ready);
    render_nodes(&pg, nodes, n_nodes);
    if (pg.oom) {
        free(pg.p);
        return NULL;
    }
    return pg.p;
}
