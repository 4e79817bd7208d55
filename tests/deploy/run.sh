#!/usr/bin/env bash
# The deploy stage (scripts/test.sh stage `deploy`): the image built and run
# with podman, the .deb's unit under a real systemd (systemd-nspawn), the
# Kubernetes manifests against the real schemas. Installs what it needs
# (tests/deploy/install-deps.sh), then runs tests/deploy/deploy_test.py,
# whose docstring lists the steps; SOCKET_EXPORTER_DEPLOY_STEPS=a,b picks
# some. Exit 0 passed, 1 failed, 77 skipped (ctest's SKIP_RETURN_CODE).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [[ $(id -u) -ne 0 ]]; then
  echo "deploy: SKIPPED: needs root (podman's storage, mmdebstrap, systemd-nspawn); CI runs as root"
  exit 77
fi
start=$SECONDS
if ! "$here/install-deps.sh"; then
  echo "deploy: FAILED: tests/deploy/install-deps.sh could not install the stage's packages"
  exit 1
fi
export SOCKET_EXPORTER_DEPLOY_DEPS_SECONDS=$((SECONDS - start))
exec python3 "$here/deploy_test.py"
