#!/usr/bin/env bash
# Three relais nodes on three test hosts: network namespaces joined by veth
# pairs to a bridge in a fourth ("switch") namespace, the coordinator in a
# fifth, each node link delayed by `tc netem delay 1ms` (a LAN hop). The
# cluster's greedy ids and top logits must equal the single-process run.
#
# All traffic stays inside the namespaces this script creates (10.77.0.0/24
# exists nowhere else); they are removed on exit. Needs root. A kernel without
# network namespaces skips the test (exit 77, with a message); a kernel
# without the netem qdisc runs it without the added delay and says so.
#
# usage: netns_cluster.sh RELAIS_BIN RELAIS_NODE_BIN MODEL.gguf
set -euo pipefail
relais=$1 node_bin=$2 model=$3
tag="rl$$"
work=$(mktemp -d /tmp/relais-netns-XXXXXX)
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in sw c n1 n2 n3; do ip netns del "$tag-$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

if ! ip netns add "$tag-sw" 2>/dev/null; then
    echo "SKIP: this kernel (or container) cannot create network namespaces (ip netns add failed)"
    exit 77
fi
ip -n "$tag-sw" link add br0 type bridge
ip -n "$tag-sw" link set br0 up

netem=yes
host() {   # host NAME ADDRESS: a namespace with one veth into the switch
    local ns="$tag-$1" addr=$2
    ip netns add "$ns"
    ip link add "$1-$tag" type veth peer name "p$1-$tag"
    ip link set "$1-$tag" netns "$ns"
    ip link set "p$1-$tag" netns "$tag-sw"
    ip -n "$tag-sw" link set "p$1-$tag" master br0 up
    ip -n "$ns" addr add "$addr/24" dev "$1-$tag"
    ip -n "$ns" link set "$1-$tag" up
    ip -n "$ns" link set lo up
    if [ "$1" != c ] && [ $netem = yes ]; then
        if ! ip netns exec "$ns" tc qdisc add dev "$1-$tag" root netem delay 1ms 2>/dev/null; then
            netem=no
            echo "NOTE: this kernel has no netem qdisc (sch_netem): the links run without the added 1 ms delay"
        fi
    fi
}
host c 10.77.0.1
host n1 10.77.0.11
host n2 10.77.0.12
host n3 10.77.0.13

mkdir -p "$work/trusted" "$work/models"
ln -s "$(readlink -f "$model")" "$work/models/$(basename "$model")"
"$relais" keygen -o "$work/coordinator" >/dev/null
cp "$work/coordinator.pub" "$work/trusted/"
{
    echo "coordinator:"
    echo "  key: $work/coordinator.key"
    echo "  listen: tcp://10.77.0.1:7799"
    echo "nodes:"
} >"$work/cluster.yaml"
for i in 1 2 3; do
    "$relais" keygen -o "$work/node$i" >/dev/null
    mkdir -p "$work/cache$i"
    ip netns exec "$tag-n$i" "$node_bin" --listen "tcp://10.77.0.1$i:7700" --key "$work/node$i.key" \
        --trust "$work/trusted" --models "$work/models" --cache "$work/cache$i" --threads 1 \
        >"$work/node$i.log" 2>&1 &
    pids+=($!)
    printf '  - address: tcp://10.77.0.1%s:7700\n    public_key: %s\n' "$i" "$work/node$i.pub" >>"$work/cluster.yaml"
done

ids=1,300,301,302,303,304,305,306,307,308
"$relais" run -m "$model" --prompt-ids $ids -n 24 --temp 0 --top-logits 8 --json >"$work/local.json" 2>/dev/null
if ! timeout 120 ip netns exec "$tag-c" "$relais" run --cluster "$work/cluster.yaml" -m "$model" \
        --prompt-ids $ids -n 24 --temp 0 --top-logits 8 --json >"$work/cluster.json" 2>"$work/coordinator.log"; then
    echo "FAIL: the cluster run failed"; cat "$work/coordinator.log"
    for i in 1 2 3; do echo "--- node $i"; cat "$work/node$i.log"; done
    exit 1
fi
if ! cmp -s "$work/local.json" "$work/cluster.json"; then
    echo "FAIL: the cluster's output differs from one process"
    echo "one process: $(head -c 400 "$work/local.json")"
    echo "cluster:     $(head -c 400 "$work/cluster.json")"
    exit 1
fi
echo "PASS: 3 nodes in separate namespaces (netem delay: $netem) give the single-process output"
