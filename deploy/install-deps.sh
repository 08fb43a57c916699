#!/usr/bin/env bash
# Installs every build, test, demo and benchmark dependency of zhida from Debian 12's packages.
# Idempotent: does nothing when everything is already installed. Run as root (or with sudo).
set -euo pipefail

PKGS=(
  build-essential pkg-config meson ninja-build
  libevent-dev libhiredis-dev libcjson-dev libcurl4-openssl-dev libroaring-dev libjemalloc-dev
  libssl-dev openssl
  redis-server
  clang libclang-rt-14-dev clang-format
  python3 python3-pytest python3-aiosmtpd
  prometheus
  curl ca-certificates git systemd
  # The operator console embeds Chart.js at build time (console/meson.build); its browser tests
  # drive headless Chromium (tests/browser), whose screenshots need CJK fonts.
  libjs-chart.js chromium fonts-noto-cjk
)
# The webhook tests' signature checker runs on Node.js (tests/integration/receivers). Debian's
# nodejs and npm, unless a Node.js with its own npm is installed already (NodeSource's nodejs
# conflicts with Debian's npm package).
if ! command -v npm >/dev/null 2>&1; then
  PKGS+=(nodejs npm)
fi
# The benchmarks also compare against PostgreSQL 15 and measure the webhook against wrk and
# nginx: `deploy/install-deps.sh --bench`.
if [[ "${1:-}" == "--bench" ]]; then
  PKGS+=(postgresql postgresql-client libpq-dev hyperfine wrk valgrind nginx-light)
fi

# The tests' npm packages (webhook receivers, the console's browser tests), exactly as locked
# in package-lock.json; npm's cache makes a second run work offline.
npm_deps() {
  local dir
  for dir in tests/integration/receivers tests/browser; do
    dir="$(cd "$(dirname "$0")/.." && pwd)/$dir"
    if [[ ! -d $dir/node_modules || $dir/package-lock.json -nt $dir/node_modules ]]; then
      echo "install-deps: npm ci in $dir"
      (cd "$dir" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error) && touch "$dir/node_modules"
    fi
  done
}

# docs/openapi.json's validator (tests/openapi), exactly as locked in package-lock.json, when
# npm is installed; without it tests/integration/test_openapi.py skips only that check.
openapi_deps() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/openapi"
  command -v npm >/dev/null 2>&1 || return 0
  if [[ ! -d $dir/node_modules || $dir/package-lock.json -nt $dir/node_modules ]]; then
    echo "install-deps: npm ci in tests/openapi"
    if (cd "$dir" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error); then
      touch "$dir/node_modules"
    else
      echo "install-deps: npm ci in tests/openapi failed: the OpenAPI schema check will be skipped"
    fi
  fi
}

# The dispatch benchmark's peer (bench/bullmq: BullMQ, ioredis, undici), exactly as locked in
# package-lock.json, with --bench.
bench_npm_deps() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/bench/bullmq"
  [[ "${1:-}" == "--bench" ]] || return 0
  if [[ ! -d $dir/node_modules || $dir/package-lock.json -nt $dir/node_modules ]]; then
    echo "install-deps: npm ci in bench/bullmq"
    (cd "$dir" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error) && touch "$dir/node_modules"
  fi
}

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PKGS[@]} packages present"
  openapi_deps
  npm_deps
  bench_npm_deps "${1:-}"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system redis-server on 6379 when the package is installed; zhida's scripts
# always run their own private instance, so leave the system one alone. (nginx-light, for the
# benchmark, also starts a system nginx on port 80; bench/webhook.sh runs its own.)
openapi_deps
# `prometheus` is Debian's way to get promtool, with which the tests check /metrics
# (tests/integration/test_metrics_format.py); the package also enables a Prometheus server
# on :9090. When this script installed it, stop and disable that server: nobody asked for it.
if [[ " ${missing[*]} " == *" prometheus "* ]] && [[ -d /run/systemd/system ]]; then
  $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
npm_deps
bench_npm_deps "${1:-}"
echo "install-deps: done"
