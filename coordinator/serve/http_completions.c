/* POST /v1/chat/completions and /v1/completions: a request read and checked
 * (openai_request.c), handed to the scheduler, and answered whole or as a
 * stream of server-sent events ending with `data: [DONE]`.
 *
 * A request's `gen` is shared by the HTTP side and the scheduler's sink
 * (two references): the sink feeds generated ids into its output text under
 * its lock. The body is read, checked and tokenized by one of the server's
 * worker threads (http_defer), not the epoll thread: a prompt of megabytes
 * takes seconds, and every other connection would wait. No MHD callback
 * ever waits: while there is nothing to send, the
 * HTTP side parks its connection (MHD_suspend_connection) and the sink
 * resumes it when a token or the end arrives, so one epoll thread serves
 * every connection. Stream chunks are formatted by the HTTP side from the
 * text accumulated since the last one, so a slow client gets fewer, larger
 * chunks and never slows the scheduler down. A streamed reply's headers go
 * out with the first token, so a request that fails before producing
 * anything still gets a proper error status. A client that goes away
 * cancels its request (MHD ends the request, or for a parked connection the
 * server's watchdog sees the hang-up), and a shutting-down server fails
 * every request at once with an error (http_completions_abort). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "http_server.h"
#include "tool_calls.h"
#include "util.h"

typedef struct {
    pthread_mutex_t lock; /* guards everything below */
    int refs;             /* HTTP side + scheduler sink (+ a streamed response) */
    rl_serve *app;
    struct MHD_Connection *conn; /* the request's; NULL once MHD ended the request */
    bool parked;                 /* conn suspended until the sink has news */
    bool aborted;                /* ended by http_completions_abort: the sink's news is ignored */
    rl_oai_req req;              /* the parsed request (stop strings, prompt) */
    rl_oai_out *out;             /* generated text */
    char id[48];                 /* response id */
    rl_oai_meta meta;
    uint64_t sched_id;
    char *body; /* the request body, until a worker has read it (prepare) */
    size_t body_len;
    bool prepared;  /* the worker is done: submitted, or failed with perr */
    bool submitted; /* the scheduler has it (sched_id valid) */
    bool prep_failed;
    rl_oai_err perr; /* why, when prep_failed */
    bool cancelled;  /* no more wanted: rl_sched_cancel was called, or is not to be submitted */
    bool stream;     /* the reply is (to be) streamed */
    uint32_t n_gen;  /* ids generated */
    json_t *lp;      /* logprobs asked: an entry per generated id (rl_oai_logprob) */
    size_t lp_sent;  /* entries already streamed */
    uint32_t cached; /* prompt positions taken from the prompt cache */
    double t_submit; /* CLOCK_MONOTONIC seconds */
    bool done;       /* on_done was called */
    rl_finish why;
    char err[RL_XERR_LEN];
    /* streaming */
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
    free(g->body);
    json_decref(g->lp);
    free(g->pend);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* The parked connection to resume now that there is news (lock held), or
 * NULL; the caller resumes it after unlocking (see unpark). */
static struct MHD_Connection *take_parked(gen *g) {
    if (!g->parked || !g->conn)
        return NULL;
    g->parked = false;
    return g->conn;
}

static void unpark(struct MHD_Connection *c) {
    if (c)
        MHD_resume_connection(c);
}

/* Suspends the connection until the sink has news (lock held; called from
 * an MHD callback of the connection). */
static void park(gen *g) {
    g->parked = true;
    MHD_suspend_connection(g->conn);
}

/* ---- the scheduler's sink (scheduler thread) ---- */

static bool on_token(void *ud, int32_t id, const rl_top *top) {
    gen *g = ud;
    pthread_mutex_lock(&g->lock);
    if (g->aborted) {
        pthread_mutex_unlock(&g->lock);
        return false;
    }
    if (g->n_gen++ == 0)
        rl_metrics_ttft(g->app->metrics, rl_now_s() - g->t_submit);
    if (g->lp && top)
        json_array_append_new(g->lp, rl_oai_logprob(g->app->model.tok, id, top, g->req.top_logprobs));
    bool go_on = rl_oai_out_feed(g->out, id);
    struct MHD_Connection *c = g->stream ? take_parked(g) : NULL; /* a whole answer waits for on_done */
    pthread_mutex_unlock(&g->lock);
    unpark(c);
    return go_on;
}

/* Marks the generation finished (lock held). */
static void set_done(gen *g, rl_finish why, const char *err) {
    g->done = true;
    g->why = why;
    snprintf(g->err, sizeof g->err, "%s", err ? err : "");
    if (g->out)
        rl_oai_out_finish(g->out);
    if (g->submitted)
        rl_metrics_tokens(g->app->metrics, g->req.n_prompt, g->n_gen);
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
    if (!g->done)
        set_done(g, why, err);
    struct MHD_Connection *c = take_parked(g);
    pthread_mutex_unlock(&g->lock);
    unpark(c);
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
    g->refs = 1;
    g->app = r->app;
    g->conn = r->conn;
    make_id(g->id, sizeof g->id, chat ? "chatcmpl-" : "cmpl-");
    g->meta = (rl_oai_meta){g->id, r->app->model_id, (int64_t)time(NULL), chat};
    return g;
}

