#!/usr/bin/env bash
# Serving benchmark: aggregate generated tokens/s and p50/p95 time to first
# token at concurrency 1, 2, 4, 8 and 16, against `relais serve` on loopback,
# in one process and with the model split over 1, 2 and 4 relais-node
# processes (`relais serve --cluster`), with the model
# `relais synth --preset ministral-8b --layers 8 --type q4_0`.
# Prints a markdown table. Bounded: REQS requests per client of MAX_TOKENS
# tokens, every socket with a timeout, servers and nodes always stopped.
#
# usage: bench/serve_bench.sh BUILD_DIR [MODEL.gguf]
#   env: NODES ("0 1 2 4"; 0 = the engine in the server's process),
#        THREADS (per process; default: cores / nodes, at least 1),
#        MAX_TOKENS (32), REQS (2), LEVELS ("1 2 4 8 16"),
#        IO_CPU (the nodes' --io-cpu and the coordinator's io_cpu; unset: none)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/serve_setup.sh" "$@" # BUILD, MODEL, RELAIS, TMP/models; start_server, bench_where; cleanup
NODES=${NODES:-"0 1 2 4"}
MAX_TOKENS=${MAX_TOKENS:-32}
REQS=${REQS:-2}
LEVELS=${LEVELS:-"1 2 4 8 16"}
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Werror -pthread "$HERE/serve_load.c" -o "$TMP/serve_load"

echo "model: $(basename "$MODEL"), $MAX_TOKENS tokens per request, $REQS requests per client, $(nproc) cores"
echo
echo "| nodes | threads each | concurrency | requests | failed | generated tokens | seconds | aggregate tokens/s | TTFT p50 ms | TTFT p95 ms |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $NODES; do
    threads=$(bench_threads "$n")
    bench_where "$n"
    start_server "serve$n" "${WHERE[@]}" --ctx 512 --max-sessions 16 --max-queue 16 -t "$threads" >/dev/null
    "$TMP/serve_load" "$PORT" 1 1 4 >/dev/null   # warm the page cache
    for c in $LEVELS; do
        read -r conc reqs failed tokens secs tps p50 p95 < <("$TMP/serve_load" "$PORT" "$c" "$REQS" "$MAX_TOKENS" || true)
        echo "| ${n/#0/1 process} | $threads | $conc | $reqs | $failed | $tokens | $secs | $tps | $p50 | $p95 |"
    done
    { stop_servers; stop_nodes; } >/dev/null 2>&1
done
