# Shared by the bench/ scripts that set relais beside llama.cpp (sourced, not
# run). This machine's memory bandwidth moves between two levels within
# seconds, so those scripts run the two programs back to back, alternate which
# goes first, repeat, and report medians; each run first waits a little for
# idle CPUs. llama.cpp is not part of this repository: a script takes its
# llama-bench binary from $LLAMA_BENCH and says so when it is absent.

# Waits until the CPUs were at least 90% idle over one second (IDLE_WAIT
# seconds at most, default 60, then goes on regardless).
wait_idle() {
  local u n s i w x y z t1 i1
  for _ in $(seq "${IDLE_WAIT:-60}"); do
    read -r _ u n s i w x y z _ < /proc/stat; t1=$((u + n + s + i + w + x + y + z)); i1=$((i + w))
    sleep 1
    read -r _ u n s i w x y z _ < /proc/stat
    [ $(((i + w - i1) * 100 / (u + n + s + i + w + x + y + z - t1 + 1))) -ge 90 ] && return 0
  done
  return 0
}

# True when $LLAMA_BENCH names an executable; otherwise says on stderr that
# only relais will run, and why (the caller decides whether that is enough).
have_llama() {
  if [ -z "${LLAMA_BENCH:-}" ]; then
    echo "$(basename "$0"): LLAMA_BENCH is not set: relais only (set it to a llama-bench binary for llama.cpp's figures)" >&2
    return 1
  fi
  if [ ! -x "$LLAMA_BENCH" ]; then
    echo "$(basename "$0"): LLAMA_BENCH=$LLAMA_BENCH is not an executable: relais only" >&2
    return 1
  fi
  return 0
}
