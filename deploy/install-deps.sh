#!/usr/bin/env bash
# Installs the Debian packages relais needs. By default only what building
# and running it need, so that one command prepares a machine to build, run
# and serve. With --ci (which .ci/run passes) also what the test suite needs:
# cmocka, node and npm for the HTTP client tests, curl, the network tools of
# the namespace test (iproute2, iptables, ping, libnetfilter-queue),
# systemd-analyze for the install test, Debian's chromium (and a font) for
# the web page's test (tests/web), clang and its runtime libraries for the
# libFuzzer harnesses (tests/fuzz/run.sh), and on an x86-64 machine the aarch64
# cross toolchain, qemu-user and the arm64 libraries (deploy/test-arm.sh).
# Safe to run again: apt-get skips what is already there. Needs root (or
# sudo).
set -euo pipefail

ci=0
case "${1:-}" in
  "") ;;
  --ci) ci=1 ;;
  -h|--help) echo "usage: $0 [--ci]   (--ci: also the test suite's and the cross build's packages)"; exit 0 ;;
  *) echo "install-deps.sh: unknown option '$1' (usage: $0 [--ci])" >&2; exit 2 ;;
esac

PKGS=(
  build-essential cmake pkg-config
  libzmq3-dev libczmq-dev
  libprotobuf-c-dev protobuf-c-compiler
  libopenblas-dev
  libsodium-dev
  libmicrohttpd-dev libjansson-dev
  libyaml-dev
)
TEST_PKGS=(
  libcmocka-dev
  curl
  iproute2 iptables iputils-ping libnetfilter-queue-dev
  systemd
  chromium fonts-dejavu-core
  clang libclang-rt-dev clang-format
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# For CI, an x86-64 machine also cross-builds relais for aarch64 (Raspberry
# Pi) and runs its tests under qemu-user (deploy/test-arm.sh): the cross
# compiler, the emulator, and the arm64 -dev packages beside the native ones. The test
# binaries run with libc6:arm64's loader and libc (named here because the
# emulator setup depends on it, not only the -dev packages).
# libczmq-dev:arm64 cannot be installed beside the native libczmq-dev (its
# dependency libnss3-dev is not multiarch), so only its library, libczmq4,
# comes from apt; see arm64_czmq below.
CROSS=()
if [ "$ci" -eq 1 ] && [ "$(dpkg --print-architecture)" = amd64 ]; then
  $SUDO dpkg --add-architecture arm64
  CROSS=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static libc6:arm64
         libopenblas-dev:arm64 libjansson-dev:arm64 libcmocka-dev:arm64
         libzmq3-dev:arm64 libczmq4:arm64 libprotobuf-c-dev:arm64 libsodium-dev:arm64
         libmicrohttpd-dev:arm64 libyaml-dev:arm64)
fi

# The files of libczmq-dev:arm64 unpacked into a folder of their own, which
# deploy/aarch64-toolchain.cmake gives to pkg-config. Its libczmq.pc is made
# to point there and loses Requires.private (the build links the shared
# library, and nss's arm64 .pc is the file that cannot be installed); its
# libczmq.so points at the installed libczmq4:arm64.
ARM64_CZMQ=/opt/relais/arm64-czmq
arm64_czmq() {
  local tmp pc
  tmp=$(mktemp -d)
  # As root, apt hands downloads to its _apt user, which cannot write here.
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root libczmq-dev:arm64)
  $SUDO rm -rf "$ARM64_CZMQ"
  $SUDO mkdir -p "$ARM64_CZMQ"
  $SUDO dpkg -x "$tmp"/libczmq-dev_*_arm64.deb "$ARM64_CZMQ"
  rm -rf "$tmp"
  pc=$ARM64_CZMQ/usr/lib/aarch64-linux-gnu/pkgconfig/libczmq.pc
  $SUDO sed -i -e "s|^prefix=.*|prefix=$ARM64_CZMQ/usr|" -e '/^Requires.private:/d' "$pc"
  $SUDO ln -sf /usr/lib/aarch64-linux-gnu/libczmq.so.4 "$ARM64_CZMQ/usr/lib/aarch64-linux-gnu/libczmq.so"
}

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ "$ci" -eq 1 ]; then
  PKGS+=("${TEST_PKGS[@]}")
  # Node.js for the HTTP client and browser tests: Debian's, unless a node
  # and npm are already there (a NodeSource nodejs bundles npm and conflicts
  # with Debian's npm package, so asking for both would fail).
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PKGS+=(nodejs npm)
  fi
fi
$SUDO apt-get install -y -qq --no-install-recommends "${PKGS[@]}" "${CROSS[@]}" >/dev/null
if [ ${#CROSS[@]} -gt 0 ]; then
  arm64_czmq
fi
echo "relais: dependencies installed$([ "$ci" -eq 1 ] && echo ", with the test and cross-build packages")"
