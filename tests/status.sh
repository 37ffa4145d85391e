#!/usr/bin/env bash
# `relais status` against two relais-node processes and a `relais serve
# --cluster` over them: from the cluster file (Hello to each node: up, the
# fingerprint each node logs for its key, memory and measured speed), from
# the server (/health: state, layers, the KV cache held while requests run)
# and both at once; --json for each; exit 0 while all are up; a killed node
# gives exit 1 and is named, from the file and from the server; an
# unreachable server gives 1, a usage error 2.
#
# usage: status.sh RELAIS RELAIS_NODE TEST_DATA
set -euo pipefail
RELAIS=$1
NODE_BIN=$2
DATA=$3
. "$(dirname "$0")/serve_lib.sh"
need node

# status ARGS... : runs `relais status`, output in $TMP/body, exit code in $RC
status() {
    RC=0
    "$RELAIS" status "$@" >"$TMP/body" 2>"$TMP/status.err" || RC=$?
}
# check NAME WANT_RC EXPR : the last status exited WANT_RC and EXPR holds (js of
# serve_lib.sh; there row("node1") is that line of the table split into words)
check() {
    if [ "$RC" = "$2" ] && js "const row = (n) => (s.split('\\n').find((l) => l.startsWith(n + ' ')) || '').split(/ +/); $3"; then ok "$1"; else bad "$1 (exit $RC, want $2): $(cat "$TMP/body" "$TMP/status.err")"; fi
}

mkdir -p "$TMP/models"
cp "$DATA/models/stories260K.gguf" "$TMP/models/"
start_nodes pair 2 "$TMP/models"
FP1=$(sed -n 's/.*listening on .*, key \([0-9a-f]*\),.*/\1/p' "$TMP/pair-node1.log")
FP2=$(sed -n 's/.*listening on .*, key \([0-9a-f]*\),.*/\1/p' "$TMP/pair-node2.log")
ADDR1=$(sed -n 's|.*listening on \(tcp://[0-9.:]*\).*|\1|p' "$TMP/pair-node1.log")

# ---- from the cluster file ----
status --cluster "$TMP/pair.yaml"
check "cluster file: exit 0, both nodes up with their address and key fingerprint" 0 "
    row('node1')[1] === '$ADDR1' && row('node1')[2] === '$FP1' && row('node1')[3] === 'up' &&
    row('node2')[2] === '$FP2' && row('node2')[3] === 'up' && /GB\\/s/.test(s) && /GiB/.test(s)"
cat "$TMP/body"
status --cluster "$TMP/pair.yaml" --json
check "cluster file --json: memory, cores and measured speed of each node" 0 '
    r.down === 0 && r.nodes.length === 2 && r.nodes[0].fingerprint === "'"$FP1"'" &&
    r.nodes.every(n => n.answered && !n.down && n.total_ram > 0 && n.free_ram > 0 && n.free_ram <= n.total_ram &&
                       n.cores > 0 && n.speed_bytes_per_s > 0 && n.hello_ms > 0 && n.software.startsWith("relais-node"))'

# ---- from the server ----
KEY=status-key
start_server cluster --cluster "$TMP/pair.yaml" -m "$TMP/models/stories260K.gguf" --api-key "$KEY" --ctx 512 -t 1
status --server "http://127.0.0.1:$PORT"
check "server without its key: exit 1, the key asked for" 1 'true'
grep -q -- "only with the server's API key: pass --api-key" "$TMP/status.err" && ok "... and the message says so" ||
    bad "no key: $(cat "$TMP/status.err")"
status --server "http://127.0.0.1:$PORT" --api-key "$KEY"
check "server: exit 0, both nodes ready with their layers" 0 '
    /^server .*: ok, model stories260K/.test(s) && ["node1", "node2"].every((n) => row(n)[3] === "ready" &&
        /^\d+-\d+$/.test(row(n)[4]))'
cat "$TMP/body"
status --server "http://127.0.0.1:$PORT" --api-key "$KEY" --cluster "$TMP/pair.yaml" --json
check "server and cluster file together: each node's layers and its Hello" 0 '
    r.server.status === "ok" && r.nodes.length === 2 &&
    r.nodes.every(n => n.state === "ready" && n.layers && n.answered && n.address && n.speed_bytes_per_s > 0)'

# While requests run, /health (which status reads) shows the KV cache their sessions hold.
CLIENTS=()
for i in $(seq 8); do
    curl -s --max-time 60 -H "Authorization: Bearer $KEY" -o /dev/null \
        -d '{"prompt":"Once upon a time","max_tokens":480,"temperature":0.8,"seed":'"$i"'}' \
        "http://127.0.0.1:$PORT/v1/completions" &
    CLIENTS+=($!)
done
seen=0
for _ in $(seq 400); do
    req GET /health
    if js 'r.nodes.every(n => n.sessions > 0 && n.kv_bytes > 0) && r.sessions.active > 0'; then seen=1; break; fi
done
for p in "${CLIENTS[@]}"; do wait "$p" || true; done
[ "$seen" = 1 ] && ok "/health: each node's sessions and the KV bytes they hold while requests run" ||
    bad "no KV held seen in /health: $(cat "$TMP/body")"
req GET /health
expect "/health: once the requests end only the prompt cache's sessions hold KV, the tokens counted" 200 '
    r.sessions.cached > 0 && r.nodes.every(n => n.sessions === r.sessions.cached && n.batches > 0 && n.busy_seconds > 0) &&
    r.tokens.generated >= 8 && r.sessions.max === 8 && r.sessions.ctx === 512 && r.time > 1.7e9'
status --server "http://127.0.0.1:$PORT" --api-key "$KEY"
check "server: each node's mean compute time per micro-batch" 0 '
    ["node1", "node2"].every((n) => row(n).slice(-2).join(" ").match(/^[0-9.]+ ms\/batch$/) && parseFloat(row(n).slice(-2)[0]) > 0)'
status --server "http://127.0.0.1:$PORT" --api-key "$KEY" --json
check "... and in JSON" 0 'r.nodes.every((n) => n.batches > 0 && n.busy_seconds > 0)'

# ---- a node down ----
kill -9 "${NODE_PIDS[1]}"
wait "${NODE_PIDS[1]}" 2>/dev/null || true
NODE_PIDS=("${NODE_PIDS[0]}")
status --cluster "$TMP/pair.yaml" --timeout 1000
check "cluster file with node2 killed: exit 1, node2 without answer" 1 '
    row("node1")[3] === "up" && row("node2")[3] === "down" && /no answer/.test(row("node2").join(" ")) &&
    /^node2: no answer to hello/m.test(s)'
status --cluster "$TMP/pair.yaml" --timeout 1000 --json
check "... and in JSON, with the reason" 1 '
    r.down === 1 && !r.nodes[0].down && r.nodes[1].down && !r.nodes[1].answered && /no answer/.test(r.nodes[1].error)'
cat "$TMP/body"
req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":8}' -H "Authorization: Bearer $KEY"
status --server "http://127.0.0.1:$PORT" --api-key "$KEY" --json
check "server with node2 lost (after a request re-planned): exit 1, node2 lost" 1 '
    r.down === 1 && r.nodes[0].state === "ready" && r.nodes[1].state === "lost" && r.nodes[1].down'

# ---- errors ----
stop_servers
status --server "http://127.0.0.1:$PORT"
check "an unreachable server: exit 1" 1 'true'
status --server "https://127.0.0.1:1"
check "https: exit 1 with a message" 1 'true'
status
check "no source: usage error, exit 2" 2 'true'
finish
