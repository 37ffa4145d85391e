#!/usr/bin/env bash
# Chaos against `relais serve --cluster` (issue 17): three relais-node
# processes on loopback and a server with concurrent streams, and in each
# round, at a random moment, one of: a node killed (restarted later), two
# killed at once, a node killed and restarted at once (during the re-plan),
# a node stopped (SIGSTOP) then woken, a node stopped while another is
# killed, a second coordinator process started against the same nodes, or
# (rarely) every node killed. Every stream must end with exactly the text
# of one process (`relais serve` without a cluster), or with a clear error
# only in a round where no node survived; no request may outlive its
# deadline (REQUEST_S seconds, curl's --max-time: a hang). The rounds are
# drawn from CHAOS_SEED; CHAOS_ROUNDS rounds (3 in CI; run 100 or more by
# hand). The last line sums it up: rounds, kills, streams, identical, clear
# errors, hangs.
# usage: cluster_chaos.sh RELAIS RELAIS_NODE MODELS_DIR
set -u
relais=$1 node_bin=$2 models=$3
model=$models/tiny-q8_0.gguf
rounds=${CHAOS_ROUNDS:-3}
RANDOM=${CHAOS_SEED:-17}
REQUEST_S=60
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cluster_lib.sh"
command -v node >/dev/null || { echo "FAIL: node is needed to read the streams"; exit 1; }

# The requests: greedy and seeded, of several lengths.
body_of() {
    local k=$1 temp=0
    [ $((k % 2)) = 1 ] && temp=0.8
    echo "{\"prompt\":\"Story $k about the sea\",\"max_tokens\":$((30 + k * 15)),\"temperature\":$temp,\"seed\":$k,\"stream\":true}"
}
N_BODIES=8

# node_down I / node_up I: kill node I, start it again on its address.
node_down() { [ -n "${pid[$1]:-}" ] && { kill -CONT "${pid[$1]}" 2>/dev/null; stop_node "$1" KILL; kills=$((kills + 1)); }; }
node_up() { [ -n "${pid[$1]:-}" ] || NODE_MODELS=$models start_node "$1" --listen "${addr[$1]}"; }

# chaos ROUND: one action, at a random moment of the round's streams.
chaos() {
    local a b act=$((RANDOM % 20))
    a=$((RANDOM % 3 + 1))
    b=$(((a + RANDOM % 2) % 3 + 1))
    sleep "0.$((RANDOM % 10))"
    if [ $act -lt 4 ]; then
        what="node $a killed"
        node_down $a; sleep "$((RANDOM % 2)).$((RANDOM % 10))"; node_up $a
    elif [ $act -lt 8 ]; then
        what="nodes $a and $b killed at once"
        kill -9 "${pid[$a]}" "${pid[$b]}"
        node_down $a; node_down $b; sleep "$((RANDOM % 2)).$((RANDOM % 10))"; node_up $a; node_up $b
    elif [ $act -lt 11 ]; then
        what="node $a killed and restarted during the re-plan"
        node_down $a; sleep "0.$((RANDOM % 3))"; node_up $a
    elif [ $act -lt 14 ]; then
        what="node $a stopped"
        kill -STOP "${pid[$a]}"; kills=$((kills + 1)); sleep "$((RANDOM % 3)).$((RANDOM % 10))"; kill -CONT "${pid[$a]}"
    elif [ $act -lt 16 ]; then
        what="node $a stopped, node $b killed"
        [ $a = $b ] && b=$((a % 3 + 1))
        kill -STOP "${pid[$a]}"; kills=$((kills + 1)); node_down $b
        sleep "$((RANDOM % 3)).$((RANDOM % 10))"; kill -CONT "${pid[$a]}"; node_up $b
    elif [ $act -lt 19 ]; then
        what="a second coordinator"
        timeout 60 "$relais" run --cluster "$work/cluster.yaml" -m "$model" -p 'Hello' -n 8 -t 1 \
            >/dev/null 2>"$work/second.log"
        grep -q 'serves another coordinator process' "$work/second.log" || seconds_ran=$((seconds_ran + 1))
    else
        what="every node killed"
        all_down=1
        kill -9 "${pid[1]}" "${pid[2]}" "${pid[3]}"
        node_down 1; node_down 2; node_down 3; sleep 1; node_up 1; node_up 2; node_up 3
    fi
}

