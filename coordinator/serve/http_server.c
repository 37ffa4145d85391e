/* The HTTP daemon of `relais serve` (see http_server.h).
 *
 * libmicrohttpd runs one thread over epoll for every connection, so an
 * idle connection costs a socket and a small memory pool, not a thread:
 * thousands fit. Handlers never block: a request waiting for its tokens
 * suspends its connection (http_completions.c) and the scheduler's sink
 * resumes it. Bodies are collected up to a limit (413 beyond it, refused
 * from Content-Length when it says so), keys are checked in constant time,
 * and every reply is counted for /metrics when the request completes.
 *
 * One client must not be able to starve the others. A watchdog thread shuts
 * down the socket of any connection whose request header is not complete
 * within the header deadline, counted from the connection's start or the
 * end of its previous request (a whole-header deadline, not an inactivity
 * timeout: a byte every second does not extend it); one address may hold
 * only so many of the connections; and the API key is checked as soon as
 * the header is in, before any body is read. The same watchdog notices a
 * client that hangs up while its connection is suspended (MHD does not
 * watch those) and cancels its request.
 *
 * When the last request in flight completes, the heap is trimmed, so the
 * server's RSS goes back to its idle level after a burst of clients. */
#include "http_server.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdatomic.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include "log.h"
#include "util.h"

#define SPARE_FDS 256 /* descriptors beyond the connections: model, cluster sockets, logs */
#define LOG_GAP_S 5.0 /* at most one libmicrohttpd line per this (a flood must not fill the log) */
#define N_WORKERS 2   /* threads that read generation requests (http_defer) */

/* A job for the worker threads (http_defer). */
typedef struct job {
    struct job *next;
    void (*fn)(void *);
    void *arg;
} job;

/* A connection the watchdog keeps an eye on (MHD's socket context). */
typedef struct watched {
    struct watched *prev, *next;
    int fd;
    double since;    /* start of the connection, or end of its last request */
    bool in_request; /* header complete: the deadline no longer applies */
    http_req *req;   /* the request in progress (in_request), else NULL */
    bool gone;       /* its client hung up: told once */
} watched;

struct rl_http {
    struct MHD_Daemon *daemon;
    rl_serve *app;        /* borrowed */
    rl_http_opts o;       /* keys borrowed from the caller */
    uint16_t port;        /* the port bound */
    atomic_int in_flight; /* requests begun and not yet completed */
    pthread_mutex_t lock; /* guards the watch list and stopping */
    pthread_cond_t wake;
    watched *conns; /* open connections */
    bool stopping;
    pthread_t watchdog;
    bool has_watchdog;
    pthread_mutex_t jobs_lock; /* guards the jobs and jobs_stop */
    pthread_cond_t jobs_cv;
    job *jobs, *jobs_tail;
    bool jobs_stop;
    pthread_t workers[N_WORKERS];
    unsigned n_workers;
    pthread_mutex_t log_lock; /* guards the two below */
    double last_log_s;        /* when libmicrohttpd last logged (rl_now_s) */
    unsigned log_left_out;    /* its lines not logged since then */
};

/* libmicrohttpd's messages, at most one per LOG_GAP_S: each connection
 * refused at a limit is a line, and an attacker opens thousands. The next
 * line logged says how many were left out. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    rl_http *h = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = 0;
    pthread_mutex_lock(&h->log_lock);
    const double now = rl_now_s();
    const bool due = h->last_log_s == 0 || now - h->last_log_s >= LOG_GAP_S;
    const unsigned left_out = h->log_left_out;
    if (due)
        h->last_log_s = now, h->log_left_out = 0;
    else
        h->log_left_out++;
    pthread_mutex_unlock(&h->log_lock);
    if (due && left_out)
        rl_log(RL_LOG_WARN, "http: %s (%u lines not logged since the last one)", line, left_out);
    else if (due)
        rl_log(RL_LOG_WARN, "http: %s", line);
}

/* ---- replies ---- */

enum MHD_Result http_queue(http_req *r, int status, struct MHD_Response *resp) {
    if (!resp)
        return MHD_NO;
    r->status = status;
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

enum MHD_Result http_reply_text(http_req *r, int status, const char *content_type, const char *text) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return http_queue(r, status, resp);
}

struct MHD_Response *http_json_response(json_t *body, int *status) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        static const char failed[] = "{\"error\":{\"message\":\"cannot encode the reply\",\"type\":\"server_error\","
                                     "\"param\":null,\"code\":null}}";
        *status = 500;
        text = strdup(failed);
    }
    struct MHD_Response *resp =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return resp;
}

enum MHD_Result http_reply_json(http_req *r, int status, json_t *body) {
    struct MHD_Response *resp = http_json_response(body, &status);
    return http_queue(r, status, resp);
}

