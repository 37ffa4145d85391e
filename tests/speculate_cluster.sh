#!/usr/bin/env bash
# Speculative decoding through the pipeline, with the real binaries on
# loopback: the output with a draft is that of one process without one.
#  1. greedy runs on 1, 2 and 4 nodes, drafts from prompt lookup (ngram),
#     from the target's own output (all accepted) and from a spoiled copy of
#     it (every fifth id wrong: rejections, so truncation on every node), on a
#     quantized model and a sliding-window one (rollback past the ring);
#  2. a seeded sampled run with a draft: one process and 3 nodes sample the
#     same ids (each position of a verified draft with the session's sampler),
#     with prompt lookup and with a draft model that samples (its q sent
#     with the segment, ids kept by min(1, p/q));
#  3. chat with prompt lookup, one process and 3 nodes: the conversation of
#     one process without a draft;
#  4. a node killed while a run verifies drafts: re-planned over the other
#     two, the micro-batch in flight replayed as a verifying one, the output
#     that of one process.
# usage: speculate_cluster.sh RELAIS RELAIS_NODE MODELS_DIR
set -u
relais=$1 node_bin=$2 models=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cluster_lib.sh"

prompt=1,300,301,302,303,304,305,306,300,301,302,303,304,305,306,300,301
# ids_of JSON: prompt and generated ids as one list; spoil LIST: every fifth id changed.
ids_of() { sed 's/.*"prompt_ids":\[\([0-9,]*\)\],"greedy_ids":\[\([0-9,]*\)\].*/\1,\2/' "$1"; }
spoil() { echo "$1" | tr ',' '\n' | awk '{ printf "%s%d", (NR > 1 ? "," : ""), (NR % 5 ? $1 : ($1 + 1) % 500) }'; }

cluster_setup speculate 4
for i in 1 2 3 4; do NODE_MODELS=$models RELAIS_TRACE=1 start_node $i; done

# ---- 1: greedy, 1, 2 and 4 nodes ----
for m in tiny-q8_0 tiny-swa-q8_0; do
    args=(-m "$models/$m.gguf" --prompt-ids $prompt -n 60 --temp 0 --json -t 1)
    "$relais" run "${args[@]}" >"$work/$m.json" 2>/dev/null || fail "$m: the single-process run failed"
    good=$(ids_of "$work/$m.json")
    bad=$(spoil "$good")
    for nodes in "1" "1 2" "1 2 3 4"; do
        write_yaml $nodes
        for draft in ngram "ids:$good" "ids:$bad"; do
            for k in 1 4 8; do
                what="$m, nodes $nodes, draft ${draft:0:5}, k=$k"
                "$relais" run --cluster "$work/cluster.yaml" "${args[@]}" --draft "$draft" --draft-max $k \
                    >"$work/spec.json" 2>"$work/coordinator.log" || fail "$what: $(tail -3 "$work/coordinator.log")"
                cmp -s "$work/$m.json" "$work/spec.json" || fail "$what: the output differs from one process"
                grep -q 'accepted [0-9]*% of' "$work/coordinator.log" || fail "$what: no acceptance line"
            done
        done
        echo "ok: $m greedy on nodes $nodes: every draft gives the output of one process"
    done
done

# ---- 2: seeded sampling, one process and 3 nodes ----
write_yaml 1 2 3
args=(-m "$models/tiny-q8_0.gguf" --prompt-ids $prompt -n 80 --temp 0.9 --seed 11 --json -t 1 --draft ngram)
"$relais" run "${args[@]}" >"$work/sampled-local.json" 2>/dev/null || fail "sampled: the single-process run failed"
"$relais" run --cluster "$work/cluster.yaml" "${args[@]}" >"$work/sampled.json" 2>"$work/coordinator.log" ||
    fail "sampled: $(tail -3 "$work/coordinator.log")"
