/* OpenAI response objects and stream chunks (see openai.h), field for field
 * as the official clients read them: chat.completion / chat.completion.chunk
 * with message or delta, text_completion with text, usage, and the error
 * object. */
#include "openai.h"

#include <math.h>
#include <stdio.h>
#include "utf8.h"

#define MAX_PIECE 256      /* bytes of one token's text shown; longer ones are cut */
#define TINY_LOGPROB -9999 /* what OpenAI writes for a probability too small to show */

json_t *rl_oai_usage(size_t prompt_tokens, size_t completion_tokens, size_t cached_tokens) {
    return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)prompt_tokens, "completion_tokens",
                     (json_int_t)completion_tokens, "total_tokens", (json_int_t)(prompt_tokens + completion_tokens),
                     "prompt_tokens_details", "cached_tokens", (json_int_t)cached_tokens);
}

static json_t *envelope(const rl_oai_meta *m, const char *object, json_t *choice) {
    return json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", m->id, "object", object, "created", (json_int_t)m->created,
                     "model", m->model, "choices", choice);
}

static json_t *reason(const char *finish_reason) { return finish_reason ? json_string(finish_reason) : json_null(); }

json_t *rl_oai_response(const rl_oai_meta *m, const char *content, size_t len, json_t *tool_calls,
                        const char *finish_reason, json_t *usage) {
    json_t *choice;
    if (m->chat) {
        json_t *msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                                len || !tool_calls ? json_stringn(content, len) : json_null());
        if (tool_calls)
            json_object_set_new(msg, "tool_calls", tool_calls);
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "message", msg, "logprobs", "finish_reason",
                           reason(finish_reason));
    } else {
        json_decref(tool_calls);
        choice = json_pack("{s:i, s:s%, s:n, s:o}", "index", 0, "text", content, len, "logprobs", "finish_reason",
                           reason(finish_reason));
    }
    json_t *r = envelope(m, m->chat ? "chat.completion" : "text_completion", choice);
    json_object_set_new(r, "usage", usage);
    return r;
}

void rl_oai_set_reasoning(json_t *resp, const char *text, size_t len) {
    json_t *choice = json_array_get(json_object_get(resp, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    if (!msg)
        msg = json_object_get(choice, "delta");
    if (len > 0 && msg)
        json_object_set_new(msg, "reasoning_content", json_stringn(text, len));
}

json_t *rl_oai_chunk(const rl_oai_meta *m, const char *role, const char *text, size_t len, json_t *tool_calls,
                     const char *finish_reason) {
    json_t *choice;
    if (m->chat) {
        json_t *delta = json_object();
        if (role)
            json_object_set_new(delta, "role", json_string(role));
        if (text)
            json_object_set_new(delta, "content", json_stringn(text, len));
        if (tool_calls)
            json_object_set_new(delta, "tool_calls", tool_calls);
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "delta", delta, "logprobs", "finish_reason",
                           reason(finish_reason));
    } else {
        json_decref(tool_calls);
        choice = json_pack("{s:i, s:s%, s:n, s:o}", "index", 0, "text", text ? text : "", text ? len : 0, "logprobs",
                           "finish_reason", reason(finish_reason));
    }
    return envelope(m, m->chat ? "chat.completion.chunk" : "text_completion", choice);
}

json_t *rl_oai_usage_chunk(const rl_oai_meta *m, json_t *usage) {
    json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:[]}", "id", m->id, "object",
                          m->chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)m->created,
                          "model", m->model, "choices");
    json_object_set_new(c, "usage", usage);
    return c;
}

static bool whole_utf8(const char *s, size_t n) {
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k)
        if ((k = rl_utf8_decode(s + i, n - i, &cp)), cp == RL_UTF8_INVALID)
            return false;
    return true;
}

static double logprob(float logit, float lse) {
    double lp = (double)logit - (double)lse;
    return isfinite(lp) && lp > TINY_LOGPROB ? (lp < 0 ? lp : 0.0) : TINY_LOGPROB;
}

/* {token, logprob, bytes} of one id. */
static json_t *token_entry(const rl_tokenizer *tok, int32_t id, double lp) {
    char piece[MAX_PIECE];
    int n = rl_tok_piece(tok, id, true, piece, sizeof piece);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof piece ? (size_t)n : sizeof piece;
    json_t *bytes = json_array();
    for (size_t i = 0; i < len; i++)
        json_array_append_new(bytes, json_integer((unsigned char)piece[i]));
    json_t *text;
    if (whole_utf8(piece, len)) {
        text = json_stringn(piece, len);
    } else {
        char esc[sizeof "bytes:" + 4 * MAX_PIECE];
        size_t k = (size_t)snprintf(esc, sizeof esc, "bytes:");
        for (size_t i = 0; i < len; i++)
            k += (size_t)snprintf(esc + k, sizeof esc - k, "\\x%02x", (unsigned char)piece[i]);
        text = json_stringn(esc, k);
    }
    return json_pack("{s:o, s:f, s:o}", "token", text, "logprob", lp, "bytes", bytes);
}

json_t *rl_oai_logprob(const rl_tokenizer *tok, int32_t id, const rl_top *top, uint32_t n) {
    json_t *e = token_entry(tok, id, logprob(top->chosen, top->lse));
    json_t *list = json_array();
    for (uint32_t i = 0; i < n && i < top->n; i++)
        if (top->ids[i] >= 0)
            json_array_append_new(list, token_entry(tok, top->ids[i], logprob(top->vals[i], top->lse)));
    json_object_set_new(e, "top_logprobs", list);
    return e;
}

void rl_oai_set_logprobs(json_t *resp, json_t *content) {
    json_t *choice = json_array_get(json_object_get(resp, "choices"), 0);
    json_t *lp = json_pack("{s:o, s:n}", "content", content, "refusal");
    if (choice)
        json_object_set_new(choice, "logprobs", lp);
    else
        json_decref(lp);
}

json_t *rl_oai_error_json(const rl_oai_err *e) {
    return json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", e->message, "type", e->type, "param",
                     e->param[0] ? json_string(e->param) : json_null(), "code",
                     e->code ? json_string(e->code) : json_null());
}
