/* The informational endpoints: GET /v1/models (and /v1/models/ID), GET
 * /health, and GET /metrics in Prometheus' text format.
 *
 * /health says loading, failed, ok, or degraded (ready, but a node is not:
 * lost, or its step overdue, as the executor's nodes() tells by a state
 * other than "ready"); 503 until ready, so a load balancer waits. Anyone may
 * read that word; with the API key (or on a server without one) it also
 * gives each node's name, state, layers, sessions, the KV cache they hold
 * and its counters, and the server's sessions and token counts: node names
 * and addresses are not for whoever can reach the port. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "http_server.h"

#define MAX_NODES 64

static json_t *model_object(const rl_serve *app) {
    return json_pack("{s:s, s:s, s:I, s:s}", "id", app->model_id, "object", "model", "created",
                     (json_int_t)app->created, "owned_by", "relais");
}

enum MHD_Result http_models(http_req *r, const char *id) {
    rl_serve *app = r->app;
    if (!id)
        return http_reply_json(r, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", model_object(app)));
    if (strcmp(id, app->model_id) == 0)
        return http_reply_json(r, 200, model_object(app));
    rl_oai_err e;
    rl_oai_err_set(&e, 404, "invalid_request_error", "model", "The model '%s' does not exist; this server serves '%s'.",
                   id, app->model_id);
    e.code = "model_not_found";
    return http_reply_error(r, &e);
}

static uint32_t nodes_of(rl_serve *app, rl_xnode *nodes) {
    uint32_t n = app->x ? app->x->ops->nodes(app->x, nodes, MAX_NODES) : 0;
    return n < MAX_NODES ? n : MAX_NODES;
}

/* Bytes of KV cache a node's sessions hold: each session's cache covers the
 * node's layers at the full context per request. A node without a range
 * is the engine in this process (all layers) or a node left out of the
 * plan, which holds no session. */
static uint64_t kv_bytes(const rl_serve *app, const rl_xnode *nd) {
    const rl_hparams *hp = &app->hp;
    unsigned l0 = 0, l1 = hp->n_layer ? hp->n_layer - 1 : 0;
    if (!hp->n_layer || (*nd->layers && sscanf(nd->layers, "%u-%u", &l0, &l1) != 2) || l1 < l0 || l1 >= hp->n_layer)
        return 0;
    return nd->sessions * rl_kv_bytes_for(hp, l0, l1 + 1, app->model.n_ctx, app->kv_type);
}

static json_t *node_object(const rl_serve *app, const rl_xnode *nd) {
    return json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:f, s:I, s:I}", "name", nd->name, "state", nd->state, "layers",
                     nd->layers, "sessions", (int)nd->sessions, "kv_bytes", (json_int_t)kv_bytes(app, nd), "batches",
                     (json_int_t)nd->batches, "busy_seconds", nd->busy_seconds, "bytes_in", (json_int_t)nd->bytes_in,
                     "bytes_out", (json_int_t)nd->bytes_out);
}

/* "degraded" when any node is not ready (lost, or overdue). */
static const char *ready_status(const rl_xnode *nodes, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(nodes[i].state, "ready") != 0)
            return "degraded";
    return "ok";
}

enum MHD_Result http_health(http_req *r, bool full) {
    rl_serve *app = r->app;
    int ready = atomic_load(&app->ready);
    rl_xnode nodes[MAX_NODES];
    rl_sched_stats st = {0};
    uint32_t n = ready == 1 ? nodes_of(app, nodes) : 0;
    const char *status = ready == 1 ? ready_status(nodes, n) : ready == 0 ? "loading" : "failed";
    if (!full)
        return http_reply_json(r, ready == 1 ? 200 : 503, json_pack("{s:s}", "status", status));
    if (ready == 1)
        rl_sched_stats_get(app->sched, &st);
    json_t *list = json_array();
    for (uint32_t i = 0; i < n; i++)
        json_array_append_new(list, node_object(app, &nodes[i]));
    struct timespec now; /* the counters' time, so that a client's rates do not depend on its polling */
    clock_gettime(CLOCK_REALTIME, &now);
    json_t *body =
        json_pack("{s:s, s:s, s:f, s:I, s:o, s:{s:i, s:i, s:i, s:i, s:i}, s:{s:I, s:I, s:I}}", "status", status,
                  "model", app->model_id, "time", now.tv_sec + now.tv_nsec * 1e-9, "uptime_seconds",
                  (json_int_t)(time(NULL) - app->created), "nodes", list, "sessions", "active", (int)st.active,
                  "queued", (int)st.queued, "max", (int)app->max_sessions, "ctx", (int)app->model.n_ctx, "cached",
                  (int)st.cache.sessions, "tokens", "prompt", (json_int_t)st.prompt_tokens, "generated",
                  (json_int_t)st.generated, "batches", (json_int_t)st.batches);
    return http_reply_json(r, ready == 1 ? 200 : 503, body);
}

enum MHD_Result http_metrics_page(http_req *r) {
    rl_serve *app = r->app;
    bool ready = atomic_load(&app->ready) == 1;
    rl_xnode nodes[MAX_NODES];
    rl_sched_stats st = {0};
    uint32_t n = ready ? nodes_of(app, nodes) : 0;
    if (ready)
        rl_sched_stats_get(app->sched, &st);
    char *page = rl_metrics_render(app->metrics, &st, nodes, n, ready);
    if (!page)
        return MHD_NO;
    enum MHD_Result rc = http_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", page);
    free(page);
    return rc;
}
