#!/usr/bin/env bash
# `cmake --install` into a scratch DESTDIR: the commands, the systemd units
# and the configuration land where the build says; the installed relais
# writes a model and generates from it, the installed relais-node answers;
# each unit's ExecStart names the installed binary; systemd-analyze verify
# accepts both units (pointed at the DESTDIR copy of the binaries, which is
# the only change made to them); a reinstall keeps an edited configuration.
#
# usage: install.sh CMAKE BUILD_DIR BINDIR UNIT_DIR CONFIG_DIR   (absolute install paths)
set -euo pipefail
CMAKE=$1 BUILD=$2 BINDIR=$3 UNITDIR=$4 CONFDIR=$5
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
root=$TMP/root
pass=0 fail=0
ok()  { echo "ok - $1"; pass=$((pass + 1)); }
bad() { echo "FAIL - $1"; fail=$((fail + 1)); }
check() { local name=$1; shift; if "$@" >"$TMP/out" 2>&1; then ok "$name"; else bad "$name"; cat "$TMP/out"; fi; }

DESTDIR=$root "$CMAKE" --install "$BUILD" >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; bad "cmake --install"; exit 1; }
ok "cmake --install into DESTDIR"
for f in "$BINDIR/relais" "$BINDIR/relais-node" "$UNITDIR/relais-node.service" "$UNITDIR/relais-serve.service" \
         "$CONFDIR/node.conf" "$CONFDIR/serve.env" "$CONFDIR/cluster.example.yaml"; do
    check "installed $f" test -s "$root$f"
done
check "installed $CONFDIR/trusted/" test -d "$root$CONFDIR/trusted"

# The installed commands work on their own.
check "installed relais writes a model" "$root$BINDIR/relais" synth --preset tiny --layers 2 -o "$TMP/m.gguf"
check "installed relais generates from it" "$root$BINDIR/relais" run -m "$TMP/m.gguf" -p "Once" -n 4 --temp 0 -t 1
check "installed relais-node answers --help" "$root$BINDIR/relais-node" --help

# The units start the installed binaries with the installed configuration.
exec_of() { sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$root$UNITDIR/$1"; }
check "relais-node.service runs $BINDIR/relais-node" test "$(exec_of relais-node.service)" = "$BINDIR/relais-node"
check "relais-serve.service runs $BINDIR/relais" test "$(exec_of relais-serve.service)" = "$BINDIR/relais"
check "relais-node.service reads $CONFDIR/node.conf" grep -q -- "--config $CONFDIR/node.conf\$" "$root$UNITDIR/relais-node.service"
check "relais-serve.service reads $CONFDIR/serve.env" grep -q "^EnvironmentFile=$CONFDIR/serve.env\$" "$root$UNITDIR/relais-serve.service"
# The node's installed configuration is one relais-node accepts: it starts
# with it (paths moved into the scratch folder) and listens.
sed -e "s|/var/lib/relais|$TMP/state|; s|/var/cache/relais|$TMP/cache|; s|$CONFDIR|$root$CONFDIR|" \
    -e "s|^listen = .*|listen = tcp://127.0.0.1:*|" "$root$CONFDIR/node.conf" >"$TMP/node.conf"
mkdir -p "$TMP/state/models"
"$root$BINDIR/relais-node" --config "$TMP/node.conf" >"$TMP/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$TMP/node.log" && break; sleep 0.1; done
if grep -q "listening on" "$TMP/node.log" && [ -s "$TMP/state/node.pub" ]; then
    ok "relais-node starts with the installed node.conf and writes its key"
else
    bad "relais-node starts with the installed node.conf and writes its key"; cat "$TMP/node.log"
fi
kill "$node_pid" 2>/dev/null; wait "$node_pid" 2>/dev/null || true

# systemd's own check of the units. It wants the ExecStart binaries to exist,
# so the verified copies name the DESTDIR ones; any message is a failure
# (an unknown key is only a warning to systemd-analyze).
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$TMP/units"
    for u in relais-node.service relais-serve.service; do
        sed "s|$BINDIR/|$root$BINDIR/|g" "$root$UNITDIR/$u" >"$TMP/units/$u"
        if systemd-analyze verify "$TMP/units/$u" >"$TMP/out" 2>&1 && [ ! -s "$TMP/out" ]; then
            ok "systemd-analyze verify $u"
        else
            bad "systemd-analyze verify $u"; cat "$TMP/out"
        fi
    done
else
    bad "systemd-analyze is needed to verify the units (package systemd; deploy/install-deps.sh --ci)"
fi

# A reinstall keeps an edited configuration file.
echo "max-memory = 1G   # edited" >>"$root$CONFDIR/node.conf"
DESTDIR=$root "$CMAKE" --install "$BUILD" >"$TMP/install.log" 2>&1
check "a reinstall keeps the edited node.conf" grep -q "# edited" "$root$CONFDIR/node.conf"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
