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

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
echo "relais: dependencies installed"