static bool has_output(gen *g) {
    if (!g->out)
        return false;
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
        if (g->lp)
            rl_oai_set_logprobs(resp, json_incref(g->lp));
        return resp;
    }
    json_t *resp = rl_oai_response(&g->meta, content, len, calls, finish_reason(g, calls != NULL), usage);
    size_t rlen;
    const char *reasoning = rl_oai_out_reasoning(g->out, &rlen);
    rl_oai_set_reasoning(resp, reasoning, rlen);
    if (g->lp)
        rl_oai_set_logprobs(resp, json_incref(g->lp));
    return resp;
}

/* ---- streaming ---- */

/* A chunk carrying the logprobs of the ids generated since the last one
 * (their text is in it, or was held back until now). */
static json_t *with_logprobs(gen *g, json_t *chunk) {
    if (!g->lp || !chunk || g->lp_sent == json_array_size(g->lp))
        return chunk;
    json_t *part = json_array();
    for (size_t i = g->lp_sent; i < json_array_size(g->lp); i++)
        json_array_append(part, json_array_get(g->lp, i));
    g->lp_sent = json_array_size(g->lp);
    rl_oai_set_logprobs(chunk, part);
    return chunk;
}

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
        pend_event(g, with_logprobs(g, rl_oai_chunk(&g->meta, NULL, content + g->sent, len - g->sent, NULL, NULL)));
        g->sent = len;
    }
    if (!g->done || g->phase == 2)
        return;
    if (g->why == RL_FINISH_ERROR || g->why == RL_FINISH_CANCELLED) {
        rl_oai_err e;
        failure(g, &e);
        pend_event(g, rl_oai_error_json(&e));
    } else {
        bool calls = pend_tool_calls(g);
        size_t tlen;
        const char *tool_text = rl_oai_out_tool_text(g->out, &tlen);
        if (!calls && tlen > 0)
            pend_event(g, rl_oai_chunk(&g->meta, NULL, tool_text, tlen, NULL, NULL));
        pend_event(g, with_logprobs(g, rl_oai_chunk(&g->meta, NULL, NULL, 0, NULL, finish_reason(g, calls))));
        if (g->req.include_usage)
            pend_event(g, rl_oai_usage_chunk(&g->meta, rl_oai_usage(g->req.n_prompt, g->n_gen, g->cached)));
    }
    pend_raw(g, "data: [DONE]\n\n");
    g->phase = 2;
}

