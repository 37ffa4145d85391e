# Shared by the serving test scripts (sourced): start `relais serve` on a
# free loopback port with bounded waits, always stop it, count results, and
# check JSON replies with node. Nothing is skipped: a missing tool fails.
#
# Expects RELAIS (the binary) to be set. Sourcing makes TMP, a scratch
# folder, removed at exit after every server and node is stopped
# (serve_cleanup; a script with more to undo sets an EXIT trap of its own
# that ends with serve_cleanup).

PASS=0
FAIL=0
SERVER_PIDS=()
SERVER_NAMES=()

TMP=$(mktemp -d)
serve_cleanup() {
    stop_servers
    stop_nodes
    rm -rf "$TMP"
}
trap serve_cleanup EXIT

# need TOOL... : fails the script, before any check, when a tool is missing.
need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "FAIL - $t is needed"; echo "0 passed, 1 failed"; exit 1; }
    done
}

ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $1"; }

# Stops every server; one that does not exit cleanly (exit code 0 after
# SIGTERM: no crash, no sanitizer report, no leak) is a failure.
stop_servers() {
    local i p rc
    for p in "${SERVER_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for i in "${!SERVER_PIDS[@]}"; do
        p=${SERVER_PIDS[$i]}
        # bounded: a server that does not stop in 20 s is killed
        for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        rc=0
        wait "$p" 2>/dev/null || rc=$?
        if [ "$rc" = 0 ]; then
            ok "server ${SERVER_NAMES[$i]} shut down cleanly"
        else
            bad "server ${SERVER_NAMES[$i]} exited with code $rc"
            tail -30 "$TMP/${SERVER_NAMES[$i]}.log"
        fi
    done
    SERVER_PIDS=()
    SERVER_NAMES=()
}

# start_nodes NAME N MODELS_DIR : N relais-node processes on free loopback
# ports serving MODELS_DIR, with keys from `relais keygen`, and
# $TMP/NAME.yaml, the cluster file naming them in order (NODE_BIN is the
# relais-node binary; IO_CPU, when set, is the nodes' --io-cpu and the
# coordinator's io_cpu). stop_nodes fails the test for a node that does not
# exit cleanly.
NODE_PIDS=()
start_nodes() {
    local name=$1 n=$2 models=$3 i ep
    mkdir -p "$TMP/trusted"
    if [ ! -f "$TMP/coordinator.key" ]; then
        "$RELAIS" keygen -o "$TMP/coordinator" >/dev/null
        cp "$TMP/coordinator.pub" "$TMP/trusted/"
    fi
    printf "coordinator:\n  key: %s\n  listen: 'tcp://127.0.0.1:*'\n" "$TMP/coordinator.key" >"$TMP/$name.yaml"
    [ -z "${IO_CPU:-}" ] || printf '  io_cpu: %s\n' "$IO_CPU" >>"$TMP/$name.yaml"
    echo "nodes:" >>"$TMP/$name.yaml"
    for i in $(seq "$n"); do
        "$RELAIS" keygen -o "$TMP/$name-node$i" >/dev/null
        "$NODE_BIN" --listen tcp://127.0.0.1:0 --key "$TMP/$name-node$i.key" --trust "$TMP/trusted" \
            --models "$models" --cache "$TMP/$name-cache$i" --threads 1 ${IO_CPU:+--io-cpu "$IO_CPU"} \
            >"$TMP/$name-node$i.log" 2>&1 &
        NODE_PIDS+=($!)
        ep=
        for _ in $(seq "${NODE_START_TRIES:-300}"); do # tenths of a second (a node hashes its models first)
            # the log is created by the node's shell after the fork: not there yet means no address yet
            ep=$(sed -n 's|.*listening on \(tcp://[0-9.:]*\).*|\1|p' "$TMP/$name-node$i.log" 2>/dev/null || true)
            [ -n "$ep" ] && break
            sleep 0.1
        done
        [ -n "$ep" ] || { echo "node $name-node$i did not start:" >&2; cat "$TMP/$name-node$i.log" >&2; return 1; }
        printf '  - address: %s\n    public_key: %s\n    name: node%s\n' "$ep" "$TMP/$name-node$i.pub" "$i" \
            >>"$TMP/$name.yaml"
    done
}

stop_nodes() {
    local p rc
    for p in "${NODE_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${NODE_PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        rc=0
        wait "$p" 2>/dev/null || rc=$?
        [ "$rc" = 0 ] && ok "relais-node $p shut down cleanly" || bad "relais-node $p exited with code $rc"
    done
    NODE_PIDS=()
}

# start_server NAME ARGS... : sets PORT and SERVER_PID, waits for "ready" (60 s).
start_server() {
    local name=$1
    shift
    # a small sanitizer quarantine, so freed memory shows in the RSS checks as it would without one
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16" \
        "$RELAIS" serve --port 0 "$@" 2>"$TMP/$name.log" &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
    SERVER_NAMES+=("$name")
    for _ in $(seq 600); do
        if grep -q "relais serve: ready" "$TMP/$name.log" 2>/dev/null; then # made by the shell after the fork
            PORT=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$TMP/$name.log")
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "server $name did not start:" >&2
    cat "$TMP/$name.log" >&2
    return 1
}

