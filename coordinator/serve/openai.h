/* The OpenAI API's shapes, apart from HTTP: request bodies of
 * /v1/chat/completions and /v1/completions read and checked into what the
 * scheduler needs (openai_request.c), the generated text assembled with stop
 * strings and tool calls (openai_output.c), and the response objects and
 * stream chunks built from it (openai_response.c). */
#ifndef RELAIS_OPENAI_H
#define RELAIS_OPENAI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "chat.h"
#include "json_grammar.h"
#include "sampler.h"
#include "tokenizer.h"
#include "top_logits.h"

/* Stop strings as OpenAI takes them: at most 4, and (our limit, which
 * OpenAI does not publish) at most 512 bytes each; beyond, a 400. */
#define RL_OAI_MAX_STOP 4
#define RL_OAI_MAX_STOP_BYTES 512
/* top_logprobs as OpenAI takes it: 0 to 20. */
#define RL_OAI_MAX_TOP_LOGPROBS 20

/* An API error: HTTP status, OpenAI error type, the offending parameter
 * (empty when none) and the message. */
typedef struct {
    int status;
    const char *type; /* "invalid_request_error", "server_error", ... */
    const char *code; /* OpenAI error code or NULL */
    char param[64];
    char message[512];
} rl_oai_err;

void rl_oai_err_set(rl_oai_err *e, int status, const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

typedef enum { RL_TOOLS_AUTO, RL_TOOLS_NONE, RL_TOOLS_REQUIRED } rl_tool_mode;

typedef struct {
    bool chat; /* chat.completions (else completions) */
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    int64_t max_tokens; /* -1: as many as the context leaves */
    rl_sampler_params sampling;
    bool json_object;      /* response_format json_object: the output is one JSON object */
    rl_js *schema;         /* response_format json_schema: ... that follows it (owned; NULL: none) */
    bool logprobs;         /* chat: each generated token's log-probability */
    uint32_t top_logprobs; /* ... and this many of the most likely tokens at its place */
    bool no_draft;         /* "speculative": false (relais's own field): no draft even when the server has one */
    char *stop[RL_OAI_MAX_STOP];
    size_t n_stop;
    rl_tool_mode tool_mode; /* REQUIRED also for a named function */
    bool tools_offered;     /* the prompt lists tools: parse [TOOL_CALLS] output */
    int32_t *prompt;        /* malloc'd prompt ids */
    size_t n_prompt;
} rl_oai_req;

/* What the reader of a request needs to know about the model. */
typedef struct {
    const rl_tokenizer *tok;
    rl_chat_template tpl;
    uint32_t n_ctx; /* positions one request may use */
    const char *id; /* the served model's name: a request naming another gets 404 (NULL: none checked) */
} rl_oai_model;

/* Reads a request body (len bytes of JSON). chat selects the endpoint's
 * shape. Returns 0 with *r filled (free with rl_oai_req_free), or -1 with
 * *e (status 400 naming the field, 400 context_length_exceeded, or 404
 * model_not_found for a model this server does not serve). */
int rl_oai_req_parse(const rl_oai_model *m, bool chat, const char *body, size_t len, rl_oai_req *r, rl_oai_err *e);
void rl_oai_req_free(rl_oai_req *r);

/* Each token's bytes for response_format's JSON grammar (rl_sched_req.json),
 * made once per server. NULL out of memory. */
rl_jg_vocab *rl_oai_json_vocab_new(const rl_tokenizer *tok);

/* ---- output ---- */

/* The text a request generates: ids decoded into complete UTF-8, cut at the
 * first stop string, and the part after the model's [TOOL_CALLS] token kept
 * apart for tool-call parsing (with the [TOOL_CALLS], [CALL_ID] and [ARGS]
 * tokens inside it written out, as the newer call format needs them to be
 * split). Text between [THINK] and [/THINK] (Ministral 3 Reasoning) is kept
 * apart as the reasoning. Text that might be the start of a stop string is
 * held back until it is known not to be. */
typedef struct rl_oai_out rl_oai_out;

/* stop strings are borrowed (empty ones ignored, at most RL_OAI_MAX_STOP
 * used); matching costs time proportional to the text, whatever their
 * length. tools: whether [TOOL_CALLS] switches to tool
 * mode (else its text is dropped like other control tokens); forced: the
 * prompt already ends with [TOOL_CALLS], so every id is tool-call text. */
rl_oai_out *rl_oai_out_new(const rl_tokenizer *tok, char *const *stop, size_t n_stop, bool tools, bool forced);
void rl_oai_out_destroy(rl_oai_out **o); /* NULLs *o */
/* Feeds a generated id; false once a stop string has matched (then the
 * request should end). */
bool rl_oai_out_feed(rl_oai_out *o, int32_t id);
/* End of generation: releases held-back text. */
void rl_oai_out_finish(rl_oai_out *o);
/* Content text that may be shown so far: its first *len bytes. */
const char *rl_oai_out_content(const rl_oai_out *o, size_t *len);
/* Whether the model started tool calls, and their raw text so far. */
bool rl_oai_out_in_tools(const rl_oai_out *o);
const char *rl_oai_out_tool_text(const rl_oai_out *o, size_t *len);
/* The reasoning so far ([THINK] … [/THINK]); *len 0 when none. */
const char *rl_oai_out_reasoning(const rl_oai_out *o, size_t *len);

/* ---- responses ---- */

typedef struct {
    const char *id; /* "chatcmpl-…" / "cmpl-…" */
    const char *model;
    int64_t created; /* unix seconds */
    bool chat;
} rl_oai_meta;

/* usage object; prompt_tokens_details.cached_tokens: the prompt positions
 * the prompt cache held */
json_t *rl_oai_usage(size_t prompt_tokens, size_t completion_tokens, size_t cached_tokens);
/* The whole non-streamed response. tool_calls (may be NULL) is stolen. */
json_t *rl_oai_response(const rl_oai_meta *m, const char *content, size_t len, json_t *tool_calls,
                        const char *finish_reason, json_t *usage);
/* Adds reasoning_content (len bytes) to a chat response's message or a
 * chunk's delta; nothing for len 0 or a plain completion. */
void rl_oai_set_reasoning(json_t *resp, const char *text, size_t len);
/* One stream chunk: a delta of content (text may be NULL), of tool calls
 * (stolen; may be NULL), a role (first chat chunk), or the finish reason. */
json_t *rl_oai_chunk(const rl_oai_meta *m, const char *role, const char *text, size_t len, json_t *tool_calls,
                     const char *finish_reason);
/* The final usage-only chunk (stream_options.include_usage). */
json_t *rl_oai_usage_chunk(const rl_oai_meta *m, json_t *usage);
/* One token of choices[].logprobs.content, as OpenAI writes it: the
 * token's text (its bytes, or "bytes:\\xNN…" when they are not whole UTF-8),
 * its log-probability, its bytes, and the n most likely tokens at its place
 * (at most top->n) with theirs. A log-probability is the logit minus the
 * row's log-normalizer (top->lse); one too small for a float is -9999. */
json_t *rl_oai_logprob(const rl_tokenizer *tok, int32_t id, const rl_top *top, uint32_t n);
/* Sets choices[0].logprobs of a response or chunk to {"content": content}
 * (stolen). */
void rl_oai_set_logprobs(json_t *resp, json_t *content);
/* {"error": {...}} */
json_t *rl_oai_error_json(const rl_oai_err *e);

#endif