/* MHD asks for more of the stream: what is formatted, else what is new,
 * else the connection parks until the sink has news. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    gen *g = cls;
    (void)pos;
    pthread_mutex_lock(&g->lock);
    if (g->pend_off == g->pend_len) {
        g->pend_off = g->pend_len = 0;
        if (g->phase != 2)
            produce(g);
    }
    ssize_t n = 0;
    if (g->pend_off < g->pend_len) {
        n = (ssize_t)(g->pend_len - g->pend_off < max ? g->pend_len - g->pend_off : max);
        memcpy(buf, g->pend + g->pend_off, (size_t)n);
        g->pend_off += (size_t)n;
    } else if (g->phase == 2) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        park(g);
    }
    pthread_mutex_unlock(&g->lock);
    return n;
}

static void stream_free(void *cls) { gen_release(cls); }

/* Queues the stream's response (lock not held). */
static enum MHD_Result start_stream(http_req *r, gen *g) {
    pthread_mutex_lock(&g->lock);
    g->refs++; /* the response's reference, released by stream_free */
    pthread_mutex_unlock(&g->lock);
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

/* The reply once there is one to give, else the connection parks: a whole
 * answer when the generation is done, a stream at its first output (or an
 * error status when it failed before any). */
enum MHD_Result http_completions_resume(http_req *r) {
    gen *g = r->gen;
    rl_oai_err e;
    pthread_mutex_lock(&g->lock);
    const bool ready = g->done || (g->stream && has_output(g));
    if (!ready) {
        park(g);
        pthread_mutex_unlock(&g->lock);
        return MHD_YES;
    }
    const bool failed = g->prep_failed ||
        ((g->why == RL_FINISH_ERROR || g->why == RL_FINISH_CANCELLED) && g->done && !(g->stream && has_output(g)));
    if (g->prep_failed)
        e = g->perr;
    else if (failed)
        failure(g, &e);
    json_t *body = failed || g->stream ? NULL : whole_answer(g);
    pthread_mutex_unlock(&g->lock);
    if (failed)
        return http_reply_error(r, &e);
    return g->stream ? start_stream(r, g) : http_reply_json(r, 200, body);
}

void http_completions_end(http_req *r) {
    gen *g = r->gen;
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->conn = NULL;
    g->parked = false;
    const bool cancel = !g->done && !g->cancelled && g->submitted;
    g->cancelled = true; /* a worker not yet done does not submit it */
    pthread_mutex_unlock(&g->lock);
    if (cancel)
        rl_sched_cancel(g->app->sched, g->sched_id);
    r->gen = NULL;
    gen_release(g);
}

struct MHD_Connection *http_completions_abort(http_req *r, bool client_gone) {
    gen *g = r->gen;
    struct MHD_Connection *c = NULL;
    bool cancel = false;
    if (!g)
        return NULL;
    pthread_mutex_lock(&g->lock);
    if (!g->done) {
        cancel = !g->cancelled && g->submitted;
        g->cancelled = true;
        if (!client_gone) {
            /* the scheduler may be stuck on a node: fail it here */
            set_done(g, RL_FINISH_CANCELLED, "server shutting down");
            g->aborted = true;
            c = take_parked(g);
        }
    }
    pthread_mutex_unlock(&g->lock);
    if (cancel)
        rl_sched_cancel(g->app->sched, g->sched_id);
    return c;
}

/* ---- the endpoint ---- */

/* Hands the request to the scheduler (lock held: a cancel either comes
 * before, and it is not submitted, or finds it submitted). */
static int submit(gen *g, rl_oai_err *e) {
    const rl_oai_req *q = &g->req;
    rl_sched_req sr = {.prompt = q->prompt,
                       .n_prompt = (uint32_t)q->n_prompt,
                       .max_tokens = (uint32_t)q->max_tokens,
                       .sampling = q->sampling,
                       .n_top = q->logprobs ? (q->top_logprobs > 1 ? q->top_logprobs : 1) : 0,
                       .sink = {on_token, on_done, g, on_cached},
                       .json = q->json_object || q->schema ? g->app->json : NULL,
                       .schema = q->schema,
                       /* a verified draft reports top logits for its last position only, and a
                        * constrained one would need a mask per position */
                       .no_draft = q->no_draft || q->logprobs || q->json_object || q->schema};
    g->t_submit = rl_now_s();
    g->refs++; /* the sink's */
    int rc = rl_sched_submit(g->app->sched, &sr, &g->sched_id);
    if (rc == RL_SCHED_OK) {
        g->submitted = true;
        return 0;
    }
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

/* The request read, checked and tokenized (a worker's job: a large prompt
 * takes long), then submitted; on failure its error is kept and the
 * connection resumed to send it. */
static void prepare(void *arg) {
    gen *g = arg;
    rl_oai_err e;
    rl_oai_req q = {0};
    rl_oai_out *out = NULL;
    json_t *lp = NULL;
    const rl_oai_model *m = &g->app->model;
    bool ok = rl_oai_req_parse(m, g->meta.chat, g->body, g->body_len, &q, &e) == 0;
    if (ok &&
        (!(out = rl_oai_out_new(m->tok, q.stop, q.n_stop, q.tools_offered, q.tool_mode == RL_TOOLS_REQUIRED)) ||
         (q.logprobs && !(lp = json_array())))) {
        rl_oai_err_set(&e, 500, "server_error", NULL, "out of memory");
        ok = false;
    }
    pthread_mutex_lock(&g->lock);
    free(g->body);
    g->body = NULL;
    g->prepared = true;
    if (ok) {
        g->req = q; /* ownership moves to g (the stop strings stay where out borrows them) */
        g->out = out;
        g->lp = lp;
        g->stream = q.stream;
        if (!g->cancelled)
            ok = submit(g, &e) == 0;
    } else {
        rl_oai_req_free(&q);
        rl_oai_out_destroy(&out);
    }
    if (!ok) {
        g->prep_failed = true;
        g->perr = e;
        g->done = true;
    } else if (!g->submitted && !g->done) {
        set_done(g, RL_FINISH_CANCELLED, NULL); /* no more wanted: the client is gone */
    }
    struct MHD_Connection *c = g->done ? take_parked(g) : NULL;
    pthread_mutex_unlock(&g->lock);
    unpark(c);
    gen_release(g); /* the job's reference */
}

enum MHD_Result http_completions(http_req *r, bool chat) {
    rl_oai_err e;
    if (atomic_load(&r->app->stopping)) {
        rl_oai_err_set(&e, 503, "server_error", NULL, "The server is shutting down.");
        return http_reply_error(r, &e);
    }
    if (atomic_load(&r->app->ready) != 1) {
        rl_oai_err_set(&e, 503, "server_error", NULL, "The model is still loading; retry shortly.");
        return http_reply_error(r, &e);
    }
    gen *g = gen_new(r, chat);
    if (!g)
        return MHD_NO;
    g->body = r->body; /* the worker reads it; the connection waits, parked */
    g->body_len = r->len;
    r->body = NULL;
    r->len = r->cap = 0;
    g->refs++; /* the job's */
    if (!http_defer(r, prepare, g)) {
        g->refs--;
        gen_release(g);
        rl_oai_err_set(&e, 503, "server_error", NULL, "The server cannot take the request now (shutting down).");
        return http_reply_error(r, &e);
    }
    r->gen = g; /* the HTTP side's reference, released by http_completions_end */
    return http_completions_resume(r);
}
