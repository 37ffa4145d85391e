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
# With $LLAMA_BENCH set to a llama-bench binary, llama.cpp decodes the same
# file at the same depth with the matching cache type (`-d D -ctk T -ctv T`,
# and `-fa 1` for every type, since llama.cpp needs flash attention for a
# quantized V cache) right before or after relais (alternating), and the row
# gives both and their ratio. llama-bench reaches the depth by a real prefill
# (once per depth and process), which at 32k on 2 threads takes minutes.
# llama-bench has no f32 cache type (its -ctk takes f16, bf16, q8_0 and a few
# 4- and 5-bit types), so the f32 rows are relais's alone; LLAMA_TYPES
# (default: TYPES but f32) limits llama.cpp to fewer types, since on a busy
# machine (load 11-20) its prefill to 4096 positions took about 10 minutes.
#
#   bench/kv_depth.sh [BUILD_DIR] [THREADS]
#
# The synth file is written once to $MODEL (default /tmp/Ministral-8B-synth-8layers-q4_0.gguf: the name
# makes relais allow Ministral-8B-2410's 131072 positions, so 32768 + the decode fits;
# 1.6 GB) and reused. DEPTHS, TYPES, GEN (tokens per decode run, default 16),
# REPS (runs per measurement, default 3), ROUNDS (default 1) and IDLE_WAIT
# (bench/pair_lib.sh) change the defaults.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
. bench/pair_lib.sh
build=${1:-build}
threads=${2:-$(nproc)}
model=${MODEL:-/tmp/Ministral-8B-synth-8layers-q4_0.gguf}
out=${OUT:-bench/kv_depth.jsonl}
depths=${DEPTHS:-"4096 16384 32768"}
types=${TYPES:-"f32 f16 q8_0"}
gen=${GEN:-16}
reps=${REPS:-3}
rounds=${ROUNDS:-1}
llama_types=${LLAMA_TYPES:-$(echo "$types" | tr ' ' '\n' | grep -vx f32 | tr '\n' ' ')}
use_llama=0
have_llama && use_llama=1

if [ ! -s "$model" ]; then
  "$build/relais" synth --preset ministral-8b --layers 8 --type q4_0 -q -o "$model"
fi
: > "$out"
run_relais() {
  wait_idle
  local line
  line=$("$build/relais" bench -m "$model" -t "$threads" -p 0 -n "$gen" -r "$reps" --depth "$2" \
           --ctx $(($2 + gen + 1)) --kv-type "$1" --json)
  echo "{\"round\": $round, \"prog\": \"relais\", \"r\": $line}" >> "$out"
  echo "$line"
}
run_llama() {
  wait_idle
  local line
  # llama-bench's log goes to stderr, a page per run.
  line=$("$LLAMA_BENCH" -m "$model" -t "$threads" -p 0 -n "$gen" -r "$reps" -d "$2" -ctk "$1" -ctv "$1" -fa 1 \
           -o jsonl 2>/dev/null)
  echo "{\"round\": $round, \"prog\": \"llama\", \"r\": $line}" >> "$out"
  echo "$line"
}
if [ "$use_llama" = 1 ]; then
  printf '%-5s %-6s %7s %9s %11s %7s %9s\n' "round" "kv" "depth" "tg t/s" "llama t/s" "ratio" "KV MiB"
else
  printf '%-5s %-6s %7s %9s %9s\n' "round" "kv" "depth" "tg t/s" "KV MiB"
fi
n=0
for round in $(seq "$rounds"); do
  for t in $types; do
    for d in $depths; do
      n=$((n + 1))
      if [ "$use_llama" = 0 ] || ! echo " $llama_types " | grep -q " $t "; then
        rl=$(run_relais "$t" "$d")
        ll='{}'
      elif [ $((n % 2)) = 1 ]; then
        rl=$(run_relais "$t" "$d"); ll=$(run_llama "$t" "$d")
      else
        ll=$(run_llama "$t" "$d"); rl=$(run_relais "$t" "$d")
      fi
      python3 -c '
import json, sys
r, l = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = "%-5s %-6s %7d %9.2f" % (sys.argv[3], r["kv_type"], r["depth"], r["tg_tps"])
if "avg_ts" in l:
    out += " %11.2f %7.2f" % (l["avg_ts"], r["tg_tps"] / l["avg_ts"])
print(out + " %9.1f" % (r["kv_bytes"] / 1048576))' "$rl" "$ll" "$round"
    done
  done
done
