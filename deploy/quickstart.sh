#!/usr/bin/env bash
# The newcomer's first command: installs the dependencies, builds relais,
# and generates text. The model is the first argument, or $RELAIS_MODEL, or
# else a small synthetic model that this script writes (random weights: the
# text is gibberish, but every part of the engine runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"

model="${1:-${RELAIS_MODEL:-}}"
if [ -z "$model" ]; then
    model=build/synth-small.gguf
    [ -f "$model" ] || ./build/relais synth --preset tiny --layers 4 --type q8_0 -o "$model"
fi
./build/relais inspect "$model" | head -20
./build/relais run -m "$model" -p "${RELAIS_PROMPT:-Once upon a time}" -n 48 --temp 0.7 --seed 1
