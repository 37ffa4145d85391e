#!/usr/bin/env bash
# Compares the repository's test data (tests/data/models, tests/data/golden)
# with the project's shared test folder, ../shared beside the clone, when
# that folder exists. The tests read only the repository's copy; this check
# makes sure a model or golden file added to or changed in the shared folder
# is taken into the repository on purpose (copy it, say where it comes from
# in tests/data/README.md, commit) instead of being silently missed. A clone
# without ../shared has nothing to compare with and passes.
#
# usage: check_shared.sh [SHARED_DIR]   (default: ../shared beside the repository)
# Exits 1 naming every file that differs or is missing here.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
data=$repo/tests/data
shared=${1:-$repo/../shared}
if [ ! -d "$shared" ]; then
    echo "tests/data: no $shared to compare with"
    exit 0
fi
shared=$(cd "$shared" && pwd)

bad=0
for sub in models golden; do
    [ -d "$shared/$sub" ] || continue
    # Every file of the shared folder must be here, byte for byte.
    while IFS= read -r -d '' f; do
        rel=${f#"$shared/"}
        if [ ! -e "$data/$rel" ]; then
            echo "tests/data: missing $rel (in $shared, not in tests/data)" >&2
            bad=1
        elif ! cmp -s "$f" "$data/$rel"; then
            echo "tests/data: $rel differs from $shared/$rel" >&2
            bad=1
        fi
    done < <(find "$shared/$sub" -type f -print0 | sort -z)
    # A file only here is no error (the shared folder may drop one the
    # tests still use), but is worth knowing.
    while IFS= read -r -d '' f; do
        rel=${f#"$data/"}
        [ -e "$shared/$rel" ] || echo "tests/data: note: $rel is not in $shared"
    done < <(find "$data/$sub" -type f -print0 | sort -z)
done
if [ "$bad" -ne 0 ]; then
    echo "tests/data: take the shared files in deliberately: copy them, describe them in tests/data/README.md, commit" >&2
    exit 1
fi
echo "tests/data: same as $shared"