# req METHOD PATH [BODY] [curl args...] : body of the reply in $TMP/body, status in $STATUS.
req() {
    local method=$1 path=$2 body=${3:-} rc=0
    shift 3 2>/dev/null || shift $#
    local auth=()
    [ -n "${KEY:-}" ] && auth=(-H "Authorization: Bearer $KEY")
    if [ -n "$body" ]; then
        STATUS=$(printf '%s' "$body" | curl -s -o "$TMP/body" -w '%{http_code}' --max-time 120 -X "$method" \
            "${auth[@]}" -H 'Content-Type: application/json' --data-binary @- "$@" "http://127.0.0.1:$PORT$path") || rc=$?
    else
        STATUS=$(curl -s -o "$TMP/body" -w '%{http_code}' --max-time 120 -X "$method" "${auth[@]}" "$@" \
            "http://127.0.0.1:$PORT$path") || rc=$?
    fi
    # a caller may expect no reply (req ... || ...); one that does not stops
    # the script (set -e), and this line says why
    [ "$rc" = 0 ] || echo "# req $method $path: curl exit $rc (28: no complete reply in time)" >&2
    return "$rc"
}

# js EXPR : evaluates EXPR with r = the JSON reply (or s = the raw text); true passes.
js() {
    BODY="$TMP/body" EXPR="$1" node -e '
        const fs = require("fs");
        const s = fs.readFileSync(process.env.BODY, "utf8");
        let r = null;
        try { r = JSON.parse(s); } catch (e) {}
        // events of an SSE reply, parsed
        const ev = s.split("\n").filter(l => l.startsWith("data: ") && l !== "data: [DONE]").map(l => JSON.parse(l.slice(6)));
        process.exit(eval(process.env.EXPR) ? 0 : 1);'
}

# jval FILE EXPR : prints EXPR evaluated with r = the JSON in FILE.
jval() {
    node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(eval(process.argv[2]))' "$1" "$2"
}

# expect NAME STATUS EXPR : the last reply had STATUS and EXPR holds.
expect() {
    local name=$1 want=$2 expr=${3:-true}
    if [ "$STATUS" = "$want" ] && js "$expr"; then
        ok "$name"
    else
        bad "$name (status $STATUS, want $want; $expr): $(head -c 400 "$TMP/body")"
    fi
}

# ---- many clients at once (serve_http.sh, serve_cluster.sh) ----

# prompt_of I : client I's /v1/completions request, CLIENT_TOKENS (16) long.
prompt_of() {
    echo "{\"prompt\":\"Client $1 asks about the number $(( $1 * 7919 % 1000 )) and the sea\",\"max_tokens\":${CLIENT_TOKENS:-16},\"temperature\":0}"
}
# text_of FILE : the text of a completions reply in FILE, as a JSON string.
text_of() { jval "$1" 'JSON.stringify(r.choices[0].text)'; }
# rss : the server's anonymous resident memory in kB (heap, stacks, private
# copies): what a leak or retained per-request state grows. Pages of the
# mapped model file are left out; they grow as more of the vocabulary's
# embedding rows are read, and the kernel can drop them at any time.
rss() { awk '/RssAnon/ {print $2}' "/proc/$SERVER_PID/status"; }

# check_rss_back BEFORE : the server's anonymous RSS is back near BEFORE (kB):
# within 10% + 16 MiB, plus, under AddressSanitizer, the 16 MiB of freed
# memory its quarantine holds by design (quarantine_size_mb in start_server).
# Its whole VmRSS is printed beside it.
check_rss_back() {
    local now total slack=16384
    ldd "$RELAIS" 2>/dev/null | grep -q libasan && slack=$((slack + 16384))
    now=$(rss)
    total=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
    echo "# anonymous RSS before the clients $1 kB, after $now kB (VmRSS now $total kB; slack $slack kB)"
    if [ "$now" -le $(($1 + $1 / 10 + slack)) ]; then
        ok "RSS back near its level ($1 -> $now kB anonymous)"
    else
        bad "anonymous RSS grew from $1 to $now kB"
    fi
}

# concurrent_clients N WHAT : N clients post prompt_of 1..N at once; each
# must get 200 and exactly the text in $TMP/aloneI (its answer alone).
concurrent_clients() {
    local n=$1 what=$2 i p same=0 failed=0 clients=()
    for i in $(seq "$n"); do
        curl -s --max-time 120 -o "$TMP/conc$i.json" -w '%{http_code}' -d "$(prompt_of "$i")" \
            "http://127.0.0.1:$PORT/v1/completions" >"$TMP/conc$i.code" &
        clients+=($!)
    done
    for p in "${clients[@]}"; do wait "$p" || failed=1; done
    for i in $(seq "$n"); do
        if [ "$(cat "$TMP/conc$i.code")" = 200 ] && [ "$(text_of "$TMP/conc$i.json")" = "$(cat "$TMP/alone$i")" ]; then
            same=$((same + 1))
        fi
    done
    [ "$same" = "$n" ] && [ "$failed" = 0 ] && ok "$n concurrent clients $what: each got its greedy answer alone" ||
        bad "$n concurrent clients $what: $same of $n matched"
}

# mean_batch : mean tokens per micro-batch, from the /metrics page in $TMP/body.
mean_batch() {
    node -e 'const s = require("fs").readFileSync(process.argv[1], "utf8");
        const b = +s.match(/relais_batches_total (\d+)/)[1], t = +s.match(/relais_batch_tokens_total (\d+)/)[1];
        console.log((t / b).toFixed(2))' "$TMP/body"
}

finish() {
    stop_servers
    stop_nodes
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}
