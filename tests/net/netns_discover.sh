#!/usr/bin/env bash
# Discovery on a LAN made of network namespaces: a bridge in a "switch"
# namespace, veth pairs to a coordinator namespace and three node
# namespaces (10.78.0.0/24, which exists nowhere else; UDP broadcasts stay on
# that bridge). The three nodes announce themselves (relais-node --beacon);
# the coordinator trusts two of them (their .pub in its trust folder).
#   - `relais discover --json` hears all three, marks two trusted;
#   - `relais trust FINGERPRINT --yes` writes the third's key, as the node's
#     own .pub holds it, into another folder;
#   - `relais serve` on a cluster file with `discover: true` plans over the
#     two trusted nodes and not the third, and answers;
#   - a trusted node killed: the next request re-plans over the other one;
#   - n3 trusted while serve runs (`relais trust NODE.pub`) and n2 restarted
#     on another port (its beacon says where): both are taken in by a
#     re-plan, and /health shows the three nodes ready.
# Needs root; only a kernel without network namespaces skips (exit 77).
#
# usage: netns_discover.sh RELAIS_BIN RELAIS_NODE_BIN MODEL.gguf
set -euo pipefail
relais=$1 node_bin=$2 model=$3
TAG="rd$$" RELAIS=$relais
. "$(dirname "$0")/netns_lib.sh" # WORK, PIDS, netns_host, netns_models; cleanup on exit
node_pid=()

fail() {
    echo "FAIL: $*"
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -15 "$f"; }; done
    exit 1
}
pass() { echo "ok - $*"; }

netns_host c 10.78.0.1
for i in 1 2 3; do netns_host "n$i" "10.78.0.1$i"; done

netns_models "$model"
mkdir -p "$WORK/trusted-nodes"
for i in 1 2 3; do "$relais" keygen -o "$WORK/node$i" >/dev/null; done
cp "$WORK/node1.pub" "$WORK/node2.pub" "$WORK/trusted-nodes/" # node3 is heard, not trusted

# start_node I PORT: node I in its namespace, announcing itself on UDP 7700.
start_node() {
    ip netns exec "$TAG-n$1" "$node_bin" --listen "tcp://10.78.0.1$1:$2" --key "$WORK/node$1.key" \
        --trust "$WORK/trusted" --models "$WORK/models" --cache "$WORK/cache$1" --threads 1 \
        --beacon 7700 --name "n$1" >>"$WORK/node$1.log" 2>&1 &
    PIDS+=($!)
    node_pid[$1]=$!
}
for i in 1 2 3; do start_node "$i" 7700; done
for i in 1 2 3; do
    for _ in $(seq 100); do grep -q "announcing 'n$i'" "$WORK/node$i.log" 2>/dev/null && break; sleep 0.1; done
    grep -q "announcing 'n$i'" "$WORK/node$i.log" || fail "node $i does not announce itself"
done

cat >"$WORK/cluster.yaml" <<EOF
coordinator:
  key: coordinator.key
  listen: 'tcp://10.78.0.1:*'
discover: true
EOF
incoord() { ip netns exec "$TAG-c" "$@"; }

# ---- relais discover ----
incoord "$relais" discover --cluster "$WORK/cluster.yaml" --seconds 2.5 --json >"$WORK/discover.json" \
    2>"$WORK/discover.log" || fail "relais discover heard nothing"
node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const by = Object.fromEntries(r.nodes.map(n => [n.name, n]));
    const ok = r.nodes.length === 3 && by.n1.trusted && by.n2.trusted && !by.n3.trusted && by.n1.usable &&
        !by.n3.usable && by.n3.why_not.includes("not trusted") && by.n2.address === "tcp://10.78.0.12:7700" &&
        by.n1.free_ram > 0 && by.n1.protocol >= 2 && /^[0-9a-f]{16}$/.test(by.n3.fingerprint);
    process.exit(ok ? 0 : 1);' "$WORK/discover.json" || fail "discover: $(cat "$WORK/discover.json")"
pass "relais discover lists the 3 nodes, n1 and n2 trusted, n3 not"
incoord "$relais" discover --cluster "$WORK/cluster.yaml" --seconds 1.5 >"$WORK/discover.txt" 2>/dev/null
grep -q "^n3 .*tcp://10.78.0.13:7700 .* no: key .* is not trusted" "$WORK/discover.txt" ||
    fail "discover's table: $(cat "$WORK/discover.txt")"
pass "the table marks n3 untrusted"

