#!/usr/bin/env bash
# Proves the aarch64 (Raspberry Pi) build on an x86-64 machine: cross-builds
# relais, relais-node and the tests with Debian's aarch64 toolchain
# (deploy/aarch64-toolchain.cmake; packages from deploy/install-deps.sh --ci) and
# runs the tests under qemu-user twice, as a Pi 4 (cortex-a72: NEON without
# the dot product instructions) and as a Pi 5 (cortex-a76: with them). Among
# them are the kernel tests against the scalar reference, the golden
# end-to-end tests (test_golden through the engine, threaded, batched and
# token by token; test_cli_run through `relais run --json`) and the unit
# tests of the coordinator. On an aarch64 machine the native test suite
# already covers its CPU, so this does nothing there.
#
# Not run here: the tests that start relais-node (test_cluster,
# test_plan_cli, the serve_*, weights_transfer, cluster_trace,
# cluster_recover and cluster_netns scripts) exec an aarch64 binary
# directly, which needs binfmt_misc (absent in containers), and the engine
# code they run is covered by the tests here.
# test_golden_scalar proves the portable kernels, as the native runs do.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -m)" != x86_64 ]; then
  echo "relais: not an x86-64 host, no aarch64 emulation run"
  exit 0
fi
# The binaries run with the multiarch loader and libc (libc6:arm64), which
# the toolchain file relies on; see the comment on its emulator line.
if [ ! -e /lib/ld-linux-aarch64.so.1 ]; then
  echo "relais: /lib/ld-linux-aarch64.so.1 missing: run deploy/install-deps.sh --ci (libc6:arm64)" >&2
  exit 1
fi
jobs=$(nproc 2>/dev/null || echo 2)
start=$SECONDS

cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=deploy/aarch64-toolchain.cmake -DRELAIS_WERROR=ON -DRELAIS_TESTS=ON >/dev/null
cmake --build build-arm -j"$jobs"
echo "relais: aarch64 build took $((SECONDS - start)) s"
# RELAIS_EXPECT_DOTPROD makes test_qgemm check that the emulated CPU is the
# one meant, so each run proves its own microkernel.
# The shell-script tests start relais and relais-node themselves, without
# the emulator: they are x86 host tests, left out here by what runs them
# (a list by name forgot each new one). So are the C tests that start those
# binaries (test_cluster, test_plan_cli) and the scalar golden run (slow
# under qemu; test_golden covers the kernels there).
shell_tests=$(cd build-arm && ctest -N -V | awk '/Test command: [^ ]*bash( |$)/ {sh = 1; next}
    /Test command:/ {sh = 0} /^ *Test +#[0-9]+:/ {if (sh) printf "|%s", $3}')
exclude="^(test_cluster|test_plan_cli|test_golden_scalar${shell_tests})\$"
for run in cortex-a72:0 cortex-a76:1; do
  cpu=${run%:*}
  t0=$SECONDS
  echo "relais: aarch64 tests under qemu-user as $cpu"
  (cd build-arm && QEMU_CPU=$cpu RELAIS_EXPECT_DOTPROD=${run#*:} ctest --output-on-failure -j"$jobs" \
      -E "$exclude")
  echo "relais: $cpu took $((SECONDS - t0)) s"
done
echo "relais: aarch64 build and tests took $((SECONDS - start)) s"
