#!/usr/bin/env bash
# Prints the benchmark table of BENCHMARKS.md: per model file and load mode,
# decode (tg) and prefill (pp64, pp512) tokens/s, decode's effective
# bandwidth against a streaming-read probe, and peak RSS against the memory
# target (file + KV + 100 MiB), from `relais bench --json`. With LLAMA_BENCH
# set to a llama-bench binary, the same files are also run through llama.cpp
# (-mmp 1 for mmap, -mmp 0 for no-mmap; `-lm mmap` and `-lm none` in the
# llama-bench versions that replaced -mmp by --load-mode) and the ratios printed against the
# targets (tg >= 1.1x, pp >= 1.0x; a ratio short of its target is marked
# "short"), with llama.cpp's decode bandwidth: its tg times the bytes relais
# reads per token, which are the same weights.
#
# The machine is shared and its memory bandwidth changes within seconds (a
# host that streams 44 GB/s can stream 80 a second later), so each round runs
# the two programs' decode back to back, the one that goes first alternating
# with the round, and the tg ratio is the median of those paired ratios;
# the ratio of the medians is printed beside it. Every run first waits (up to
# IDLE_WAIT seconds, default 60) for the CPUs to be at least 90% idle over
# one second (bench/pair_lib.sh).
#
#   bench/run_bench.sh [-t THREADS] [-r ROUNDS] [-n DECODE_TOKENS] [-b RELAIS]
#                      [--modes "mmap no-mmap"] [--llama-reps N] [--raw FILE] MODEL.gguf...
#   bench/run_bench.sh --from FILE     (the table again from a --raw FILE)
set -euo pipefail

threads=2 rounds=5 relais=build/relais modes=mmap llama_reps=3 n_gen=64 raw= from=
while [ $# -gt 0 ]; do
  case "$1" in
    -t) threads=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -n) n_gen=$2; shift 2 ;;
    -b) relais=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --no-mmap) modes=no-mmap; shift ;;
    --llama-reps) llama_reps=$2; shift 2 ;;
    --raw) raw=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || [ -n "$from" ] || { echo "usage: bench/run_bench.sh [-t N] [-r N] [-n N] [-b RELAIS] [--modes LIST] [--llama-reps N] MODEL.gguf..." >&2; exit 2; }
for mode in $modes; do
  case "$mode" in mmap|no-mmap) ;; *) echo "run_bench.sh: unknown load mode '$mode' (mmap, no-mmap)" >&2; exit 2 ;; esac
done

out=${from:-${raw:-$(mktemp)}}   # one JSON line per run
[ -z "$raw" ] || [ -n "$from" ] || : > "$raw"
[ -n "$from$raw" ] || trap 'rm -f "$out"' EXIT

. "$(dirname "$0")/pair_lib.sh"   # wait_idle, have_llama
[ -n "$from" ] || have_llama || unset LLAMA_BENCH
# llama-bench's load-mode flags: -mmp 1|0 until --load-mode replaced it.
llama_load_flag() {
  if "$LLAMA_BENCH" --help 2>&1 | grep -q -- '--load-mode'; then
    if [ "$1" = mmap ]; then echo "-lm mmap"; else echo "-lm none"; fi
  elif [ "$1" = mmap ]; then echo "-mmp 1"; else echo "-mmp 0"; fi
}

# llama-bench's log goes to stderr, a page per run.
quiet() { "$@" 2>/dev/null; }

# record KIND FILE MODE COMMAND...: one JSON line of the command's output.
record() {
  local kind=$1 file=$2 mode=$3
  shift 3
  wait_idle
  # (llama-bench prints its JSON over several lines)
  echo "{\"round\": $round, \"kind\": \"$kind\", \"file\": \"$file\", \"mode\": \"$mode\", \"r\": $("$@" | tr -d '\n')}" >> "$out"
}

[ -z "$from" ] || rounds=0
for round in $(seq "$rounds"); do
  for m in "$@"; do
    for mode in $modes; do
      load=(); lload=()
      [ "$mode" = no-mmap ] && load=(--no-mmap)
      [ -z "${LLAMA_BENCH:-}" ] || read -r -a lload <<< "$(llama_load_flag "$mode")"
      short_relais=(record relais "$m" "$mode" "$relais" bench -m "$m" -t "$threads" -p 64 -n "$n_gen" -r 3 --probe --json "${load[@]}")
      short_llama=(record llama "$m" "$mode" quiet "${LLAMA_BENCH:-}" -m "$m" -t "$threads" -p 64 -n "$n_gen" -r "$llama_reps" "${lload[@]}" -o json)
      # Decode and pp64 of the two programs back to back, so that a pair
      # sees the same host; which goes first alternates with the round.
      if [ -z "${LLAMA_BENCH:-}" ]; then
        "${short_relais[@]}"
      elif [ $((round % 2)) = 1 ]; then
        "${short_relais[@]}"; "${short_llama[@]}"
      else
        "${short_llama[@]}"; "${short_relais[@]}"
      fi
      record relais512 "$m" "$mode" "$relais" bench -m "$m" -t "$threads" -p 512 -n 0 -r 1 --json "${load[@]}"
      if [ -n "${LLAMA_BENCH:-}" ]; then
        record llama "$m" "$mode" quiet "$LLAMA_BENCH" -m "$m" -t "$threads" -p 512 -n 0 -r "$llama_reps" "${lload[@]}" -o json
      fi
    done
  done