/* ---- the header deadline ---- */

static void log_line(rl_http *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(rl_http *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mhd_log(h, fmt, ap);
    va_end(ap);
}

/* MHD tells of each connection opened and closed; the closed one is told
 * before its socket is closed, so under the lock a listed fd is still the
 * connection's own. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    rl_http *h = cls;
    watched *w = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(w = calloc(1, sizeof *w)))
            return; /* unwatched: MHD's own connection timeout still ends it */
        w->fd = ci->connect_fd;
        w->since = rl_now_s();
        pthread_mutex_lock(&h->lock);
        if ((w->next = h->conns))
            h->conns->prev = w;
        h->conns = w;
        pthread_mutex_unlock(&h->lock);
        *socket_context = w;
    } else if (w) {
        pthread_mutex_lock(&h->lock);
        if (w->prev)
            w->prev->next = w->next;
        else
            h->conns = w->next;
        if (w->next)
            w->next->prev = w->prev;
        pthread_mutex_unlock(&h->lock);
        free(w);
        *socket_context = NULL;
    }
}

/* Marks the connection's request r as begun (its header is complete) or
 * ended (NULL: the deadline applies again to the next one). */
static void watch_request(rl_http *h, struct MHD_Connection *c, http_req *r) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    watched *w = ci ? ci->socket_context : NULL;
    if (!w)
        return;
    pthread_mutex_lock(&h->lock);
    w->in_request = r != NULL;
    w->req = r;
    w->gone = false;
    w->since = rl_now_s();
    pthread_mutex_unlock(&h->lock);
}

static bool fd_hung_up(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Every quarter second, shuts down the sockets of connections past the
 * header deadline (MHD then sees the end of the stream and closes them),
 * and cancels the generation of a client that hung up (lock held). */
static unsigned watch_round(rl_http *h) {
    const double now = rl_now_s();
    unsigned n_cut = 0;
    for (watched *w = h->conns; w; w = w->next) {
        if (w->fd < 0)
            continue;
        if (!w->in_request && h->o.header_timeout && now - w->since > h->o.header_timeout) {
            shutdown(w->fd, SHUT_RDWR);
            w->fd = -1;
            n_cut++;
        } else if (w->req && w->req->gen && !w->gone && fd_hung_up(w->fd)) {
            w->gone = true;
            http_completions_abort(w->req, true); /* the sink's end (or the worker) resumes it */
        }
    }
    return n_cut;
}

static void *watchdog_main(void *arg) {
    rl_http *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        unsigned n_cut = watch_round(h);
        if (n_cut) {
            pthread_mutex_unlock(&h->lock);
            log_line(h, "closed %u connection(s) whose request header did not arrive within %u s", n_cut,
                     h->o.header_timeout);
            pthread_mutex_lock(&h->lock);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250000000;
        if (ts.tv_nsec >= 1000000000)
            ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&h->wake, &h->lock, &ts);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* ---- the workers ---- */

static void *worker_main(void *arg) {
    rl_http *h = arg;
    pthread_mutex_lock(&h->jobs_lock);
    for (;;) {
        while (!h->jobs && !h->jobs_stop)
            pthread_cond_wait(&h->jobs_cv, &h->jobs_lock);
        job *j = h->jobs;
        if (!j)
            break; /* stopping, and every job done */
        if (!(h->jobs = j->next))
            h->jobs_tail = NULL;
        pthread_mutex_unlock(&h->jobs_lock);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&h->jobs_lock);
    }
    pthread_mutex_unlock(&h->jobs_lock);
    return NULL;
}

bool http_defer(http_req *r, void (*fn)(void *arg), void *arg) {
    rl_http *h = r->http;
    job *j = calloc(1, sizeof *j);
    if (!j)
        return false;
    *j = (job){NULL, fn, arg};
    pthread_mutex_lock(&h->jobs_lock);
    const bool ok = !h->jobs_stop;
    if (ok) {
        if (h->jobs_tail)
            h->jobs_tail->next = j;
        else
            h->jobs = j;
        h->jobs_tail = j;
        pthread_cond_signal(&h->jobs_cv);
    }
    pthread_mutex_unlock(&h->jobs_lock);
    if (!ok)
        free(j);
    return ok;
}

/* Lets the workers finish the jobs queued, then joins them. */
static void stop_workers(rl_http *h) {
    pthread_mutex_lock(&h->jobs_lock);
    h->jobs_stop = true;
    pthread_cond_broadcast(&h->jobs_cv);
    pthread_mutex_unlock(&h->jobs_lock);
    for (unsigned i = 0; i < h->n_workers; i++)
        pthread_join(h->workers[i], NULL);
    h->n_workers = 0;
}

/* ---- requests ---- */

/* Constant-time comparison, so a key cannot be guessed byte by byte. */
static bool same_key(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)a[i] ^ (unsigned char)b[i % (lb ? lb : 1)];
    return d == 0;
}

