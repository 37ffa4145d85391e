#!/usr/bin/env bash
# SIGTERM ends `relais serve` within a few seconds in every state, and the
# requests in flight are told: idle; in the middle of a stream and of a
# whole (non-streamed) request on one machine; on two relais-node
# processes with the last node stopped (SIGSTOP) while a stream waits on it,
# so that the micro-batch in flight never completes; and while the model
# loads, one node stopped so that it does not answer. Each stream ends with
# an SSE error event and `data: [DONE]`, each whole request with a 503, and
# the server exits (status 0) within the bound.
#
# usage: serve_shutdown.sh RELAIS RELAIS_NODE
set -euo pipefail
RELAIS=$1
NODE_BIN=$2
. "$(dirname "$0")/serve_lib.sh"
trap 'for p in "${NODE_PIDS[@]}"; do kill -CONT "$p" 2>/dev/null || true; done; serve_cleanup' EXIT
need node

mkdir -p "$TMP/models"
MODEL=$TMP/models/slow.gguf
"$RELAIS" synth --preset mistral-7b --layers 2 --vocab 2000 --type q4_0 --ctx 2048 -q -o "$MODEL"
LONG='{"prompt":"A long story about the sea","max_tokens":1500,"temperature":0,"stream":true}'
WHOLE='{"prompt":"Another long story","max_tokens":1500,"temperature":0}'

# term_within NAME SECONDS [TID] : SIGTERMs the last server started (aimed
# at its thread TID when given); it must be gone within SECONDS with status 0.
term_within() {
    local name=$1 limit=$2 t0 ms rc=0
    t0=$(date +%s%N)
    kill -TERM "${3:-$SERVER_PID}"
    for _ in $(seq $((limit * 20 + 100))); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
    ms=$((($(date +%s%N) - t0) / 1000000))
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || rc=$?
    SERVER_PIDS=() SERVER_NAMES=()
    if [ "$ms" -le $((limit * 1000)) ] && [ "$rc" = 0 ]; then
        ok "$name: SIGTERM ended the server in $ms ms (status $rc)"
    else
        bad "$name: SIGTERM took $ms ms (at most ${limit} s), status $rc"
        tail -20 "$TMP/$name.log"
    fi
}

# in_flight : a stream and a whole request, started now; waits until the
# stream has text (so both are generating).
in_flight() {
    curl -s -N --max-time 60 -d "$LONG" "http://127.0.0.1:$PORT/v1/completions" >"$TMP/stream" &
    STREAM_PID=$!
    curl -s --max-time 60 -o "$TMP/whole" -w '%{http_code}' -d "$WHOLE" \
        "http://127.0.0.1:$PORT/v1/completions" >"$TMP/whole.code" &
    WHOLE_PID=$!
    for _ in $(seq 600); do grep -q '"text"' "$TMP/stream" 2>/dev/null && break; sleep 0.1; done
}

# told NAME : the stream ended with an error event and [DONE], the whole request with 503.
told() {
    wait "$STREAM_PID" 2>/dev/null || true
    wait "$WHOLE_PID" 2>/dev/null || true
    cp "$TMP/stream" "$TMP/body"
    STATUS=200
    expect "$1: the stream ends with an error event, then [DONE]" 200 \
        'ev.length > 1 && ev[ev.length - 1].error && /shutting down/.test(ev[ev.length - 1].error.message) && s.trimEnd().endsWith("data: [DONE]")'
    cp "$TMP/whole" "$TMP/body"
    STATUS=$(cat "$TMP/whole.code")
    expect "$1: the whole request gets 503" 503 '/shutting down/.test(r.error.message)'
}

# ---- idle ----
start_server idle -m "$MODEL" --ctx 2048 -t 1
term_within idle 3

# ---- idle, the signal taken by a thread that started before main ----
# OpenBLAS starts its pool from a library constructor, with no signal mask:
# kill(2) on a thread id offers the signal to that thread first. The thread
# aimed at is the first that does not block SIGTERM, else any but main.
start_server worker -m "$MODEL" --ctx 2048 -t 1
main_tid=$SERVER_PID
target=
for t in /proc/"$main_tid"/task/*; do
    tid=${t##*/}
    [ "$tid" = "$main_tid" ] && continue
    [ -n "$target" ] || target=$tid
    blk=$(awk '/^SigBlk/ {print $2}' "$t/status")
    if [ $((0x$blk & 0x4000)) = 0 ]; then target=$tid; break; fi
done
echo "# SIGTERM aimed at thread $target ($(cat /proc/"$main_tid"/task/"$target"/comm))"
term_within worker 3 "$target"

# ---- generating, one machine ----
start_server local -m "$MODEL" --ctx 2048 -t 1
in_flight
term_within local 4
told "one machine"

# ---- generating on two nodes, the last one stopped ----
start_nodes two 2 "$TMP/models"
start_server cluster -m "$MODEL" --ctx 2048 --cluster "$TMP/two.yaml" --shutdown-timeout 3
in_flight
kill -STOP "${NODE_PIDS[1]}"
sleep 1
term_within cluster 5
told "a node stopped"
kill -CONT "${NODE_PIDS[1]}"

# ---- while loading: a node stopped before the server starts ----
kill -STOP "${NODE_PIDS[1]}"
"$RELAIS" serve --port 0 -m "$MODEL" --ctx 2048 --cluster "$TMP/two.yaml" --shutdown-timeout 3 2>"$TMP/loading.log" &
SERVER_PID=$!
SERVER_PIDS=("$SERVER_PID") SERVER_NAMES=(loading)
for _ in $(seq 100); do grep -q "listening on" "$TMP/loading.log" && break; sleep 0.1; done
sleep 1
if grep -q "relais serve: ready" "$TMP/loading.log"; then
    bad "loading: the server was ready before the signal (the test needs it loading)"
fi
term_within loading 5
kill -CONT "${NODE_PIDS[1]}"
stop_nodes
finish
