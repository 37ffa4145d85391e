#!/usr/bin/env bash
# RELAIS_TRACE end to end, through the real binaries on loopback: with the
# trace on in the coordinator and two nodes, the output is still
# bit-identical to one process (f32 wire); every node logs one complete trace
# line per Forward (its times in order, the computing thread's CPU time
# within its compute time); and bench/trace_hops.awk joins the lines of the
# three processes into a table of every decode token through both stages.
# usage: cluster_trace.sh RELAIS RELAIS_NODE MODELS_DIR
set -u
relais=$1 node_bin=$2 models=$3
here=$(cd "$(dirname "$0")" && pwd)
model=$models/tiny-q8_0.gguf
. "$here/cluster_lib.sh"

cluster_setup trace 2
for i in 1 2; do NODE_MODELS=$models RELAIS_TRACE=1 start_node $i; done
write_yaml 1 2

args=(-m "$model" --prompt-ids 1,300,301,302,303,304,305,306 -n 10 --ignore-eos --temp 0 --top-logits 8 --json -t 1)
"$relais" run "${args[@]}" >"$work/local.json" 2>/dev/null || fail "the single-process run failed"
RELAIS_TRACE=1 timeout 300 "$relais" run --cluster "$work/cluster.yaml" "${args[@]}" >"$work/traced.json" \
    2>"$work/coordinator.log" || fail "the traced cluster run failed"
cmp -s "$work/local.json" "$work/traced.json" || fail "the traced cluster's output differs from one process"

# One line per Forward on each node: the prompt and 9 decode steps (the
# 10th token comes from the last step's Result), times in order.
for i in 1 2; do
    n=$(grep -c 'relais: trace forward ' "$work/node$i.log")
    [ "$n" = 10 ] || fail "node $i logged $n trace lines for 10 Forwards"
    bad=$(awk '/relais: trace forward / {
        for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
        if (v["code"] != 0 || !(v["wake"] > 0 && v["wake"] <= v["read"] && v["read"] <= v["compute"] &&
            v["compute"] <= v["send"] && v["send"] <= v["sent"] && v["cpu"] >= 0 &&
            v["cpu"] <= v["send"] - v["compute"] + 1000)) print }' "$work/node$i.log")
        # (+1 ms: the two clocks tick at different granularities)
    [ -z "$bad" ] || fail "node $i: a trace line out of order: $bad"
done
[ "$(grep -c 'relais: trace send ' "$work/coordinator.log")" = 10 ] || fail "the coordinator did not trace its sends"
[ "$(grep -c 'relais: trace result ' "$work/coordinator.log")" = 10 ] || fail "the coordinator did not trace Results"

awk -f "$here/../bench/trace_hops.awk" "$work/coordinator.log" "$work/node1.log" "$work/node2.log" \
    >"$work/table.txt" 2>&1 || fail "trace_hops.awk: $(cat "$work/table.txt")"
grep -q '^9 decode tokens through 2 stages' "$work/table.txt" || fail "trace_hops.awk: $(cat "$work/table.txt")"
for part in '| token |' '| - links, all 3 |' '| link to layers 0-' '| link to the coordinator |'; do
    grep -qF "$part" "$work/table.txt" || fail "trace_hops.awk printed no '$part' row: $(cat "$work/table.txt")"
done
echo "ok: traced output bit-identical, 10 complete trace lines per node, 9 decode tokens joined"
