#!/usr/bin/env bash
# The audience benchmark of docs/BENCHMARKS.md: zhida's bitmap index, PostgreSQL 15 (GIN + btree)
# and Redis set algebra over the same generated population, side by side in one run.
#
#   bench/run.sh [--n 1000000] [--seed 1] [--engines zhida,pg,redis[,http]]
#                [--runs-zhida 200] [--runs-pg 15] [--runs-redis 15] [--runs-http 50]
#                [--build DIR] [--out DIR] [--keep] [--zhidad 'CMD']
#
# Everything it starts (a PostgreSQL cluster, redis-servers, zhidad) lives in a temp dir, listens
# on 127.0.0.1 only and is stopped on exit. Results go to bench/out/<stamp>/ (report.md plus
# the raw "info"/"result" lines). With --n above 2,000,000 only zhida runs unless --engines
# says otherwise (PostgreSQL and the Redis model would take long to load and need >10 GB).
#
# --zhidad 'CMD' also measures zhidad end to end (engine "http"): CMD is zhidad's command line
# with {config} replaced by a generated config file, e.g.
#   bench/run.sh --zhidad 'build-bench/zhidad/zhidad -c {config}'
# It gets its own redis-server; the run measures HTTP import rate (`zhida import`), Redis memory
# per profile, zhidad RSS per profile, preview latency per rule and start-up index load time.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/deploy/install-deps.sh" --bench >&2
N=1000000
SEED=1
ENGINES=""
RUNS_ZHIDA=200
RUNS_PG=15
RUNS_REDIS=15
RUNS_HTTP=50
BUILD="$ROOT/build-bench"
OUT=""
KEEP=0
ZHIDAD_CMD=""

die() { echo "run.sh: $*" >&2; exit 2; }
say() { echo "== $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
    --n) N=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --engines) ENGINES=$2; shift 2 ;;
    --runs-zhida) RUNS_ZHIDA=$2; shift 2 ;;
    --runs-pg) RUNS_PG=$2; shift 2 ;;
    --runs-redis) RUNS_REDIS=$2; shift 2 ;;
    --runs-http) RUNS_HTTP=$2; shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --keep) KEEP=1; shift ;;
    --zhidad) ZHIDAD_CMD=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
if [ -z "$ENGINES" ]; then
    if [ "$N" -gt 2000000 ]; then ENGINES=zhida; else ENGINES=zhida,pg,redis; fi
    [ -n "$ZHIDAD_CMD" ] && ENGINES="$ENGINES,http"
