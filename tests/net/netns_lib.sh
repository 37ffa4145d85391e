# Shared by the tests that build a LAN out of network namespaces
# (netns_cluster.sh, netns_discover.sh; sourced, not run): a bridge in a
# "switch" namespace, one namespace per host joined to it by a veth pair, a
# scratch folder with the model and the coordinator's key, and a cleanup that
# stops every process the test started and removes the namespaces and the
# folder, however the test ends. Needs root; only a kernel (or container)
# without network namespaces skips (exit 77, with a message).
#
# Sourced with TAG set (a short prefix for the namespace and link names,
# unique to the run, e.g. "rl$$"). Sets WORK (the scratch folder) and PIDS
# (append every background process to it).

WORK=$(mktemp -d "/tmp/relais-$TAG-XXXXXX")
PIDS=()
NETNS=()

netns_cleanup() {
    local p ns
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap netns_cleanup EXIT

# The switch: namespace $TAG-sw holding the bridge br0.
if ! ip netns add "$TAG-sw" 2>/dev/null; then
    echo "SKIP: this kernel (or container) cannot create network namespaces (ip netns add failed)"
    exit 77
fi
NETNS+=("$TAG-sw")
ip -n "$TAG-sw" link add br0 type bridge
ip -n "$TAG-sw" link set br0 up

# netns_host NAME ADDRESS : namespace $TAG-NAME with loopback up and one veth,
# NAME-$TAG, holding ADDRESS/24 (with its subnet's broadcast address, for the
# beacons), whose peer is a port of the switch's bridge.
netns_host() {
    local ns="$TAG-$1" dev="$1-$TAG"
    ip netns add "$ns"
    NETNS+=("$ns")
    ip link add "$dev" type veth peer name "p$dev"
    ip link set "$dev" netns "$ns"
    ip link set "p$dev" netns "$TAG-sw"
    ip -n "$TAG-sw" link set "p$dev" master br0 up
    ip -n "$ns" addr add "$2/24" broadcast + dev "$dev"
    ip -n "$ns" link set "$dev" up
    ip -n "$ns" link set lo up
}

# netns_models MODEL : $WORK/models holding MODEL (a link), and the
# coordinator's key pair $WORK/coordinator.{key,pub}, its public key in the
# nodes' trust folder $WORK/trusted. RELAIS must be set.
netns_models() {
    mkdir -p "$WORK/trusted" "$WORK/models"
    ln -s "$(readlink -f "$1")" "$WORK/models/$(basename "$1")"
    "$RELAIS" keygen -o "$WORK/coordinator" >/dev/null
    cp "$WORK/coordinator.pub" "$WORK/trusted/"
}
