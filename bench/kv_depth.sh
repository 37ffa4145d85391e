#!/usr/bin/env bash
# Decode speed at long positions per KV cache type: tokens/s at positions 4k,
# 16k and 32k (llama-bench -d's depths) on the 8-layer Ministral-8B-shape
# synth (q4_0), one process, for --kv-type f32, f16 and q8_0. The cache is
# filled with random keys and values up to the depth (relais bench --depth)
# rather than by a prefill, which would take far longer than the decode it
# precedes; decode speed depends on how many positions are attended to, not
# on their values. Prints one table row per type and depth, and the raw JSON
# lines to $OUT (default bench/kv_depth.jsonl).
#
#   bench/kv_depth.sh [BUILD_DIR] [THREADS]
#
# The synth file is written once to $MODEL (default /tmp/Ministral-8B-synth-8layers-q4_0.gguf: the name
# makes relais allow Ministral-8B-2410's 131072 positions, so 32768 + the decode fits;
# 1.6 GB) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${2:-$(nproc)}
model=${MODEL:-/tmp/Ministral-8B-synth-8layers-q4_0.gguf}
out=${OUT:-bench/kv_depth.jsonl}
depths=${DEPTHS:-"4096 16384 32768"}
types=${TYPES:-"f32 f16 q8_0"}
gen=${GEN:-16}
reps=${REPS:-3}

if [ ! -s "$model" ]; then
  "$build/relais" synth --preset ministral-8b --layers 8 --type q4_0 -q -o "$model"
fi
: > "$out"
printf '%-6s %7s %9s %12s\n' "kv" "depth" "tg t/s" "KV MiB"
for t in $types; do
  for d in $depths; do
    line=$("$build/relais" bench -m "$model" -t "$threads" -p 0 -n "$gen" -r "$reps" --depth "$d" \
             --ctx $((d + gen + 1)) --kv-type "$t" --json)
    echo "$line" >> "$out"
    echo "$line" | python3 -c 'import json,sys; j=json.load(sys.stdin); print("%-6s %7d %9.2f %12.1f" % (j["kv_type"], j["depth"], j["tg_tps"], j["kv_bytes"] / 1048576))'
  done
done
