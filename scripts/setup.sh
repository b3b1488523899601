#!/usr/bin/env bash
# One-time set-up of a fresh checkout on Debian/Ubuntu: the system packages
# the native build and the tests need, then `npm install` (which builds the
# native addon with cmake-js and compiles the TypeScript).
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
[ -f /usr/include/x86_64-linux-gnu/cblas.h ] || [ -f /usr/include/cblas.h ] || \
  [ -d /usr/include/x86_64-linux-gnu/openblas-pthread ] || need+=(libopenblas-dev)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

# npm ci fails against registries that lack some optional msgpackr-extract
# platform packages; npm install tolerates them.
npm install --no-audit --no-fund
