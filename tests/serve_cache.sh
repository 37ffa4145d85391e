#!/usr/bin/env bash
# The prompt cache of `relais serve`, past the sliding window, at every KV
# type (f32, f16, q8_0), in one process and on 3 relais-node processes.
#
# The model has a window of 16 on 3 layers of 4. A conversation of token-id
# prompts grows past it turn by turn (8 ids, then 9 more each turn); turns
# alternate between a longer answer (the next turn shares only the prompt,
# so the session is cut back: by 19 positions after a turn of LONG, more
# than the 16 slots of slack a ring keeps beyond its window, so once the
# rings have wrapped that is a clear and a recomputation; by 5 after a turn
# of SHORT, within the slack, so a truncation even across the wrap) and one
# (the session
# then holds exactly its prompt, so the next turn reuses all of it, across
# the wrapped rings). Greedy and seeded
# turns alternate. Every configuration must give the answers of one process
# without the cache, bit for bit; with the cache the one-token turns' next
# turns report their whole previous prompt as cached_tokens, and /metrics
# counts the hits. Clients at once on the cluster take their cached sessions
# while other micro-batches are in flight. Then a node is killed between two
# turns: the re-planned cluster answers as one process still.
#
# usage: serve_cache.sh RELAIS RELAIS_NODE
set -euo pipefail
RELAIS=$1
NODE_BIN=$2
. "$(dirname "$0")/serve_lib.sh"
need node

W=16
SLACK=16 # RL_KV_SLACK: a ring's slots beyond its window (engine/model/kv.h)
LONG=20  # answer tokens of turns 0, 4, 8...: the cut-back (LONG - 1) exceeds SLACK + 1
SHORT=6  # answer tokens of turns 2, 6...: the cut-back is within the slack
mkdir -p "$TMP/models"
MODEL=$TMP/models/swa.gguf
"$RELAIS" synth --preset mistral-7b --layers 4 --dim 256 --heads 4 --kv-heads 2 --head-dim 64 --ffn 512 \
    --vocab 2000 --type q8_0 --ctx 1024 --swa-window $W --swa-period 4 -q -o "$MODEL"
TURNS=9

# ids I N : N token ids, a JSON list's inside, different for each I
ids() { seq "$2" | awk -v i="$1" '{printf "%s%d", (NR > 1 ? "," : ""), 100 + (i * 131 + NR * 37) % 1800}'; }

# converse NAME [FROM [TO]] : turns FROM..TO (0..TURNS-1) of the
# conversation against the server on $PORT; each turn's text appended to
# $TMP/NAME.texts, "cached_tokens prompt_tokens" to $TMP/NAME.cached.
converse() {
    local name=$1 from=${2:-0} to=${3:-$((TURNS - 1))} t prompt max temp
    prompt=$(ids 0 8)
    for t in $(seq 1 "$from"); do prompt="$prompt,$(ids "$t" 9)"; done
    [ "$from" -gt 0 ] || { : >"$TMP/$name.texts"; : >"$TMP/$name.cached"; }
    for t in $(seq "$from" "$to"); do
        max=$((t % 2 ? 1 : t % 4 ? SHORT : LONG))
        temp=$((t % 4 < 2 ? 0 : 1))
        req POST /v1/completions "{\"prompt\":[$prompt],\"max_tokens\":$max,\"temperature\":$temp,\"seed\":$t}"
        [ "$STATUS" = 200 ] || { bad "$name turn $t: status $STATUS $(head -c 300 "$TMP/body")"; return; }
        cp "$TMP/body" "$TMP/$name.turn$t"
        prompt="$prompt,$(ids $((t + 1)) 9)"
    done
    # one node for all the replies: it starts slowly on a loaded machine
    node -e 'const fs = require("fs");
        for (const f of process.argv.slice(3)) {
            const r = JSON.parse(fs.readFileSync(f, "utf8"));
            fs.appendFileSync(process.argv[1], JSON.stringify(r.choices[0].text) + "\n");
            fs.appendFileSync(process.argv[2], r.usage.prompt_tokens_details.cached_tokens + " " + r.usage.prompt_tokens + "\n");
        }' "$TMP/$name.texts" "$TMP/$name.cached" $(seq -f "$TMP/$name.turn%g" "$from" "$to")
}

