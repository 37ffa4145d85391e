#!/usr/bin/env bash
# One client cannot starve `relais serve`: 300 connections from 127.0.0.2
# (the whole of 127/8 is loopback on Linux, so the attacker has an address of
# its own and the per-address limit applies to it) each send a request
# header one byte every 2 s, as slowloris does. Meanwhile a legitimate
# request with the API key from 127.0.0.1 is answered promptly; the server
# holds at most --max-connections-per-ip of the attacker's connections; the
# header deadline (not an inactivity timeout: the attacker is never idle for
# 2 s) closes every one of them; and a POST without a valid key announcing a
# large body gets its 401 as soon as its header is in, without the body.
# The refusals do not flood the log (at most a line per 5 s).
# A prompt of megabytes (read and tokenized off the epoll thread) does not
# hold up a small request sent after it. Then the same attack from 100 addresses, 2,000 connections in all (each address
# under its limit): the server (one epoll thread, no thread per connection)
# holds every one of them, well beyond the 256 slots a thread-per-connection
# server had, still answers the legitimate request, and the deadline closes
# them all.
#
# usage: serve_slowloris.sh RELAIS SHARED_DIR
set -euo pipefail
RELAIS=$1
SHARED=$2
. "$(dirname "$0")/serve_lib.sh"
need node

N=300 PER_IP=32 DEADLINE=4 ATTACK=14
start_server s -m "$SHARED/models/tiny-q8_0.gguf" --api-key sekrit --ctx 256 -t 1 \
    --max-connections-per-ip "$PER_IP" --header-timeout "$DEADLINE"

# The attacker: N sockets from 127.0.0.2, each sending "GET / HTTP/1.1\r\n"
# then header bytes that never end, one every 2 s, for ATTACK seconds. It
# reports how many connections the server still held after 2 s and how long
# the longest-lived one lasted from its connection until the server closed
# it (from each one's own start: 2,000 connections take a while to open on a
# loaded machine).
cat >"$TMP/slowloris.mjs" <<'JS'
import net from "node:net";
const [port, n, secs, addrs] = process.argv.slice(2).map(Number);
const t0 = Date.now(), socks = [];
for (let i = 0; i < n; i++) {
  const from = addrs > 1 ? `127.0.1.${1 + (i % addrs)}` : "127.0.0.2";
  const s = net.connect({ port, host: "127.0.0.1", localAddress: from });
  const st = { open: true, closedAt: null, connected: false, connectedAt: 0 };
  socks.push(st);
  s.on("connect", () => {
    st.connected = true;
    st.connectedAt = Date.now() - t0;
    s.write("GET /v1/models HTTP/1.1\r\nHost: x\r\n");
  });
  s.on("error", () => {});
  s.on("close", () => { st.open = false; st.closedAt = Date.now() - t0; });
  const tick = setInterval(() => { if (st.open) s.write("X"); }, 2000);
  setTimeout(() => { clearInterval(tick); s.destroy(); }, secs * 1000);
}
let heldAt2s = 0, peak = 0;
setTimeout(() => { heldAt2s = socks.filter(s => s.open).length; }, 2000);
const sampler = setInterval(() => { peak = Math.max(peak, socks.filter(s => s.open && s.connected).length); }, 100);
setTimeout(() => clearInterval(sampler), secs * 1000);
setTimeout(() => {
  const closedByServer = socks.filter(s => s.closedAt !== null && s.closedAt < secs * 1000 - 100);
  console.log(JSON.stringify({
    connected: socks.filter(s => s.connected).length, heldAt2s, peak,
    closedByServer: closedByServer.length,
    longest: Math.max(0, ...closedByServer.map(s => s.closedAt - s.connectedAt)) / 1000,
  }));
}, secs * 1000 + 500);
JS
node "$TMP/slowloris.mjs" "$PORT" "$N" "$ATTACK" 1 >"$TMP/attack.json" &
ATTACKER=$!
sleep 2

