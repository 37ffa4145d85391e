#!/usr/bin/env bash
# curl tests of `relais serve` on loopback: every endpoint and every error
# reply; tool calls (plain, streamed, forced, and the tool-result turn) on the
# parrot model whose greedy output is known; the golden chat prompts' token
# counts through HTTP; 429 when slots and queue are full; a client that hangs
# up frees its session; 16 concurrent clients each get exactly the greedy
# answer they get alone, none fails, and the server's RSS comes back.
#
# usage: serve_http.sh RELAIS PARROT_MODEL_WRITER SHARED_DIR
set -euo pipefail
RELAIS=$1
PARROT=$2
SHARED=$3
. "$(dirname "$0")/serve_lib.sh"
need node

CHAT='{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":8,"temperature":0}'

# ---- A: endpoints and errors (tiny model, API key, small body limit) ----
start_server a -m "$SHARED/models/tiny-q8_0.gguf" --api-key sekrit --ctx 256 --max-body 65536 -t 2
grep -q "in flight, 2 threads, prompt cache" "$TMP/a.log" && ok "the startup line says -t's 2 threads" ||
    bad "startup line: $(grep 'serve:' "$TMP/a.log")"
KEY=
req GET /health
expect "health without a key: the status word alone" 200 'r.status === "ok" && Object.keys(r).length === 1'
KEY=sekrit
req GET /health
expect "health with the key: the nodes too" 200 'r.status === "ok" && r.nodes[0].state === "ready" && r.model === "tiny-q8_0"'
KEY=
req GET /v1/models
expect "models without a key: 401" 401 'r.error.code === "invalid_api_key" && r.error.type === "invalid_request_error"'
KEY=wrong
req GET /v1/models
expect "models with a wrong key: 401" 401 'r.error.message.includes("API key")'
KEY=sekrit
req GET /v1/models
expect "models" 200 'r.object === "list" && r.data[0].id === "tiny-q8_0" && r.data[0].object === "model"'
req GET /v1/models/tiny-q8_0
expect "one model" 200 'r.id === "tiny-q8_0"'
req GET /v1/models/gpt-4
expect "unknown model: 404" 404 'r.error.code === "model_not_found" && r.error.param === "model"'
req GET /v2/nothing
expect "unknown path: 404" 404 'r.error.code === "not_found"'
req GET /v1/chat/completions
expect "GET on a POST endpoint: 405" 405 'r.error.code === "method_not_allowed"'
req POST /v1/chat/completions '{"messages": [' 
expect "bad JSON: 400" 400 'r.error.message.includes("could not parse") && r.error.param === null'
req POST /v1/chat/completions '{"max_tokens": 4}'
expect "no messages: 400 naming messages" 400 'r.error.param === "messages"'
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}'
expect "bad temperature: 400 naming it" 400 'r.error.param === "temperature"'
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"max_tokens":-1}'
expect "bad max_tokens: 400 naming it" 400 'r.error.param === "max_tokens"'
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}'
expect "too many stops: 400 naming stop" 400 'r.error.param === "stop"'
req POST /v1/chat/completions '{"messages":[{"role":"bot","content":"x"}]}'
expect "bad role: 400 naming messages" 400 'r.error.param === "messages" && r.error.message.includes("messages[0]")'
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}'
expect "tools on a template without tools: 400 naming tools" 400 'r.error.param === "tools"'
req POST /v1/chat/completions '{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}'
expect "chat naming a model not served: 404" 404 \
    'r.error.code === "model_not_found" && r.error.param === "model" && r.error.message.includes("tiny-q8_0")'
req POST /v1/completions '{"model":"gpt-4o","prompt":"x"}'
expect "completion naming a model not served: 404" 404 'r.error.code === "model_not_found"'
req POST /v1/chat/completions '{"model":"tiny-q8_0","messages":[{"role":"user","content":"x"}],"max_tokens":2,"response_format":{"type":"text"}}'
expect "the served model by name, response_format text: 200" 200 'r.model === "tiny-q8_0"'
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"max_tokens":30,"response_format":{"type":"json_object"}}'
expect "response_format json_object: one JSON object" 200 \
    'r.choices[0].finish_reason === "stop" && JSON.parse(r.choices[0].message.content).constructor === Object'
