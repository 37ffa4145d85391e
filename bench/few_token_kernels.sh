#!/usr/bin/env bash
# The few-token products' table of BENCHMARKS.md: per weight type and batch
# size K (1, 2, 4, 8, 16 tokens through the same weights at once, as when a
# speculative draft is verified or serve batches several sessions' decode
# tokens), tokens/s and the ratio to one token, from `matvec_bench -k`.
#
# The machine is shared, so one run says little: each of ROUNDS rounds runs
# every type with every binary (-b, repeatable, so that a kernel before and
# after a change are measured in the same run, alternating), the order of
# the binaries turning with the round, and the table gives medians over the
# rounds of each figure: tokens/s and the ratio to K=1 in wall time, and the
# ratio in CPU time (the kernels' own cost, which others' load changes less).
#
#   bench/few_token_kernels.sh [-t THREADS] [-r ROUNDS] [-m MIB] [-b MATVEC_BENCH]... [TYPE...]
#
# Defaults: 2 threads, 5 rounds, 256 MiB of weights per type (out of cache),
# build/matvec_bench, types q4_0 q8_0 q4_K q5_K q6_K.
set -euo pipefail

threads=2 rounds=5 mib=256 bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) threads=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -m) mib=$2; shift 2 ;;
    -b) bins+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "few_token_kernels.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ ${#bins[@]} -gt 0 ] || bins=(build/matvec_bench)
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(q4_0 q8_0 q4_K q5_K q6_K)
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "few_token_kernels.sh: $b is not an executable (build matvec_bench first)" >&2; exit 2; }
done

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for ((r = 0; r < rounds; r++)); do
  for ((i = 0; i < ${#bins[@]}; i++)); do
    bi=$(((i + r) % ${#bins[@]}))
    for t in "${types[@]}"; do
      # one line per K: "BIN TYPE K tok/s wall-ratio cpu-ratio"
      "${bins[$bi]}" -t "$threads" -r 3 -m "$mib" -k 1,2,4,8,16 "$t" |
        awk -v b="$bi" '{
          for (i = 1; i <= NF; i++) {
            if ($i ~ /^K=/) k = substr($i, 3)
            if ($i == "tok/s") tps = $(i - 1)
            if ($i == "cpu-ms") { wall = substr($(i - 2), 2); cpu = substr($(i + 1), 2) }
          }
          print b, $1, k, tps, wall, cpu
        }' >>"$raw"
    done
  done
done

median() { sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "$threads threads, medians of $rounds rounds; ratios are to K=1 of the same binary and round"
printf '| type | K |'
for b in "${bins[@]}"; do printf ' %s tok/s | wall x | cpu x |' "$b"; done
printf '\n|---|---|'
for _ in "${bins[@]}"; do printf -- '---|---|---|'; done
printf '\n'
for t in "${types[@]}"; do
  for k in 1 2 4 8 16; do
    printf '| %s | %s |' "$t" "$k"
    for ((bi = 0; bi < ${#bins[@]}; bi++)); do
      for col in 4 5 6; do
        m=$(awk -v b="$bi" -v t="$t" -v k="$k" -v c="$col" '$1 == b && $2 == t && $3 == k {print $c}' "$raw" | median)
        printf ' %s |' "$m"
      done
    done
    printf '\n'
  done
done
