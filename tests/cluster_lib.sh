# Shared by the shell tests that start relais-node processes on loopback and
# drive them with `relais run --cluster` or `relais serve --cluster`
# (weights_transfer.sh, cluster_trace.sh, cluster_loss.sh, cluster_chaos.sh):
# a scratch folder removed at exit with every node and server stopped,
# failure with the logs shown, keys, nodes on free ports, and the cluster
# file. The includer sets `relais` and `node_bin`, then calls
# cluster_setup.

declare -A pid addr

cleanup() {
    [ -z "${SERVE_PID:-}" ] || kill -9 "$SERVE_PID" 2>/dev/null
    for i in "${!pid[@]}"; do kill -CONT "${pid[$i]}" 2>/dev/null; kill "${pid[$i]}" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${RELAIS_KEEP_TEST_DIR:-}" ] && echo "kept $work" || rm -rf "$work"
}

fail() {
    echo "FAIL: $*"
    for f in "$work"/*.log; do echo "--- $f"; tail -n 25 "$f"; done
    exit 1
}

# cluster_setup NAME NODES: the scratch folder /tmp/relais-NAME.*, the
# coordinator's key (trusted by every node) and keys for nodes 1..NODES.
cluster_setup() {
    work=$(mktemp -d "/tmp/relais-$1.XXXXXX")
    trap cleanup EXIT
    mkdir -p "$work/trusted" "$work/empty"
    "$relais" keygen -o "$work/coordinator" >/dev/null || fail "keygen"
    cp "$work/coordinator.pub" "$work/trusted/"
    for i in $(seq "$2"); do "$relais" keygen -o "$work/node$i" >/dev/null || fail "keygen"; done
}

# start_node I [relais-node options...]: node I on a free loopback port, with
# its own cache and NODE_MODELS (default: an empty folder) as its models.
start_node() {
    local i=$1
    shift
    mkdir -p "$work/cache$i"
    rm -f "$work/node$i.log"   # a restarted node's address must not be read from the old log
    "$node_bin" --listen 'tcp://127.0.0.1:*' --key "$work/node$i.key" --trust "$work/trusted" \
        --models "${NODE_MODELS:-$work/empty}" --cache "$work/cache$i" --threads 1 "$@" >"$work/node$i.log" 2>&1 &
    pid[$i]=$!
    for _ in $(seq 200); do
        addr[$i]=$(sed -n 's/.*listening on \(tcp:[^,]*\),.*/\1/p' "$work/node$i.log" 2>/dev/null)
        [ -n "${addr[$i]}" ] && return 0
        kill -0 "${pid[$i]}" 2>/dev/null || fail "node $i did not start"
        sleep 0.1
    done
    fail "node $i did not start listening within 20 s"
}

# stop_node I [SIGNAL]: a node stopped by SIGTERM must exit 0 (no crash, no
# sanitizer report, no leak).
stop_node() {
    local sig=${2:-TERM} st=0
    kill "-$sig" "${pid[$1]}" 2>/dev/null
    wait "${pid[$1]}" 2>/dev/null || st=$?
    unset "pid[$1]"
    [ "$sig" != TERM ] || [ "$st" = 0 ] || fail "node $1 did not stop cleanly (status $st)"
}

# write_yaml NODE...: the cluster file for these nodes, in this order.
write_yaml() {
    {
        echo "coordinator:"
        echo "  key: $work/coordinator.key"
        echo "  listen: 'tcp://127.0.0.1:*'"   # bound, then named to the nodes: no port chosen by chance
        echo "nodes:"
        for i in "$@"; do
            printf '  - address: %s\n    public_key: %s\n    name: node%s\n' "${addr[$i]}" "$work/node$i.pub" "$i"
        done
    } >"$work/cluster.yaml"
}

# serve_start ARGS...: `relais serve --cluster cluster.yaml ARGS` on a free
# port (PORT, SERVE_PID), its log in serve.log; fails after 60 s.
serve_start() {
    # each line stamped with its time (SERVE_STAMPS=1): what a chaos round's lines are
    if [ -n "${SERVE_STAMPS:-}" ]; then
        "$relais" serve --port 0 --cluster "$work/cluster.yaml" "$@" 2> >(while IFS= read -r l; do
            printf '%s %s\n' "$(date +%T.%N | cut -c1-12)" "$l"; done >"$work/serve.log") &
    else
        "$relais" serve --port 0 --cluster "$work/cluster.yaml" "$@" 2>"$work/serve.log" &
    fi
    SERVE_PID=$!
    for _ in $(seq 600); do
        grep -q 'relais serve: ready' "$work/serve.log" && break
        kill -0 "$SERVE_PID" 2>/dev/null || fail "serve did not start"
        sleep 0.1
    done
    PORT=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$work/serve.log")
    [ -n "$PORT" ] || fail "serve was not ready in 60 s"
}

# serve_stop: SIGTERM, then SIGKILL after 20 s.
serve_stop() {
    kill "$SERVE_PID" 2>/dev/null
    for _ in $(seq 200); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVE_PID" 2>/dev/null
    wait "$SERVE_PID" 2>/dev/null
}

# stream_text FILE: "text <json>" for a whole stream, "error <message>" for
# one that ended with an error (SSE error event or an HTTP error reply),
# "broken" for anything else.
stream_text() {
    node -e '
        const s = require("fs").readFileSync(process.argv[1], "utf8");
        try { const r = JSON.parse(s); if (r.error) { console.log("error " + r.error.message); process.exit(0); } } catch (e) {}
        let text = "", done = false;
        for (const l of s.split("\n")) {
            if (l === "data: [DONE]") { done = true; continue; }
            if (!l.startsWith("data: ")) continue;
            const ev = JSON.parse(l.slice(6));
            if (ev.error) { console.log("error " + ev.error.message); process.exit(0); }
            if (ev.choices && ev.choices[0].text) text += ev.choices[0].text;
        }
        console.log(done ? "text " + JSON.stringify(text) : "broken");' "$1" 2>/dev/null || echo broken
}

# forwards: the Forwards node 1 has computed (its trace lines: nodes started
# with tracing). wait_forwards N: returns once node 1 has computed N more
# than when called, waiting at most 30 s; non-zero when it did not.
forwards() { grep -c 'relais: trace forward ' "$work/node1.log"; }
wait_forwards() {
    local want=$(($(forwards) + $1))
    for _ in $(seq 600); do
        [ "$(forwards)" -ge "$want" ] && return 0
        sleep 0.05
    done
    [ "$(forwards)" -ge "$want" ]
}
