#!/usr/bin/env bash
# Serving benchmark: aggregate generated tokens/s and p50/p95 time to first
# token at concurrency 1, 2, 4, 8 and 16, against `relais serve` on loopback,
# with the model `relais synth --preset ministral-8b --layers 8 --type q4_0`.
# Prints a markdown table. Bounded: REQS requests per client of MAX_TOKENS
# tokens, every socket with a timeout, the server always stopped.
#
# usage: bench/serve_bench.sh BUILD_DIR [MODEL.gguf]
#   env: THREADS (default: cores), MAX_TOKENS (32), REQS (2), LEVELS ("1 2 4 8 16")
set -euo pipefail
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=${2:-$BUILD/bench-ministral-8b-l8-q4_0.gguf}
THREADS=${THREADS:-$(nproc)}
MAX_TOKENS=${MAX_TOKENS:-32}
REQS=${REQS:-2}
LEVELS=${LEVELS:-"1 2 4 8 16"}
TMP=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

if [ ! -f "$MODEL" ]; then
    "$BUILD/relais" synth --preset ministral-8b --layers 8 --type q4_0 -q -o "$MODEL"
fi
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Werror -pthread "$HERE/serve_load.c" -o "$TMP/serve_load"

"$BUILD/relais" serve -m "$MODEL" --port 0 --ctx 512 --max-sessions 16 --max-queue 16 -t "$THREADS" 2>"$TMP/serve.log" &
SERVER=$!
for _ in $(seq 1200); do
    grep -q "relais serve: ready" "$TMP/serve.log" && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$TMP/serve.log"; exit 1; }
    sleep 0.1
done
PORT=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$TMP/serve.log")
"$TMP/serve_load" "$PORT" 1 1 4 >/dev/null   # warm the page cache

echo "model: $(basename "$MODEL"), $THREADS threads, $MAX_TOKENS tokens per request, $REQS requests per client"
echo
echo "| concurrency | requests | failed | generated tokens | seconds | aggregate tokens/s | TTFT p50 ms | TTFT p95 ms |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in $LEVELS; do
    read -r conc n failed tokens secs tps p50 p95 < <("$TMP/serve_load" "$PORT" "$c" "$REQS" "$MAX_TOKENS" || true)
    echo "| $conc | $n | $failed | $tokens | $secs | $tps | $p50 | $p95 |"
done
