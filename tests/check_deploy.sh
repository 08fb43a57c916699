#!/usr/bin/env bash
# Checks what an operator installs (issue #9): both systemd units rate "OK" (exposure <= 2.0)
# in `systemd-analyze security --offline`, deploy/redis.conf starts a Redis with AOF on and
# noeviction on a host without IPv6 too, and `meson install` installs the binaries, units,
# configs, the documentation the units point at, zhida's bash completion and name tables (and
# the installed zhida finds them). Prints one line per check; exit 1 on any failure.
# Usage: tests/check_deploy.sh BUILDDIR
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bad=0
fail() { echo "deploy: FAIL $*"; bad=1; }

for unit in deploy/systemd/*.service; do
  line=$(systemd-analyze security --offline=true "$unit" 2>&1 | grep "Overall exposure level")
  score=$(echo "$line" | grep -oE '[0-9]+\.[0-9]+' | head -1)
  if [[ -n $score ]] && awk -v s="$score" 'BEGIN{exit !(s <= 2.0)}'; then
    echo "deploy: $unit exposure $score"
  else
    fail "$unit: ${line:-systemd-analyze gave no score}"
  fi
done

tmp=$(mktemp -d)
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1; rm -rf "$tmp"' EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server deploy/redis.conf --port "$port" --dir "$tmp" --daemonize yes \
  --logfile "$tmp/redis.log" >/dev/null
up=""
for _ in $(seq 50); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && up=1 && break; sleep 0.1; done
if [[ -n $up ]]; then
  aof=$(redis-cli -p "$port" config get appendonly | tail -1)
  pol=$(redis-cli -p "$port" config get maxmemory-policy | tail -1)
  [[ $aof == yes && $pol == noeviction ]] && echo "deploy: redis.conf: appendonly=$aof, $pol" ||
    fail "redis.conf: appendonly=$aof maxmemory-policy=$pol"
else
  fail "redis-server did not start from deploy/redis.conf: $(tail -3 "$tmp/redis.log")"
fi

DESTDIR="$tmp/root" meson install -C "$build" --quiet >/dev/null 2>&1 || fail "meson install"
for f in bin/zhidad bin/zhida lib/systemd/system/zhidad.service \
    lib/systemd/system/zhida-redis.service share/zhida/zhida.example.json share/zhida/redis.conf \
    share/doc/zhida/README.md share/doc/zhida/QUICKSTART.md share/doc/zhida/CONFIG.md \
    share/doc/zhida/CLI.md share/bash-completion/completions/zhida share/zhida/regions-zj.tsv \
    share/zhida/industries.tsv; do
  [[ -f "$tmp/root/usr/local/$f" ]] || fail "meson install did not install /usr/local/$f"
done
# The installed client finds the installed name tables (beside it, in ../share/zhida).
if [[ -x "$tmp/root/usr/local/bin/zhida" ]]; then
  names=$(env -u ZHIDA_DATA_DIR "$tmp/root/usr/local/bin/zhida" demo-population --n 3 --seed 1 \
    --output table 2>&1)
  grep -qE '^e0000001 +enterprise +33[0-9]{4} [^ (]+[市区县] ' <<<"$names" &&
    echo "deploy: installed zhida shows region names" ||
    fail "installed zhida shows no region names: $names"
fi
for doc in $(grep -ho 'Documentation=file://[^ ]*' deploy/systemd/*.service | sed 's|Documentation=file://||'); do
  [[ -f "$tmp/root$doc" ]] || fail "a unit's Documentation= names $doc, which is not installed"
done
[[ $bad -eq 0 ]] && echo "deploy: ok"
exit $bad
