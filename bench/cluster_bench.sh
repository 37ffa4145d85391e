#!/usr/bin/env bash
# Cluster benchmark on loopback, with the model
# `relais synth --preset ministral-8b --layers 8 --type q4_0`:
#  - per-token decode latency of one process against 2 and 4 relais-node
#    processes, every process with the same THREADS, and the overhead in %;
#  - bytes per token per hop: the bytes TCP carried on the link from the
#    first node to the second during a run (ss: bytes_acked of that
#    connection, so ZMTP framing, CURVE and heartbeats are in), divided by
#    the tokens forwarded; f32, f16 and i16 wire;
#  - load time: cold (the nodes lack the model: weight transfer into empty
#    caches) and warm (the nodes restarted: the slices from their caches),
#    as the coordinator reports "N nodes ready in S s".
# Latency is measured in RUNS rounds; each round runs one process and then
# every cluster size once, so load from elsewhere hits all of them alike,
# and each figure is the median of its RUNS runs of N generated tokens (the
# spread, min-max, is shown too). The nodes of all sizes run throughout: an
# idle node sleeps in poll. Prints a markdown table. On a machine with fewer
# cores than nodes the stages share cores; the pipeline computes one stage
# at a time per token, so with one thread per node that costs little, but
# it is no LAN.
#
# Measured (BENCHMARKS.md, "Cluster overhead"): the pipeline's own cost at
# 4 nodes is 1.26-1.46 ms per token (median), 3.2-3.6% of a 39-41 ms token:
# 5 links of 160-310 us each (protobuf and copies ~6, framing and CURVE ~70,
# loopback TCP ~40, the rest wake-ups of threads on idle CPUs; with
# IO_CPU=0 130-230 us, 0.3-0.4 ms less in all), a node's handling of a
# Forward 10-20 us, the coordinator's work between tokens 20-40 us.
# The stages' compute adds up to 1-3% more than one process's whole token
# (the same code and memory layout; a restarted node was once 4% faster,
# cause not found), and on 2 shared cores the stages also wait for a core,
# which is what makes wall-clock ratios swing.
#
# With TRACE=1 the coordinator and the nodes run with RELAIS_TRACE=1 and,
# after the table, bench/trace_hops.awk splits each cluster size's latency
# runs into compute, links, handling and coordinator per token (the trace
# lines add a write per Forward and process, a few microseconds).
#
# IO_CPU (a CPU number, or none) is given to the nodes as --io-cpu and to
# the coordinator as the cluster file's io_cpu; unset, both keep their
# default, none. IO_CPU=0 measures what pinning the message handling saves
# (proto/io_pin.h).
#
# usage: bench/cluster_bench.sh BUILD_DIR [MODEL.gguf]
#   env: THREADS (1), N (32 tokens), RUNS (5), NODES ("2 4"), TRACE (0), IO_CPU
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "$1" && pwd)
MODEL=${2:-/tmp/relais-bench-ministral-8b-l8-q4_0.gguf}
THREADS=${THREADS:-1}
N=${N:-32}
RUNS=${RUNS:-5}
NODES=${NODES:-"2 4"}
export RELAIS_TRACE=${TRACE:-0}
TMP=$(mktemp -d /tmp/relais-cluster-bench.XXXXXX)
declare -A PID ADDR OFF
trap 'for p in "${PID[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"' EXIT
IDS=1,1000,1001,1002,1003,1004,1005,1006

if [ ! -f "$MODEL" ]; then
    "$BUILD/relais" synth --preset ministral-8b --layers 8 --type q4_0 -q -o "$MODEL"
fi
mkdir -p "$TMP/trusted" "$TMP/empty"
"$BUILD/relais" keygen -o "$TMP/coordinator" >/dev/null
cp "$TMP/coordinator.pub" "$TMP/trusted/"

start_node() {   # I [fresh]: a node without the model; "fresh": with an empty cache
    [ "${2:-}" != fresh ] || rm -rf "$TMP/cache$1"
    [ -f "$TMP/node$1.key" ] || "$BUILD/relais" keygen -o "$TMP/node$1" >/dev/null
    rm -f "$TMP/node$1.log"   # a restarted node's address must not be read from the old log
    "$BUILD/relais-node" --listen 'tcp://127.0.0.1:*' --key "$TMP/node$1.key" \
        --trust "$TMP/trusted" --models "$TMP/empty" --cache "$TMP/cache$1" --threads "$THREADS" \
        ${IO_CPU:+--io-cpu "$IO_CPU"} >"$TMP/node$1.log" 2>&1 &
    PID[$1]=$!
    for _ in $(seq 600); do
        ADDR[$1]=$(sed -n 's/.*listening on \(tcp:[^,]*\),.*/\1/p' "$TMP/node$1.log" 2>/dev/null || true)
        [ -n "${ADDR[$1]}" ] && return 0
        sleep 0.1
    done
    echo "node $1 did not start: $(cat "$TMP/node$1.log")" >&2
    exit 1
}

stop_nodes() {
    for i in "${!PID[@]}"; do kill "${PID[$i]}" 2>/dev/null; wait "${PID[$i]}" 2>/dev/null || true; done
    PID=()
}

write_yaml() {   # N [FILE]: a cluster file for nodes 1..N ($TMP/cluster.yaml)
    {
        echo "coordinator:"
        echo "  key: $TMP/coordinator.key"
        echo "  listen: tcp://127.0.0.1:$((20000 + RANDOM % 20000))"
        [ -z "${IO_CPU:-}" ] || echo "  io_cpu: $IO_CPU"
        echo "nodes:"
        for i in $(seq "$1"); do printf '  - address: %s\n    public_key: %s\n' "${ADDR[$i]}" "$TMP/node$i.pub"; done
    } >"${2:-$TMP/cluster.yaml}"
}

