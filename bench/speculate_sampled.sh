#!/usr/bin/env bash
# Speculative sampling's gain (issue 15): a sampled stream of stories260K in
# one process with a draft cut from it (its first LAYERS layers and head,
# `relais synth --cut-from`), at temperature TEMP (run's other defaults:
# top-k 40, top-p 0.95, min-p 0.05), over seeds 1..SEEDS of N ids each. Three
# ways to use the same draft model:
#   p/q     MODEL         it samples its ids from q and sends q; the target
#                         keeps each with probability min(1, p/q)
#   eq      eq:MODEL      it samples the same way but keeps q to itself; the
#                         target keeps an id when its own sample equals it
#   greedy  greedy:MODEL  it drafts greedily (relais before speculative
#                         sampling); the target checks by equality
# and no draft. Acceptance pools every run's "accepted N% of D drafted ids"
# line (N rounded per run); tokens per pass and tokens/s are the means of
# the runs' own figures. Prints a markdown table.
#
# usage: bench/speculate_sampled.sh BUILD_DIR [MODEL.gguf]
#   env: LAYERS ("3 4"), TEMP (0.8), SEEDS (10), N (200), K (4), THREADS (1)
set -euo pipefail
BUILD=$(cd "$1" && pwd)
MODEL=${2:-$(cd "$(dirname "$0")/.." && pwd)/tests/data/models/stories260K.gguf}
LAYERS=${LAYERS:-"3 4"}
TEMP=${TEMP:-0.8}
SEEDS=${SEEDS:-10}
N=${N:-200}
K=${K:-4}
THREADS=${THREADS:-1}
TMP=$(mktemp -d /tmp/relais-spec-sampled.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
PROMPT="Once upon a time, there was a little dog. The dog liked to"

# one configuration over every seed: "accepted% drafted tokens/pass tokens/s"
measure() {
    local spec=$1 seed line acc=0 drafted=0 tpp=0 tps=0
    for seed in $(seq 1 "$SEEDS"); do
        local args=(-m "$MODEL" -p "$PROMPT" -n "$N" --temp "$TEMP" --seed "$seed" -t "$THREADS")
        [ -n "$spec" ] && args+=(--draft "$spec" --draft-max "$K")
        "$BUILD/relais" run "${args[@]}" >/dev/null 2>"$TMP/err"
        line=$(grep -o 'accepted [0-9]*% of [0-9]* drafted ids, [0-9.]* tokens per pass' "$TMP/err" || true)
        if [ -n "$line" ]; then
            read -r a d p <<<"$(echo "$line" | sed 's/accepted \([0-9]*\)% of \([0-9]*\) drafted ids, \([0-9.]*\) .*/\1 \2 \3/')"
            acc=$(awk -v x="$acc" -v a="$a" -v d="$d" 'BEGIN { print x + a * d / 100 }')
            drafted=$((drafted + d))
            tpp=$(awk -v x="$tpp" -v p="$p" 'BEGIN { print x + p }')
        fi
        tps=$(awk -v x="$tps" -v t="$(sed -n 's/.*| generation .*(\([0-9.]*\) t\/s).*/\1/p' "$TMP/err")" \
            'BEGIN { print x + t }')
    done
    awk -v a="$acc" -v d="$drafted" -v p="$tpp" -v t="$tps" -v s="$SEEDS" \
        'BEGIN { printf "%s %d %.2f %.0f\n", d ? sprintf("%.1f%%", 100 * a / d) : "-", d, d ? p / s : 1, t / s }'
}

echo "| draft | rule | accepted | drafted ids | tokens per pass | tokens/s |"
echo "|---|---|---:|---:|---:|---:|"
read -r _ _ _ t <<<"$(measure "")"
echo "| none | - | - | - | 1.00 | $t |"
for l in $LAYERS; do
    draft="$TMP/cut$l.gguf"
    "$BUILD/relais" synth --cut-from "$MODEL" --layers "$l" -o "$draft" >/dev/null 2>&1
    for rule in p/q eq greedy; do
        case $rule in p/q) spec=$draft ;; eq) spec="eq:$draft" ;; greedy) spec="greedy:$draft" ;; esac
        read -r a d p t <<<"$(measure "$spec")"
        echo "| cut, $l of 5 layers | $rule | $a | $d | $p | $t |"
    done
done
