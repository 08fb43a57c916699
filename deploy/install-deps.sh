#!/usr/bin/env bash
# Installs every build, test, demo and benchmark dependency of zhida from Debian 12's packages.
# Idempotent: does nothing when everything is already installed. Run as root (or with sudo).
set -euo pipefail

PKGS=(
  build-essential pkg-config meson ninja-build
  libevent-dev libhiredis-dev libcjson-dev libcurl4-openssl-dev libroaring-dev libjemalloc-dev
  redis-server
  clang libclang-rt-14-dev clang-format
  python3 python3-pytest
  curl ca-certificates git systemd
)
# The benchmarks also compare against PostgreSQL 15: `deploy/install-deps.sh --bench`.
if [[ "${1:-}" == "--bench" ]]; then
  PKGS+=(postgresql postgresql-client libpq-dev hyperfine wrk valgrind)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system redis-server on 6379 when the package is installed; zhida's scripts
# always run their own private instance, so leave the system one alone.
echo "install-deps: done"
