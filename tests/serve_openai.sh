#!/usr/bin/env bash
# Installs the official `openai` npm package into a temporary folder and
# drives a real `relais serve` with it (tests/serve_openai.mjs): chat,
# streaming, logprobs and response_format json_object/json_schema (each equal on one
# machine and on two nodes) and a full
# tool-call round trip; once on one machine, once with
# each model split over two relais-node processes. A failed install fails
# the test: nothing is skipped.
#
# usage: serve_openai.sh RELAIS PARROT_MODEL_WRITER SHARED_DIR RELAIS_NODE
set -euo pipefail
RELAIS=$1
PARROT=$2
SHARED=$3
NODE_BIN=$4
. "$(dirname "$0")/serve_lib.sh"
need node npm

mkdir -p "$TMP/client"
if ! (cd "$TMP/client" && timeout 300 npm install --no-audit --no-fund --silent openai >"$TMP/npm.log" 2>&1); then
    echo "FAIL - npm install openai:"
    cat "$TMP/npm.log"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "# openai $(node -e 'console.log(require(process.argv[1]).version)' "$TMP/client/node_modules/openai/package.json")"
cp "$(dirname "$0")/serve_openai.mjs" "$TMP/client/"

mkdir -p "$TMP/models"
cp "$SHARED/models/tiny-q8_0.gguf" "$TMP/models/"
"$PARROT" "$TMP/models/parrot.gguf" "$SHARED/models/vocab-tekken-shaped.gguf"

# run_client WHERE CHAT_CLUSTER TOOLS_CLUSTER : the client's checks against a
# chat server and a tools server, each on this machine ("") or on the nodes
# of its cluster file
run_client() {
    local where=$1 chat=() tools=()
    [ -n "$2" ] && chat=(--cluster "$2")
    [ -n "$3" ] && tools=(--cluster "$3")
    start_server "chat-$where" -m "$TMP/models/tiny-q8_0.gguf" --api-key sekrit --ctx 512 -t 2 "${chat[@]}"
    CHAT_URL="http://127.0.0.1:$PORT/v1"
    start_server "tools-$where" -m "$TMP/models/parrot.gguf" --ctx 1024 -t 2 "${tools[@]}"
    TOOLS_URL="http://127.0.0.1:$PORT/v1"
    if CHAT_URL=$CHAT_URL TOOLS_URL=$TOOLS_URL LOGPROBS_OUT="$TMP/logprobs-$where.json" JSON_OUT="$TMP/json-$where.json" \
        timeout 300 node "$TMP/client/serve_openai.mjs"; then
        ok "the openai client's checks ($where)"
    else
        bad "the openai client's checks ($where)"
    fi
    stop_servers
}

run_client local "" ""
start_nodes chat 2 "$TMP/models"
start_nodes tools 2 "$TMP/models"
run_client 2-nodes "$TMP/chat.yaml" "$TMP/tools.yaml"
# The logprobs come from the last node on a cluster, from this process alone:
# the same tokens and log-probabilities (to float rounding).
if node -e '
const [a, b] = process.argv.slice(1).map((f) => JSON.parse(require("fs").readFileSync(f, "utf8")));
const close = (x, y) => Math.abs(x - y) < 1e-3;
process.exit(a.length > 0 && a.length === b.length && a.every((t, i) => t.token === b[i].token &&
    close(t.logprob, b[i].logprob) && t.top_logprobs.every((x, k) => x.token === b[i].top_logprobs[k].token &&
    close(x.logprob, b[i].top_logprobs[k].logprob))) ? 0 : 1);' "$TMP/logprobs-local.json" "$TMP/logprobs-2-nodes.json"; then
    ok "logprobs on two nodes equal those of one process"
else
    bad "logprobs on two nodes differ: $(head -c 300 "$TMP/logprobs-local.json") vs $(head -c 300 "$TMP/logprobs-2-nodes.json")"
fi
# JSON output is masked on the last node on a cluster, here in one process:
# the same texts, greedy and seeded.
if cmp -s "$TMP/json-local.json" "$TMP/json-2-nodes.json" && [ -s "$TMP/json-local.json" ]; then
    ok "response_format json_object and json_schema on two nodes equal one process"
else
    bad "json_object on two nodes differs: $(head -c 300 "$TMP/json-local.json") vs $(head -c 300 "$TMP/json-2-nodes.json")"
fi
finish