# ---- relais trust FINGERPRINT (another folder: serve below must not trust n3) ----
fp3=$(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(r.nodes.find(n => n.name === "n3").fingerprint)' "$WORK/discover.json")
incoord "$relais" trust --trust "$WORK/other" "${fp3:0:10}" --yes >"$WORK/trust.out" 2>"$WORK/trust.log" ||
    fail "relais trust $fp3: $(cat "$WORK/trust.out" "$WORK/trust.log")"
grep -q "^fingerprint  $fp3" "$WORK/trust.out" || fail "trust did not show the node: $(cat "$WORK/trust.out")"
cmp -s <(grep public-key "$WORK/other/n3.pub") <(grep public-key "$WORK/node3.pub") ||
    fail "the trusted certificate does not hold node3's key"
incoord "$relais" trust --trust "$WORK/other" "${fp3:0:10}" </dev/null >/dev/null 2>&1 && fail "trust without --yes off a terminal"
"$relais" trust --trust "$WORK/other" "$WORK/node3.pub" | grep -q "already trusted" || fail "node3.pub not seen as trusted"
pass "relais trust FINGERPRINT shows n3 and writes its key; again: already trusted"

# ---- serve with discover: true ----
ip netns exec "$TAG-c" "$relais" serve --port 0 --cluster "$WORK/cluster.yaml" -m "$model" --ctx 256 --max-sessions 2 -t 1 \
    2>"$WORK/serve.log" &
PIDS+=($!)
serve_pid=$!
for _ in $(seq 300); do grep -q "relais serve: ready" "$WORK/serve.log" && break; sleep 0.1; done
grep -q "relais serve: ready" "$WORK/serve.log" || fail "serve did not start"
port=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$WORK/serve.log")
req() { # req PATH [BODY]: the reply in $WORK/body
    if [ -n "${2:-}" ]; then
        incoord curl -s --max-time 120 -o "$WORK/body" -H 'Content-Type: application/json' -d "$2" \
            "http://127.0.0.1:$port$1"
    else
        incoord curl -s --max-time 30 -o "$WORK/body" "http://127.0.0.1:$port$1"
    fi
}
check() { node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    process.exit(eval(process.argv[2]) ? 0 : 1)' "$WORK/body" "$1"; }
req /health
check 'r.nodes.length === 2 && r.nodes.map(n => n.name).join() === "n1,n2" && r.nodes.every(n => n.state === "ready")' ||
    fail "health: $(cat "$WORK/body")"
grep -q "discovered node n3" "$WORK/serve.log" && fail "serve took the untrusted n3"
pass "serve with discover: true plans over n1 and n2, not the untrusted n3"
ask='{"prompt":"Once upon a time","max_tokens":8,"temperature":0}'
req /v1/completions "$ask"
check 'r.choices[0].text.length > 0' || fail "completion: $(cat "$WORK/body")"
cp "$WORK/body" "$WORK/first"

kill -9 "${node_pid[2]}"
wait "${node_pid[2]}" 2>/dev/null || true
req /v1/completions "$ask"
check 'r.choices[0].text.length > 0' || fail "completion after losing n2: $(cat "$WORK/body")"
grep -q "re-planning" "$WORK/serve.log" || fail "no re-plan after n2 was killed"
req /health
check 'r.nodes.find(n => n.name === "n1").layers !== undefined && r.nodes.find(n => n.name === "n2").state === "lost"' ||
    fail "health after the loss: $(cat "$WORK/body")"
pass "n2 killed: re-planned over n1, and served"

# ---- nodes that appear, and one that comes back elsewhere ----
"$relais" trust --cluster "$WORK/cluster.yaml" "$WORK/node3.pub" >/dev/null || fail "relais trust node3.pub"
start_node 2 7701
back=0
for _ in $(seq 40); do # bounded: the trust folder is read again every 5 s, beacons come every second
    req /v1/completions "$ask"
    check 'r.choices[0].text.length > 0' || fail "completion while nodes join: $(cat "$WORK/body")"
    req /health
    if check 'r.nodes.length === 3 && r.nodes.every(n => n.state === "ready")'; then back=1; break; fi
    sleep 0.5
done
[ "$back" = 1 ] || fail "n3 and n2 not taken in: $(cat "$WORK/body")"
grep -q "node n3 appeared at tcp://10.78.0.13:7700" "$WORK/serve.log" || fail "no log of n3 appearing"
grep -q "node n2 is back at tcp://10.78.0.12:7701" "$WORK/serve.log" || fail "no log of n2 at its new address"
req /v1/completions "$ask"
cmp -s "$WORK/body" "$WORK/first" || node -e '
    const a = JSON.parse(require("fs").readFileSync(process.argv[1])), b = JSON.parse(require("fs").readFileSync(process.argv[2]));
    process.exit(a.choices[0].text === b.choices[0].text ? 0 : 1)' "$WORK/body" "$WORK/first" ||
    fail "the answer on three nodes differs from the first: $(cat "$WORK/body")"
pass "n3 trusted while serving and n2 back on another port: both taken in, the same greedy answer"

kill "$serve_pid"
wait "$serve_pid" || fail "serve did not stop cleanly"
echo "PASS: discovery between namespaces"
