/* POST /v1/chat/completions and /v1/completions: a request read and checked
 * (openai_request.c), handed to the scheduler, and answered whole or as a
 * stream of server-sent events ending with `data: [DONE]`.
 *
 * A request's `gen` is shared by the HTTP thread and the scheduler's sink
 * (two references): the sink feeds generated ids into its output text under
 * its lock and signals, the HTTP thread waits on it, watching the socket so
 * that a client that goes away cancels its request and frees its cache.
 * Stream chunks are formatted by the HTTP thread from the text accumulated
 * since the last one, so a slow client gets fewer, larger chunks and never
 * slows the scheduler down. A streamed reply's headers go out with the first
 * token, so a request that fails before producing anything still gets a
 * proper error status. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "http_server.h"
#include "tool_calls.h"
#include "util.h"

#define WAIT_SLICE_MS 100

typedef struct {
    pthread_mutex_t lock; /* guards everything the sink touches */
    pthread_cond_t cond;  /* signalled on each token and at the end */
    int refs;             /* HTTP side + scheduler sink */
    rl_serve *app;
    http_req *http;  /* the request (valid while the HTTP side holds its reference) */
    rl_oai_req req;  /* the parsed request (stop strings, prompt) */
    rl_oai_out *out; /* generated text */
    char id[48];     /* response id */
    rl_oai_meta meta;
    uint64_t sched_id;
    bool cancelled;  /* rl_sched_cancel was called */
    uint32_t n_gen;  /* ids generated */
    uint32_t cached; /* prompt positions taken from the prompt cache */
    double t_submit; /* CLOCK_MONOTONIC seconds */
    bool done;       /* on_done was called */
    rl_finish why;
    char err[RL_XERR_LEN];
    /* streaming, HTTP thread only */
    int phase;             /* 0: nothing sent, 1: content, 2: all events queued */
    size_t sent;           /* content bytes sent */
    size_t sent_reasoning; /* reasoning bytes sent (as reasoning_content deltas) */
    char *pend;            /* formatted SSE bytes not yet handed to MHD */
    size_t pend_len, pend_off;
} gen;

static void gen_release(gen *g) {
    pthread_mutex_lock(&g->lock);
    int left = --g->refs;
    pthread_mutex_unlock(&g->lock);
    if (left)
        return;
    rl_oai_out_destroy(&g->out);
    rl_oai_req_free(&g->req);
    free(g->pend);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
    free(g);
}

/* ---- the scheduler's sink (scheduler thread) ---- */

static bool on_token(void *ud, int32_t id) {
    gen *g = ud;
    pthread_mutex_lock(&g->lock);
    if (g->n_gen++ == 0)
        rl_metrics_ttft(g->app->metrics, rl_now_s() - g->t_submit);
    bool go_on = rl_oai_out_feed(g->out, id);
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    return go_on;
}

static void on_cached(void *ud, uint32_t n) {
    gen *g = ud;
    pthread_mutex_lock(&g->lock);
    g->cached = n;
    pthread_mutex_unlock(&g->lock);
}

static void on_done(void *ud, rl_finish why, const char *err) {
    gen *g = ud;
    pthread_mutex_lock(&g->lock);
    g->done = true;
    g->why = why;
    snprintf(g->err, sizeof g->err, "%s", err ? err : "");
    rl_oai_out_finish(g->out);
    rl_metrics_tokens(g->app->metrics, g->req.n_prompt, g->n_gen);
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    gen_release(g);
}

/* ---- the HTTP side ---- */

static void make_id(char *out, size_t len, const char *prefix) {
    unsigned char r[12];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        memset(r, 0, sizeof r);
    int n = snprintf(out, len, "%s", prefix);
    for (size_t i = 0; i < sizeof r && (size_t)n + 2 < len; i++)
        n += snprintf(out + n, len - (size_t)n, "%02x", r[i]);
}

static gen *gen_new(http_req *r, bool chat) {
    gen *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->refs = 1;
    g->app = r->app;
    g->http = r;
    make_id(g->id, sizeof g->id, chat ? "chatcmpl-" : "cmpl-");
    g->meta = (rl_oai_meta){g->id, r->app->model_id, (int64_t)time(NULL), chat};
    return g;
}

/* Cancels the request once, when its client is gone. Called with the lock. */
static void watch_client(gen *g) {
    if (!g->cancelled && !g->done && http_client_gone(g->http)) {
        g->cancelled = true;
        pthread_mutex_unlock(&g->lock);
        rl_sched_cancel(g->app->sched, g->sched_id);
        pthread_mutex_lock(&g->lock);
    }
}

/* Waits (lock held) up to one slice for news from the sink. */
static void wait_slice(gen *g) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += WAIT_SLICE_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&g->cond, &g->lock, &until);
    watch_client(g);
}

static bool has_output(gen *g) {
    size_t len;
    rl_oai_out_content(g->out, &len);
    return len > 0 || rl_oai_out_in_tools(g->out);
}

