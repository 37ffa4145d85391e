#!/usr/bin/env bash
# Products over a few tokens (issue 15): how much a batch of K tokens fed at
# once costs against one token, K = 1, 2, 4, 8, 16, as tokens/s relative to
# K = 1. Decode is bound by reading the weights, so a kernel that reads each
# weight once per batch approaches K times the one-token rate; that ratio is
# what speculative verification and micro-batched decode live on. relais runs
# `relais bench -p K -n 0` (one process per K) and llama.cpp, when
# $LLAMA_BENCH names a llama-bench binary, `llama-bench -p 1,2,...,16 -n 0`
# (one process) on the same file and thread count; each round runs both, the
# one that goes first alternating, and the table gives medians over rounds of
# tokens/s and of each round's ratio to its own K = 1 (a ratio is taken
# within one program's round, so the host's state, which changes within
# seconds, moves it less than it moves tokens/s).
#
#   bench/few_tokens.sh [-b RELAIS] [-t THREADS] [-r ROUNDS] [--raw FILE] [MODEL.gguf]
#   bench/few_tokens.sh --from FILE     (the table again from a --raw FILE)
#
# The model defaults to the 8-layer Ministral-8B-shape Q4_0 synth that
# bench/kv_depth.sh also uses ($MODEL, written once if absent). KS sets the
# batch sizes (default "1 2 4 8 16"; it must start with 1), REPS the
# repetitions inside each run (default 5), IDLE_WAIT the wait for idle CPUs
# before each run (bench/pair_lib.sh). To compare relais builds, e.g. after a
# kernel change, run it once per build with -b and --raw, then read the
# tables side by side.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
. bench/pair_lib.sh

relais=build/relais threads=2 rounds=3 raw= from=
while [ $# -gt 0 ]; do
  case "$1" in
    -b) relais=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    --raw) raw=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
model=${1:-${MODEL:-/tmp/Ministral-8B-synth-8layers-q4_0.gguf}}
ks=${KS:-"1 2 4 8 16"}
reps=${REPS:-5}
[ "${ks%% *}" = 1 ] || { echo "few_tokens.sh: KS must start with 1 (the ratios are to K = 1)" >&2; exit 2; }

out=${from:-${raw:-$(mktemp)}}   # one JSON line per run
[ -n "$from$raw" ] || trap 'rm -f "$out"' EXIT
if [ -z "$from" ]; then
  : > "$out"
  use_llama=0
  have_llama && use_llama=1
  if [ ! -s "$model" ]; then
    "$relais" synth --preset ministral-8b --layers 8 --type q4_0 -q -o "$model"
  fi
  run_relais() {
    local k line
    for k in $ks; do
      wait_idle
      line=$("$relais" bench -m "$model" -t "$threads" -p "$k" -n 0 -r "$reps" --json)
      echo "{\"round\": $1, \"prog\": \"relais\", \"r\": $line}" >> "$out"
    done
  }
  run_llama() {
    local lines line
    wait_idle
    # llama-bench's log goes to stderr, a page per run; -o jsonl is a line per K.
    lines=$("$LLAMA_BENCH" -m "$model" -t "$threads" -p "${ks// /,}" -n 0 -r "$reps" -o jsonl 2>/dev/null)
    while read -r line; do echo "{\"round\": $1, \"prog\": \"llama\", \"r\": $line}"; done <<< "$lines" >> "$out"
  }
  for round in $(seq "$rounds"); do
    if [ "$use_llama" = 0 ]; then
      run_relais "$round"
    elif [ $((round % 2)) = 1 ]; then
      run_relais "$round"; run_llama "$round"
    else
      run_llama "$round"; run_relais "$round"
    fi
  done
fi

python3 - "$out" "$model" <<'EOF'
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = statistics.median
def k_tps(r):  # (K, tokens/s) of one run, relais or llama-bench
    return (r['n_prompt'], r['pp_tps']) if 'pp_tps' in r else (r['n_prompt'], r['avg_ts'])
progs = [p for p in ('relais', 'llama') if any(r['prog'] == p for r in rows)]
tps = {}     # (prog, K) -> [tokens/s per round]
ratio = {}   # (prog, K) -> [tokens/s / the same round's K=1]
for p in progs:
    for rnd in sorted({r['round'] for r in rows if r['prog'] == p}):
        got = dict(k_tps(r['r']) for r in rows if r['prog'] == p and r['round'] == rnd)
        for k, t in got.items():
            tps.setdefault((p, k), []).append(t)
            if 1 in got:
                ratio.setdefault((p, k), []).append(t / got[1])
ks = sorted({k for _, k in tps})
llama = [r['r'] for r in rows if r['prog'] == 'llama']
threads = rows[0]['r'].get('threads', rows[0]['r'].get('n_threads'))
print(f"{os.path.basename(sys.argv[2])}, threads {threads}, rounds {len({r['round'] for r in rows})} (medians)"
      + (f"; llama.cpp build {llama[0]['build_number']} ({llama[0]['build_commit']})" if llama else ""))
print()
head = "| K | relais t/s | relais x K=1 |" + (" llama.cpp t/s | llama.cpp x K=1 | relais / llama.cpp t/s |" if llama else "")
print(head)
print("|" + "---|" * (head.count("|") - 1))
for k in ks:
    line = f"| {k} | {med(tps[('relais', k)]):.1f} | {med(ratio[('relais', k)]):.2f} |"
    if llama:
        line += (f" {med(tps[('llama', k)]):.1f} | {med(ratio[('llama', k)]):.2f} |"
                 f" {med(tps[('relais', k)]) / med(tps[('llama', k)]):.2f} |")
    print(line)
print()
print("Round by round, x K=1 for K = " + " ".join(str(k) for k in ks[1:]) + ":")
for p in progs:
    n = len(ratio[(p, 1)])
    print(f"  {p}: " + "; ".join(" ".join(f"{ratio[(p, k)][i]:.2f}" for k in ks[1:]) for i in range(n)))
EOF
