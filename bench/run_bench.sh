#!/usr/bin/env bash
# Prints the benchmark table of BENCHMARKS.md: per model file, decode and
# prefill tokens/s, decode's effective bandwidth against a streaming-read
# probe, and peak RSS against the memory target (file + KV + 100 MiB), from
# `relais bench --json`. With LLAMA_BENCH set to a llama-bench binary, the
# same files are also run through llama.cpp, alternating with relais round
# by round, and the ratios printed. The machine is shared and noisy: every
# figure is the median of ROUNDS rounds, and a round waits (up to a minute)
# for the CPUs to be idle before it starts.
#
#   bench/run_bench.sh [-t THREADS] [-r ROUNDS] [-b RELAIS] [--no-mmap] MODEL.gguf...
set -euo pipefail

threads=2 rounds=5 relais=build/relais extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) threads=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -b) relais=$2; shift 2 ;;
    --no-mmap) extra+=(--no-mmap); shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: bench/run_bench.sh [-t N] [-r N] [-b RELAIS] [--no-mmap] MODEL.gguf..." >&2; exit 2; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Waits until the CPUs were at least 90% idle over one second (60 s at most,
# then goes on regardless).
wait_idle() {
  local u n s i w x y z t1 i1
  for _ in $(seq 60); do
    read -r _ u n s i w x y z _ < /proc/stat; t1=$((u + n + s + i + w + x + y + z)); i1=$((i + w))
    sleep 1
    read -r _ u n s i w x y z _ < /proc/stat
    [ $(((i + w - i1) * 100 / (u + n + s + i + w + x + y + z - t1 + 1))) -ge 90 ] && return 0
  done
  return 0
}

for round in $(seq "$rounds"); do
  for m in "$@"; do
    wait_idle
    echo "{\"round\": $round, \"kind\": \"relais\", \"file\": \"$m\", \"r\": $("$relais" bench -m "$m" -t "$threads" \
      -p 64 -n 32 -r 3 --probe --json "${extra[@]}")}" >> "$out"
    wait_idle
    echo "{\"round\": $round, \"kind\": \"relais512\", \"file\": \"$m\", \"r\": $("$relais" bench -m "$m" -t "$threads" \
      -p 512 -n 0 -r 1 --json "${extra[@]}")}" >> "$out"
    if [ -n "${LLAMA_BENCH:-}" ]; then
      wait_idle
      mmp=1; [ ${#extra[@]} -gt 0 ] && mmp=0
      echo "{\"round\": $round, \"kind\": \"llama\", \"file\": \"$m\", \"r\": $("$LLAMA_BENCH" -m "$m" -t "$threads" \
        -p 64,512 -n 32 -r 3 -mmp "$mmp" -o json 2>/dev/null)}" >> "$out"
    fi
  done
done

python3 - "$out" "$threads" <<'EOF'
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda xs: statistics.median(xs) if xs else float('nan')
print(f"threads: {sys.argv[2]}, rounds: {max(r['round'] for r in rows)} (medians)\n")
head = "| model | file MiB | tg t/s | pp64 t/s | pp512 t/s | tg GB/s | probe GB/s | tg/probe | peak RSS MiB | target MiB |"
llama = any(r['kind'] == 'llama' for r in rows)
if llama:
    head += " llama tg | llama pp64 | llama pp512 | tg ratio | pp64 ratio | pp512 ratio |"
print(head)
print("|" + "---|" * (head.count("|") - 1))
for f in dict.fromkeys(r['file'] for r in rows):
    rr = [r['r'] for r in rows if r['file'] == f and r['kind'] == 'relais']
    r5 = [r['r'] for r in rows if r['file'] == f and r['kind'] == 'relais512']
    tg, pp, pp5 = med([r['tg_tps'] for r in rr]), med([r['pp_tps'] for r in rr]), med([r['pp_tps'] for r in r5])
    bw, probe = med([r['tg_gbps'] for r in rr]), med([r['probe_gbps'] for r in rr])
    rss = max(r['peak_rss_mb'] for r in rr + r5)
    target = (rr[0]['file_bytes'] + max(r['kv_bytes'] for r in rr + r5)) / 2**20 + 100
    line = (f"| {os.path.basename(f)} | {rr[0]['file_bytes'] / 2**20:.0f} | {tg:.2f} | {pp:.1f} | {pp5:.1f} | "
            f"{bw:.1f} | {probe:.1f} | {bw / probe:.0%} | {rss:.0f} | {target:.0f} |")
    if llama:
        ll = [t for r in rows if r['file'] == f and r['kind'] == 'llama' for t in r['r']]
        ltg = med([t['avg_ts'] for t in ll if t['n_gen'] > 0])
        lpp = med([t['avg_ts'] for t in ll if t['n_prompt'] == 64])
        lpp5 = med([t['avg_ts'] for t in ll if t['n_prompt'] == 512])
        line += f" {ltg:.2f} | {lpp:.1f} | {lpp5:.1f} | {tg / ltg:.2f} | {pp / lpp:.2f} | {pp5 / lpp5:.2f} |"
    print(line)
EOF
