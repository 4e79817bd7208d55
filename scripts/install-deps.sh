#!/usr/bin/env bash
# Installs what socket_exporter needs to build, test and run, from Debian 12
# packages. Safe to run again: it only calls apt-get when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates
  prometheus-cpp-dev libcivetweb-dev libyaml-cpp-dev libcli11-dev libfmt-dev libspdlog-dev
  libssl-dev libcrypt-dev openssl
  libgtest-dev libgmock-dev libbenchmark-dev
  clang clang-format libclang-rt-14-dev libbpf-dev bpftool
  python3 iproute2 curl procps prometheus prometheus-node-exporter
  python3-yaml strace shellcheck file dpkg-dev
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian prometheus package starts a service; tests run their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
fi
