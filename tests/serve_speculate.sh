#!/usr/bin/env bash
# `relais serve --draft ngram` on loopback, in one process and on two
# relais-node processes: concurrent greedy clients, half of them turning
# speculation off ("speculative": false), each get the answer of a server
# without a draft, in the same micro-batches; /metrics counts the drafted
# and accepted ids; a bad "speculative" is refused.
#
# usage: serve_speculate.sh RELAIS RELAIS_NODE MODELS_DIR
set -euo pipefail
RELAIS=$1
NODE_BIN=$2
MODELS=$3
. "$(dirname "$0")/serve_lib.sh"
need node
MODEL=$MODELS/stories260K.gguf
N=6

# prompt I [SPEC]: a greedy completion that invites repetition; SPEC "false" opts out
body_of() {
    echo "{\"prompt\":\"The dog $1 liked to run. The dog $1 liked to play. The dog $1 liked to\",\"max_tokens\":60,\"temperature\":0${2:+,\"speculative\":$2}}"
}

# clients WHAT: N concurrent clients, the odd ones without speculation; compares with $TMP/plain*.
clients() {
    local i p same=0 pids=()
    for i in $(seq "$N"); do
        curl -s --max-time 120 -o "$TMP/spec$i.json" -d "$(body_of "$i" $([ $((i % 2)) = 1 ] && echo false))" \
            "http://127.0.0.1:$PORT/v1/completions" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    for i in $(seq "$N"); do
        [ "$(text_of "$TMP/spec$i.json")" = "$(cat "$TMP/plain$i")" ] && same=$((same + 1))
    done
    [ "$same" = "$N" ] && ok "$1: $N concurrent clients, half speculating, each got the answer without a draft" ||
        bad "$1: $same of $N answers as without a draft"
    req GET /metrics
    expect "$1: /metrics counts drafted and accepted ids" 200 '
        +s.match(/relais_draft_tokens_total (\d+)/)[1] > 0 && +s.match(/relais_draft_accepted_total (\d+)/)[1] > 0 &&
        +s.match(/relais_draft_accepted_total (\d+)/)[1] <= +s.match(/relais_draft_tokens_total (\d+)/)[1]'
}

start_server plain -m "$MODEL" --ctx 256 --max-sessions 8 -t 1
for i in $(seq "$N"); do
    req POST /v1/completions "$(body_of "$i")"
    text_of "$TMP/body" >"$TMP/plain$i"
done
req GET /metrics
expect "no draft: nothing drafted" 200 's.includes("relais_draft_tokens_total 0")'
stop_servers

start_server local -m "$MODEL" --ctx 256 --max-sessions 8 -t 1 --draft ngram --draft-max 6
clients "one process"
req POST /v1/completions '{"prompt":"x","max_tokens":2,"speculative":"no"}'
expect "a speculative that is not a boolean is refused" 400 'r.error.param === "speculative"'
stop_servers

start_nodes pair 2 "$MODELS"
start_server cluster --cluster "$TMP/pair.yaml" -m "$MODEL" --ctx 256 --max-sessions 8 -t 1 --draft ngram
clients "2 nodes"
finish