# run [relais run options...]: prints "ms_per_token ready_seconds" of one run.
run() {
    RELAIS_LOG=info "$BUILD/relais" run -m "$MODEL" --prompt-ids $IDS -n "$N" --ignore-eos --temp 0 -t "$THREADS" \
        --ctx 512 "$@" >/dev/null 2>"$TMP/run.log" || { cat "$TMP/run.log" >&2; exit 1; }
    local tps ready
    tps=$(sed -n 's/.*generation [0-9]* tokens in [0-9.]* s (\([0-9.]*\) t\/s).*/\1/p' "$TMP/run.log")
    ready=$(sed -n 's/.*nodes ready in \([0-9.]*\) s.*/\1/p' "$TMP/run.log")
    awk -v t="$tps" -v r="${ready:-0}" 'BEGIN { printf "%.2f %s\n", 1000 / t, r }'
}

# keep_trace N: the trace lines of the run just made on nodes 1..N (its
# coordinator's, and what each node logged since OFF), tagged with a run
# number so that trace_hops.awk keeps the runs' steps apart.
RUN_NO=0
keep_trace() {
    RUN_NO=$((RUN_NO + 1))
    { grep '^relais: trace' "$TMP/run.log"
      for i in $(seq "$1"); do tail -c +$((OFF[$i] + 1)) "$TMP/node$i.log" | grep '^relais: trace'; done
    } | sed "s/^/run=$RUN_NO /" >>"$TMP/trace-$1"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
spread() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }

# bytes TCP delivered from node 1 to node 2 so far (0 before the link exists)
written() {
    ss -tinpH "dport = :${ADDR[2]##*:}" | awk -v p="pid=${PID[1]}," '
        index($0, p) { mine = 1; next }
        mine { for (i = 1; i <= NF; i++) if ($i ~ /^bytes_acked:/) { split($i, a, ":"); n += a[2] } mine = 0 }
        END { print n + 0 }'
}

# bytes per token on the hop node 1 -> node 2 during one run with the given
# wire, after a run that assigned that wire (a new assignment opens a new link).
hop_bytes() {
    local before after
    run --cluster "$TMP/cluster.yaml" --wire "$1" >/dev/null
    before=$(written)
    run --cluster "$TMP/cluster.yaml" --wire "$1" >/dev/null
    after=$(written)
    awk -v b="$before" -v a="$after" -v t=$((8 + N - 1)) 'BEGIN { printf "%.0f", (a - b) / t }'
}

dim=$("$BUILD/relais" inspect "$MODEL" 2>/dev/null | awk '$1 == "dim" && !d { d = $2 } END { print d }')
echo "model: $MODEL ($(($(stat -c %s "$MODEL") >> 20)) MiB), $N tokens, $THREADS thread(s) per process, medians of $RUNS rounds"
run >/dev/null   # page cache warm for everyone
echo
declare -A COLD WARM
for n in $NODES; do   # load times; these runs also leave every size's slices in the caches
    stop_nodes
    for i in $(seq "$n"); do start_node "$i" fresh; done
    write_yaml "$n"
    COLD[$n]=$(run --cluster "$TMP/cluster.yaml" | cut -d' ' -f2)
    stop_nodes
    for i in $(seq "$n"); do start_node "$i"; done
    write_yaml "$n"
    WARM[$n]=$(run --cluster "$TMP/cluster.yaml" | cut -d' ' -f2)
done
stop_nodes
max=$(printf '%s\n' $NODES | sort -n | tail -1)
for i in $(seq "$max"); do start_node "$i"; done
for n in $NODES; do write_yaml "$n" "$TMP/cluster$n.yaml"; done

for r in $(seq "$RUNS"); do   # rounds: every setup once per round
    run | cut -d' ' -f1 >>"$TMP/lat-local"
    for n in $NODES; do
        for i in "${!PID[@]}"; do OFF[$i]=$(stat -c %s "$TMP/node$i.log"); done
        run --cluster "$TMP/cluster$n.yaml" | cut -d' ' -f1 >>"$TMP/lat-$n"
        if [ "$RELAIS_TRACE" = 1 ]; then keep_trace "$n"; fi
    done
done
local_ms=$(median <"$TMP/lat-local")
echo "one process: median $local_ms ms/token (spread $(spread <"$TMP/lat-local"))"
echo
echo "| setup | ms/token (median) | spread | overhead vs one process | bytes/token/hop f32 | f16 | i16 | load cold (transfer) | load warm (cache) |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in $NODES; do
    ms=$(median <"$TMP/lat-$n")
    cp "$TMP/cluster$n.yaml" "$TMP/cluster.yaml"
    f32=$(hop_bytes f32)
    f16=$(hop_bytes f16)
    i16=$(hop_bytes i16)
    over=$(awk -v a="$ms" -v b="$local_ms" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }')
    echo "| $n nodes | $ms | $(spread <"$TMP/lat-$n") | $over | $f32 | $f16 | $i16 | ${COLD[$n]} s | ${WARM[$n]} s |"
done
echo
echo "bytes/token/hop in theory: f32 dim*4 = $((dim * 4)) + envelope, f16 dim*2 = $((dim * 2)) + envelope," \
     "i16 dim*2 + 4 per 32 values = $((dim * 2 + (dim + 31) / 32 * 4)) + envelope" \
     "(the measure adds ZMTP framing, CURVE's 16-byte MAC and a few heartbeats)"
if [ "$RELAIS_TRACE" = 1 ]; then
    for n in $NODES; do
        echo
        echo "$n nodes, where a token's time goes (RELAIS_TRACE, the latency runs):"
        awk -f "$HERE/trace_hops.awk" "$TMP/trace-$n"
    done
fi
