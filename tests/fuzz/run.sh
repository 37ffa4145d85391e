#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang into their
# own tree and runs each for a bounded time, starting from the committed
# seeds (tests/fuzz/corpus/NAME) plus what earlier runs found (kept in the
# build tree, never in the repository). .ci/run runs it with the default 20
# seconds per harness; a long run gives more:
#   tests/fuzz/run.sh [-t SECONDS] [-n RUNS] [-b BUILD_DIR] [HARNESS...]
# -n stops each harness after RUNS executions instead (the first of the two
# limits reached ends it). Exits non-zero on the first crash, leak, timeout or
# out-of-memory, whose input libFuzzer leaves in BUILD_DIR/artifacts/NAME/;
# a one-line summary per harness (executions, coverage) is printed at the end.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=20
runs=-1
build=$src/build-fuzz
while getopts "t:n:b:" o; do
  case $o in
    t) secs=$OPTARG ;;
    n) runs=$OPTARG; secs=0 ;;
    b) build=$OPTARG ;;
    *) echo "usage: $0 [-t SECONDS] [-n RUNS] [-b BUILD_DIR] [HARNESS...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(gguf wire openai cluster_yaml tokenizer beacon)

if ! command -v clang >/dev/null; then
  echo "run.sh: clang is needed (deploy/install-deps.sh --ci installs it)" >&2
  exit 1
fi
jobs=$(nproc 2>/dev/null || echo 2)
CC=clang cmake -S "$src" -B "$build" -DRELAIS_FUZZ=ON -DRELAIS_TESTS=OFF -DRELAIS_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs" --target "${harnesses[@]/#/fuzz_}" >/dev/null

# One harness: non-zero on a crash, leak, hang or memory blow-up, with the
# log's end on stderr; its last status line ("#N DONE cov: C ft: F ...")
# goes to BUILD/fuzz_NAME.summary.
fuzz_one() {
  local h=$1 work=$build/corpus/$1 art=$build/artifacts/$1/ log=$build/fuzz_$1.log last
  mkdir -p "$work" "$art"
  # -timeout: an input taking over 10 s is a hang; -rss_limit_mb: the readers
  # must keep allocations proportional to the input.
  if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
      "$build/fuzz_$h" -max_total_time="$secs" -runs="$runs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$art" "$work" "$src/tests/fuzz/corpus/$h" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "run.sh: fuzz_$h failed (input in $art; log $log)" >&2
    return 1
  fi
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | tr -s ' \t' ' ')
  echo "fuzz_$h: $last" >"$build/fuzz_$h.summary"
}

# As many harnesses at once as there are cores, in rounds.
failed=0
for ((i = 0; i < ${#harnesses[@]}; i += jobs)); do
  pids=()
  for h in "${harnesses[@]:i:jobs}"; do
    fuzz_one "$h" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
done
for h in "${harnesses[@]}"; do cat "$build/fuzz_$h.summary" 2>/dev/null || true; done
exit "$failed"
