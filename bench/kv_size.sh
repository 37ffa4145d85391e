#!/usr/bin/env bash
# KV cache bytes for the 36-layer Ministral-8B shape at 131072 positions, per
# cache type (issue 14), relais beside llama.cpp on the same file. relais keeps
# Ministral-8B-2410's sliding layers (27 of 36, window 32768) at the window
# and the others at the full context: its figure comes from `relais inspect
# --ctx C --kv-type T`. llama.cpp reads such a file as a plain `llama` model
# and allocates every layer at the full context; its figure comes from its
# own log line ("llama_kv_cache: size = ... MiB (N cells, L layers ...)"),
# taken with llama-bench at LLAMA_CELLS positions (default 4096) and scaled
# to the context: llama.cpp's cache is cells x layers x the row bytes of the
# type, linear in the cells. Allocating it at 131072 would touch 9.6-36 GiB,
# more than a shared machine should be asked for; the log line is printed
# once the cache is allocated, and llama-bench is stopped there.
# llama-bench has no f32 cache type (its -ctk takes f16, bf16, q8_0 and a few
# 4- and 5-bit types): llama.cpp's f32 figure is its f16 one doubled (the
# same cells and layers at 4 bytes an element instead of 2), marked so.
#
#   bench/kv_size.sh [BUILD_DIR]
#
# The synth file is written once to $MODEL (default
# /tmp/Ministral-8B-synth-36layers-q4_0.gguf, 4.4 GB: the name makes relais
# apply the 2410 window layout) and reused. CTX (default 131072) and TYPES
# (default "f32 f16 q8_0") change the defaults; $LLAMA_BENCH names llama-bench.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
. bench/pair_lib.sh
build=${1:-build}
model=${MODEL:-/tmp/Ministral-8B-synth-36layers-q4_0.gguf}
ctx=${CTX:-131072}
types=${TYPES:-"f32 f16 q8_0"}
cells=${LLAMA_CELLS:-4096}
use_llama=0
have_llama && use_llama=1

if [ ! -s "$model" ]; then
  "$build/relais" synth --preset ministral-8b --layers 36 --type q4_0 -q -o "$model"
fi

# llama_kv TYPE: llama.cpp's log line for its cache of $cells positions in
# TYPE (keys and values), once it has been allocated.
llama_kv() {
  local log pid line=""
  log=$(mktemp)
  "$LLAMA_BENCH" -v -m "$model" -t 1 -p "$cells" -n 0 -r 1 -ctk "$1" -ctv "$1" -fa 1 -o jsonl > /dev/null 2> "$log" &
  pid=$!
  for _ in $(seq 600); do
    line=$(grep -m1 'llama_kv_cache: size =' "$log" || true)
    [ -n "$line" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ -n "$line" ] || { echo "kv_size.sh: llama-bench printed no KV size line for $1; its log:" >&2; tail -5 "$log" >&2; }
  rm -f "$log"
  echo "$line"
}

echo "$(basename "$model"), context $ctx"
echo
if [ "$use_llama" = 1 ]; then
  echo "| KV type | relais bytes/token (full layer count) | relais MiB at $ctx | relais bytes/token at $ctx | llama.cpp log at $cells cells | llama.cpp bytes/token | llama.cpp MiB at $ctx | relais / llama.cpp |"
  echo "|---|---|---|---|---|---|---|---|"
else
  echo "| KV type | relais bytes/token (full layer count) | relais MiB at $ctx | relais bytes/token at $ctx |"
  echo "|---|---|---|---|"
fi
for t in $types; do
  ins=$("$build/relais" inspect --ctx "$ctx" --kv-type "$t" "$model" 2>/dev/null | grep '^KV cache')
  ll=""
  if [ "$use_llama" = 1 ] && [ "$t" = f32 ]; then
    ll=$(llama_kv f16 | sed 's/$/ (f16, doubled)/')
  elif [ "$use_llama" = 1 ]; then
    ll=$(llama_kv "$t")
  fi
  if [ "$use_llama" = 1 ] && [ -z "$ll" ]; then ll=none; fi
  python3 - "$ins" "$ll" "$t" "$ctx" "$cells" <<'EOF'
import re, sys
ins, ll, t, ctx, cells = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
m = re.search(r'([\d.]+) KiB per token, ([\d.]+) MiB at context (\d+)', ins)
if not m:
    sys.exit(f"kv_size.sh: relais inspect printed no KV figures for {t}: {ins!r}")
per_tok, mib = float(m.group(1)) * 1024, float(m.group(2))
line = f"| {t} | {per_tok:.0f} | {mib:.1f} | {mib * 2**20 / ctx:.0f} |"
if ll == "none":
    line += " no KV line (see stderr) | | | |"
elif ll:
    lm = re.search(r'size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers', ll)
    lmib, lcells, llayers = float(lm.group(1)), int(lm.group(2)), int(lm.group(3))
    lper = lmib * 2**20 / lcells * (2 if ll.endswith("(f16, doubled)") else 1)
    short = re.sub(r'^.*?size =\s*', '', ll).strip()
    line += f" {short} | {lper:.0f} | {lper * ctx / 2**20:.1f} | {mib / (lper * ctx / 2**20):.2f} |"
print(line)
EOF
done
