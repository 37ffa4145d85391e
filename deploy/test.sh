#!/usr/bin/env bash
# Builds relais and runs every test: once in a release build (warnings are
# errors), once under AddressSanitizer + UBSan, then cross-built for aarch64
# with the tests run under qemu-user as the Pi 4's and the Pi 5's CPU
# (deploy/test-arm.sh). Expects the dependencies (deploy/install-deps.sh
# --ci); the test data is the repository's own (tests/data). First, the
# layering check (nothing above the engine includes its private headers)
# and the style check (.clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

bash deploy/check-layers.sh
bash deploy/check-format.sh

cmake -S . -B build -DRELAIS_WERROR=ON -DRELAIS_TESTS=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

cmake -S . -B build-asan -DRELAIS_WERROR=ON -DRELAIS_SANITIZE=ON -DRELAIS_TESTS=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j"$jobs")

bash deploy/test-arm.sh
