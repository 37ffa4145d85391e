#!/usr/bin/env bash
# Speculative decoding at its ceiling: a single greedy stream of the model
# `relais synth --preset ministral-8b --layers 8 --type q4_0`, in one process
# and on NODES relais-node processes on loopback, without a draft and with
# the bench-only draft `ids:LIST` that replays the target's own greedy output
# (every drafted id accepted), k = 1, 2, 4, 8 ids per pass. Each figure is
# the median of RUNS runs of N generated tokens (decode tokens/s as `relais
# run` reports it), with the speed-up over no draft and the acceptance and
# tokens per pass the run printed. Rounds alternate the configurations so
# that load from elsewhere hits all of them alike. Prints a markdown table.
#
# With a real draft instead (REAL=1): stories260K (MODEL) with prompt lookup
# (ngram) on a prompt that invites repetition, and with DRAFT (a draft model
# file, e.g. the target's first layers and head) when given; acceptance and
# tokens/s against no draft, one process and NODES nodes.
#
# usage: bench/speculate_bench.sh BUILD_DIR [MODEL.gguf]
#   env: THREADS (1), N (64), RUNS (3), NODES (4), KS ("1 2 4 8"), REAL (0), DRAFT
set -euo pipefail
BUILD=$(cd "$1" && pwd)
REAL=${REAL:-0}
if [ "$REAL" = 1 ]; then
    MODEL=${2:-$(cd "$(dirname "$0")/.." && pwd)/tests/data/models/stories260K.gguf}
    IDS=1,403,407,261,378,429,286,1009 # replaced below by the prompt's ids
else
    MODEL=${2:-/tmp/relais-bench-ministral-8b-l8-q4_0.gguf}
    IDS=1,1000,1001,1002,1003,1004,1005,1006
fi
THREADS=${THREADS:-1}
N=${N:-64}
RUNS=${RUNS:-3}
NODES=${NODES:-4}
KS=${KS:-"1 2 4 8"}
TMP=$(mktemp -d /tmp/relais-spec-bench.XXXXXX)
declare -A PID ADDR
trap 'for p in "${PID[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"' EXIT

if [ ! -f "$MODEL" ]; then
    "$BUILD/relais" synth --preset ministral-8b --layers 8 --type q4_0 -q -o "$MODEL"
fi
mkdir -p "$TMP/trusted" "$TMP/models"
ln -s "$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")" "$TMP/models/"
"$BUILD/relais" keygen -o "$TMP/coordinator" >/dev/null
cp "$TMP/coordinator.pub" "$TMP/trusted/"
for i in $(seq "$NODES"); do
    "$BUILD/relais" keygen -o "$TMP/node$i" >/dev/null
    "$BUILD/relais-node" --listen 'tcp://127.0.0.1:*' --key "$TMP/node$i.key" --trust "$TMP/trusted" \
        --models "$TMP/models" --cache "$TMP/cache$i" --threads "$THREADS" >"$TMP/node$i.log" 2>&1 &
    PID[$i]=$!
    for _ in $(seq 600); do
        ADDR[$i]=$(sed -n 's/.*listening on \(tcp:[^,]*\),.*/\1/p' "$TMP/node$i.log" 2>/dev/null || true)
        [ -n "${ADDR[$i]}" ] && break
        sleep 0.1
    done
done
{
    echo "coordinator:"
    echo "  key: $TMP/coordinator.key"
    echo "  listen: 'tcp://127.0.0.1:*'"
    echo "nodes:"
    for i in $(seq "$NODES"); do printf '  - address: %s\n    public_key: %s\n' "${ADDR[$i]}" "$TMP/node$i.pub"; done
} >"$TMP/cluster.yaml"

if [ "$REAL" = 1 ]; then
    PROMPT='Once upon a time, there was a little dog. The dog liked to play. The dog liked to run. The dog liked to'
    common=(-m "$MODEL" -p "$PROMPT" -n "$N" --ignore-eos --temp 0 -t "$THREADS")
else
    common=(-m "$MODEL" --prompt-ids $IDS -n "$N" --ignore-eos --temp 0 -t "$THREADS" --ctx 512)
fi

# the target's greedy output: the replayed draft
"$BUILD/relais" run "${common[@]}" --json >"$TMP/greedy.json" 2>/dev/null
REPLAY=ids:$(sed 's/.*"prompt_ids":\[\([0-9,]*\)\],"greedy_ids":\[\([0-9,]*\)\].*/\1,\2/' "$TMP/greedy.json")

# one WHERE DRAFT K: "tokens/s accepted% tokens_per_pass" of one run
one() {
    local where=() draft=()
    [ "$1" = local ] || where=(--cluster "$TMP/cluster.yaml")
    [ "$2" = none ] || draft=(--draft "$2" --draft-max "$3")
    "$BUILD/relais" run "${common[@]}" "${where[@]}" "${draft[@]}" >"$TMP/out" 2>"$TMP/run.log" ||
        { cat "$TMP/run.log" >&2; exit 1; }
    local tps acc tpp
    tps=$(sed -n 's/.*generation [0-9]* tokens in [0-9.]* s (\([0-9.]*\) t\/s).*/\1/p' "$TMP/run.log")
    acc=$(sed -n 's/.*accepted \([0-9]*\)%.*/\1/p' "$TMP/run.log")
    tpp=$(sed -n 's/.*, \([0-9.]*\) tokens per pass.*/\1/p' "$TMP/run.log")
    echo "$tps ${acc:--} ${tpp:-1.00}"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

configs=("none 0")
if [ "$REAL" = 1 ]; then
    for k in $KS; do configs+=("ngram $k"); done
    [ -z "${DRAFT:-}" ] || for k in $KS; do configs+=("$DRAFT $k"); done
else
    for k in $KS; do configs+=("replay $k"); done
fi
for r in $(seq "$RUNS"); do
    for where in local cluster; do
        for c in "${configs[@]}"; do
            set -- $c
            d=$1
            [ "$d" = replay ] && d=$REPLAY
            one "$where" "$d" "$2" >>"$TMP/res-$where-$(echo "$1-$2" | tr '/' '_')"
        done
    done
done

echo "| where | draft | k | tokens/s (median of $RUNS) | speed-up | accepted | tokens per pass |"
echo "|---|---|---:|---:|---:|---:|---:|"
for where in local cluster; do
    base=$(cut -d' ' -f1 "$TMP/res-$where-none-0" | median)
    label=$([ $where = local ] && echo "one process" || echo "$NODES nodes")
    for c in "${configs[@]}"; do
        set -- $c
        f="$TMP/res-$where-$(echo "$1-$2" | tr '/' '_')"
        tps=$(cut -d' ' -f1 "$f" | median)
        name=$1
        [ "$name" = none ] || [ "$name" = replay ] || [ "$name" = ngram ] || name=$(basename "$name")
        printf '| %s | %s | %s | %.1f | %.2fx | %s | %s |\n' "$label" "$name" "$([ "$2" = 0 ] && echo - || echo "$2")" \
            "$tps" "$(awk -v a="$tps" -v b="$base" 'BEGIN { print a / b }')" \
            "$(tail -1 "$f" | cut -d' ' -f2)" "$(tail -1 "$f" | cut -d' ' -f3)"
    done
done