cluster_setup chaos 3
for i in 1 2 3; do NODE_MODELS=$models start_node "$i"; done
write_yaml 1 2 3

# ---- the streams of one process ----
"$relais" serve --port 0 -m "$model" --ctx 512 --max-sessions 8 -t 1 2>"$work/local.log" &
SERVE_PID=$!
for _ in $(seq 600); do grep -q 'relais serve: ready' "$work/local.log" && break; sleep 0.1; done
PORT=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$work/local.log")
[ -n "$PORT" ] || fail "the single-process server did not start"
for k in $(seq 0 $((N_BODIES - 1))); do
    curl -s --max-time $REQUEST_S -o "$work/ref$k.sse" -d "$(body_of $k)" "http://127.0.0.1:$PORT/v1/completions"
    ref[$k]=$(stream_text "$work/ref$k.sse")
    [ "${ref[$k]:0:5}" = "text " ] || fail "reference stream $k: ${ref[$k]}"
done
serve_stop

serve_start -m "$model" --ctx 512 --max-sessions 8 -t 1
kills=0 streams=0 identical=0 errors=0 hangs=0 seconds_ran=0 slowest=0
t0=$(date +%s)
for r in $(seq "$rounds"); do
    all_down=0
    n=$((RANDOM % 3 + 2))
    clients=()
    for c in $(seq "$n"); do
        k[$c]=$((RANDOM % N_BODIES))
        (
            s=$(date +%s%N)
            curl -s --max-time $REQUEST_S -o "$work/s$c.sse" -d "$(body_of ${k[$c]})" \
                "http://127.0.0.1:$PORT/v1/completions"
            echo "$? $((($(date +%s%N) - s) / 1000000))" >"$work/s$c.rc"
        ) &
        clients+=($!)
    done
    echo "$(date +%T.%N | cut -c1-12) round $r" >>"$work/rounds.log"
    chaos
    echo "$(date +%T.%N | cut -c1-12) round $r: $what" >>"$work/rounds.log"
    for p in "${clients[@]}"; do wait "$p"; done
    for c in $(seq "$n"); do
        streams=$((streams + 1))
        read -r rc ms <"$work/s$c.rc"
        [ "$ms" -gt "$slowest" ] && slowest=$ms
        got=$(stream_text "$work/s$c.sse")
        if [ "$rc" = 28 ]; then
            hangs=$((hangs + 1))
            echo "round $r ($what): stream $c outlived its deadline of $REQUEST_S s"
        elif [ "$got" = "${ref[${k[$c]}]}" ]; then
            identical=$((identical + 1))
        elif [ "${got:0:6}" = "error " ] && [ $all_down = 1 ]; then
            errors=$((errors + 1))
        else
            fail "round $r ($what): stream $c (request ${k[$c]}) is neither one process's nor an allowed error: ${got:0:300}"
        fi
    done
    echo "round $r: $what; $n streams"
done
kill -0 "$SERVE_PID" 2>/dev/null || fail "the server died"
serve_stop
echo "chaos: seed ${CHAOS_SEED:-17}, rounds $rounds, kills $kills, streams $streams, identical $identical," \
    "clear errors $errors, hangs $hangs, slowest request $((slowest / 1000)).$((slowest % 1000 / 100)) s," \
    "second coordinators that ran $seconds_ran, $(($(date +%s) - t0)) s"
[ $hangs = 0 ] || fail "$hangs requests outlived their deadline"