# The cached_tokens a cached run must report: after a one-token turn (odd),
# the whole previous prompt; after a longer turn of m + 1 tokens (even), the
# previous prompt when the cache takes the session (the prompt is at least
# half of the m + prompt positions it holds) and the cut is exact (no ring
# wrapped: prompt + m <= W + SLACK, or the cut within the slack: m <= SLACK
# + 1), else 0 (cleared, recomputed).
expect_cached() {
    awk -v cap=$((W + SLACK)) -v slack=$SLACK -v long=$LONG -v short=$SHORT '{ n = $2; t = NR - 1;
        if (t == 0) want = 0; else if ((t - 1) % 2 == 1) want = prev;
        else { m = ((t - 1) % 4 ? short : long) - 1;
               want = (prev >= m && (prev + m <= cap || m <= slack + 1)) ? prev : 0 }
        print want " " n; prev = n }' "$1"
}

check_run() { # NAME WHAT CACHED(0/1)
    if cmp -s "$TMP/$1.texts" "$TMP/ref-$KV.texts"; then ok "$2: the answers of one process without the cache"
    else bad "$2: answers differ: $(paste -d' ' "$TMP/$1.texts" "$TMP/ref-$KV.texts" | head -5)"; fi
    if [ "$3" = 1 ]; then
        if [ "$(cat "$TMP/$1.cached")" = "$(expect_cached "$TMP/$1.cached")" ]; then
            ok "$2: cached_tokens as expected (reuse across the wrapped window, clears where cut inside it)"
        else bad "$2: cached_tokens $(tr '\n' '|' <"$TMP/$1.cached") want $(expect_cached "$TMP/$1.cached" | tr '\n' '|')"; fi
        req GET /metrics
        expect "$2: /metrics counts the cache hits and reused tokens" 200 '
            +s.match(/relais_cache_hits_total (\d+)/)[1] >= 4 && +s.match(/relais_cache_tokens_total (\d+)/)[1] > 4 * '"$W"
    elif grep -qv '^0 ' "$TMP/$1.cached"; then
        bad "$2: cached_tokens reported without a cache"
    fi
}

start_nodes trio 3 "$TMP/models"
for KV in f32 f16 q8_0; do
    start_server "ref-$KV" -m "$MODEL" --ctx 512 --max-sessions 2 -t 1 --kv-type $KV --cache-mem 0
    converse "ref-$KV"
    stop_servers >/dev/null
    start_server "one-$KV" -m "$MODEL" --ctx 512 --max-sessions 2 -t 1 --kv-type $KV
    converse "one-$KV"
    check_run "one-$KV" "one process, KV $KV, cache" 1
    stop_servers >/dev/null
    start_server "trio-$KV" --cluster "$TMP/trio.yaml" -m "$MODEL" --ctx 512 --max-sessions 2 -t 1 --kv-type $KV
    converse "trio-$KV"
    check_run "trio-$KV" "3 nodes, KV $KV, cache" 1
    stop_servers >/dev/null
done
start_server "trio-nocache" --cluster "$TMP/trio.yaml" -m "$MODEL" --ctx 512 --max-sessions 2 -t 1 --kv-type q8_0 \
    --cache-mem 0
converse "trio-nocache"
KV=q8_0 check_run "trio-nocache" "3 nodes, KV q8_0, no cache" 0
stop_servers >/dev/null

# ---- clients at once: cached sessions taken while others' micro-batches are in flight ----
KV=f16
start_server "lost" --cluster "$TMP/trio.yaml" -m "$MODEL" --ctx 512 --max-sessions 4 -t 1 --kv-type $KV
for i in $(seq 4); do
    req POST /v1/completions "$(prompt_of "$i")"
    text_of "$TMP/body" >"$TMP/alone$i"
done
concurrent_clients 4 "on 3 nodes, each taking its cached session"

# ---- a node lost between two turns: its caches go, the answers stay ----
# Killed after the one-token turn 5, whose session the next turn reuses whole.
converse "lost" 0 5
kill -9 "${NODE_PIDS[2]}"
wait "${NODE_PIDS[2]}" 2>/dev/null || true
NODE_PIDS=("${NODE_PIDS[0]}" "${NODE_PIDS[1]}")
converse "lost" 6
if cmp -s "$TMP/lost.texts" "$TMP/ref-$KV.texts"; then
    ok "node3 killed between turns: re-planned, every turn before and after as one process"
else
    bad "across the node loss: $(tr '\n' '|' <"$TMP/lost.texts") want $(tr '\n' '|' <"$TMP/ref-$KV.texts")"
fi
grep -q 're-planning' "$TMP/lost.log" && ok "the server re-planned after the loss" || bad "no re-plan: $(tail -3 "$TMP/lost.log")"
finish
