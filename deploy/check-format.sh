#!/usr/bin/env bash
# Fails naming every C file that .clang-format would change: the style is
# applied when code is written, not in review. clang-format comes with
# deploy/install-deps.sh --ci; `clang-format -i FILE` fixes a file.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=$(git ls-files '*.c' '*.h' | grep -v '^tests/data/' | while read -r f; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || echo "$f"
done)
if [ -n "$bad" ]; then
    printf 'check-format: not in .clang-format style (clang-format -i FILE):\n%s\n' "$bad" >&2
    exit 1
fi
echo "check-format: every C file is in .clang-format style"
