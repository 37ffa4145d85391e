#!/usr/bin/env bash
# `relais serve --cluster` on loopback: two relais-node processes (keys from
# `relais keygen`, a cluster file, the model in their --models folder) serve
# the model split by layers. /health names both nodes, /metrics has their
# stage time and bytes; greedy answers equal those of `relais serve` on one
# machine; 16 concurrent clients each get exactly the greedy answer they get
# alone and none fails; a client that hangs up frees its session; the
# server's RSS comes back; a node killed in the middle of a request is
# survived: the layers are re-planned onto the other node, the request in
# flight (seeded sampling, so its random stream must go on across the new
# head stage) and later ones get the answers of one machine, /health shows the
# lost node and the new layers; the node restarted on its address is taken
# back into the pipeline; `--wire i16` is served; every process stops
# cleanly.
#
# usage: serve_cluster.sh RELAIS RELAIS_NODE
set -euo pipefail
RELAIS=$1
NODE_BIN=$2
. "$(dirname "$0")/serve_lib.sh"
need node

mkdir -p "$TMP/models"
MODEL=$TMP/models/slow.gguf
"$RELAIS" synth --preset mistral-7b --layers 2 --vocab 2000 --type q4_0 --ctx 2048 -q -o "$MODEL"

# ---- the answers of one machine ----
start_server local -m "$MODEL" --ctx 512 --max-sessions 16 -t 1
for i in $(seq 16); do
    req POST /v1/completions "$(prompt_of "$i")"
    text_of "$TMP/body" >"$TMP/local$i"
done
LONG_SEEDED='{"prompt":"A long story about the sea","max_tokens":300,"temperature":0.9,"seed":11}'
req POST /v1/completions "$LONG_SEEDED"
text_of "$TMP/body" >"$TMP/local_long"
stop_servers

# ---- two nodes ----
start_nodes pair 2 "$TMP/models"
start_server cluster --cluster "$TMP/pair.yaml" -m "$MODEL" --ctx 512 --max-sessions 16 --max-queue 16 -t 1
grep -q "in flight, 1 thread per node (at most its CPUs)" "$TMP/cluster.log" && ok "the startup line says what the nodes were told" ||
    bad "startup line: $(grep 'serve:' "$TMP/cluster.log")"
req GET /health
expect "health: both nodes ready" 200 'r.status === "ok" && r.nodes.length === 2 &&
    r.nodes.every(n => n.state === "ready") && r.nodes[0].name === "node1"'
req POST /v1/completions "$(prompt_of 99)"   # warm up, then measure
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

concurrent_clients 16 "on 2 nodes"

LONG='{"prompt":"Once upon a time","max_tokens":400,"temperature":0,"stream":true}'
curl -s -N --max-time 60 -d "$LONG" "http://127.0.0.1:$PORT/v1/completions" >"$TMP/long" &
LONG_PID=$!
for _ in $(seq 300); do grep -q '"text"' "$TMP/long" 2>/dev/null && break; sleep 0.1; done
kill "$LONG_PID" 2>/dev/null; wait "$LONG_PID" 2>/dev/null || true
freed=0
for _ in $(seq 100); do
    req GET /metrics
    # what stays on the nodes is the prompt cache's: the finished requests' sessions, not the hung-up one
    if js 'const c = s.match(/relais_cache_sessions (\d+)/)[1];
          s.includes("relais_node_sessions{node=\"node1\"} " + c) && s.includes("relais_node_sessions{node=\"node2\"} " + c) &&
          s.includes("relais_active_sessions 0")'; then freed=1; break; fi
    sleep 0.1
done
[ "$freed" = 1 ] && ok "a client that hangs up ends its session on both nodes" || bad "session not freed after hang-up"
req GET /metrics
expect "metrics: stage time, bytes and micro-batches of each node" 200 '
    ["node1", "node2"].every(n => +s.match(new RegExp("relais_node_stage_seconds_total\\{node=\"" + n + "\"\\} ([0-9.e+-]+)"))[1] > 0 &&
        +s.match(new RegExp("relais_node_bytes_total\\{node=\"" + n + "\",direction=\"in\"\\} (\\d+)"))[1] > 0 &&
        +s.match(new RegExp("relais_node_batches_total\\{node=\"" + n + "\"\\} (\\d+)"))[1] > 0)'
BATCH=$(mean_batch)
echo "# mean tokens per micro-batch over the run: $BATCH"
check_rss_back "$RSS0"

# ---- a node dies in the middle of a request: re-planned, served on ----
# The request streams, so the kill can wait for sampled tokens to be on the
# way and be seen to land before the end: the new head stage's sampler must
# go on with the seeded stream, not start it again.
curl -s -N --max-time 300 -d "${LONG_SEEDED%\}},\"stream\":true}" \
    "http://127.0.0.1:$PORT/v1/completions" >"$TMP/survived.sse" &