# The legitimate client, from 127.0.0.1, while the attack goes on.
KEY=sekrit
t0=$(date +%s%N)
req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":4,"temperature":0}' --max-time 10 || STATUS="refused (curl $?)"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "a request with the key during the attack is answered ($ms ms)" 200 'r.usage.completion_tokens > 0'
[ "$STATUS" = 200 ] && [ "$ms" -lt 5000 ] && ok "answered in under 5 s" || bad "the legitimate request took $ms ms"

# No key, a large body announced and never sent: 401 from the header alone.
reply=$(node -e '
const s = require("net").connect(+process.argv[1], "127.0.0.1", () =>
  s.write("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"));
let got = "";
s.on("data", d => { got += d; if (got.includes("\r\n\r\n")) { console.log(got.split("\r\n")[0]); process.exit(0); } });
setTimeout(() => { console.log("no answer"); process.exit(0); }, 3000);' "$PORT")
[[ "$reply" == "HTTP/1.1 401"* ]] && ok "no key: 401 before the body ($reply)" || bad "no key, body unsent: '$reply'"

# A prompt of megabytes takes seconds to tokenize: a worker does it, and a
# small request meanwhile is answered first.
node -e 'console.log(JSON.stringify({messages: [{role: "user", content: "the sea and the sky ".repeat(390000)}], max_tokens: 2}))' >"$TMP/big.json"
curl -s -o "$TMP/big.out" -w '%{http_code}' -H "Authorization: Bearer $KEY" --data-binary @"$TMP/big.json" \
    "http://127.0.0.1:$PORT/v1/chat/completions" >"$TMP/big.code" &
BIG=$!
sleep 0.3
req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":2,"temperature":0}' --max-time 30
small_done_while_big=0
kill -0 "$BIG" 2>/dev/null && small_done_while_big=1
wait "$BIG" || true
[ "$STATUS" = 200 ] && [ "$small_done_while_big" = 1 ] && ok "a small request is answered while a 7.8 MB prompt is read" ||
    bad "small request (status $STATUS) not answered before the 7.8 MB prompt"
[ "$(cat "$TMP/big.code")" = 400 ] && grep -q context_length_exceeded "$TMP/big.out" &&
    ok "... which gets its 400 (beyond the context)" || bad "the 7.8 MB prompt: $(cat "$TMP/big.code") $(head -c 200 "$TMP/big.out")"

wait "$ATTACKER"
A=$(cat "$TMP/attack.json")
echo "# attacker: $A"
cp "$TMP/attack.json" "$TMP/body"
STATUS=200
expect "the server held at most $PER_IP of the attacker's $N connections" 200 "r.heldAt2s > 0 && r.heldAt2s <= $PER_IP"
expect "the header deadline closed every one it held, within ${DEADLINE} s and a second" 200 \
    "r.closedByServer === r.connected && r.longest <= $DEADLINE + 1.5"
lines=$(grep -c '^relais: http:' "$TMP/s.log" || true)
[ "$lines" -le $(( ATTACK / 5 + 2 )) ] && ok "$lines log lines for $N refused or cut connections" ||
    bad "$lines log lines for $N refused or cut connections (one per 5 s at most)"
req GET /health
expect "the server is healthy after the attack" 200 'r.status === "ok"'

# The attack spread over 100 addresses: every connection fits.
N=2000 ADDRS=100
node "$TMP/slowloris.mjs" "$PORT" "$N" "$ATTACK" "$ADDRS" >"$TMP/attack2.json" &
ATTACKER=$!
sleep 2
t0=$(date +%s%N)
req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":4,"temperature":0}' --max-time 10 || STATUS="refused (curl $?)"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "$N connections from $ADDRS addresses: a request with the key is answered ($ms ms)" 200 \
    'r.usage.completion_tokens > 0'
wait "$ATTACKER"
A=$(cat "$TMP/attack2.json")
echo "# attacker: $A"
cp "$TMP/attack2.json" "$TMP/body"
STATUS=200
expect "the server held all $N connections at once" 200 "r.connected === $N && r.peak === $N"
expect "the header deadline closed every one, within ${DEADLINE} s and a second" 200 \
    "r.closedByServer === r.connected && r.longest <= $DEADLINE + 1.5"
finish
