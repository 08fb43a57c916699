#!/usr/bin/env bash
# The dispatch benchmark of docs/BENCHMARKS.md ("Dispatch (issue #6)"), side by side in one run
# against one receiver (bench/receiver.c, counting notices):
#   1. zhida: publish one policy whose rule matches every profile; zhidad (release build) fans
#      it out and delivers every notice through the webhook gateway, at batch 100 and batch 1;
#      times from the publish to the first and the last notice at the receiver, zhidad's RSS,
#      Redis's used_memory and RSS, CPU of each process;
#   2. the peer: a Node.js BullMQ worker (bench/bullmq) POSTing the same notices one per request
#      from its own Redis queue, filled first by a producer (timed separately); its settings
#      swept on a sample (--peer-grid), the best one run on every notice;
#   3. wrk POSTing the same one-notice body (and a 100-notice body) to the same receiver.
#
#   bench/dispatch.sh [--profiles 1000000] [--batch 100,1] [--concurrency 32]
#                     [--peer-grid LIST] [--peer-sample 50000] [--skip zhida,peer,wrk]
#                     [--receiver-procs 2] [--seconds 10] [--no-aof] [--build DIR] [--out DIR]
#                     [--templates]
#
# --templates: the policy carries a default template reading fields, attrs and {{reasons}}
# (issue #7), so that every notice is rendered for its profile (docs/BENCHMARKS.md, "Rendering").
# --peer-grid: client:concurrency:processes[:pipelining],... (client http = Node's http.Agent
# with keep-alive, undici = an undici Pool). Every server runs from a temp dir on 127.0.0.1 and
# is stopped on exit; both Redis servers run with the same settings (AOF everysec as in
# deploy/redis.conf unless --no-aof). Results: bench/out/<stamp>-dispatch/ (report.md, one
# JSON per run, the machine, wrk's output).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/deploy/install-deps.sh" --bench >&2
N=1000000
BATCHES=100,1
CONC=32
PEER_GRID=http:64:1,http:256:1,undici:32:1:8,undici:128:1:4,undici:32:2:8
PEER_SAMPLE=50000
SKIP=""
RECV_PROCS=2
SECONDS_WRK=10
AOF=yes
TEMPLATES=""
BUILD="$ROOT/build-bench"
OUT=""
die() { echo "dispatch.sh: $*" >&2; exit 2; }
say() { echo "== $*" >&2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --profiles) N=$2; shift 2 ;;
    --batch) BATCHES=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --peer-grid) PEER_GRID=$2; shift 2 ;;
    --peer-sample) PEER_SAMPLE=$2; shift 2 ;;
    --skip) SKIP=$2; shift 2 ;;
    --receiver-procs) RECV_PROCS=$2; shift 2 ;;
    --seconds) SECONDS_WRK=$2; shift 2 ;;
    --no-aof) AOF=no; shift ;;
    --templates) TEMPLATES=yes; shift ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
skip() { case ",$SKIP," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
[ "$PEER_SAMPLE" -le "$N" ] || PEER_SAMPLE=$N
[ -n "$OUT" ] || OUT="$ROOT/bench/out/$(date +%Y%m%d-%H%M%S)-dispatch"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/zhida-dispatch-bench.XXXXXX)
PIDS=()
cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
PROBE="/usr/bin/python3 $ROOT/bench/dispatch_probe.py"
free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now_ns() { date +%s%N; }
forget() { # pid: stop it and drop it from PIDS
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
start_redis() { # port dir -> REDIS_PID
    mkdir -p "$2"
    redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly "$AOF" \
        --appendfsync everysec --dir "$2" --logfile "$2/redis.log" --daemonize no &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "redis-server on port $1 did not start (see $2/redis.log)"
}

# ---- build ----
say "build ($BUILD, release)"
if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" "$ROOT" --buildtype=release >/dev/null
fi
ninja -C "$BUILD" zhidad/zhidad client/zhida bench/zd_bench_receiver >/dev/null
ZHIDA="$BUILD/client/zhida"

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "command: bench/dispatch.sh --profiles $N --batch $BATCHES --concurrency $CONC --peer-grid $PEER_GRID --peer-sample $PEER_SAMPLE${SKIP:+ --skip $SKIP} --receiver-procs $RECV_PROCS$([ "$AOF" = no ] && echo ' --no-aof')"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), nproc $(nproc)"
    echo "ram: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "os: $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r)"
    echo "redis: $(redis-server --version | sed 's/ sha=.*//'), appendonly $AOF"
    echo "libcurl: $(curl-config --version), node $(node --version), bullmq $(node -p 'require("'"$ROOT"'/bench/bullmq/node_modules/bullmq/package.json").version'), wrk $(dpkg-query -W -f '${Version}' wrk 2>/dev/null)"
    echo "git: $(git -C "$ROOT" rev-parse --short HEAD)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

