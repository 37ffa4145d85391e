#!/usr/bin/env bash
# Installs the official `openai` npm package into a temporary folder and
# drives a real `relais serve` with it (tests/serve_openai.mjs): chat,
# streaming and a full tool-call round trip. A failed install fails the
# test: nothing is skipped.
#
# usage: serve_openai.sh RELAIS PARROT_MODEL_WRITER SHARED_DIR
set -euo pipefail
RELAIS=$1
PARROT=$2
SHARED=$3
TMP=$(mktemp -d)
. "$(dirname "$0")/serve_lib.sh"
trap 'stop_servers; rm -rf "$TMP"' EXIT
for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "FAIL - $tool is needed"; echo "0 passed, 1 failed"; exit 1; }
done

mkdir -p "$TMP/client"
if ! (cd "$TMP/client" && timeout 300 npm install --no-audit --no-fund --silent openai >"$TMP/npm.log" 2>&1); then
    echo "FAIL - npm install openai:"
    cat "$TMP/npm.log"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "# openai $(node -e 'console.log(require(process.argv[1]).version)' "$TMP/client/node_modules/openai/package.json")"
cp "$(dirname "$0")/serve_openai.mjs" "$TMP/client/"

start_server chat -m "$SHARED/models/tiny-q8_0.gguf" --api-key sekrit --ctx 512 -t 2
CHAT_URL="http://127.0.0.1:$PORT/v1"
"$PARROT" "$TMP/parrot.gguf" "$SHARED/models/vocab-tekken-shaped.gguf"
start_server tools -m "$TMP/parrot.gguf" --ctx 1024 -t 2
TOOLS_URL="http://127.0.0.1:$PORT/v1"
if CHAT_URL=$CHAT_URL TOOLS_URL=$TOOLS_URL timeout 300 node "$TMP/client/serve_openai.mjs"; then
    ok "the openai client's checks"
else
    bad "the openai client's checks"
fi
finish
