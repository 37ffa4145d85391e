#!/usr/bin/env bash
# Fails when a file above the engine (node/, proto/, coordinator/) includes
# one of the engine's private headers: everything in engine/kernels/ (the
# quantized blocks, the batched kernels' tiles, the thread pool, the CPU
# dispatch) and each folder's *_priv.h / *_internal.h. The build already
# refuses kernels/ headers there (they are not on those targets' include
# path); this names the file and the header, and also catches a private
# header of a public folder. The engine's own tests and benchmarks
# (tests/, bench/) may include them: they test the internals.
set -euo pipefail
cd "$(dirname "$0")/.."

private=$( { ls engine/kernels/*.h; find engine -name '*_priv.h' -o -name '*_internal.h'; } \
           | xargs -n1 basename | sort -u)
bad=0
for h in $private; do
    hits=$(grep -rnE "#include *\"([a-z_0-9]+/)*${h//./\\.}\"" node proto coordinator --include='*.c' --include='*.h' || true)
    if [ -n "$hits" ]; then
        printf '%s\n' "$hits" | sed "s/\$/   <- private engine header $h/"
        bad=1
    fi
done
if [ "$bad" -ne 0 ]; then
    echo "check-layers: node/, proto/ and coordinator/ reach the engine only through its public headers" >&2
    exit 1
fi
echo "check-layers: no private engine header included above the engine"