# ---- the receiver, the population, the policy ----
"$BUILD/bench/zd_bench_receiver" --procs "$RECV_PROCS" > "$WORK/receiver.out" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/receiver.out" ] && break; sleep 0.05; done
RPORT=$(awk '/^port/ {print $2}' "$WORK/receiver.out")
[ -n "$RPORT" ] || die "the receiver did not start"
RECEIVER="http://127.0.0.1:$RPORT"
HOOK="$RECEIVER/hook"
SECRET="whsec_$(head -c 32 /dev/urandom | base64 -w0)"

POP="$WORK/population.ndjson"
say "generate $N profiles"
"$ZHIDA" demo-population --n "$N" --seed 1 > "$POP"
STAMP=$(date +%H%M%S)
templates_json() { # with --templates: a template reading fields, attrs and the reasons
    [ -n "$TEMPLATES" ] || return 0
    cat <<'TPL'
,
 "templates": {"default": {"title": "{{policy.title}}",
   "body": "{{fields.company|您}}：您可能符合{{policy.title}}申领条件（{{reasons}}），请于{{policy.deadline|截止日}}前申请。员工{{attrs.employees|0}}人。"}}
TPL
}
policy_json() { # id -> the policy body
    cat <<EOF
{"id": "$1", "title": "杭州市小微企业稳岗补贴",
 "summary": "您可能符合杭州市小微企业稳岗补贴申领条件（员工人数少于300人），请于2021-07-01前申请。",
 "url": "https://example.gov.cn/policies/hz-2021-wengang", "issuer": "杭州市人力社保局",
 "category": "employment", "rule": "kind = \"citizen\" or kind = \"enterprise\"",
 "routes": ["zlb"], "urgent": true$(templates_json)}
EOF
}
# urgent: quiet hours (10 % of the demo citizens) and frequency caps do not hold notices back,
# so every profile gets its notice now; category employment is muted by nobody.

