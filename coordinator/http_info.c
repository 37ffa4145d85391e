/* The informational endpoints: GET /v1/models (and /v1/models/ID), GET
 * /health (ready or loading, with each node's state; 503 until ready, so a
 * load balancer waits), and GET /metrics in Prometheus' text format. */
#include <stdlib.h>
#include <string.h>
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

enum MHD_Result http_health(http_req *r) {
    rl_serve *app = r->app;
    int ready = atomic_load(&app->ready);
    rl_xnode nodes[MAX_NODES];
    rl_sched_stats st = {0};
    uint32_t n = ready == 1 ? nodes_of(app, nodes) : 0;
    if (ready == 1)
        rl_sched_stats_get(app->sched, &st);
    json_t *list = json_array();
    for (uint32_t i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:i, s:I}", "name", nodes[i].name, "state",
                                              nodes[i].state, "layers", nodes[i].layers, "sessions",
                                              (int)nodes[i].sessions, "batches", (json_int_t)nodes[i].batches));
    const char *status = ready == 1 ? "ok" : ready == 0 ? "loading" : "failed";
    json_t *body = json_pack("{s:s, s:s, s:o, s:{s:i, s:i}}", "status", status, "model", app->model_id, "nodes", list,
                             "sessions", "active", (int)st.active, "queued", (int)st.queued);
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
