#!/usr/bin/env bash
# `relais serve --cluster` on loopback: two relais-node processes (keys from
# `relais keygen`, a cluster file, the model in their --models folder) serve
# the model split by layers. /health names both nodes, /metrics has their
# stage time and bytes; greedy answers equal those of `relais serve` on one
# machine; 16 concurrent clients each get exactly the greedy answer they get
# alone and none fails; a client that hangs up frees its session; the
# server's RSS comes back; a node that goes away fails the requests with its
# name while the server stays up; every process stops cleanly.
#
# usage: serve_cluster.sh RELAIS RELAIS_NODE
set -euo pipefail
RELAIS=$1
NODE_BIN=$2
TMP=$(mktemp -d)
. "$(dirname "$0")/serve_lib.sh"
trap 'stop_servers; stop_nodes; rm -rf "$TMP"' EXIT
command -v node >/dev/null || { echo "FAIL - node is needed to check the replies"; exit 1; }

mkdir -p "$TMP/models"
MODEL=$TMP/models/slow.gguf
"$RELAIS" synth --preset mistral-7b --layers 2 --vocab 2000 --type q4_0 --ctx 2048 -q -o "$MODEL"
prompt_of() { echo "{\"prompt\":\"Client $1 asks about the number $(( $1 * 7919 % 1000 )) and the sea\",\"max_tokens\":16,\"temperature\":0}"; }
text_of() { jval "$1" 'JSON.stringify(r.choices[0].text)'; }

# ---- the answers of one machine ----
start_server local -m "$MODEL" --ctx 512 --max-sessions 16 -t 1
for i in $(seq 16); do
    req POST /v1/completions "$(prompt_of "$i")"
    text_of "$TMP/body" >"$TMP/local$i"
done
stop_servers

# ---- two nodes ----
start_nodes pair 2 "$TMP/models"
start_server cluster --cluster "$TMP/pair.yaml" -m "$MODEL" --ctx 512 --max-sessions 16 --max-queue 16 -t 1
req GET /health
expect "health: both nodes ready" 200 'r.status === "ok" && r.nodes.length === 2 &&
    r.nodes.every(n => n.state === "ready") && r.nodes[0].name === "node1"'
req POST /v1/completions "$(prompt_of 99)"   # warm up, then measure
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
RSS0=$(rss)
same=0
for i in $(seq 16); do
    req POST /v1/completions "$(prompt_of "$i")"
    text_of "$TMP/body" >"$TMP/alone$i"
    cmp -s "$TMP/alone$i" "$TMP/local$i" && same=$((same + 1))
done
[ "$same" = 16 ] && ok "alone on 2 nodes: the answers of one machine" || bad "alone on 2 nodes: $same of 16 as one machine"
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":8,"temperature":0,"stream":true}'
expect "chat stream through the nodes" 200 "s.endsWith('data: [DONE]\n\n') && ev[ev.length - 1].choices[0].finish_reason !== null"

CLIENTS=()
for i in $(seq 16); do
    curl -s --max-time 120 -o "$TMP/conc$i.json" -w '%{http_code}' -d "$(prompt_of "$i")" \
        "http://127.0.0.1:$PORT/v1/completions" >"$TMP/conc$i.code" &
    CLIENTS+=($!)
done
wait_all=0
for j in "${CLIENTS[@]}"; do wait "$j" || wait_all=1; done
same=0
for i in $(seq 16); do
    if [ "$(cat "$TMP/conc$i.code")" = 200 ] && [ "$(text_of "$TMP/conc$i.json")" = "$(cat "$TMP/alone$i")" ]; then
        same=$((same + 1))
    fi
done
[ "$same" = 16 ] && [ "$wait_all" = 0 ] && ok "16 concurrent clients on 2 nodes: each got its greedy answer alone" ||
    bad "16 concurrent clients on 2 nodes: $same of 16 matched"

LONG='{"prompt":"Once upon a time","max_tokens":400,"temperature":0,"stream":true}'
curl -s -N --max-time 60 -d "$LONG" "http://127.0.0.1:$PORT/v1/completions" >"$TMP/long" &
LONG_PID=$!
for _ in $(seq 300); do grep -q '"text"' "$TMP/long" 2>/dev/null && break; sleep 0.1; done
kill "$LONG_PID" 2>/dev/null; wait "$LONG_PID" 2>/dev/null || true
freed=0
for _ in $(seq 100); do
    req GET /metrics
    if js 's.includes("relais_node_sessions{node=\"node1\"} 0") && s.includes("relais_node_sessions{node=\"node2\"} 0") &&
          s.includes("relais_active_sessions 0")'; then freed=1; break; fi
    sleep 0.1
done
[ "$freed" = 1 ] && ok "a client that hangs up ends its session on both nodes" || bad "session not freed after hang-up"
req GET /metrics
expect "metrics: stage time, bytes and micro-batches of each node" 200 '
    ["node1", "node2"].every(n => +s.match(new RegExp("relais_node_stage_seconds_total\\{node=\"" + n + "\"\\} ([0-9.e+-]+)"))[1] > 0 &&
        +s.match(new RegExp("relais_node_bytes_total\\{node=\"" + n + "\",direction=\"in\"\\} (\\d+)"))[1] > 0 &&
        +s.match(new RegExp("relais_node_batches_total\\{node=\"" + n + "\"\\} (\\d+)"))[1] > 0)'
BATCH=$(node -e 'const s = require("fs").readFileSync(process.argv[1], "utf8");
    const b = +s.match(/relais_batches_total (\d+)/)[1], t = +s.match(/relais_batch_tokens_total (\d+)/)[1];
    console.log((t / b).toFixed(2))' "$TMP/body")
echo "# mean tokens per micro-batch over the run: $BATCH"
RSS1=$(rss)
echo "# RSS before the clients ${RSS0} kB, after ${RSS1} kB"
[ "$RSS1" -le $((RSS0 + RSS0 / 10 + 16384)) ] && ok "RSS back near its level (${RSS0} -> ${RSS1} kB)" ||
    bad "RSS grew from ${RSS0} to ${RSS1} kB"

# ---- a node goes away: requests fail naming it, the server stays up ----
kill -9 "${NODE_PIDS[1]}"
wait "${NODE_PIDS[1]}" 2>/dev/null || true
NODE_PIDS=("${NODE_PIDS[0]}")
req POST /v1/completions "$(prompt_of 1)"
expect "a lost node fails the request with its name" 500 'r.error.message.includes("node2")'
req GET /health
expect "health: the nodes are lost" 200 'r.nodes.every(n => n.state === "lost")'
req POST /v1/completions "$(prompt_of 2)"
expect "later requests fail at once, saying why" 500 'r.error.message.includes("unusable")'
finish