/* Tool calls of a finished request, or NULL (then its tool text is content). */
static json_t *tool_calls_of(gen *g) {
    size_t len;
    const char *text = rl_oai_out_tool_text(g->out, &len);
    return rl_oai_out_in_tools(g->out) ? rl_tool_calls_parse(text, len) : NULL;
}

static const char *finish_reason(const gen *g, bool calls) {
    return calls ? "tool_calls" : g->why == RL_FINISH_LENGTH ? "length" : "stop";
}

/* The error reply for a request that ended without an answer (lock held). */
static void failure(const gen *g, rl_oai_err *e) {
    if (g->why == RL_FINISH_ERROR)
        rl_oai_err_set(e, 500, "server_error", NULL, "generation failed: %s", g->err);
    else
        rl_oai_err_set(e, 503, "server_error", NULL, "the request was cancelled: %s",
                       g->err[0] ? g->err : "client gone");
}

/* The whole answer of a finished request (lock held). */
static json_t *whole_answer(gen *g) {
    size_t len, tlen;
    const char *content = rl_oai_out_content(g->out, &len);
    json_t *calls = tool_calls_of(g);
    const char *tool_text = rl_oai_out_tool_text(g->out, &tlen);
    json_t *usage = rl_oai_usage(g->req.n_prompt, g->n_gen, g->cached);
    if (!calls && tlen > 0) {
        /* not a valid call list: the model's text is the answer */
        char *all = malloc(len + tlen + 1);
        if (!all)
            return NULL;
        memcpy(all, content, len);
        memcpy(all + len, tool_text, tlen);
        json_t *resp = rl_oai_response(&g->meta, all, len + tlen, NULL, finish_reason(g, false), usage);
        free(all);
        return resp;
    }
    json_t *resp = rl_oai_response(&g->meta, content, len, calls, finish_reason(g, calls != NULL), usage);
    size_t rlen;
    const char *reasoning = rl_oai_out_reasoning(g->out, &rlen);
    rl_oai_set_reasoning(resp, reasoning, rlen);
    return resp;
}

static enum MHD_Result reply_whole(http_req *r, gen *g) {
    rl_oai_err e;
    pthread_mutex_lock(&g->lock);
    while (!g->done)
        wait_slice(g);
    bool failed = g->why == RL_FINISH_ERROR || g->why == RL_FINISH_CANCELLED;
    if (failed)
        failure(g, &e);
    json_t *body = failed ? NULL : whole_answer(g);
    pthread_mutex_unlock(&g->lock);
    return failed ? http_reply_error(r, &e) : http_reply_json(r, 200, body);
}

/* ---- streaming ---- */

static bool pend_event(gen *g, json_t *event) {
    char *text = event ? json_dumps(event, JSON_COMPACT) : NULL;
    json_decref(event);
    if (!text)
        return false;
    size_t n = strlen(text);
    char *p = realloc(g->pend, g->pend_len + n + sizeof "data: \n\n");
    if (p) {
        g->pend = p;
        g->pend_len += (size_t)sprintf(p + g->pend_len, "data: %s\n\n", text);
    }
    free(text);
    return p != NULL;
}

static void pend_raw(gen *g, const char *s) {
    size_t n = strlen(s);
    char *p = realloc(g->pend, g->pend_len + n + 1);
    if (p) {
        g->pend = p;
        memcpy(p + g->pend_len, s, n + 1);
        g->pend_len += n;
    }
}

/* The tool calls of a finished stream as deltas: per call, its id and name,
 * then its arguments. False when the text is not a call list. */
static bool pend_tool_calls(gen *g) {
    json_t *calls = tool_calls_of(g);
    if (!calls)
        return false;
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        json_t *fn = json_object_get(c, "function");
        json_t *head =
            json_pack("[{s:I, s:O, s:s, s:{s:O, s:s}}]", "index", (json_int_t)i, "id", json_object_get(c, "id"), "type",
                      "function", "function", "name", json_object_get(fn, "name"), "arguments", "");
        json_t *args = json_pack("[{s:I, s:{s:O}}]", "index", (json_int_t)i, "function", "arguments",
                                 json_object_get(fn, "arguments"));
        pend_event(g, rl_oai_chunk(&g->meta, NULL, NULL, 0, head, NULL));
        pend_event(g, rl_oai_chunk(&g->meta, NULL, NULL, 0, args, NULL));
    }
    json_decref(calls);
    return true;
}