fi
has() { case ",$ENGINES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
if has http && [ -z "$ZHIDAD_CMD" ]; then die "engine http needs --zhidad 'CMD'"; fi

# The benchmark day fixes age() so that repeated runs select the same profiles.
export ZHIDA_TODAY=${ZHIDA_TODAY:-2026-07-01}
[ -n "$OUT" ] || OUT="$ROOT/bench/out/$(date +%Y%m%d-%H%M%S)-n$N"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/zhida-bench.XXXXXX)
chmod 755 "$WORK"
RULES="$ROOT/bench/rules.txt"
PGBIN=/usr/lib/postgresql/15/bin
PIDS=()
PGDATA=""

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    [ -n "$PGDATA" ] && [ -f "$PGDATA/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null
    if [ "$KEEP" = 1 ]; then echo "run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Throwaway Redis servers without AOF (the runs measure zhida and the baselines, not the disk),
# so zhidad's durability check is off ("redis_durability", docs/CONFIG.md).
start_redis() { # port -> pid in REDIS_PID
    redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
        --logfile "$WORK/redis-$1.log" --daemonize no &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "redis-server on port $1 did not start (see $WORK/redis-$1.log)"
}

elapsed() { /usr/bin/python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }
now() { date +%s.%N; }

# ---- build ----
say "build ($BUILD)"
if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" "$ROOT" --buildtype=release >/dev/null
fi
targets=(client/zhida)
has zhida && targets+=(bench/zd_bench_audience)
{ has pg || has redis || has http; } && targets+=(bench/zd_bench_baseline)
has http && targets+=(zhidad/zhidad)
ninja -C "$BUILD" "${targets[@]}" >/dev/null
ZHIDA="$BUILD/client/zhida"
BASELINE="$BUILD/bench/zd_bench_baseline"

# ---- the machine ----
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "cores: $(nproc)"
    echo "ram: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "kernel: $(uname -r)"
    echo "os: $(. /etc/os-release; echo "$PRETTY_NAME")"
    echo "compiler: $(cc --version | head -1)"
    echo "croaring: $(dpkg-query -W -f '${Version}' libroaring-dev 2>/dev/null || echo '?')"
    echo "postgresql: $("$PGBIN/postgres" --version 2>/dev/null || echo '?')"
    echo "redis: $(redis-server --version | sed 's/ sha=.*//')"
    echo "profiles: $N (seed $SEED), day $ZHIDA_TODAY"
    echo "command: bench/run.sh --n $N --seed $SEED --engines $ENGINES"
    # The machine may be shared: the load averages say how much (read again at the end).
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# ---- the population ----
POP="$WORK/population.ndjson"
say "generate $N profiles"
t0=$(now)
"$ZHIDA" demo-population --n "$N" --seed "$SEED" > "$POP"
t1=$(now)
echo "info engine=generator profiles=$N gen_s=$(elapsed "$t0" "$t1") bytes=$(stat -c %s "$POP")" > "$OUT/generator.txt"

# ---- zhida (in-process index) ----
if has zhida; then
    say "zhida: build index, time $RUNS_ZHIDA runs per rule"
    "$BUILD/bench/zd_bench_audience" --rules "$RULES" --runs "$RUNS_ZHIDA" "$POP" | tee "$OUT/zhida.txt"
fi

# ---- PostgreSQL 15 ----
if has pg; then
    say "postgresql: init, load, index, time $RUNS_PG runs per rule"
    PGDATA="$WORK/pg/data"
    PGSOCK="$WORK/pg/sock"
    PGPORT=$(free_port)
    mkdir -p "$PGDATA" "$PGSOCK"
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$WORK/pg"; fi
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
    # Tuned to give PostgreSQL its best shot on this box: everything fits in shared_buffers,
    # JIT off (it costs more than it saves on millisecond queries), durability off for the load.
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg/log" -w -o "-p $PGPORT -k $PGSOCK \
        -c listen_addresses=127.0.0.1 -c shared_buffers=4GB -c work_mem=64MB \
        -c maintenance_work_mem=1GB -c effective_cache_size=12GB -c random_page_cost=1.1 \
        -c jit=off -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_wal_size=16GB -c max_parallel_workers_per_gather=2" start >/dev/null
    CONN="host=$PGSOCK port=$PGPORT user=postgres dbname=postgres"
    psql "$CONN" -q -v ON_ERROR_STOP=1 -f "$ROOT/bench/pg_schema.sql"
    "$BASELINE" pg-load --pg "$CONN" "$POP" | tee "$OUT/pg.txt"
    t0=$(now)
    psql "$CONN" -q -v ON_ERROR_STOP=1 -f "$ROOT/bench/pg_index.sql"
    t1=$(now)
    read -r tbytes ibytes < <(psql "$CONN" -At -F ' ' -c \
        "SELECT pg_table_size('profiles'), pg_indexes_size('profiles')")
    # Warm the cache the way a running system would be: every page read once.
    psql "$CONN" -q -c "SELECT count(*) FROM profiles" >/dev/null
    echo "info engine=pg index_s=$(elapsed "$t0" "$t1") table_bytes=$tbytes index_bytes=$ibytes" \
        | tee -a "$OUT/pg.txt"
    "$BASELINE" query --engine pg --pg "$CONN" --rules "$RULES" --runs "$RUNS_PG" \
        --plans "$OUT/pg-plans.txt" | tee -a "$OUT/pg.txt"
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null
fi

# ---- Redis set algebra ----
if has redis; then
    say "redis: load the set model, time $RUNS_REDIS runs per rule"
    RPORT=$(free_port)
    start_redis "$RPORT"
    "$BASELINE" redis-load --redis "127.0.0.1:$RPORT" "$POP" | tee "$OUT/redis.txt"
    "$BASELINE" query --engine redis --redis "127.0.0.1:$RPORT" --rules "$RULES" \
        --runs "$RUNS_REDIS" | tee -a "$OUT/redis.txt"
    redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
fi

# ---- zhidad end to end (HTTP import, preview, memory, start-up) ----
if has http; then
    say "zhidad: import over HTTP, preview $RUNS_HTTP runs per rule, restart"
    ZPORT=$(free_port)
    ZRPORT=$(free_port)
    start_redis "$ZRPORT"
    ZHIDA_KEY=bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    export ZHIDA_KEY
    CONF="$WORK/zhida.json"
    cat > "$CONF" <<EOF
{ "listen": "127.0.0.1:$ZPORT", "redis": "127.0.0.1:$ZRPORT",
  "redis_durability": "off",
  "api_keys": [ {"name": "bench", "role": "admin", "key": "$ZHIDA_KEY"} ],
  "gateways": { "zlb": {"type": "webhook", "url": "http://127.0.0.1:9/zhida-bench",
                        "secret": "whsec_$(head -c 32 /dev/urandom | base64 -w0)"},
                "inbox": {"type": "inbox"},
                "sms": {"type": "sms_http", "url": "http://127.0.0.1:9/sms", "format": "form", "body": "to={{to}}&text={{body}}"}, "email": {"type": "smtp", "url": "smtp://127.0.0.1:9", "from": "noreply@example.gov.cn"} } }
EOF
    chmod 600 "$CONF"
    URL="http://127.0.0.1:$ZPORT"
    start_zhidad() {
        local cmd=${ZHIDAD_CMD//\{config\}/$CONF}
        bash -c "exec $cmd" > "$WORK/zhidad.log" 2>&1 &
        ZHIDAD_PID=$!
        PIDS+=("$ZHIDAD_PID")
        for _ in $(seq 1200); do
            curl -sf "$URL/readyz" >/dev/null 2>&1 && return 0
            kill -0 "$ZHIDAD_PID" 2>/dev/null || die "zhidad exited (see $WORK/zhidad.log)"
            sleep 0.1
        done
        die "zhidad not ready after 120 s (see $WORK/zhidad.log)"
    }
    # The audience of a rule everybody matches: how many profiles zhidad has indexed.
    indexed() {
        "$ZHIDA" --url "$URL" preview 'kind = "citizen" or kind = "enterprise"' --sample 0 \
            2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' \
            2>/dev/null || echo 0
    }
    # Waits until zhidad's index holds all $IMPORTED profiles (the change stream may lag).
    wait_indexed() {
        for _ in $(seq 600); do [ "$(indexed)" -ge "$IMPORTED" ] && return 0; sleep 0.2; done
        echo "run.sh: warning: zhidad indexed $(indexed) of $IMPORTED profiles" >&2
    }
    rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$ZHIDAD_PID/status"; }
    used_memory() { redis-cli -p "$ZRPORT" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }

    start_zhidad
    mem0=$(used_memory)
    rss0=$(rss)
    t0=$(now)
    "$ZHIDA" --url "$URL" import "$POP" --output table | tee "$OUT/import.txt" \
        || echo "run.sh: warning: zhida import exited with an error (see above)" >&2
    t1=$(now)
    IMPORTED=$(sed -n 's/^imported \([0-9]*\),.*/\1/p' "$OUT/import.txt" | head -1)
    IMPORTED=${IMPORTED:-0}
    wait_indexed
    t2=$(now)
    mem1=$(used_memory)
    rss1=$(rss)
    import_rate=$(sed -n 's/.*(\([0-9]*\) profiles\/s).*/\1/p' "$OUT/import.txt" | head -1)
    "$BASELINE" query --engine http --url "$URL" --rules "$RULES" --runs "$RUNS_HTTP" \
        | tee "$OUT/http.txt"
    kill "$ZHIDAD_PID"
    wait "$ZHIDAD_PID" 2>/dev/null || true
    t3=$(now)
    start_zhidad
    t4=$(now)
    wait_indexed
    t5=$(now)
    per=$(( IMPORTED > 0 ? IMPORTED : 1 ))
    echo "info engine=http profiles=$IMPORTED import_s=$(elapsed "$t0" "$t1") import_rate=${import_rate:-0}" \
        "index_catchup_s=$(elapsed "$t1" "$t2") redis_bytes=$((mem1 - mem0))" \
        "redis_bytes_per_profile=$(( (mem1 - mem0) / per ))" \
        "rss_bytes=$((rss1 - rss0)) rss_per_profile=$(( (rss1 - rss0) / per ))" \
        "startup_ready_s=$(elapsed "$t3" "$t4") startup_indexed_s=$(elapsed "$t3" "$t5")" \
        | tee -a "$OUT/http.txt"
fi

# ---- report ----
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)" >> "$OUT/machine.txt"
status=0
/usr/bin/python3 "$ROOT/bench/report.py" --rules "$RULES" "$OUT" > "$OUT/report.md" || status=$?
cat "$OUT/report.md"
echo "run.sh: results in $OUT" >&2
exit "$status"
