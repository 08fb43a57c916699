#!/usr/bin/env bash
# The webhook benchmark of docs/BENCHMARKS.md (SPEC §8: batch 1 >= 20,000 notices/s; 1M
# notices at batch 100 <= 30 s): zd_webhook_bench sends signed notices through the webhook
# gateway to a local nginx that answers 200 {}, and wrk posts the same body to the same nginx
# as the ceiling of this receiver on this machine, side by side in one run.
#
#   bench/webhook.sh [--n1 200000] [--n100 1000000] [--concurrency 32] [--seconds 10]
#                    [--build DIR] [--out DIR]
#
# nginx runs from a temp dir on 127.0.0.1 (one worker) and is stopped on exit. Results go to
# bench/out/<stamp>-webhook/report.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/deploy/install-deps.sh" --bench >&2
N1=200000
N100=1000000
CONC=32
SECONDS_WRK=10
BUILD="$ROOT/build-bench"
OUT=""
die() { echo "webhook.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --n1) N1=$2; shift 2 ;;
    --n100) N100=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --seconds) SECONDS_WRK=$2; shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
[ -n "$OUT" ] || OUT="$ROOT/bench/out/$(date +%Y%m%d-%H%M%S)-webhook"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/zhida-webhook-bench.XXXXXX)
NGINX_PID=""
cleanup() {
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" "$ROOT" --buildtype=release >/dev/null
fi
ninja -C "$BUILD" bench/zd_webhook_bench >/dev/null
BENCH="$BUILD/bench/zd_webhook_bench"

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
    client_body_buffer_size 1m;
    client_max_body_size 16m;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$PORT;
        location / { default_type application/json; return 200 '{}'; }
    }
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK" &
NGINX_PID=$!
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
    sleep 0.1
done
URL="http://127.0.0.1:$PORT/hook"

# wrk posts the body the gateway would send for a batch of B notices, with headers of the
# same size, over CONC connections from one thread (the gateway runs on one loop too).
wrk_script() { # batch
    /usr/bin/python3 - "$1" > "$WORK/post$1.lua" <<'PY'
import json, sys
b = int(sys.argv[1])
notices = [{"id": "bench-2021-wengang:p%08d:zlb" % i, "policy": "bench-2021-wengang",
            "profile": "p00000000", "gateway": "zlb", "to": "user-8812",
            "title": "杭州市小微企业稳岗补贴",
            "body": "杭州某某科技有限公司：您可能符合杭州市小微企业稳岗补贴申领条件（员工人数少于300人），请于2021-07-01前申请。",
            "url": "https://example.gov.cn/policies/hz-2021-wengang", "category": "employment",
            "urgent": False, "attempt": 1} for i in range(b)]
body = json.dumps({"notices": notices}, ensure_ascii=False, separators=(",", ":"))
print('wrk.method = "POST"')
print('wrk.headers["Content-Type"] = "application/json"')
print('wrk.headers["webhook-id"] = "batch_8655fd4667e462fb9b3910b174bcb35c"')
print('wrk.headers["webhook-timestamp"] = "1700000000"')
print('wrk.headers["webhook-signature"] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="')
print("wrk.body = [==[%s]==]" % body)
PY
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "cores: $(nproc)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "kernel: $(uname -r)"
    echo "os: $(. /etc/os-release; echo "$PRETTY_NAME")"
    echo "libcurl: $(curl-config --version)"
    echo "nginx: $(nginx -v 2>&1 | sed 's/.*\///')"
    echo "wrk: $(dpkg-query -W -f '${Version}' wrk 2>/dev/null)"
    echo "concurrency: $CONC"
} | tee "$OUT/machine.txt"

for b in 1 100; do
    if [ "$b" = 1 ]; then n=$N1; else n=$N100; fi
    wrk_script "$b"
    echo "== batch $b: wrk (ceiling), ${SECONDS_WRK}s" >&2
    wrk -t1 -c"$CONC" -d"${SECONDS_WRK}s" -s "$WORK/post$b.lua" "$URL" > "$WORK/wrk$b.txt"
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk$b.txt")
    echo "result wrk batch=$b requests_per_s=$rps notices_per_s=$(/usr/bin/python3 -c "print(round($rps * $b))")" \
        | tee -a "$OUT/results.txt"
    echo "== batch $b: zd_webhook_bench, $n notices" >&2
    "$BENCH" --url "$URL" --n "$n" --batch "$b" --concurrency "$CONC" | tee -a "$OUT/results.txt"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
echo "webhook.sh: results in $OUT" >&2