req POST /v1/completions '{"prompt":"x","max_tokens":30,"temperature":1,"seed":7,"response_format":{"type":"json_object"}}'
expect "response_format json_object on /v1/completions, sampled" 200 \
    'r.choices[0].finish_reason === "stop" && JSON.parse(r.choices[0].text).constructor === Object'
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object","properties":{"a":{"type":"string","pattern":"x+"}}}}}}'
expect "response_format json_schema with a keyword not enforced: 400 naming it" 400 \
    'r.error.param === "response_format" && r.error.message.includes("properties.a\x27 uses \x27pattern\x27")'
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"max_tokens":300}'
expect "prompt + max_tokens over the context: 400" 400 \
    'r.error.code === "context_length_exceeded" && r.error.message.includes("maximum context length is 256")'
head -c 70000 /dev/zero | tr '\0' 'x' >"$TMP/big"
STATUS=$(curl -s -o "$TMP/body" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer sekrit" \
    --data-binary @"$TMP/big" "http://127.0.0.1:$PORT/v1/chat/completions")
expect "body over --max-body: 413" 413 'r.error.code === "request_too_large"'
STATUS=$(head -c 70000 /dev/zero | curl -s -o "$TMP/body" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer sekrit" \
    -H "Transfer-Encoding: chunked" --data-binary @- "http://127.0.0.1:$PORT/v1/completions")
expect "chunked body over --max-body: 413" 413 'r.error.code === "request_too_large"'

req POST /v1/chat/completions "$CHAT"
expect "chat" 200 'r.object === "chat.completion" && r.choices[0].message.role === "assistant" &&
    typeof r.choices[0].message.content === "string" && ["stop","length"].includes(r.choices[0].finish_reason) &&
    r.usage.prompt_tokens > 0 && r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens'
cp "$TMP/body" "$TMP/chat1"
req POST /v1/chat/completions "$CHAT"
CHAT_TEXT=$(jval "$TMP/chat1" 'JSON.stringify(r.choices[0].message.content)')
expect "greedy chat repeats" 200 "JSON.stringify(r.choices[0].message.content) === JSON.stringify($CHAT_TEXT)"
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":8,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
expect "chat stream: role first, same text, finish, usage, [DONE]" 200 "
    s.endsWith('data: [DONE]\n\n') && ev[0].object === 'chat.completion.chunk' && ev[0].choices[0].delta.role === 'assistant' &&
    ev.map(e => (e.choices[0] && e.choices[0].delta.content) || '').join('') === $CHAT_TEXT &&
    ev[ev.length - 2].choices[0].finish_reason !== null && ev[ev.length - 1].usage.completion_tokens > 0"
req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":12,"temperature":0}'
expect "completions" 200 'r.object === "text_completion" && typeof r.choices[0].text === "string" && r.usage.completion_tokens > 0'
FULL=$(jval "$TMP/body" 'JSON.stringify(r.choices[0].text)')
STOP=$(node -e 'const t = JSON.parse(process.argv[1]); console.log(JSON.stringify(t.slice(Math.floor(t.length / 2), Math.floor(t.length / 2) + 3)))' "$FULL")
req POST /v1/completions "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,\"stop\":[$STOP]}"
expect "stop string cuts the text" 200 "r.choices[0].finish_reason === 'stop' && $FULL.startsWith(r.choices[0].text) &&
    r.choices[0].text.length === $FULL.indexOf($STOP)"
req POST /v1/completions "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,\"stream\":true,\"stop\":$STOP}"
expect "stop string in a stream" 200 "s.endsWith('data: [DONE]\n\n') && ev.map(e => e.choices[0].text).join('') === $FULL.slice(0, $FULL.indexOf($STOP))"
# Four stop strings of the largest size taken (512 bytes) that never match
# leave a long answer as it is without them, in about the same time.
STOPLESS='"prompt":"Once upon a time","max_tokens":200,"temperature":0'
t0=$(date +%s%N)
req POST /v1/completions "{$STOPLESS}"
t_plain=$(( ($(date +%s%N) - t0) / 1000000 ))
PLAIN=$(jval "$TMP/body" 'JSON.stringify(r.choices[0].text)')
S512=$(printf 'a%.0s' $(seq 511))
t0=$(date +%s%N)
req POST /v1/completions "{$STOPLESS,\"stop\":[\"${S512}b\",\"${S512}c\",\"${S512}d\",\"${S512}e\"]}"
t_stop=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "four 512-byte stop strings that never match: the same text" 200 "r.choices[0].text === $PLAIN"
echo "# $t_plain ms without stop strings, $t_stop ms with four of 512 bytes"
[ "$t_stop" -lt $(( 3 * t_plain + 2000 )) ] && ok "stop strings cost little ($t_stop ms against $t_plain ms)" ||
    bad "four 512-byte stop strings: $t_stop ms against $t_plain ms without"
req POST /v1/completions '{"prompt":[1, 20, 30, 40],"max_tokens":5,"temperature":0.9,"seed":42}'
cp "$TMP/body" "$TMP/seeded"
SEEDED=$(jval "$TMP/seeded" 'JSON.stringify(r.choices[0].text)')
req POST /v1/completions '{"prompt":[1, 20, 30, 40],"max_tokens":5,"temperature":0.9,"seed":42}'
expect "token-id prompt, same seed same text" 200 "r.usage.prompt_tokens === 4 && r.choices[0].text === $SEEDED"
req POST /v1/completions '{"prompt":[1, 99999]}'
expect "token id out of range: 400" 400 'r.error.param === "prompt"'
req GET /metrics
expect "metrics" 200 's.includes("relais_requests_total{endpoint=\"chat_completions\",code=\"200\"}") &&
    s.includes("relais_time_to_first_token_seconds_bucket") && s.includes("relais_queue_depth 0") &&
    s.includes("relais_node_stage_seconds_total{node=\"local\"}") && s.includes("relais_node_bytes_total") &&
    s.includes("relais_generated_tokens_total") && s.includes("code=\"413\"") && s.includes("code=\"401\"")'
req GET /health
expect "server still healthy after every error" 200 'r.status === "ok" && r.sessions.active === 0'
stop_servers

# ---- B: tool calls on the parrot model; golden prompt sizes through HTTP ----
"$PARROT" "$TMP/parrot.gguf" "$SHARED/models/vocab-tekken-shaped.gguf"
start_server b -m "$TMP/parrot.gguf" --ctx 1024 -t 2
KEY=
# Stop strings as OpenAI limits them: four of 1.9 MB (7.6 MB, within the
# default 8 MiB body limit) get a 400 naming 'stop', quickly.
BIG=$(printf 'x%.0s' $(seq 1900) | sed 's/.*/&&&&&&&&&&/; s/.*/&&&&&&&&&&/; s/.*/&&&&&&&&&&/')
t0=$(date +%s%N)
req POST /v1/completions "{\"prompt\":\"Once\",\"max_tokens\":4,\"stop\":[\"$BIG\",\"$BIG\",\"$BIG\",\"$BIG\"]}"
expect "four 1.9 MB stop strings: 400 naming stop" 400 'r.error.param === "stop" && r.error.message.includes("at most 512")'
[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ] && ok "refused in under 5 s" || bad "four 1.9 MB stop strings took over 5 s"
TOOLS='"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]'
ASK='{"role":"user","content":"What is the weather in Paris?"}'
req POST /v1/chat/completions "{\"messages\":[$ASK],$TOOLS,\"temperature\":0}"
expect "tool call parsed" 200 'const c = r.choices[0]; c.finish_reason === "tool_calls" && c.message.content === null &&
    c.message.tool_calls.length === 1 && /^[A-Za-z0-9]{9}$/.test(c.message.tool_calls[0].id) &&
    c.message.tool_calls[0].type === "function" && c.message.tool_calls[0].function.name === "get_weather" &&
    JSON.parse(c.message.tool_calls[0].function.arguments).city === "Paris"'
CALL_ID=$(jval "$TMP/body" 'r.choices[0].message.tool_calls[0].id')
req POST /v1/chat/completions "{\"messages\":[$ASK],$TOOLS,\"temperature\":0,\"stream\":true}"
expect "tool call streamed as deltas" 200 's.endsWith("data: [DONE]\n\n") &&
    ev.some(e => e.choices[0].delta.tool_calls && e.choices[0].delta.tool_calls[0].function.name === "get_weather") &&
    JSON.parse(ev.filter(e => e.choices[0].delta.tool_calls).map(e => e.choices[0].delta.tool_calls[0].function.arguments).join("")).city === "Paris" &&
    ev[ev.length - 1].choices[0].finish_reason === "tool_calls"'
req POST /v1/chat/completions "{\"messages\":[$ASK],$TOOLS,\"temperature\":0,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}}"
expect "forced tool choice" 200 'r.choices[0].finish_reason === "tool_calls" && r.choices[0].message.tool_calls[0].function.name === "get_weather"'
req POST /v1/chat/completions "{\"messages\":[$ASK],$TOOLS,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}}"
expect "tool_choice naming no tool: 400" 400 'r.error.param === "tool_choice"'
ROUND="{\"messages\":[$ASK,{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"$CALL_ID\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"$CALL_ID\",\"content\":\"{\\\"temp_c\\\": 18}\"}],$TOOLS,\"temperature\":0}"
req POST /v1/chat/completions "$ROUND"
expect "tool result turn answered" 200 'r.choices[0].message.content === "It is 18 degrees in Paris." && r.choices[0].finish_reason === "stop"'
node -e '
    const g = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    g.cases.forEach((c, i) => {
        const body = {messages: c.messages, max_tokens: 1, temperature: 0};
        if (c.tools) body.tools = c.tools;
        require("fs").writeFileSync(process.argv[2] + "/golden" + i + ".json", JSON.stringify(body));
        require("fs").writeFileSync(process.argv[2] + "/golden" + i + ".n", String(c.prompt_ids.length));
    });' "$SHARED/golden/chat/v3-tekken.json" "$TMP"
for f in "$TMP"/golden*.json; do
    req POST /v1/chat/completions "$(cat "$f")"
    expect "golden $(basename "$f"): prompt of $(cat "${f%.json}.n") tokens" 200 "r.usage.prompt_tokens === $(cat "${f%.json}.n")"
done
stop_servers

# ---- C: a slower model: queue full, hang-ups, 16 clients, memory ----
"$RELAIS" synth --preset mistral-7b --layers 1 --vocab 2000 --type q4_0 --ctx 2048 -q -o "$TMP/slow.gguf"
start_server c -m "$TMP/slow.gguf" --ctx 512 --max-sessions 1 --max-queue 0 -t 2
LONG='{"prompt":"Once upon a time","max_tokens":400,"temperature":0,"stream":true}'
curl -s -N --max-time 60 -d "$LONG" "http://127.0.0.1:$PORT/v1/completions" >"$TMP/long" &
LONG_PID=$!
for _ in $(seq 300); do grep -q '"text"' "$TMP/long" 2>/dev/null && break; sleep 0.1; done
req POST /v1/completions '{"prompt":"hello","max_tokens":4}'
expect "every slot and queue place taken: 429" 429 'r.error.message.includes("busy")'
kill "$LONG_PID" 2>/dev/null; wait "$LONG_PID" 2>/dev/null || true
freed=0
for _ in $(seq 100); do
    req GET /metrics
    if js 's.includes("relais_node_sessions{node=\"local\"} 0") && s.includes("relais_active_sessions 0")'; then freed=1; break; fi
    sleep 0.1
done
[ "$freed" = 1 ] && ok "a client that hangs up ends its session and frees its cache" || bad "session not freed after hang-up"
req POST /v1/completions '{"prompt":"hello","max_tokens":4,"temperature":0}'
expect "served again once the slot is free" 200 'r.choices[0].text.length >= 0'
stop_servers

start_server c16 -m "$TMP/slow.gguf" --ctx 512 --max-sessions 16 --max-queue 16 -t 2
CLIENT_TOKENS=24
req POST /v1/completions "$(prompt_of 99)"   # warm up, then measure
RSS0=$(rss)
for i in $(seq 16); do
    req POST /v1/completions "$(prompt_of "$i")"
    text_of "$TMP/body" >"$TMP/alone$i"
done
concurrent_clients 16 "on one machine"
req GET /metrics
BATCH=$(mean_batch)
echo "# mean tokens per micro-batch over the run: $BATCH"
check_rss_back "$RSS0"
finish
