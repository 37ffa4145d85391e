/* OpenAI response objects and stream chunks (see openai.h), field for field
 * as the official clients read them: chat.completion / chat.completion.chunk
 * with message or delta, text_completion with text, usage, and the error
 * object. */
#include "openai.h"

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

json_t *rl_oai_error_json(const rl_oai_err *e) {
    return json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", e->message, "type", e->type, "param",
                     e->param[0] ? json_string(e->param) : json_null(), "code",
                     e->code ? json_string(e->code) : json_null());
}