# ---- 1. zhida ----
if ! skip zhida; then
    ZPORT=$(free_port)
    ZRPORT=$(free_port)
    start_redis "$ZRPORT" "$WORK/redis-zhida"
    ZREDIS_PID=$REDIS_PID
    ZHIDA_KEY=bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    export ZHIDA_KEY
    URL="http://127.0.0.1:$ZPORT"
    conf() { # batch
        cat > "$WORK/zhida-$1.json" <<EOF
{ "listen": "127.0.0.1:$ZPORT", "redis": "127.0.0.1:$ZRPORT",
  $([ "$AOF" = no ] && echo '"redis_durability": "off",')
  "api_keys": [ {"name": "bench", "role": "admin", "key": "$ZHIDA_KEY"} ],
  "gateways": { "zlb": {"type": "webhook", "url": "$HOOK", "secret": "$SECRET",
                        "batch": $1, "concurrency": $CONC},
                "inbox": {"type": "inbox"}, "sms": {"type": "sms_http", "url": "http://127.0.0.1:9/sms", "format": "form", "body": "to={{to}}&text={{body}}"}, "email": {"type": "smtp", "url": "smtp://127.0.0.1:9", "from": "noreply@example.gov.cn"} } }
EOF
    }
    start_zhidad() { # batch
        conf "$1"
        "$BUILD/zhidad/zhidad" -c "$WORK/zhida-$1.json" > "$WORK/zhidad-$1.log" 2>&1 &
        ZHIDAD_PID=$!
        PIDS+=("$ZHIDAD_PID")
        for _ in $(seq 1200); do
            curl -sf "$URL/readyz" >/dev/null 2>&1 && return 0
            kill -0 "$ZHIDAD_PID" 2>/dev/null || die "zhidad exited (see $WORK/zhidad-$1.log)"
            sleep 0.1
        done
        die "zhidad not ready after 120 s"
    }
    indexed() {
        "$ZHIDA" --url "$URL" preview 'kind = "citizen" or kind = "enterprise"' --sample 0 \
            2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' \
            2>/dev/null || echo 0
    }
    wait_indexed() {
        for _ in $(seq 1200); do [ "$(indexed)" -ge "$N" ] && return 0; sleep 0.2; done
        die "zhidad indexed $(indexed) of $N profiles"
    }
    first=1
    for b in ${BATCHES//,/ }; do
        start_zhidad "$b"
        if [ "$first" = 1 ]; then
            say "zhida: import $N profiles"
            "$ZHIDA" --url "$URL" import "$POP" --output table > "$OUT/import.txt" 2>&1 ||
                die "zhida import failed (see $OUT/import.txt)"
            first=0
        fi
        wait_indexed
        id="bench-b$b-$STAMP"
        policy_json "$id" > "$WORK/policy-$id.json"
        curl -sf "$RECEIVER/reset" >/dev/null
        sleep 1
        say "zhida: publish $id (batch $b, concurrency $CONC), load $(cut -d' ' -f1-3 /proc/loadavg)"
        $PROBE watch --name "zhida-batch$b" --receiver "$RECEIVER" --expect "$N" \
            --start "curl -sf -X POST -H 'Authorization: Bearer $ZHIDA_KEY' -H 'Content-Type: application/json' --data-binary @$WORK/policy-$id.json $URL/v1/policies -o $OUT/publish-b$b.json" \
            --policy "$URL/v1/policies/$id" --key "$ZHIDA_KEY" --pid "$ZHIDAD_PID" \
            --redis-port "$ZRPORT" --out "$OUT/zhida-batch$b.json"
        curl -s "$URL/metrics" > "$OUT/metrics-b$b.txt" || true
        forget "$ZHIDAD_PID"
    done
    forget "$ZREDIS_PID"
fi

# ---- 2. the BullMQ peer ----
if ! skip peer; then
    BPORT=$(free_port)
    start_redis "$BPORT" "$WORK/redis-bullmq"
    BREDIS_PID=$REDIS_PID
    PEER_ID="bench-peer-$STAMP"
    policy_json "$PEER_ID" > "$WORK/policy-peer.json"
    BULL="$ROOT/bench/bullmq"
    produce() { # n -> producer result line
        node "$BULL/producer.mjs" --redis "127.0.0.1:$BPORT" --population "$POP" \
            --policy "$WORK/policy-peer.json" --n "$1"
    }
    peer_run() { # name n client conc procs pipelining
        local name=$1 n=$2 pids=() args=() i
        curl -sf "$RECEIVER/reset" >/dev/null
        sleep 1
        say "bullmq $name: $n notices, client $3, concurrency $4, processes $5, pipelining $6"
        local t0
        t0=$(now_ns)
        for i in $(seq "$5"); do
            node "$BULL/worker.mjs" --redis "127.0.0.1:$BPORT" --url "$HOOK" --secret "$SECRET" \
                --client "$3" --concurrency "$4" --pipelining "$6" > "$WORK/worker-$name-$i.out" 2>&1 &
            pids+=($!)
            PIDS+=($!)
        done
        for i in "${pids[@]}"; do args+=(--pid "$i"); done
        $PROBE watch --name "$name" --receiver "$RECEIVER" --expect "$n" --t0-ns "$t0" \
            "${args[@]}" --redis-port "$BPORT" --stall-s 60 --out "$OUT/$name.json"
        for i in "${pids[@]}"; do forget "$i"; done
    }
    best="" best_rate=0
    for g in ${PEER_GRID//,/ }; do
        IFS=: read -r client conc procs pipe <<< "$g"
        pipe=${pipe:-1}
        produce "$PEER_SAMPLE" | tee -a "$OUT/peer-sweep.txt" >&2
        name="sweep-$client-c$conc-p$procs-l$pipe"
        peer_run "$name" "$PEER_SAMPLE" "$client" "$conc" "$procs" "$pipe"
        rate=$(/usr/bin/python3 -c "import json; r=json.load(open('$OUT/$name.json')); print(int(r['received'] / r['last_s']) if r.get('last_s') else 0)")
        echo "sweep $g: $rate notices/s, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/peer-sweep.txt" >&2
        if [ "$rate" -gt "$best_rate" ]; then best=$g best_rate=$rate; fi
        redis-cli -p "$BPORT" flushall >/dev/null
    done
    IFS=: read -r client conc procs pipe <<< "$best"
    pipe=${pipe:-1}
    echo "best: $best ($best_rate notices/s on $PEER_SAMPLE)" | tee -a "$OUT/peer-sweep.txt" >&2
    say "bullmq: produce $N jobs"
    produce "$N" | tee "$OUT/peer-producer.txt" >&2
    echo "redis after producing: $(redis-cli -p "$BPORT" info memory | grep -E '^used_memory:|^used_memory_rss:' | tr -d '\r' | tr '\n' ' ')" \
        | tee -a "$OUT/peer-producer.txt" >&2
    peer_run bullmq "$N" "$client" "$conc" "$procs" "$pipe"
    forget "$BREDIS_PID"
fi

# ---- 3. wrk, the ceiling ----
if ! skip wrk; then
    policy_json "bench-b1-$STAMP" > "$WORK/policy-wrk.json"
    for b in 1 100; do
        head -n "$b" "$POP" | /usr/bin/python3 -c '
import json, sys
pol = json.load(open(sys.argv[1]))
out = []
for line in sys.stdin:
    p = json.loads(line)
    out.append({"id": "%s:%s:zlb" % (pol["id"], p["id"]), "policy": pol["id"], "profile": p["id"],
                "gateway": "zlb", "to": p["contacts"]["zlb"], "title": pol["title"],
                "body": pol["summary"], "url": pol["url"], "category": pol["category"],
                "urgent": True, "attempt": 1})
body = json.dumps({"notices": out}, ensure_ascii=False, separators=(",", ":"))
nid = out[0]["id"] if len(out) == 1 else "batch_8655fd4667e462fb9b3910b174bcb35c"
print("wrk.method = \"POST\"")
print("wrk.headers[\"Content-Type\"] = \"application/json\"")
print("wrk.headers[\"webhook-id\"] = \"%s\"" % nid)
print("wrk.headers[\"webhook-timestamp\"] = \"1700000000\"")
print("wrk.headers[\"webhook-signature\"] = \"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\"")
if len(out) == 1:
    print("wrk.headers[\"Idempotency-Key\"] = \"%s\"" % nid)
print("wrk.body = [==[%s]==]" % body)
' "$WORK/policy-$( [ -f "$WORK/policy-peer.json" ] && echo peer || ls "$WORK" | sed -n 's/^policy-\(bench-b.*\)\.json$/\1/p' | head -1).json" > "$WORK/post$b.lua"
    done
    cp "$WORK/post1.lua" "$OUT/post1.lua"
    for spec in 1:1:$CONC 1:2:$((CONC * 2)) 100:1:$CONC; do
        IFS=: read -r b t c <<< "$spec"
        curl -sf "$RECEIVER/reset" >/dev/null
        c0=$(curl -s "$RECEIVER/stats")
        say "wrk: batch $b, -t$t -c$c, ${SECONDS_WRK}s, load $(cut -d' ' -f1-3 /proc/loadavg)"
        wrk -t"$t" -c"$c" -d"${SECONDS_WRK}s" -s "$WORK/post$b.lua" "$HOOK" > "$OUT/wrk-batch$b-t$t.txt"
        c1=$(curl -s "$RECEIVER/stats")
        echo "receiver: $c1 (cpu_s before: $(echo "$c0" | sed 's/.*"cpu_s":\([0-9.]*\).*/\1/')), load $(cut -d' ' -f1-3 /proc/loadavg)" \
            >> "$OUT/wrk-batch$b-t$t.txt"
    done
fi

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
$PROBE report "$OUT" | tee "$OUT/report.md"
echo "dispatch.sh: results in $OUT" >&2