static bool authorized(const rl_http *h, struct MHD_Connection *c) {
    if (h->o.n_keys == 0)
        return true;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return false;
    bool ok = false;
    for (size_t i = 0; i < h->o.n_keys; i++)
        ok |= same_key(auth + 7, h->o.keys[i]);
    return ok;
}

static rl_endpoint endpoint_of(const char *url) {
    if (!strcmp(url, "/v1/chat/completions"))
        return EP_CHAT;
    if (!strcmp(url, "/v1/completions"))
        return EP_COMPLETIONS;
    if (!strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11))
        return EP_MODELS;
    if (!strcmp(url, "/health"))
        return EP_HEALTH;
    if (!strcmp(url, "/metrics"))
        return EP_METRICS;
    if (http_web_has(url))
        return EP_WEB;
    return EP_OTHER;
}

static enum MHD_Result error_reply(http_req *r, int status, const char *type, const char *code, const char *msg) {
    rl_oai_err e;
    rl_oai_err_set(&e, status, type, NULL, "%s", msg);
    e.code = code;
    return http_reply_error(r, &e);
}

static enum MHD_Result route(rl_http *h, http_req *r, const char *url, const char *method) {
    const bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    if (r->endpoint == EP_HEALTH && get)
        return http_health(r, authorized(h, r->conn)); /* the status word for anyone, the rest with the key */
    if (r->endpoint == EP_WEB && get)
        return http_web(r, url); /* the page asks for the key itself */
    if (!authorized(h, r->conn))
        return error_reply(r, 401, "invalid_request_error", "invalid_api_key",
                           "Incorrect API key provided: pass a valid key as 'Authorization: Bearer KEY'.");
    if (r->endpoint == EP_OTHER)
        return error_reply(r, 404, "invalid_request_error", "not_found",
                           "Unknown request URL. Endpoints: POST "
                           "/v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics, "
                           "GET / (the web page).");
    bool want_post = r->endpoint == EP_CHAT || r->endpoint == EP_COMPLETIONS;
    if (want_post ? !post : !get)
        return error_reply(r, 405, "invalid_request_error", "method_not_allowed",
                           want_post ? "This endpoint takes POST." : "This endpoint takes GET.");
    if (r->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "The request body exceeds the limit of %zu bytes.", h->o.max_body);
        return error_reply(r, 413, "invalid_request_error", "request_too_large", msg);
    }
    switch (r->endpoint) {
    case EP_CHAT:
        return http_completions(r, true);
    case EP_COMPLETIONS:
        return http_completions(r, false);
    case EP_MODELS:
        return http_models(r, url[10] == '/' ? url + 11 : NULL);
    case EP_METRICS:
        return http_metrics_page(r);
    default:
        return http_health(r, true);
    }
}

/* Starts a request: its state, and an early 413 from Content-Length. */
static http_req *begin(rl_http *h, struct MHD_Connection *c, const char *url) {
    http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    atomic_fetch_add(&h->in_flight, 1);
    r->app = h->app;
    r->http = h;
    r->conn = c;
    r->endpoint = endpoint_of(url);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > h->o.max_body)
        r->too_big = true;
    return r;
}

