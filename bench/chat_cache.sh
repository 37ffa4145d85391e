#!/usr/bin/env bash
# Prompt cache benchmark: a 10-turn chat through the official `openai`
# client (npm, installed into a scratch folder) against `relais serve` on
# loopback, with the model `relais synth --preset ministral-8b --layers 8
# --type q4_0`; the history grows to about 3,000 tokens. Each turn resends the
# whole conversation, as chat clients do. Figure: the time to the first token
# of the last turn with the prompt cache (the default: only that turn's new
# message is fed) against without it (`--cache-mem 0`: the whole history is
# fed again; earlier turns change nothing there, so only the last one is
# sent, and its answer must be the cached run's). In one process and on
# NODES relais-node processes. Prints every turn's line, then a markdown
# table.
#
# usage: bench/chat_cache.sh BUILD_DIR [MODEL.gguf]
#   env: NODES ("0 3"; 0 = the engine in the server's process), THREADS
#        (per process; default: cores / nodes, at least 1), TURNS (10),
#        WORDS (70 per user message), MAX_TOKENS (24 per answer),
#        SERVE_ARGS (more `relais serve` options, for both servers)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/serve_setup.sh" "$@" # BUILD, MODEL, RELAIS, TMP/models; start_server, bench_where; cleanup
NODES=${NODES:-"0 3"}
mkdir -p "$TMP/client"
(cd "$TMP/client" && timeout 300 npm install --no-audit --no-fund --silent openai undici@6 >/dev/null 2>&1) ||
    { echo "npm install openai undici failed" >&2; exit 1; }
cp "$HERE/chat_cache.mjs" "$TMP/client/"

# ttft FILE TURN : the ms to the first token of turn TURN in a client's output
ttft() { awk -v t="$2" '$1 == "turn" && $2 == t { print $8 }' "$1"; }

echo "model: $(basename "$MODEL"), $(nproc) cores"
ROWS=()
for n in $NODES; do
    threads=$(bench_threads "$n")
    bench_where "$n"
    what=${n/#0/1 process}
    [ "$n" = 0 ] || what="$n nodes"
    start_server "cache$n" "${WHERE[@]}" --ctx 4096 --max-sessions 2 -t "$threads" --alias bench ${SERVE_ARGS:-} >/dev/null
    echo "## $what, prompt cache on"
    URL="http://127.0.0.1:$PORT/v1" HISTORY="$TMP/history$n.json" node "$TMP/client/chat_cache.mjs" | tee "$TMP/on$n"
    stop_servers >/dev/null
    start_server "nocache$n" "${WHERE[@]}" --ctx 4096 --max-sessions 2 -t "$threads" --alias bench --cache-mem 0 ${SERVE_ARGS:-} >/dev/null
    echo "## $what, --cache-mem 0 (the last turn alone)"
    URL="http://127.0.0.1:$PORT/v1" HISTORY="$TMP/history$n.json" MODE=last node "$TMP/client/chat_cache.mjs" |
        tee "$TMP/off$n"
    { stop_servers; stop_nodes; } >/dev/null 2>&1
    last=$(awk '$1 == "turn" { t = $2 } END { print t }' "$TMP/on$n")
    on=$(ttft "$TMP/on$n" "$last")
    off=$(ttft "$TMP/off$n" "$last")
    read -r prompt cached < <(awk -v t="$last" '$1 == "turn" && $2 == t { print $4, $6 }' "$TMP/on$n")
    ROWS+=("| $what | $threads | $prompt | $cached | $on | $off | $(awk -v a="$off" -v b="$on" 'BEGIN { printf "%.1f", a / b }')x |")
done
echo
echo "| where | threads each | last turn's prompt tokens | cached | TTFT with cache ms | TTFT without ms | speedup |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
