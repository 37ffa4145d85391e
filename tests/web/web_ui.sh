#!/usr/bin/env bash
# The web page of `relais serve` in a real headless Chromium: two
# relais-node processes hold the layers of stories260K (readable text), a
# `relais serve --cluster` with an API key serves them, and web_ui.mjs drives
# the page through puppeteer-core (installed from tests/web/package-lock.json
# into OUT_DIR/node_modules, once). Screenshots of the chat and of the
# cluster view are left in OUT_DIR as the test's artefacts.
#
# Exit 77 (skipped) only when Debian's chromium is not installed
# (deploy/install-deps.sh --ci installs it); anything else missing fails.
#
# usage: web_ui.sh RELAIS RELAIS_NODE TEST_DATA OUT_DIR
set -euo pipefail
RELAIS=$1
NODE_BIN=$2
DATA=$3
OUT=$4
HERE=$(cd "$(dirname "$0")" && pwd)
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "SKIP - no $CHROMIUM (deploy/install-deps.sh --ci installs it)"; exit 77; }
. "$HERE/../serve_lib.sh"
need node npm

# puppeteer-core at the version of the lock file, installed again only when the lock changes
mkdir -p "$OUT"
if ! cmp -s "$HERE/package-lock.json" "$OUT/package-lock.json" || [ ! -d "$OUT/node_modules/puppeteer-core" ]; then
    cp "$HERE/package.json" "$HERE/package-lock.json" "$OUT/"
    if ! (cd "$OUT" && timeout 300 npm ci --no-audit --no-fund --silent >"$TMP/npm.log" 2>&1); then
        echo "FAIL - npm ci puppeteer-core:"
        cat "$TMP/npm.log"
        rm -f "$OUT/package-lock.json"
        exit 1
    fi
fi
cp "$HERE/web_ui.mjs" "$OUT/"
echo "# $("$CHROMIUM" --version 2>/dev/null), puppeteer-core $(node -p 'require(process.argv[1]).version' "$OUT/node_modules/puppeteer-core/package.json")"

mkdir -p "$TMP/models"
cp "$DATA/models/stories260K.gguf" "$TMP/models/"
start_nodes pair 2 "$TMP/models"
KEY=web-test-key
start_server web --cluster "$TMP/pair.yaml" -m "$TMP/models/stories260K.gguf" --api-key "$KEY" --ctx 512 -t 1

# the files as served: each with its type and the policy, no key needed; the API still wants one
for f in /:text/html /style.css:text/css /app.js:text/javascript /markdown.js:text/javascript; do
    path=${f%%:*} type=${f#*:}
    file=${path#/}
    [ -n "$file" ] || file=index.html
    curl -s -D "$TMP/headers" -o "$TMP/body" "http://127.0.0.1:$PORT$path"
    if grep -qi "^HTTP/1.1 200" "$TMP/headers" && grep -qi "^Content-Type: $type; charset=utf-8" "$TMP/headers" &&
        grep -qi "^Content-Security-Policy: default-src 'none'; script-src 'self'" "$TMP/headers" &&
        grep -qi "^X-Content-Type-Options: nosniff" "$TMP/headers" && cmp -s "$TMP/body" "$HERE/../../coordinator/serve/web/$file"; then
        ok "GET $path without a key: coordinator/serve/web/$file as $type, with the CSP"
    else
        bad "GET $path: $(cat "$TMP/headers")"
    fi
done
KEY= req GET /v1/models
expect "the API still asks for the key" 401
req POST / '{}'
expect "POST / with the key: 405" 405

rm -f "$OUT"/*.png
if CHROMIUM=$CHROMIUM node "$OUT/web_ui.mjs" "http://127.0.0.1:$PORT" "$KEY" "$OUT"; then
    ok "the page in Chromium"
else
    bad "the page in Chromium"
fi
for shot in chat cluster; do
    [ -s "$OUT/$shot.png" ] && ok "screenshot $OUT/$shot.png" || bad "no screenshot $shot.png"
done
finish