static bool append_body(rl_http *h, http_req *r, const char *data, size_t n) {
    if (r->too_big || r->len + n > h->o.max_body) {
        r->too_big = true;
        return true; /* read and dropped: the reply is 413 */
    }
    char *p = rl_grow(r->body, &r->cap, r->len + n + 1, 1, 4096);
    if (!p)
        return false;
    r->body = p;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = 0;
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state) {
    rl_http *h = cls;
    (void)version;
    http_req *r = *state;
    if (r && r->gen)
        return http_completions_resume(r);
    if (!r) {
        if (!(r = *state = begin(h, c, url)))
            return MHD_NO;
        watch_request(h, c, r);
        /* a body announced over the limit, or sent without a valid key, is
         * refused before it is read */
        return r->too_big || !authorized(h, c) ? route(h, r, url, method) : MHD_YES;
    }
    if (*upload_size) {
        bool ok = append_body(h, r, upload, *upload_size);
        *upload_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    if (!r->body && !append_body(h, r, "", 0))
        return MHD_NO;
    return route(h, r, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode tc) {
    rl_http *h = cls;
    http_req *r = *state;
    (void)tc;
    if (!r)
        return;
    watch_request(h, c, NULL);
    http_completions_end(r);
    if (r->status)
        rl_metrics_request(h->app->metrics, r->endpoint, r->status);
    free(r->body);
    free(r);
    *state = NULL;
    if (atomic_fetch_sub(&h->in_flight, 1) == 1)
        malloc_trim(0);
}

/* ---- the daemon ---- */

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *sa, socklen_t *len, char *err,
                   size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "--host %s: %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Raises the soft limit on open files to what max_connections needs (a
 * socket each, plus spares), within the hard limit. */
static int fd_room(unsigned max_connections, char *err, size_t errlen) {
    struct rlimit rl;
    rlim_t need = (rlim_t)max_connections + SPARE_FDS;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        snprintf(err, errlen, "--max-connections %u needs %llu open files; this process may have %llu (ulimit -Hn)",
                 max_connections, (unsigned long long)need, (unsigned long long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = need;
    return setrlimit(RLIMIT_NOFILE, &rl) ? (snprintf(err, errlen, "cannot raise the open-file limit"), -1) : 0;
}

static struct MHD_Daemon *start_daemon(rl_http *h, struct sockaddr_storage *sa) {
    const rl_http_opts *o = &h->o;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
        (sa->ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_CONNECTION_LIMIT,
                            o->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_per_ip,
                            MHD_OPTION_CONNECTION_TIMEOUT, 300u, MHD_OPTION_END);
}

rl_http *rl_http_start(rl_serve *app, const rl_http_opts *o, char *err, size_t errlen) {
    struct sockaddr_storage sa;
    socklen_t sa_len;
    if (resolve(o->host, o->port, &sa, &sa_len, err, errlen) || fd_room(o->max_connections, err, errlen))
        return NULL;
    rl_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->app = app;
    h->o = *o;
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->log_lock, NULL);
    pthread_mutex_init(&h->jobs_lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    pthread_cond_init(&h->jobs_cv, NULL);
    while (h->n_workers < N_WORKERS && pthread_create(&h->workers[h->n_workers], NULL, worker_main, h) == 0)
        h->n_workers++;
    if (h->n_workers == 0) {
        snprintf(err, errlen, "cannot start the HTTP worker threads");
        rl_http_stop(&h);
        return NULL;
    }
    if (!(h->daemon = start_daemon(h, &sa))) {
        snprintf(err, errlen, "cannot listen on %s port %u (in use, or not an address of this machine)", o->host,
                 o->port);
        rl_http_stop(&h);
        return NULL;
    }
    if (!(h->has_watchdog = pthread_create(&h->watchdog, NULL, watchdog_main, h) == 0)) {
        snprintf(err, errlen, "cannot start the header watchdog thread");
        rl_http_stop(&h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : o->port;
    return h;
}

uint16_t rl_http_port(const rl_http *h) { return h->port; }

/* Aborts every generation in flight; returns how many connections were
 * resumed to send their error. */
static unsigned abort_all(rl_http *h) {
    size_t n = 0, cap = 0;
    struct MHD_Connection **resume = NULL;
    pthread_mutex_lock(&h->lock);
    for (watched *w = h->conns; w; w = w->next) {
        struct MHD_Connection *c = w->req ? http_completions_abort(w->req, false) : NULL;
        struct MHD_Connection **p = c ? rl_grow(resume, &cap, n + 1, sizeof *resume, 64) : NULL;
        if (p)
            (resume = p)[n++] = c;
        else if (c)
            MHD_resume_connection(c); /* out of memory: resumed under the lock rather than left suspended */
    }
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < n; i++)
        MHD_resume_connection(resume[i]);
    free(resume);
    return (unsigned)n;
}

void rl_http_drain(rl_http *h, double wait_s) {
    if (!h)
        return;
    atomic_store(&h->app->stopping, true);
    unsigned n = abort_all(h);
    const double until = rl_now_s() + wait_s;
    while (atomic_load(&h->in_flight) > 0 && rl_now_s() < until) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (n || atomic_load(&h->in_flight) > 0)
        rl_log(RL_LOG_INFO, "http: %u request(s) failed as the server stops, %d still open", n,
               atomic_load(&h->in_flight));
}

void rl_http_stop(rl_http **ph) {
    rl_http *h = ph ? *ph : NULL;
    if (!h)
        return;
    if (h->app)
        atomic_store(&h->app->stopping, true);
    if (h->daemon)
        abort_all(h); /* MHD must not stop with a connection suspended */
    stop_workers(h);  /* their jobs may resume connections: all done before MHD stops */
    if (h->has_watchdog) {
        pthread_mutex_lock(&h->lock);
        h->stopping = true;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->watchdog, NULL);
    }
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    pthread_cond_destroy(&h->wake);
    pthread_cond_destroy(&h->jobs_cv);
    pthread_mutex_destroy(&h->lock);
    pthread_mutex_destroy(&h->jobs_lock);
    pthread_mutex_destroy(&h->log_lock);
    free(h);
    *ph = NULL;
}
