#!/usr/bin/env bash
# Proves the aarch64 (Raspberry Pi) kernels on an x86-64 machine: cross-builds
# the engine and its tests with Debian's aarch64 toolchain
# (deploy/aarch64-toolchain.cmake; packages from deploy/install-deps.sh) and
# runs the kernel test under qemu-user twice, as a Pi 4 (cortex-a72: NEON
# without the dot product instructions) and as a Pi 5 (cortex-a76: with
# them), so both microkernels, the packing and the activation quantizer are
# checked bit for bit against the scalar reference. The tests that start
# threads are built but not run: Debian bookworm's qemu-user (7.2) hangs in
# pthread_create on this kind of host. On an aarch64 machine the native test
# suite already covers its CPU, so this does nothing there.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -m)" != x86_64 ]; then
  echo "relais: not an x86-64 host, no aarch64 emulation run"
  exit 0
fi
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=deploy/aarch64-toolchain.cmake \
    -DRELAIS_ENGINE_ONLY=ON -DRELAIS_WERROR=ON >/dev/null
cmake --build build-arm -j"$jobs"
for cpu in cortex-a72 cortex-a76; do
  echo "relais: aarch64 tests under qemu-user as $cpu"
  (cd build-arm && QEMU_CPU=$cpu QEMU_LD_PREFIX=/usr/aarch64-linux-gnu ctest --output-on-failure -R '^test_qgemm$')
done
