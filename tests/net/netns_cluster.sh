#!/usr/bin/env bash
# Three relais nodes on three test hosts: network namespaces joined by veth
# pairs to a bridge in a fourth ("switch") namespace, the coordinator in a
# fifth. Every packet a host sends is delayed 1 ms (a LAN hop each way, so a
# round trip between any two hosts takes at least 2 ms): by `tc netem delay
# 1ms` where the kernel has the netem qdisc, otherwise by nfq_delay, which
# holds each packet that an iptables NFQUEUE rule hands it for 1 ms and then
# lets it go. The delay is measured (ping round trips of at least 2 ms), then
# the cluster's greedy ids and top logits must equal the single-process run,
# once on clean links and once with every 10th packet each host sends dropped
# (TCP resends it; the output must not change).
#
# All traffic stays inside the namespaces this script creates (10.77.0.0/24
# exists nowhere else); they are removed on exit. Needs root. Only a kernel
# without network namespaces skips the test (exit 77, with a message).
#
# usage: netns_cluster.sh RELAIS_BIN RELAIS_NODE_BIN MODEL.gguf NFQ_DELAY_BIN
set -euo pipefail
relais=$1 node_bin=$2 model=$3 nfq_delay=$4
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

fail() { echo "FAIL: $*"; exit 1; }

if ! ip netns add "$tag-sw" 2>/dev/null; then
    echo "SKIP: this kernel (or container) cannot create network namespaces (ip netns add failed)"
    exit 77
fi
ip -n "$tag-sw" link add br0 type bridge
ip -n "$tag-sw" link set br0 up

# The legacy xtables binary: iptables-nft would turn NFQUEUE into nftables'
# queue expression, which kernels without CONFIG_NFT_QUEUE lack.
ipt=$(command -v iptables-legacy || command -v iptables || true)
delay_by=""   # netem or nfqueue, decided by the first host

# delay_host NS DEV: every packet leaving NS through DEV waits 1 ms.
delay_host() {
    local ns=$1 dev=$2
    if [ "$delay_by" != nfqueue ] && ip netns exec "$ns" tc qdisc add dev "$dev" root netem delay 1ms 2>/dev/null; then
        delay_by=netem
        return
    fi
    [ "$delay_by" = netem ] && fail "netem worked on one host and not on $ns"
    delay_by=nfqueue
    [ -n "$ipt" ] || fail "no netem qdisc and no iptables to delay the links with (deploy/install-deps.sh --ci installs it)"
    ip netns exec "$ns" "$nfq_delay" 0 1000 >"$work/delay-$ns.out" 2>"$work/delay-$ns.err" &
    pids+=($!)
    local i
    for i in $(seq 100); do   # bounded: 10 s for the queue to be bound
        grep -q ready "$work/delay-$ns.out" 2>/dev/null && break
        kill -0 "${pids[-1]}" 2>/dev/null || fail "nfq_delay in $ns exited: $(cat "$work/delay-$ns.err")"
        sleep 0.1
    done
    grep -q ready "$work/delay-$ns.out" || fail "nfq_delay in $ns did not bind its queue within 10 s"
    ip netns exec "$ns" "$ipt" -A OUTPUT -o "$dev" -j NFQUEUE --queue-num 0
}

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
    delay_host "$ns" "$1-$tag"
}
host c 10.77.0.1
host n1 10.77.0.11
host n2 10.77.0.12
host n3 10.77.0.13
echo "links delayed 1 ms per direction by $delay_by"

# min_rtt FROM TO: the smallest of 5 ping round trips, in ms.
min_rtt() {
    ip netns exec "$tag-$1" ping -n -q -c 5 -i 0.05 -W 5 "$2" | sed -n 's|^rtt min/avg/max/mdev = \([0-9.]*\)/.*|\1|p'
}
for pair in "c 10.77.0.11" "n1 10.77.0.12" "n3 10.77.0.1"; do
    rtt=$(min_rtt $pair)
    [ -n "$rtt" ] || fail "no ping answer for $pair"
    awk -v r="$rtt" 'BEGIN { exit !(r >= 2.0) }' || fail "round trip $pair is $rtt ms: the 1 ms delay is not applied"
    echo "round trip $pair: at least $rtt ms"
done

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

# cluster_run NAME: the same run through the three nodes, compared.
cluster_run() {
    if ! timeout 240 ip netns exec "$tag-c" "$relais" run --cluster "$work/cluster.yaml" -m "$model" \
            --prompt-ids $ids -n 24 --temp 0 --top-logits 8 --json >"$work/$1.json" 2>"$work/$1.log"; then
        echo "FAIL: the cluster run ($1) failed"; cat "$work/$1.log"
        for i in 1 2 3; do echo "--- node $i"; cat "$work/node$i.log"; done
        exit 1
    fi
    if ! cmp -s "$work/local.json" "$work/$1.json"; then
        echo "one process: $(head -c 400 "$work/local.json")"
        echo "cluster:     $(head -c 400 "$work/$1.json")"
        fail "the cluster's output ($1) differs from one process"
    fi
}
cluster_run delayed
echo "PASS: 3 nodes in separate namespaces, 1 ms links ($delay_by), give the single-process output"

# Packet loss: every 10th packet each host sends is dropped before the delay.
[ -n "$ipt" ] || fail "no iptables for the packet-loss case (deploy/install-deps.sh --ci installs it)"
for h in c n1 n2 n3; do
    ip netns exec "$tag-$h" "$ipt" -I OUTPUT 1 -o "$h-$tag" -m statistic --mode nth --every 10 --packet 0 -j DROP
done
cluster_run lossy
dropped=0
for h in c n1 n2 n3; do
    n=$(ip netns exec "$tag-$h" "$ipt" -L OUTPUT -v -n -x | awk '$3 == "DROP" { print $1 }')
    dropped=$((dropped + n))
done
[ "$dropped" -gt 0 ] || fail "the loss rules dropped no packet"
echo "PASS: with $dropped packets dropped (every 10th each host sent), the output is still the single-process one"
