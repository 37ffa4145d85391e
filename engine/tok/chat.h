/* Chat templates: turn OpenAI-style messages (and tools) into prompt token
 * ids the way each model family's reference does.
 *  - mistral-v3-tekken: <s>[INST]user[/INST]assistant</s>[INST]..., system
 *    prompt joined before the last user message with a blank line,
 *    [AVAILABLE_TOOLS]json[/AVAILABLE_TOOLS] before the last user turn,
 *    [TOOL_CALLS]json</s>, [TOOL_RESULTS]{"content":..,"call_id":..}[/TOOL_RESULTS]
 *    (as mistral-common builds it; each text segment tokenized on its own).
 *  - mistral-v13 (Ministral 3, Instruct and Reasoning; mistral-common's
 *    tokenizer V13): system messages in place as [SYSTEM_PROMPT]..[/SYSTEM_PROMPT],
 *    [AVAILABLE_TOOLS]json[/AVAILABLE_TOOLS] before the first user turn,
 *    assistant text then [TOOL_CALLS]name[ARGS]json per call then </s>,
 *    [TOOL_RESULTS]text[/TOOL_RESULTS], an assistant's reasoning_content as
 *    [THINK]..[/THINK] in front of its text.
 *  - mistral-v1 / llama-2 style for SentencePiece models:
 *    <s>[INST] user [/INST] assistant</s>[INST] ...
 * The template is chosen from the vocabulary (Tekken control tokens) or from
 * tokenizer.chat_template. */
#ifndef RELAIS_CHAT_H
#define RELAIS_CHAT_H

#include <stddef.h>
#include <stdint.h>
#include "gguf.h"
#include "tokenizer.h"

typedef enum { RL_CHAT_MISTRAL_V3_TEKKEN, RL_CHAT_MISTRAL_V1, RL_CHAT_MISTRAL_V13, RL_CHAT_NONE } rl_chat_template;

/* Picks the template for a tokenizer (f may be NULL; then only the vocabulary decides). */
rl_chat_template rl_chat_template_detect(const rl_tokenizer *t, const gguf_file *f);
const char *rl_chat_template_name(rl_chat_template tpl);
int rl_chat_template_from_name(const char *name); /* -1 if unknown */

/* Builds prompt ids from `messages`, the JSON text of an array of
 * OpenAI-style objects (role system|user|assistant|tool, content string,
 * assistant tool_calls, tool tool_call_id; mistral-v13: assistant
 * reasoning_content), and `tools`, the JSON text of an array or NULL. JSON
 * text, not a parser's types, is the contract: callers keep whatever JSON
 * library they like, and the engine's stays private. The prompt ends ready
 * for the assistant's reply. *ids is malloc'd, owned by the caller. Returns
 * 0, or -1 with a message in err naming the offending message/field. */
int rl_chat_build(const rl_tokenizer *t, rl_chat_template tpl, const char *messages, const char *tools, int32_t **ids,
                  size_t *n_ids, char *err, size_t errlen);

#endif
