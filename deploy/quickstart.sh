#!/usr/bin/env bash
# The newcomer's first command: installs the dependencies, builds relais,
# and generates text, first in one process, then on a small cluster on this
# machine: two relais-node processes on loopback that do not hold the model
# (the coordinator sends each its slice), and `relais run --cluster`. The
# model is the first argument, or $RELAIS_MODEL, or else a small synthetic
# model that this script writes (random weights: the text is made-up words,
# said so before it is printed, but every part of the engine runs). Its
# vocabulary is grown to 32768 pronounceable pieces so that the byte tokens,
# which a random model picks as often as any other, are rare.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"

model="${1:-${RELAIS_MODEL:-}}"
note=""
if [ -z "$model" ]; then
    model=build/synth-words.gguf
    [ -f "$model" ] || ./build/relais synth --preset tiny --layers 4 --type q8_0 --vocab 32768 -o "$model"
    note=" (a synthetic model of random weights: made-up words, not language; give a real GGUF as argument for text)"
fi
./build/relais inspect "$model" | sed -n 1,20p   # all of it read: head would end inspect by SIGPIPE (pipefail)
echo
echo "== relais run on $model$note =="
./build/relais run -m "$model" -p "${RELAIS_PROMPT:-Once upon a time}" -n 48 --temp 0.7 --seed 1

# The same prompt on a 2-node cluster on loopback (see README, "A cluster").
demo=build/quickstart-cluster
rm -rf "$demo" && mkdir -p "$demo/trusted" "$demo/empty"
./build/relais keygen -o "$demo/coordinator" >/dev/null
cp "$demo/coordinator.pub" "$demo/trusted/"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
for i in 1 2; do
    ./build/relais-node --listen 'tcp://127.0.0.1:*' --key "$demo/node$i.key" --trust "$demo/trusted" \
        --models "$demo/empty" --cache "$demo/cache$i" --threads 1 >"$demo/node$i.log" 2>&1 &
    pids+=($!)
done
{
    echo "coordinator: {key: coordinator.key, listen: tcp://127.0.0.1:$((20000 + RANDOM % 20000))}"
    echo "nodes:"
    for i in 1 2; do
        for _ in $(seq 300); do grep -q "listening on" "$demo/node$i.log" && break; sleep 0.1; done
        address=$(sed -n 's/.*listening on \(tcp:[^,]*\),.*/\1/p' "$demo/node$i.log")
        echo "  - {address: $address, public_key: node$i.pub, name: node$i}"
    done
} >"$demo/cluster.yaml"
echo
echo "== the same prompt on 2 relais-node processes (logs in $demo)$note =="
./build/relais run --cluster "$demo/cluster.yaml" -m "$model" -p "${RELAIS_PROMPT:-Once upon a time}" -n 48 \
    --temp 0.7 --seed 1 -t 1