done

python3 - "$out" "$threads" <<'EOF'
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda xs: statistics.median(xs) if xs else float('nan')
llama = [t for r in rows if r['kind'] == 'llama' for t in r['r']]
first = (rows[0]['file'], rows[0]['mode'])
n_rounds = sum(1 for r in rows if r['kind'] == 'relais' and (r['file'], r['mode']) == first)
print(f"threads: {sys.argv[2]}, rounds: {n_rounds} (medians)"
      + (f"; llama.cpp build {llama[0].get('build_number', '?')} ({llama[0].get('build_commit', '?')})" if llama else ""))
print()
head = ("| model | load | file MiB | tg t/s | pp64 t/s | pp512 t/s | tg GB/s | probe GB/s | tg/probe "
        "| peak RSS MiB | RSS target MiB |")
if llama:
    head += (" llama tg | llama tg GB/s | llama pp64 | llama pp512 | tg ratio, paired (>= 1.1) | paired quartiles "
             "| tg ratio of medians | pp64 ratio (>= 1.0) | pp512 ratio (>= 1.0) |")
print(head)
print("|" + "---|" * (head.count("|") - 1))
by_round = []
div = lambda a, b: a / b if b else float('nan')
def ratio(r, target):
    return f"{r:.2f}" + ("" if r >= target else " short")
for f, mode in dict.fromkeys((r['file'], r['mode']) for r in rows):
    sel = lambda kind: [r['r'] for r in rows if r['file'] == f and r['mode'] == mode and r['kind'] == kind]
    rr, r5 = sel('relais'), sel('relais512')
    tg, pp, pp5 = med([r['tg_tps'] for r in rr]), med([r['pp_tps'] for r in rr]), med([r['pp_tps'] for r in r5])
    bw, probe = med([r['tg_gbps'] for r in rr]), med([r['probe_gbps'] for r in rr])
    rss = max(r['peak_rss_mb'] for r in rr + r5)
    bpt = rr[0]['bytes_per_token'] / 1e9
    target = (rr[0]['file_bytes'] + max(r['kv_bytes'] for r in rr + r5)) / 2**20 + 100
    line = (f"| {os.path.basename(f)} | {mode} | {rr[0]['file_bytes'] / 2**20:.0f} | {tg:.2f} | {pp:.1f} | {pp5:.1f} | "
            f"{bw:.1f} | {probe:.1f} | {bw / probe:.0%} | {rss:.0f}{'' if rss <= target else ' over'} | {target:.0f} |")
    if llama:
        ll = [t for r in sel('llama') for t in r]
        ltgs = [t['avg_ts'] for t in ll if t['n_gen'] > 0]
        ltg = med(ltgs)
        lpp = med([t['avg_ts'] for t in ll if t['n_prompt'] == 64])
        lpp5 = med([t['avg_ts'] for t in ll if t['n_prompt'] == 512])
        # The k-th relais decode run against the k-th llama.cpp one: each
        # round runs the two back to back, so a pair shares the host's state.
        pairs = [(r['tg_tps'], l, div(r['tg_tps'], l)) for r, l in zip(rr, ltgs)]
        ratios = sorted(x for _, _, x in pairs)
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        line += (f" {ltg:.2f} | {ltg * bpt:.1f} | {lpp:.1f} | {lpp5:.1f} | {ratio(med(ratios), 1.1)} | "
                 f"{q[0]:.2f}-{q[2]:.2f} | {div(tg, ltg):.2f} | {ratio(div(pp, lpp), 1.0)} | "
                 f"{ratio(div(pp5, lpp5), 1.0)} |")
        by_round.append(f"| {os.path.basename(f)} | {mode} | "
                        + " ".join(f"{x:.2f} ({a * bpt:.0f}:{l * bpt:.0f})" for a, l, x in pairs) + " |")
    print(line)
if by_round:
    print()
    print("Decode round by round: relais / llama.cpp tg ratio (relais GB/s : llama.cpp GB/s, the same bytes per token)")
    print()
    print("| model | load | pairs in run order |")
    print("|---|---|---|")
    print("\n".join(by_round))
EOF