/* Formats whatever is new into SSE events (lock held). */
static void produce(gen *g) {
    size_t len;
    const char *content = rl_oai_out_content(g->out, &len);
    if (g->phase == 0) {
        if (g->meta.chat)
            pend_event(g, rl_oai_chunk(&g->meta, "assistant", "", 0, NULL, NULL));
        g->phase = 1;
    }
    size_t rlen;
    const char *reasoning = rl_oai_out_reasoning(g->out, &rlen);
    if (rlen > g->sent_reasoning && g->meta.chat) {
        json_t *chunk = rl_oai_chunk(&g->meta, NULL, NULL, 0, NULL, NULL);
        rl_oai_set_reasoning(chunk, reasoning + g->sent_reasoning, rlen - g->sent_reasoning);
        pend_event(g, chunk);
        g->sent_reasoning = rlen;
    }
    if (len > g->sent) {
        pend_event(g, rl_oai_chunk(&g->meta, NULL, content + g->sent, len - g->sent, NULL, NULL));
        g->sent = len;
    }
    if (!g->done || g->phase == 2)
        return;
    if (g->why == RL_FINISH_ERROR) {
        rl_oai_err e;
        failure(g, &e);
        pend_event(g, rl_oai_error_json(&e));
    } else {
        bool calls = pend_tool_calls(g);
        size_t tlen;
        const char *tool_text = rl_oai_out_tool_text(g->out, &tlen);
        if (!calls && tlen > 0)
            pend_event(g, rl_oai_chunk(&g->meta, NULL, tool_text, tlen, NULL, NULL));
        pend_event(g, rl_oai_chunk(&g->meta, NULL, NULL, 0, NULL, finish_reason(g, calls)));
        if (g->req.include_usage)
            pend_event(g, rl_oai_usage_chunk(&g->meta, rl_oai_usage(g->req.n_prompt, g->n_gen, g->cached)));
    }
    pend_raw(g, "data: [DONE]\n\n");
    g->phase = 2;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    gen *g = cls;
    (void)pos;
    pthread_mutex_lock(&g->lock);
    for (;;) {
        if (g->pend_off < g->pend_len) {
            size_t n = g->pend_len - g->pend_off < max ? g->pend_len - g->pend_off : max;
            memcpy(buf, g->pend + g->pend_off, n);
            g->pend_off += n;
            pthread_mutex_unlock(&g->lock);
            return (ssize_t)n;
        }
        g->pend_off = g->pend_len = 0;
        if (g->phase == 2 || g->cancelled)
            break;
        produce(g);
        if (g->pend_len == 0)
            wait_slice(g);
    }
    bool gone = g->cancelled;
    pthread_mutex_unlock(&g->lock);
    return gone ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls) { gen_release(cls); }

static enum MHD_Result reply_stream(http_req *r, gen *g) {
    rl_oai_err e;
    pthread_mutex_lock(&g->lock);
    while (!g->done && !has_output(g))
        wait_slice(g);
    bool failed = g->done && !has_output(g) && (g->why == RL_FINISH_ERROR || g->why == RL_FINISH_CANCELLED);
    if (failed)
        failure(g, &e);
    else
        g->refs++; /* the response's reference, released by stream_free */
    pthread_mutex_unlock(&g->lock);
    if (failed)
        return http_reply_error(r, &e);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, g, stream_free);
    if (!resp) {
        gen_release(g);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    r->status = 200;
    enum MHD_Result rc = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ---- the endpoint ---- */

static int submit(gen *g, rl_oai_err *e) {
    const rl_oai_req *q = &g->req;
    rl_sched_req sr = {.prompt = q->prompt,
                       .n_prompt = (uint32_t)q->n_prompt,
                       .max_tokens = (uint32_t)q->max_tokens,
                       .sampling = q->sampling,
                       .sink = {on_token, on_done, g, on_cached}};
    g->t_submit = rl_now_s();
    g->refs++; /* the sink's */
    int rc = rl_sched_submit(g->app->sched, &sr, &g->sched_id);
    if (rc == RL_SCHED_OK)
        return 0;
    g->refs--;
    if (rc == RL_SCHED_EFULL)
        rl_oai_err_set(e, 429, "server_error", NULL,
                       "The server is busy: every session and queue place is taken. "
                       "Retry shortly.");
    else if (rc == RL_SCHED_ESTOPPED)
        rl_oai_err_set(e, 503, "server_error", NULL, "The server is shutting down.");
    else
        rl_oai_err_set(e, 400, "invalid_request_error", NULL, "The request does not fit the context.");
    return -1;
}

enum MHD_Result http_completions(http_req *r, bool chat) {
    rl_oai_err e;
    if (atomic_load(&r->app->ready) != 1) {
        rl_oai_err_set(&e, 503, "server_error", NULL, "The model is still loading; retry shortly.");
        return http_reply_error(r, &e);
    }
    gen *g = gen_new(r, chat);
    if (!g)
        return MHD_NO;
    if (rl_oai_req_parse(&r->app->model, chat, r->body, r->len, &g->req, &e) == 0 &&
        !(g->out = rl_oai_out_new(r->app->model.tok, g->req.stop, g->req.n_stop, g->req.tools_offered,
                                  g->req.tool_mode == RL_TOOLS_REQUIRED)))
        rl_oai_err_set(&e, 500, "server_error", NULL, "out of memory");
    enum MHD_Result rc;
    if (!g->out || submit(g, &e))
        rc = http_reply_error(r, &e);
    else
        rc = g->req.stream ? reply_stream(r, g) : reply_whole(r, g);
    gen_release(g);
    return rc;
}
