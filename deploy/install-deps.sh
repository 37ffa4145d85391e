#!/usr/bin/env bash
# Installs every Debian package relais builds, tests and serves with, so that
# one command prepares a fresh Debian machine. Safe to run again: apt-get
# skips what is already there. Needs root (or sudo).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  libzmq3-dev libczmq-dev
  libprotobuf-c-dev protobuf-c-compiler
  libopenblas-dev
  libsodium-dev
  libmicrohttpd-dev libjansson-dev
  libyaml-dev
  libcmocka-dev
  iproute2 curl
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# An x86-64 machine also cross-builds the aarch64 (Raspberry Pi) engine and
# runs its tests under qemu-user (deploy/test-arm.sh): the cross compiler, the
# emulator, and the engine's arm64 -dev packages beside the native ones. The
# test binaries run with libc6:arm64's loader and libc (named here because
# the emulator setup depends on it, not only the -dev packages).
CROSS=()
if [ "$(dpkg --print-architecture)" = amd64 ]; then
  $SUDO dpkg --add-architecture arm64
  CROSS=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static libc6:arm64
         libopenblas-dev:arm64 libjansson-dev:arm64 libcmocka-dev:arm64)
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PKGS[@]}" "${CROSS[@]}" >/dev/null
echo "relais: dependencies installed"
