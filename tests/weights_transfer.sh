#!/usr/bin/env bash
# Weight transfer end to end, through the real binaries on loopback: nodes
# whose --models directory is empty get their slices from the coordinator.
#  1. cold: both nodes receive their slice; the output is bit-identical to one
#     process (f32 wire);
#  2. warm: a second run, and a run after restarting the nodes, send nothing
#     (the slices come from the nodes' caches, reported at Hello);
#  3. a damaged cached slice is caught by its hash and received again;
#  4. a node killed mid-transfer (a larger model, small chunks) resumes from
#     its partial file: the coordinator sends only the rest;
#  5. a node with too little memory (--max-memory) makes the plan fail before
#     anything is sent (relais plan and relais run --cluster).
# usage: weights_transfer.sh RELAIS RELAIS_NODE MODELS_DIR
set -u
relais=$1 node_bin=$2 models=$3
model=$models/tiny-q8_0.gguf
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cluster_lib.sh"

ids=1,300,301,302,303,304,305,306,307,308
# cluster_run NAME MODEL: a greedy run through the cluster; output in NAME.json, log in NAME.log.
# The split is pinned (tiny-q8_0 has 4 layers, big.gguf 48): a restarted node
# measures its speed again (node/node_caps.h), and a plan that moved would
# ask for other slices than the cached or partial ones these cases are about.
cluster_run() {
    local split=0-1,2-3
    [ "$2" = "$model" ] || split=0-23,24-47
    RELAIS_LOG=info timeout 300 "$relais" run --cluster "$work/cluster.yaml" -m "$2" --prompt-ids $ids -n 12 \
        --temp 0 --top-logits 8 --json --layers "$split" >"$work/$1.json" 2>"$work/$1.log"
}

same_as_local() {   # NAME MODEL
    "$relais" run -m "$2" --prompt-ids $ids -n 12 --temp 0 --top-logits 8 --json >"$work/local.json" 2>/dev/null ||
        fail "the single-process run failed"
    cmp -s "$work/local.json" "$work/$1.json" || fail "$1: the cluster's output differs from one process"
}

cluster_setup weights 2

# ---- 1. cold ----
start_node 1
start_node 2
write_yaml 1 2
cluster_run cold "$model" || fail "the cold run failed"
same_as_local cold "$model"
[ "$(grep -c 'does not hold the model: sending' "$work/cold.log")" = 2 ] || fail "cold: expected 2 transfers"
for i in 1 2; do
    grep -q 'slice received and verified' "$work/node$i.log" || fail "node $i did not verify its slice"
done
echo "ok 1 - cold: both slices sent, output identical to one process"

# ---- 2. warm: again, then after a restart of the nodes ----
cluster_run warm "$model" || fail "the warm run failed"
same_as_local warm "$model"
grep -q 'sending' "$work/warm.log" && fail "warm: weights were sent again"
for i in 1 2; do stop_node $i; start_node $i; done
write_yaml 1 2
cluster_run restart "$model" || fail "the run after a restart failed"
same_as_local restart "$model"
grep -q 'sending' "$work/restart.log" && fail "restart: weights were sent again"
[ "$(grep -c 'from the slice in its cache' "$work/restart.log")" = 2 ] ||
    fail "restart: the coordinator did not see the cached slices (Capabilities.slices)"
grep -q 'slice found in the cache' "$work/node1.log" || fail "restart: node 1 did not use its cache"
echo "ok 2 - warm and after a restart: nothing sent"

# ---- 3. a damaged cached slice ----
stop_node 1   # a running node keeps the slice it loaded: the check is at load time
slice=$(ls "$work"/cache1/slice-*.gguf | head -n 1)
printf '\x55' | dd of="$slice" bs=1 seek=$(($(stat -c %s "$slice") - 100)) conv=notrunc status=none
start_node 1
write_yaml 1 2
cluster_run damaged "$model" || fail "the run with a damaged slice failed"
same_as_local damaged "$model"
grep -q 'is damaged' "$work/node1.log" || fail "node 1 did not notice its damaged slice"
[ "$(grep -c 'does not hold the model: sending' "$work/damaged.log")" = 1 ] ||
    fail "damaged: expected exactly node 1's slice to be sent again"
echo "ok 3 - a damaged cached slice is caught by its hash and received again"

# ---- 4. a transfer interrupted by a kill, resumed ----
big=$work/big.gguf
"$relais" synth --preset small --layers 48 --type f32 -q -o "$big" || fail "synth"
big_sha=$(sha256sum "$big" | cut -c1-64)
stop_node 2
start_node 2 --weight-chunk-kib 16
write_yaml 1 2
(cluster_run interrupted "$big") &
run=$!
part=""
for _ in $(seq 600); do
    part=$(ls "$work"/cache2/slice-"$big_sha"-*-head.gguf 2>/dev/null | head -n 1)
    [ -n "$part" ] && [ "$(stat -c %s "$part")" -gt $((1 << 20)) ] && break
    sleep 0.01
done
[ -n "$part" ] || fail "node 2 never started receiving the larger model"
stop_node 2 KILL
wait $run && fail "the run survived the kill of a node"
kept=$(stat -c %s "$part")
[ -e "$part.sha256" ] && fail "the killed transfer finished before the kill: make the model larger"
start_node 2 --weight-chunk-kib 16
write_yaml 1 2
cluster_run resumed "$big" || fail "the resumed run failed"
same_as_local resumed "$big"
grep -q 'resuming the partial slice' "$work/node2.log" || fail "node 2 did not resume"
grep -q 'node node2 resumes its slice at' "$work/resumed.log" || fail "the coordinator did not resume"
sent=$(sed -n 's/.*sent node node2 \([0-9.]*\) MiB of weights.*/\1/p' "$work/resumed.log")
total=$(stat -c %s "$part")
awk -v s="$sent" -v k="$kept" -v t="$total" 'BEGIN { exit !(s * 1048576 <= t - k + 1048576) }' ||
    fail "resume sent $sent MiB, more than the $(((total - kept) >> 20)) MiB that were missing"
echo "ok 4 - killed at $((kept >> 10)) KiB of $((total >> 10)) KiB, resumed: $sent MiB sent"

# ---- 5. too little memory: the plan says so before anything is sent ----
"$node_bin" --key "$work/x.key" --trust "$work/trusted" --models "$work/empty" --cache "$work/x" --max-memory 3X \
    >"$work/badsize.out" 2>&1 && fail "--max-memory 3X accepted"
grep -q "not a size" "$work/badsize.out" || fail "--max-memory 3X: no clear message"
stop_node 2
start_node 2 --max-memory 1M
write_yaml 1 2
"$relais" plan --cluster "$work/cluster.yaml" -m "$big" >"$work/plan.out" 2>&1 && fail "plan: accepted a node with 1 MiB"
grep -qi 'does not fit\|not fit' "$work/plan.out" || fail "plan: no not-fit report"
cluster_run small_node "$big" && fail "run: accepted a node with 1 MiB"
grep -qi 'does not fit' "$work/small_node.log" || fail "run: no not-fit report"
grep -q 'assignment from' "$work/node2.log" && fail "an assignment reached the node with too little memory"
grep -q 'sending' "$work/small_node.log" && fail "weights were sent to a cluster that does not fit"
echo "ok 5 - a node with too little memory: the plan reports it, nothing is sent"
stop_node 1
stop_node 2
echo "PASS"
