#!/usr/bin/env bash
# Installs what the deploy stage (tests/deploy/run.sh) needs on top of
# scripts/install-deps.sh, from Debian 12 packages:
#   podman, runc       build and run the image (runc: crun fails on hybrid
#                      cgroup hosts; podman's own config is the stage's, see
#                      tests/deploy/podman/)
#   mmdebstrap         the debian:bookworm-slim base and the systemd root
#                      file system, from the apt sources this machine uses
#   systemd-container  systemd-nspawn, pinned to the host's systemd version
#                      (an unpinned install would upgrade the host's systemd)
#   libcap2-bin        capsh, to name the capabilities in /proc/PID/status
#   nodejs, npm        only if npm is missing: the Kubernetes schema check
# Safe to run again: apt-get runs only when something is missing.
set -euo pipefail

want=(podman runc mmdebstrap libcap2-bin)
host_systemd=$(dpkg-query -W -f='${Version}' systemd 2>/dev/null || true)
if [[ -n "$host_systemd" ]]; then
  want+=("systemd-container=$host_systemd")
else
  want+=(systemd-container)
fi
command -v npm >/dev/null || want+=(nodejs npm)

missing=()
for spec in "${want[@]}"; do
  name=${spec%%=*}
  version=${spec#*=}
  [[ "$version" == "$spec" ]] && version=
  status=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)
  if [[ "$status" != "install ok installed"* ]] ||
    [[ -n "$version" && "$status" != *" $version" ]]; then
    missing+=("$spec")
  fi
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "deploy install-deps: missing packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "deploy install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: no slirp4netns, fuse-overlayfs or buildah (the
# stage uses the host network and the kernel's overlay as root).
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
