/* The HTTP side of `relais serve`: a libmicrohttpd daemon, one epoll thread
 * for every connection, serving the OpenAI-compatible API over the
 * scheduler. No handler blocks: a request waiting for tokens suspends its
 * connection and the scheduler's sink resumes it.
 *
 * http_server.c runs the daemon (binding, connection limits, the header
 * deadline, body limit, API keys, routing, per-request bookkeeping), http_completions.c the two generation endpoints
 * (plain and streamed), http_info.c /v1/models, /health and /metrics,
 * http_errors.c the OpenAI error replies, http_metrics.c the counters,
 * http_web.c the web page (GET /, no key needed). */
#ifndef RELAIS_HTTP_SERVER_H
#define RELAIS_HTTP_SERVER_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "executor.h"
#include "http_metrics.h"
#include "openai.h"
#include "scheduler.h"

/* What the endpoints serve. The command fills it; `ready` turns 1 once the
 * model is loaded (the other fields are set before that and then fixed). */
typedef struct {
    atomic_int ready;   /* 0 loading, 1 ready, -1 failed to load */
    rl_oai_model model; /* tokenizer, template, context per request */
    rl_sched *sched;
    const rl_jg_vocab *json; /* each token's bytes, for response_format json_object */
    rl_executor *x;
    char model_id[128];    /* the name /v1/models lists */
    int64_t created;       /* unix time the server started */
    uint32_t max_sessions; /* requests generating at once, for /health */
    rl_hparams hp;         /* the model's shape, for /health's KV sizes (n_layer 0 until ready); a copy:
                              a re-plan reloads the coordinator's part of the model */
    rl_kv_type kv_type;    /* of the sessions' caches, for the same */
    rl_metrics *metrics;
    atomic_bool stopping; /* shutting down: new generations get 503 */
} rl_serve;

typedef struct rl_http rl_http;

typedef struct {
    const char *host; /* address to bind; "127.0.0.1" by default */
    uint16_t port;    /* 0: any free port (see rl_http_port) */
    size_t max_body;  /* bytes of a request body; more gets 413 */
    char **keys;      /* accepted API keys; none: no auth */
    size_t n_keys;
    unsigned max_connections; /* open connections at once, all clients */
    unsigned max_per_ip;      /* ... from one address (0: no limit) */
    unsigned header_timeout;  /* seconds a request's whole header may take to arrive */
} rl_http_opts;

/* Binds and starts serving app (borrowed). NULL with err. */
rl_http *rl_http_start(rl_serve *app, const rl_http_opts *o, char *err, size_t errlen);
uint16_t rl_http_port(const rl_http *h);
/* Shutting down: new generations are refused (503) and every request in
 * flight ends now, a stream with an error event, a whole reply with 503,
 * whatever the scheduler is doing; waits up to wait_s for those replies
 * to go out. */
void rl_http_drain(rl_http *h, double wait_s);
/* Stops accepting and closes every connection. NULLs *h. */
void rl_http_stop(rl_http **h);

/* ---- shared by the http_*.c files ---- */

/* One request on a connection. */
typedef struct {
    rl_serve *app;
    struct MHD_Connection *conn;
    char *body; /* the request body, NUL-terminated */
    size_t len, cap;
    bool too_big;         /* body over the limit: 413 */
    rl_endpoint endpoint; /* for the metrics */
    int status;           /* status of the reply queued */
    void *_Atomic gen;    /* a generation's state (http_completions.c), or NULL; the watchdog reads it */
    rl_http *http;        /* the server (for http_defer) */
} http_req;

/* Runs fn(arg) on one of the server's worker threads, off the epoll thread
 * (parsing and tokenizing a large prompt takes seconds: done there, it
 * would hold every other connection up). False when the server stops or
 * out of memory (then fn is not called). Every job has run when
 * rl_http_stop returns. */
bool http_defer(http_req *r, void (*fn)(void *arg), void *arg);

/* A JSON response of body (stolen; NULL or unencodable gives a 500 error
 * object and sets *status to 500), or NULL out of memory. Caller queues it. */
struct MHD_Response *http_json_response(json_t *body, int *status);
/* Queues resp (NULL: fails the connection) with status, and destroys it. */
enum MHD_Result http_queue(http_req *r, int status, struct MHD_Response *resp);
/* Queue a JSON reply (body stolen) or an OpenAI error. */
enum MHD_Result http_reply_json(http_req *r, int status, json_t *body);
enum MHD_Result http_reply_error(http_req *r, const rl_oai_err *e);
enum MHD_Result http_reply_text(http_req *r, int status, const char *content_type, const char *text);

/* A generation request: parsed, submitted, then its connection suspended
 * until the scheduler's sink has something to send. */
enum MHD_Result http_completions(http_req *r, bool chat);
/* The handler called again for a request with r->gen: its reply, or
 * suspended again. */
enum MHD_Result http_completions_resume(http_req *r);
/* The request is over (MHD completed it): cancels its generation if that
 * still runs, and releases r->gen. */
void http_completions_end(http_req *r);
/* Ends the generation of r now: the client is gone (cancelled), or the
 * server stops (failed with "server shutting down"). Returns the
 * connection the caller must resume (MHD_resume_connection, holding no
 * lock: the connection stays suspended, so valid, until then) so that the
 * reply goes out, or NULL. Any thread; the caller keeps r alive meanwhile. */
struct MHD_Connection *http_completions_abort(http_req *r, bool client_gone);
enum MHD_Result http_models(http_req *r, const char *id);
/* full: the nodes and counters too (the caller has the key), else the status word alone. */
enum MHD_Result http_health(http_req *r, bool full);
enum MHD_Result http_metrics_page(http_req *r);
/* Whether url is a file of the web page, and the reply with it. */
bool http_web_has(const char *url);
enum MHD_Result http_web(http_req *r, const char *url);

#endif
