#!/usr/bin/env bash
# zhida end to end on one machine: installs dependencies, builds, starts a private redis-server
# (AOF on), zhidad and a webhook receiver (the app backend, deploy/demo_receiver.py) under
# ./var, loads a synthetic Zhejiang population, runs preview and explain on sample rules,
# publishes two policies (one to the receiver and the inbox, one to the inbox), prints their
# funnels, what the receiver saw and an inbox, and stops everything it started.
#
#   deploy/demo.sh                    100,000 profiles
#   DEMO_PROFILES=1000000 deploy/demo.sh
#   DEMO_KEEP=1 deploy/demo.sh        leave redis-server and zhidad running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${DEMO_PROFILES:-100000}
VAR=$ROOT/var/demo
mkdir -p "$VAR"

deploy/install-deps.sh
[[ -d build ]] || meson setup build >/dev/null
ninja -C build >/dev/null

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
HPORT=$(free_port)
WPORT=$(free_port)
ADMIN_KEY=demo-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
# The webhook's Standard Webhooks signing secret, shared with the demo's receiver.
ZLB_SECRET=whsec_$(head -c 32 /dev/urandom | base64 -w0)
APP_KEY=demo-app-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
HZ_KEY=demo-hz-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

cleanup() {
  if [[ -z "${DEMO_KEEP:-}" ]]; then
    [[ -n "${ZPID:-}" ]] && kill "$ZPID" 2>/dev/null && wait "$ZPID" 2>/dev/null || true
    [[ -n "${WPID:-}" ]] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null || true
    redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

echo "== starting redis-server on 127.0.0.1:$RPORT (data in var/demo)"
rm -rf "$VAR"/appendonly* "$VAR"/dump.rdb
rm -rf "$VAR/appendonlydir"
fail() { # message log-file
  echo "demo: $1" >&2
  if [[ -f "$2" ]]; then echo "---- last lines of $2:" >&2; tail -n 20 "$2" >&2; fi
  exit 1
}
redis-server deploy/redis.conf --port "$RPORT" --dir "$VAR" --daemonize yes \
  --logfile "$VAR/redis.log" --pidfile "$VAR/redis.pid" >/dev/null ||
  fail "redis-server did not start" "$VAR/redis.log"
up=""
for _ in $(seq 100); do redis-cli -p "$RPORT" ping 2>/dev/null | grep -q PONG && up=1 && break; sleep 0.1; done
[[ -n $up ]] || fail "redis-server on 127.0.0.1:$RPORT did not answer within 10 s" "$VAR/redis.log"

echo "== starting the app backend's webhook receiver on 127.0.0.1:$WPORT"
ZLB_SECRET=$ZLB_SECRET /usr/bin/python3 deploy/demo_receiver.py "$WPORT" 2>"$VAR/receiver.log" &
WPID=$!
up=""
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$WPORT/stats" >/dev/null && up=1 && break; sleep 0.1; done
[[ -n $up ]] || fail "the demo receiver did not start" "$VAR/receiver.log"

cat >"$VAR/zhida.json" <<JSON
// demo configuration written by deploy/demo.sh; see docs/CONFIG.md for every option
{
  "listen": "127.0.0.1:$HPORT",
  "redis": "127.0.0.1:$RPORT",
  "api_keys": [
    {"name": "ops", "role": "admin", "key": "$ADMIN_KEY"},
    {"name": "gov-app", "role": "app", "key": "$APP_KEY"},
    {"name": "hz-hrss", "role": "publisher", "scope": "3301", "key": "$HZ_KEY"}
  ],
  "gateways": {"zlb": {"type": "webhook", "url": "http://127.0.0.1:$WPORT/zhida-demo",
                       "secret": "$ZLB_SECRET"}, "inbox": {"type": "inbox"},
               "sms": {"type": "sms_http", "url": "http://127.0.0.1:9/sms", "format": "form", "body": "to={{to}}&text={{body}}"}, "email": {"type": "smtp", "url": "smtp://127.0.0.1:9", "from": "noreply@example.gov.cn"}},
  "timezone": "Asia/Shanghai"
}
JSON
echo "== starting zhidad on 127.0.0.1:$HPORT"
build/zhidad/zhidad -c "$VAR/zhida.json" 2>"$VAR/zhidad.log" &
ZPID=$!
up=""
for _ in $(seq 300); do
  kill -0 "$ZPID" 2>/dev/null || fail "zhidad exited during start-up" "$VAR/zhidad.log"
  curl -sf "http://127.0.0.1:$HPORT/readyz" >/dev/null && up=1 && break
  sleep 0.1
done
[[ -n $up ]] || fail "zhidad was not ready within 30 s" "$VAR/zhidad.log"
curl -s "http://127.0.0.1:$HPORT/readyz"; echo

export ZHIDA_URL="http://127.0.0.1:$HPORT"
ZHIDA=build/client/zhida
CIT=$((N * 7 / 10)); ENT=$((N - CIT))
echo "== generating $N synthetic Zhejiang profiles ($CIT citizens, $ENT enterprises)"
$ZHIDA demo-population --citizens "$CIT" --enterprises "$ENT" --seed 2021 >"$VAR/population.ndjson"
echo "== importing"
ZHIDA_KEY=$APP_KEY $ZHIDA import "$VAR/population.ndjson" --output table

export ZHIDA_KEY=$ADMIN_KEY
echo "== saving segment \"smb\" (small and micro enterprises)"
$ZHIDA segment put smb 'kind = "enterprise" and employees < 300' --output table
# Tables (with region and industry names) even when the demo's output goes to a log.
run() { echo; echo "\$ zhida $*"; $ZHIDA "$@" --output table; }
run preview 'kind = "enterprise" and region within "3301" and industry within ["C", "I65"] and employees < 300 and age(founded) < 3 and not tags has "dishonest"' --sample 5 --breakdown region:6,scale
run preview 'kind = "citizen" and age(birth_date) >= 60 and tags has "retired"' --sample 3 --breakdown region
run preview 'segment "smb" and (tags has "srdi" or tags has "hightech")' --sample 3 --breakdown region,industry
run preview 'region within ["3303", "3311"] and tags has "veteran"' --sample 3
SAMPLE=$($ZHIDA preview 'segment "smb" and tags has "hightech"' --sample 1 --output json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["sample"][0])')
run explain 'segment "smb" and tags has "hightech" and age(founded) < 3' "$SAMPLE"
echo
echo "== the same rule as the Hangzhou publisher (scope 3301 is implied)"
ZHIDA_KEY=$HZ_KEY run preview 'tags has "hightech"' --sample 0 --breakdown region
echo
echo "== a rule with a mistake gets a precise error"
run preview 'kind = "enterprise" and employes < 300' || true
echo

# ---- publishing: policies find people -------------------------------------------------------
wait_policy() { # id: until dispatched (done, or active for reverse matching), at most 10 min
  for _ in $(seq 1200); do
    st=$($ZHIDA status "$1" --output json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case $st in done|active|withdrawn) return 0 ;; esac
    sleep 0.5
  done
  fail "policy $1 did not finish dispatching" "$VAR/zhidad.log"
}
echo
echo "== the Hangzhou publisher publishes a subsidy to the app backend (webhook) and the inbox"
cat >"$VAR/policy-wengang.json" <<'JSON'
{"id": "hz-2021-wengang", "title": "杭州市小微企业稳岗补贴",
 "summary": "在杭参保的小微企业可申领稳岗补贴，请登录浙里办查看申领条件。",
 "url": "https://example.gov.cn/policies/hz-2021-wengang",
 "issuer": "杭州市人力社保局", "category": "employment",
 "rule": "kind = \"enterprise\" and employees < 300 and not tags has \"dishonest\"",
 "routes": ["inbox", ["zlb", "sms"]], "deadline": "2027-07-01",
 "templates": {"default": {"title": "{{policy.title}}",
   "body": "{{fields.company|贵单位}}：您可能符合{{policy.title}}申领条件（{{reasons}}），请于{{policy.deadline}}前申请。"}}}
JSON
ZHIDA_KEY=$HZ_KEY $ZHIDA publish "$VAR/policy-wengang.json" --output table
echo "== the province publishes an elder-care notice to the inbox"
cat >"$VAR/policy-elder.json" <<'JSON'
{"id": "zj-2021-elder-care", "title": "浙江省高龄津贴",
 "summary": "年满60周岁的退休人员可申请高龄津贴。",
 "url": "https://example.gov.cn/policies/zj-2021-elder-care",
 "issuer": "浙江省民政厅", "category": "elderly",
 "rule": "kind = \"citizen\" and age(birth_date) >= 60 and tags has \"retired\"",
 "routes": ["inbox"]}
JSON
$ZHIDA publish "$VAR/policy-elder.json" --output table
wait_policy hz-2021-wengang
wait_policy zj-2021-elder-care
run status hz-2021-wengang
run status zj-2021-elder-care
echo
echo "== what the app backend's receiver accepted (every signature checked)"
curl -s "http://127.0.0.1:$WPORT/stats" | /usr/bin/python3 -m json.tool --no-ensure-ascii
ELDER=$($ZHIDA preview 'kind = "citizen" and age(birth_date) >= 60 and tags has "retired"' --sample 1 --output json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["sample"][0])')
echo
echo "== the inbox of $ELDER, as the app reads it"
curl -s -H "Authorization: Bearer $APP_KEY" "http://127.0.0.1:$HPORT/v1/profiles/$ELDER/inbox?limit=3" |
  /usr/bin/python3 -m json.tool --no-ensure-ascii
echo
curl -s "http://127.0.0.1:$HPORT/metrics" | grep -E "^zhida_index_(profiles|bytes|load_seconds)"
echo
echo "demo done (logs in var/demo/)."