cmp -s "$work/sampled-local.json" "$work/sampled.json" || fail "sampled: 3 nodes sampled other ids than one process"
echo "ok: a seeded sampled run with a draft samples the same ids on 3 nodes as in one process"
# a draft model that samples: its q travels with the verifying segment
# (Sampling.draft) and the head keeps ids by min(1, p/q); the same ids as
# in one process, where the same rule runs (a node applying the equality
# rule instead would sample others)
"$relais" synth --cut-from "$models/tiny-q8_0.gguf" --layers 1 -o "$work/draft.gguf" >/dev/null 2>&1 ||
    fail "synth --cut-from failed"
args=(-m "$models/tiny-q8_0.gguf" --prompt-ids $prompt -n 80 --temp 0.9 --seed 11 --json -t 1 --draft "$work/draft.gguf")
"$relais" run "${args[@]}" >"$work/pq-local.json" 2>"$work/pq-local.log" || fail "p/q: the single-process run failed"
"$relais" run --cluster "$work/cluster.yaml" "${args[@]}" >"$work/pq.json" 2>"$work/coordinator.log" ||
    fail "p/q: $(tail -3 "$work/coordinator.log")"
cmp -s "$work/pq-local.json" "$work/pq.json" || fail "p/q: 3 nodes sampled other ids than one process"
grep -q "accepted [1-9][0-9]*%" "$work/coordinator.log" || fail "p/q: no drafted id accepted on 3 nodes"
echo "ok: a sampled draft model's ids, kept by min(1, p/q): the same on 3 nodes as in one process ($(grep -o 'accepted [0-9]*%' "$work/coordinator.log"))"

# ---- 3: chat ----
chat_args=(-m "$models/stories260K.gguf" --temp 0 -n 120 -t 1)
turns='Hello there\nTell me more about the dog and the dog and the dog\n'
printf "$turns" | "$relais" chat "${chat_args[@]}" >"$work/chat-local.out" 2>/dev/null || fail "chat: one process failed"
printf "$turns" | "$relais" chat "${chat_args[@]}" --draft ngram >"$work/chat-spec.out" 2>/dev/null ||
    fail "chat: one process with a draft failed"
printf "$turns" | "$relais" chat --cluster "$work/cluster.yaml" "${chat_args[@]}" --draft ngram >"$work/chat.out" \
    2>"$work/coordinator.log" || fail "chat on 3 nodes: $(tail -3 "$work/coordinator.log")"
cmp -s "$work/chat-local.out" "$work/chat-spec.out" || fail "chat: a draft changed the conversation in one process"
cmp -s "$work/chat-local.out" "$work/chat.out" || fail "chat: a draft changed the conversation on 3 nodes"
echo "ok: chat with prompt lookup, one process and 3 nodes: the conversation without a draft"

# ---- 4: node 2 killed while drafts are verified ----
m=tiny-q8_0
args=(-m "$models/$m.gguf" --prompt-ids $prompt -n 1500 --ignore-eos --temp 0 --json -t 1)
"$relais" run "${args[@]}" >"$work/long.json" 2>/dev/null || fail "long: the single-process run failed"
bad=$(spoil "$(ids_of "$work/long.json")")
timeout 300 "$relais" run --cluster "$work/cluster.yaml" "${args[@]}" --draft "ids:$bad" --draft-max 4 \
    >"$work/recovered.json" 2>"$work/coordinator.log" &
run=$!
wait_forwards 40 || true # on regardless: the loss is the test
kill -STOP "${pid[1]}"
stop_node 2 KILL
kill -CONT "${pid[1]}"
wait $run || fail "recover: the run failed across the lost node: $(tail -5 "$work/coordinator.log")"
grep -q 're-planned over 2 nodes, resuming' "$work/coordinator.log" || fail "recover: no re-plan"
cmp -s "$work/long.json" "$work/recovered.json" || fail "recover: the output differs from one process"
echo "ok: node 2 killed while drafts were verified: re-planned, output as one process"
