#!/usr/bin/env bash
# `relais run --cluster` and `relais chat --cluster` survive a lost node,
# through the real binaries on loopback: three nodes, and the middle one
# killed while tokens are being generated. The coordinator re-plans the
# layers over the two that answer, feeds the session's ids again and goes
# on; the output is that of one process (f32 wire):
#  1. a greedy run (--json, the ids and top logits) of a float model: its
#     prompt went through sgemm, its decode steps through the row-by-row
#     kernels, and the replay must keep to each;
#  2. a seeded sampled run: the new head stage's sampler goes on with the
#     stream instead of starting it again; its layers were fixed by --layers,
#     which cannot name two nodes: the planner splits them instead, and says so;
#  3. a chat of two turns with the node killed during the second: the first
#     turn's tokens are fed again, the reply goes on.
# The kill waits for node 1 to have computed some of the generation's
# Forwards (it traces each one), then holds node 1 (SIGSTOP) so that the
# generation cannot end meanwhile, kills node 2 and lets node 1 go on.
# usage: cluster_recover.sh RELAIS RELAIS_NODE MODELS_DIR
set -u
relais=$1 node_bin=$2 models=$3
model=$models/tiny-q8_0.gguf
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cluster_lib.sh"

# kill_node2_after N: once node 1 has computed N more Forwards than it had
# when called, node 2 dies (SIGKILL) while node 1 is held.
kill_node2_after() {
    wait_forwards "$1" || fail "node 1 computed fewer than $1 Forwards in 30 s"
    kill -STOP "${pid[1]}"
    stop_node 2 KILL
    kill -CONT "${pid[1]}"
}

# expect_recovered LOG: the coordinator said it lost node 2 and went on over two nodes.
expect_recovered() {
    grep -q 'lost the connection to node node2.*re-planning over the nodes that answer' "$1" &&
        grep -q 're-planned over 2 nodes, resuming' "$1" || fail "no re-plan in $1: $(tail -5 "$1")"
}

# fresh_node2: node 2 started again (on a new port) and the cluster file of the three.
fresh_node2() {
    NODE_MODELS=$models start_node 2
    write_yaml 1 2 3
}

cluster_setup recover 3
NODE_MODELS=$models RELAIS_TRACE=1 start_node 1
NODE_MODELS=$models start_node 3
fresh_node2

# ---- 1 and 2: run --json, greedy and seeded ----
ids=1,300,301,302,303,304,305,306,307,308,309,310,311,312,313,314,315,316,317,318
for mode in greedy sampled; do
    args=(--prompt-ids $ids -n 800 --ignore-eos --top-logits 4 --json -t 1)
    layers=()
    [ $mode = greedy ] && args+=(-m "$models/tiny-f32.gguf" --temp 0) || args+=(-m "$model" --temp 0.8 --seed 7)
    [ $mode = greedy ] || layers=(--layers 0-1,2-2,3-3)
    "$relais" run "${args[@]}" >"$work/$mode-local.json" 2>/dev/null || fail "$mode: the single-process run failed"
    timeout 300 "$relais" run --cluster "$work/cluster.yaml" "${layers[@]}" "${args[@]}" >"$work/$mode.json" \
        2>"$work/$mode-coordinator.log" &
    run=$!
    kill_node2_after 40
    wait $run || fail "$mode: the cluster run failed across the lost node: $(tail -5 "$work/$mode-coordinator.log")"
    expect_recovered "$work/$mode-coordinator.log"
    cmp -s "$work/$mode-local.json" "$work/$mode.json" || fail "$mode: the output differs from one process"
    [ ${#layers[@]} = 0 ] || grep -q -- '--layers 0-1,2-2,3-3 names 3 nodes and 2 answer: the layers are planned' \
        "$work/$mode-coordinator.log" || fail "$mode: no word of --layers giving way to the planner"
    echo "ok: $mode run: node 2 killed mid-generation, output as one process"
    fresh_node2
done

# ---- 3: chat, node 2 killed during the second turn ----
chat_args=(-m "$model" --temp 0 -n 300 -t 1)
printf 'Hello there\nTell me more\n' | "$relais" chat "${chat_args[@]}" >"$work/chat-local.out" 2>/dev/null ||
    fail "the single-process chat failed"
mkfifo "$work/chat.in"
timeout 300 "$relais" chat --cluster "$work/cluster.yaml" "${chat_args[@]}" <"$work/chat.in" \
    >"$work/chat.out" 2>"$work/chat-coordinator.log" &
chat=$!
exec 3>"$work/chat.in"
echo 'Hello there' >&3
for _ in $(seq 600); do   # the first reply is done when the next prompt is out
    [ "$(grep -c '^> ' "$work/chat.out")" -ge 2 ] && break
    sleep 0.05
done
[ "$(grep -c '^> ' "$work/chat.out")" -ge 2 ] || fail "the first chat turn did not end in 30 s"
echo 'Tell me more' >&3
kill_node2_after 40
exec 3>&-
wait $chat || fail "the cluster chat failed across the lost node: $(tail -5 "$work/chat-coordinator.log")"
expect_recovered "$work/chat-coordinator.log"
cmp -s "$work/chat-local.out" "$work/chat.out" || fail "chat: the conversation differs from one process"
echo "ok: chat: node 2 killed during the second turn, conversation as one process"
