/* Tool calls in the model's output: the text a Mistral model writes after
 * its [TOOL_CALLS] token, `[{"name": …, "arguments": {…}, "id": …}, …]`
 * (or a single object), or in the newer format (Ministral 3, tokenizer V13)
 * `name[ARGS]{…}` with a further `[TOOL_CALLS]name[ARGS]{…}` per call (V11
 * puts `[CALL_ID]id` before [ARGS]), turned into OpenAI's `tool_calls` array:
 * `[{"id", "type": "function", "function": {"name", "arguments": "<json>"}}]`.
 * A call without a usable id gets a new 9-character alphanumeric one, the
 * shape Mistral's templates expect back in the tool message. */
#ifndef RELAIS_TOOL_CALLS_H
#define RELAIS_TOOL_CALLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The OpenAI tool_calls array for len bytes of tool-call text, or NULL when
 * the text is not a list of calls with names (then it is ordinary content). */
json_t *rl_tool_calls_parse(const char *text, size_t len);

/* Writes a fresh random id of 9 characters [A-Za-z0-9] and a NUL. */
void rl_tool_call_id(char out[10]);
/* Whether s is such an id. */
bool rl_tool_call_id_valid(const char *s);

#endif
