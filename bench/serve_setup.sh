# Shared by the bench/ scripts that measure `relais serve` on loopback, in one
# process and over relais-node processes (serve_bench.sh, chat_cache.sh):
# sourced with the script's own arguments, BUILD_DIR [MODEL.gguf], after
# `set -euo pipefail`. It sets BUILD, MODEL (default: the 8-layer q4_0
# Ministral 8B synth, made when missing), RELAIS, NODE_BIN and TMP (a scratch
# folder whose models/ holds MODEL), sources tests/serve_lib.sh (start_server,
# start_nodes and their stops) and stops every server and node and removes TMP
# on exit. The servers and nodes are the tests' own, so a bench starts them
# exactly as the tests do.
BUILD=$(cd "$1" && pwd)
MODEL=${2:-$BUILD/bench-ministral-8b-l8-q4_0.gguf}
RELAIS=$BUILD/relais
NODE_BIN=$BUILD/relais-node
. "$(dirname "${BASH_SOURCE[0]}")/../tests/serve_lib.sh"
trap 'serve_cleanup >/dev/null 2>&1' EXIT # quiet: a bench prints only its figures

if [ ! -f "$MODEL" ]; then
    "$RELAIS" synth --preset ministral-8b --layers 8 --type q4_0 -q -o "$MODEL"
fi
mkdir -p "$TMP/models"
ln -s "$(readlink -f "$MODEL")" "$TMP/models/$(basename "$MODEL")"

# bench_threads N : threads per process with N nodes (0: the server's own
# process): $THREADS, else the cores shared among them, at least 1.
bench_threads() {
    local n=$(($1 > 0 ? $1 : 1))
    echo "${THREADS:-$(($(nproc) / n > 0 ? $(nproc) / n : 1))}"
}

# bench_where N : sets WHERE to the serve arguments that say where the model
# runs: -m MODEL, and with N > 0 the cluster file of N nodes it starts. Each
# node hashes the model before it listens: up to 10 minutes on a loaded
# machine for the 1.5 GiB file.
bench_where() {
    WHERE=(-m "$MODEL")
    if [ "$1" -gt 0 ]; then
        NODE_START_TRIES=${NODE_START_TRIES:-6000} start_nodes "bench$1" "$1" "$TMP/models" >/dev/null
        WHERE+=(--cluster "$TMP/bench$1.yaml")
    fi
}
