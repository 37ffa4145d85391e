#!/usr/bin/env bash
# Node memory check: the peak RSS of each relais-node that served a slice of
# layers during a generation, against the issue's node target, its slice's
# weight bytes plus its KV bytes plus 64 MiB (both as the node reports them
# in its "ready:" log line). Two ways a node gets its slice:
#   - "file":     the model file sits in the node's models directory, and
#                 the node maps only the layers it is assigned;
#   - "transfer": the node lacks the model and receives its slice from the
#                 coordinator into its cache, then maps it from there.
# Prints a markdown table, one row per node and way; exits 1 when a node is
# over its target.
#
# usage: bench/node_mem.sh BUILD_DIR MODEL.gguf
#   env: NODES (2), CTX (4096: the context each session's KV is made for),
#        N (32 generated tokens)
set -euo pipefail
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=$(readlink -f "$2")
NODES=${NODES:-2}
CTX=${CTX:-4096}
N=${N:-32}
RELAIS=$BUILD/relais
NODE_BIN=$BUILD/relais-node
. "$HERE/../tests/serve_lib.sh"   # start_nodes, stop_nodes
trap 'serve_cleanup >/dev/null 2>&1' EXIT

mkdir -p "$TMP/file" "$TMP/transfer"
ln -s "$MODEL" "$TMP/file/$(basename "$MODEL")"

echo "model: $(basename "$MODEL") ($(($(stat -c %s "$MODEL") >> 20)) MiB), $NODES nodes, context $CTX, $N tokens"
echo
echo "| slice from | node | weights MiB | KV MiB | peak RSS MiB | target MiB | within |"
echo "|---|---|---:|---:|---:|---:|---|"
over=0
for way in file transfer; do
    start_nodes "$way" "$NODES" "$TMP/$way" >/dev/null
    RELAIS_LOG=warn "$RELAIS" run -m "$MODEL" --cluster "$TMP/$way.yaml" --prompt-ids 1,1000,1001,1002 -n "$N" \
        --ignore-eos --temp 0 -t 1 --ctx "$CTX" >/dev/null 2>"$TMP/run.log" || { cat "$TMP/run.log" >&2; exit 1; }
    for i in "${!NODE_PIDS[@]}"; do
        log="$TMP/$way-node$((i + 1)).log"
        read -r w kv < <(sed -n 's/.*ready: \([0-9.]*\) MiB of weights, \([0-9.]*\) MiB of KV.*/\1 \2/p' "$log" | tail -1)
        peak=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/${NODE_PIDS[$i]}/status")
        row=$(awk -v w="$w" -v kv="$kv" -v p="$peak" 'BEGIN {
            t = w + kv + 64; printf "%.1f | %.1f | %.1f | %.1f | %s", w, kv, p, t, (p <= t ? "yes" : "NO") }')
        [[ $row == *NO ]] && over=1
        echo "| $way | $((i + 1)) | $row |"
    done
    stop_nodes >/dev/null
done
exit $over