LONG_PID=$!
for _ in $(seq 300); do   # until 20 tokens have streamed (30 s at most)
    n=$(grep -c '"text"' "$TMP/survived.sse" 2>/dev/null || true)
    [ "${n:-0}" -ge 20 ] && break
    sleep 0.1
done
NODE2_EP=$(sed -n 's|.*listening on \(tcp://[0-9.:]*\).*|\1|p' "$TMP/pair-node2.log")
kill -9 "${NODE_PIDS[1]}"
streamed=$(grep -c '"text"' "$TMP/survived.sse" 2>/dev/null || true)
grep -q 'data: \[DONE\]' "$TMP/survived.sse" && streamed=done
wait "${NODE_PIDS[1]}" 2>/dev/null || true
NODE_PIDS=("${NODE_PIDS[0]}")
wait "$LONG_PID" || true
echo "# node2 killed after $streamed streamed tokens"
[ "$streamed" != done ] && [ "$streamed" -ge 20 ] && grep -q 'lost the connection to node node2.*re-planning' "$TMP/cluster.log" &&
    ok "node2 killed while the request streamed; the server re-planned" || bad "no re-plan in flight ($streamed tokens): $(tail -5 "$TMP/cluster.log")"
survived=$(SSE="$TMP/survived.sse" node -e '
    const s = require("fs").readFileSync(process.env.SSE, "utf8");
    const ev = s.split("\n").filter(l => l.startsWith("data: ") && l !== "data: [DONE]").map(l => JSON.parse(l.slice(6)));
    console.log(JSON.stringify(ev.map(e => e.choices[0].text).join("")))')
grep -q 'data: \[DONE\]' "$TMP/survived.sse" && [ "$survived" = "$(cat "$TMP/local_long")" ] &&
    ok "a node killed during a seeded request: it completes with the answer of one machine" ||
    bad "request across the node loss: $survived, one machine: $(cat "$TMP/local_long")"
req GET /health
expect "health: degraded, node2 lost, node1 holds every layer" 200 'r.status === "degraded" && r.nodes.length === 2 &&
    r.nodes[0].name === "node1" && r.nodes[0].state === "ready" && r.nodes[0].layers === "0-1" &&
    r.nodes[1].name === "node2" && r.nodes[1].state === "lost"'
req POST /v1/completions "$(prompt_of 3)"
expect "a later request on the re-planned cluster" 200 "r.choices[0].text === $(cat "$TMP/local3")"

# ---- node2 restarted on its address: taken back at the next request ----
"$NODE_BIN" --listen "$NODE2_EP" --key "$TMP/pair-node2.key" --trust "$TMP/trusted" --models "$TMP/models" \
    --cache "$TMP/pair-cache2" --threads 1 >"$TMP/pair-node2-again.log" 2>&1 &
NODE_PIDS+=($!)
back=0 same=0 tries=0
for i in $(seq 4 40); do   # its link comes up within ZeroMQ's reconnect interval: bounded tries
    tries=$((tries + 1))
    req POST /v1/completions "$(prompt_of "$i")"
    [ "$STATUS" = 200 ] && [ "$(text_of "$TMP/body")" = "$(cat "$TMP/local$(( (i - 1) % 16 + 1 ))")" ] && same=$((same + 1))
    req GET /health
    if js 'r.nodes.length === 2 && r.nodes.every(n => n.state === "ready") && r.nodes[1].layers === "1-1"'; then
        back=1; break
    fi
    sleep 0.2
done
[ "$back" = 1 ] && ok "the restarted node is back in the pipeline (health: both ready, node2 has layer 1)" ||
    bad "node2 not taken back: $(cat "$TMP/body")"
[ "$same" = "$tries" ] && ok "$tries requests around the re-admission: the answers of one machine" ||
    bad "around the re-admission only $same of $tries answers as one machine"

# ---- --wire i16: the nodes are assigned block-scaled int16 and serve ----
# (the logits move within the golden tolerance, so the text is not compared)
stop_servers
start_server i16 --cluster "$TMP/pair.yaml" -m "$MODEL" --ctx 512 --max-sessions 4 -t 1 --wire i16
req POST /v1/completions "$(prompt_of 1)"
expect "served over the i16 wire" 200 'r.choices[0].text.length > 0'
grep -q 'i16 wire;' "$TMP/pair-node1.log" && ok "the nodes were assigned the i16 wire" ||
    bad "no i16 assignment: $(tail -3 "$TMP/pair-node1.log")"
finish
