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
TAG="rl$$" RELAIS=$relais
. "$(dirname "$0")/netns_lib.sh" # WORK, PIDS, netns_host, netns_models; cleanup on exit

fail() { echo "FAIL: $*"; exit 1; }

# The legacy xtables binary: iptables-nft would turn NFQUEUE into nftables'
# queue expression, which kernels without CONFIG_NFT_QUEUE lack.
ipt=$(command -v iptables-legacy || command -v iptables || true)
delay_by=""   # netem or nfqueue, decided by the first host

# delay_host NAME: every packet leaving host NAME (netns_host) through its link waits 1 ms.
delay_host() {
    local ns=$TAG-$1 dev=$1-$TAG
    if [ "$delay_by" != nfqueue ] && ip netns exec "$ns" tc qdisc add dev "$dev" root netem delay 1ms 2>/dev/null; then
        delay_by=netem
        return
    fi
    [ "$delay_by" = netem ] && fail "netem worked on one host and not on $ns"
    delay_by=nfqueue
    [ -n "$ipt" ] || fail "no netem qdisc and no iptables to delay the links with (deploy/install-deps.sh --ci installs it)"
    ip netns exec "$ns" "$nfq_delay" 0 1000 >"$WORK/delay-$ns.out" 2>"$WORK/delay-$ns.err" &
    PIDS+=($!)
    local i
    for i in $(seq 100); do   # bounded: 10 s for the queue to be bound
        grep -q ready "$WORK/delay-$ns.out" 2>/dev/null && break
        kill -0 "${PIDS[-1]}" 2>/dev/null || fail "nfq_delay in $ns exited: $(cat "$WORK/delay-$ns.err")"
        sleep 0.1
    done
    grep -q ready "$WORK/delay-$ns.out" || fail "nfq_delay in $ns did not bind its queue within 10 s"
    ip netns exec "$ns" "$ipt" -A OUTPUT -o "$dev" -j NFQUEUE --queue-num 0
}

netns_host c 10.77.0.1
for i in 1 2 3; do netns_host "n$i" "10.77.0.1$i"; done
for h in c n1 n2 n3; do delay_host "$h"; done
echo "links delayed 1 ms per direction by $delay_by"

# min_rtt FROM TO: the smallest of 5 ping round trips, in ms.
min_rtt() {
    ip netns exec "$TAG-$1" ping -n -q -c 5 -i 0.05 -W 5 "$2" | sed -n 's|^rtt min/avg/max/mdev = \([0-9.]*\)/.*|\1|p'
}
for pair in "c 10.77.0.11" "n1 10.77.0.12" "n3 10.77.0.1"; do
    rtt=$(min_rtt $pair)
    [ -n "$rtt" ] || fail "no ping answer for $pair"
    awk -v r="$rtt" 'BEGIN { exit !(r >= 2.0) }' || fail "round trip $pair is $rtt ms: the 1 ms delay is not applied"
    echo "round trip $pair: at least $rtt ms"
done

netns_models "$model"
{
    echo "coordinator:"
    echo "  key: $WORK/coordinator.key"
    echo "  listen: tcp://10.77.0.1:7799"
    echo "nodes:"
} >"$WORK/cluster.yaml"
for i in 1 2 3; do
    "$relais" keygen -o "$WORK/node$i" >/dev/null
    mkdir -p "$WORK/cache$i"
    ip netns exec "$TAG-n$i" "$node_bin" --listen "tcp://10.77.0.1$i:7700" --key "$WORK/node$i.key" \
        --trust "$WORK/trusted" --models "$WORK/models" --cache "$WORK/cache$i" --threads 1 \
        >"$WORK/node$i.log" 2>&1 &
    PIDS+=($!)
    printf '  - address: tcp://10.77.0.1%s:7700\n    public_key: %s\n' "$i" "$WORK/node$i.pub" >>"$WORK/cluster.yaml"
done

ids=1,300,301,302,303,304,305,306,307,308
"$relais" run -m "$model" --prompt-ids $ids -n 24 --temp 0 --top-logits 8 --json >"$WORK/local.json" 2>/dev/null

# cluster_run NAME: the same run through the three nodes, compared.
cluster_run() {
    if ! timeout 240 ip netns exec "$TAG-c" "$relais" run --cluster "$WORK/cluster.yaml" -m "$model" \
            --prompt-ids $ids -n 24 --temp 0 --top-logits 8 --json >"$WORK/$1.json" 2>"$WORK/$1.log"; then
        echo "FAIL: the cluster run ($1) failed"; cat "$WORK/$1.log"
        for i in 1 2 3; do echo "--- node $i"; cat "$WORK/node$i.log"; done
        exit 1
    fi
    if ! cmp -s "$WORK/local.json" "$WORK/$1.json"; then
        echo "one process: $(head -c 400 "$WORK/local.json")"
        echo "cluster:     $(head -c 400 "$WORK/$1.json")"
        fail "the cluster's output ($1) differs from one process"
    fi
}
cluster_run delayed
echo "PASS: 3 nodes in separate namespaces, 1 ms links ($delay_by), give the single-process output"

# Packet loss: every 10th packet each host sends is dropped before the delay.
[ -n "$ipt" ] || fail "no iptables for the packet-loss case (deploy/install-deps.sh --ci installs it)"
for h in c n1 n2 n3; do
    ip netns exec "$TAG-$h" "$ipt" -I OUTPUT 1 -o "$h-$TAG" -m statistic --mode nth --every 10 --packet 0 -j DROP
done
cluster_run lossy
dropped=0
for h in c n1 n2 n3; do
    n=$(ip netns exec "$TAG-$h" "$ipt" -L OUTPUT -v -n -x | awk '$3 == "DROP" { print $1 }')
    dropped=$((dropped + n))
done
[ "$dropped" -gt 0 ] || fail "the loss rules dropped no packet"
echo "PASS: with $dropped packets dropped (every 10th each host sent), the output is still the single-process one"
