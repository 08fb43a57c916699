"""The inbox (issue #6, SPEC §5): the built-in inbox gateway writing into a real redis-server,
driven by zd_inbox_send (the configured gateway set of delivery/gateways.c, as zhidad creates
it), and the inbox API of a real zhidad on the same Redis reading and changing what it wrote:
listing with cursor and unread count, :read, :read-all and :feedback counted in the policy's
funnel, withdrawn policies' items marked, bad input, roles, and erasure with the profile."""
import json
import os
import subprocess
import time

import pytest

from conftest import ZHIDAD, RedisServer, Zhidad, citizen, enterprise, wait_until

SEND = os.environ.get("ZD_INBOX_SEND") or os.path.join(
    os.path.dirname(os.path.dirname(ZHIDAD)), "tests", "zd_inbox_send")
PARTITIONS = 4


def fnv_partition(pid, n=PARTITIONS):
    h = 2166136261
    for b in pid.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h % n


def inbox_keys(pid):
    p = fnv_partition(pid)
    return "zd:{p%d}:inbox:%s" % (p, pid), "zd:{p%d}:inboxz:%s" % (p, pid)


def notice(policy, profile, gateway="inbox", title="稳岗补贴", **kw):
    n = {"id": "%s:%s:%s" % (policy, profile, gateway), "policy": policy, "profile": profile,
         "gateway": gateway, "to": "", "title": title, "body": "您可能符合申领条件",
         "url": "https://example.gov.cn/p/1", "category": "employment", "urgent": False,
         "attempt": 1}
    n.update(kw)
    return n


def send(redis_port, batches, test=False, free_in_callback=False, gateways=None, name="inbox"):
    scenario = {"redis": "127.0.0.1:%d" % redis_port, "partitions": PARTITIONS,
                "gateways": gateways or {"inbox": {"type": "inbox"}}, "name": name,
                "batches": batches, "test": test, "free_in_callback": free_in_callback}
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    p = subprocess.run([SEND], input=json.dumps(scenario), capture_output=True, text=True,
                       timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert lines[-1]["unfinished"] == 0
    return {x["batch"]: x for x in lines[:-1]}, lines[-1]


def outcomes(line):
    return [(r["outcome"], r["detail"]) for r in line["results"]]


@pytest.fixture(scope="module")
def env(tmpdir_mod):
    r = RedisServer(tmpdir_mod)
    z = Zhidad(tmpdir_mod, r.port, name="inbox", extra_config={"erase_grace_s": 1})
    c = r.client()
    for pid in ("ib-1", "ib-2", "ib-3", "ib-4", "ib-5"):
        assert z.call("PUT", "/v1/profiles/" + pid, citizen(), key="app")[0] == 200
    yield r, z, c
    c.close()
    z.stop()
    r.stop()


def policy(c, pid, routes, status="dispatching"):
    """A policy's meta hash as the policy store writes it (docs/DESIGN.md "Delivery")."""
    c("HSET", "zd:{d:%s}:meta" % pid, "status", status, "doc",
      json.dumps({"id": pid, "routes": routes}))


def funnel(c, pid):
    f = c("HGETALL", "zd:{d:%s}:funnel" % pid) or []
    return {f[i]: int(f[i + 1]) for i in range(0, len(f), 2)}


def test_gateway_stores_each_notice_once(env):
    redis, zd, c = env
    batch = [notice("pa", "ib-1"), notice("pb", "ib-1"), notice("pa", "ib-2"),
             notice("pa", "ghost-1")]
    res, final = send(redis.port, [batch])
    assert outcomes(res[0]) == [("delivered", "stored in the inbox")] * 3 + [
        ("permanent", "no such profile")]
    assert all(r["http"] == 0 for r in res[0]["results"])
    assert final["stats"]["delivered"] == 3 and final["stats"]["permanent"] == 1
    # Again (a retry after an unknown outcome): one item each, unread counted once.
    res, _ = send(redis.port, [batch, batch])
    assert outcomes(res[1])[:3] == [("delivered", "already in the inbox")] * 3
    h, z = inbox_keys("ib-1")
    assert c("HGET", h, "#unread") == "2"
    assert c("HLEN", h) == 3 and c("ZCARD", z) == 2
    # Nothing is stored for a profile that does not exist.
    assert c("EXISTS", *inbox_keys("ghost-1")) == 0
    item = json.loads(c("HGET", h, "pa:ib-1:inbox"))
    assert item["title"] == "稳岗补贴" and item["read_at"] is None and item["feedback"] is None


def test_list_newest_first_with_cursor(env):
    redis, zd, c = env
    for i in range(5):
        send(redis.port, [[notice("list-%d" % i, "ib-3", title="t%d" % i)]])
        time.sleep(0.002)
    # Two in the same batch (the same arrival ms): the cursor still visits each once.
    send(redis.port, [[notice("list-5", "ib-3"), notice("list-6", "ib-3")]])
    st, body = zd.call("GET", "/v1/profiles/ib-3/inbox", key="app")
    assert st == 200 and body["unread"] == 7 and body["profile"] == "ib-3"
    ids = [it["id"] for it in body["items"]]
    assert len(ids) == 7 and body["next_cursor"] is None
    assert ids[2:] == ["list-%d:ib-3:inbox" % i for i in (4, 3, 2, 1, 0)]
    it = body["items"][2]
    assert it["title"] == "t4" and it["policy"] == "list-4" and it["read"] is False
    assert it["read_at"] is None and it["feedback"] is None and it["status"] == "current"
    assert it["created_at"].endswith("Z") and it["category"] == "employment"
    for limit in (1, 2, 3):  # limit 1 resumes inside the tie group
        seen, cursor = [], None
        while True:
            q = "/v1/profiles/ib-3/inbox?limit=%d" % limit + ("&cursor=" + cursor if cursor
                                                              else "")
            st, page = zd.call("GET", q, key="app")
            assert st == 200 and len(page["items"]) <= limit
            seen += [it["id"] for it in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == ids, limit
    # An empty inbox of an existing profile.
    st, body = zd.call("GET", "/v1/profiles/ib-5/inbox", key="admin")
    assert st == 200 and body == {"profile": "ib-5", "unread": 0, "items": [],
                                  "next_cursor": None}


def test_read_counts_once_in_the_route_of_its_gateway(env):
    redis, zd, c = env
    policy(c, "pr", ["zlb", ["sms", "inbox"]])
    send(redis.port, [[notice("pr", "ib-2")]])
    st, it = zd.call("POST", "/v1/profiles/ib-2/inbox/pr:ib-2:inbox:read", key="app")
    assert st == 200 and it["read"] is True and it["read_at"] and it["id"] == "pr:ib-2:inbox"
    assert it["unread"] == 1  # pa:ib-2:inbox is still unread
    assert funnel(c, "pr") == {"1:read": 1}
    st, again = zd.call("POST", "/v1/profiles/ib-2/inbox/pr:ib-2:inbox:read", key="admin")
    assert st == 200 and again["read_at"] == it["read_at"] and again["unread"] == 1
    assert funnel(c, "pr") == {"1:read": 1}
    # A policy that does not exist gets no funnel (pa has no meta).
    assert zd.call("POST", "/v1/profiles/ib-2/inbox/pa:ib-2:inbox:read", key="app")[0] == 200
    assert c("EXISTS", "zd:{d:pa}:funnel") == 0


def test_feedback_counts_once_and_moves_on_a_change_of_mind(env):
    redis, zd, c = env
    policy(c, "pf", ["inbox"])
    send(redis.port, [[notice("pf", "ib-4")]])
    path = "/v1/profiles/ib-4/inbox/pf:ib-4:inbox:feedback"
    st, it = zd.call("POST", path, {"useful": True}, key="app")
    assert st == 200 and it["feedback"]["useful"] is True and it["feedback"]["reason"] is None
    assert it["read"] is True  # feedback reads the item
    assert funnel(c, "pf") == {"0:read": 1, "0:useful": 1}
    st, it = zd.call("POST", path, {"useful": True, "reason": "讲得清楚"}, key="app")
    assert st == 200 and it["feedback"]["reason"] == "讲得清楚"
    assert funnel(c, "pf") == {"0:read": 1, "0:useful": 1}
    st, it = zd.call("POST", path, {"useful": False, "reason": "我不是企业"}, key="app")
    assert st == 200 and it["feedback"]["useful"] is False
    assert funnel(c, "pf") == {"0:read": 1, "0:useful": 0, "0:not_useful": 1}
    st, body = zd.call("GET", "/v1/profiles/ib-4/inbox", key="app")
    assert body["items"][0]["feedback"]["reason"] == "我不是企业" and body["unread"] == 0


def test_read_all(env):
    redis, zd, c = env
    policy(c, "pall", ["zlb", "inbox"])
    send(redis.port, [[notice("pall", "ib-5"), notice("pall2", "ib-5")]])
    st, body = zd.call("POST", "/v1/profiles/ib-5/inbox:read-all", key="app")
    assert st == 200 and body == {"profile": "ib-5", "read": 2, "unread": 0}
    assert funnel(c, "pall") == {"1:read": 1}
    st, body = zd.call("POST", "/v1/profiles/ib-5/inbox:read-all", key="app")
    assert body["read"] == 0
    st, body = zd.call("GET", "/v1/profiles/ib-5/inbox", key="app")
    assert body["unread"] == 0 and all(it["read"] for it in body["items"])


def test_withdrawn_policy_items_are_marked(env):
    redis, zd, c = env
    policy(c, "pw", ["inbox"], status="withdrawn")
    policy(c, "pok", ["inbox"], status="done")
    send(redis.port, [[notice("pw", "ib-1"), notice("pok", "ib-1")]])
    st, body = zd.call("GET", "/v1/profiles/ib-1/inbox", key="app")
    status = {it["policy"]: it["status"] for it in body["items"]}
    assert status["pw"] == "withdrawn" and status["pok"] == "current"
    # A withdraw shows within the cache time (2 s).
    policy(c, "pok", ["inbox"], status="withdrawn")
    wait_until(lambda: {it["policy"]: it["status"] for it in zd.call(
        "GET", "/v1/profiles/ib-1/inbox", key="app")[1]["items"]}["pok"] == "withdrawn",
        timeout=10, what="the withdrawn status")


def test_unknown_profile_and_notice(env):
    redis, zd, c = env
    for method, path, body in [
            ("GET", "/v1/profiles/nobody/inbox", None),
            ("POST", "/v1/profiles/nobody/inbox/p:nobody:inbox:read", None),
            ("POST", "/v1/profiles/nobody/inbox:read-all", None),
            ("POST", "/v1/profiles/nobody/inbox/p:nobody:inbox:feedback", {"useful": True})]:
        st, b = zd.call(method, path, body, key="app")
        assert st == 404 and b["error"]["code"] == "not_found", path
        assert b["error"]["message"] == "no profile with this id"
    for action, body in (("read", None), ("feedback", {"useful": False})):
        st, b = zd.call("POST", "/v1/profiles/ib-1/inbox/zz:ib-1:inbox:" + action, body, key="app")
        assert st == 404 and "no such notice" in b["error"]["message"]
    assert c("EXISTS", *inbox_keys("nobody")) == 0


@pytest.mark.parametrize("method,path,body,code,field", [
    ("GET", "/v1/profiles/bad%20id/inbox", None, "invalid_id", None),
    ("GET", "/v1/profiles/ib-1/inbox?limit=0", None, "invalid_value", "limit"),
    ("GET", "/v1/profiles/ib-1/inbox?limit=x", None, "invalid_value", "limit"),
    ("GET", "/v1/profiles/ib-1/inbox?cursor=abc", None, "invalid_cursor", "cursor"),
    ("GET", "/v1/profiles/ib-1/inbox?cursor=12:nonotice", None, "invalid_cursor", "cursor"),
    ("GET", "/v1/profiles/ib-1/inbox?cursor=", None, "invalid_cursor", "cursor"),
    ("POST", "/v1/profiles/ib-1/inbox/nonotice:read", None, "invalid_id", "notice_id"),
    ("POST", "/v1/profiles/ib-1/inbox/p%20x:ib-1:inbox:read", None, "invalid_id", "notice_id"),
    ("POST", "/v1/profiles/bad%20id/inbox:read-all", None, "invalid_id", None),
    ("POST", "/v1/profiles/ib-1/inbox/p:ib-1:inbox:feedback", {}, "missing_field", "useful"),
    ("POST", "/v1/profiles/ib-1/inbox/p:ib-1:inbox:feedback", {"useful": "yes"},
     "invalid_type", "useful"),
    ("POST", "/v1/profiles/ib-1/inbox/p:ib-1:inbox:feedback", {"useful": True, "reason": 3},
     "invalid_type", "reason"),
    ("POST", "/v1/profiles/ib-1/inbox/p:ib-1:inbox:feedback",
     {"useful": True, "reason": "x" * 501}, "out_of_range", "reason"),
    ("POST", "/v1/profiles/ib-1/inbox/p:ib-1:inbox:feedback", {"useful": True, "why": "x"},
     "unknown_field", "why"),
    ("POST", "/v1/profiles/ib-1/inbox/p:ib-1:inbox:feedback", [True], "bad_json", None),
])
def test_bad_input(env, method, path, body, code, field):
    redis, zd, c = env
    st, b = zd.call(method, path, body, key="app")
    assert st == 400 and b["error"]["code"] == code, b
    if field:
        assert b["error"].get("field") == field


def test_feedback_body_not_json(env):
    redis, zd, c = env
    st, b = zd.call("POST", "/v1/profiles/ib-1/inbox/p:ib-1:inbox:feedback", raw=b"{nope",
                    key="app")
    assert st == 400 and b["error"]["code"] == "bad_json"


@pytest.mark.parametrize("key,status", [("viewer", 403), ("hz", 403), (None, 401),
                                        ("not-a-key", 401)])
def test_roles(env, key, status):
    redis, zd, c = env
    for method, path, body in [
            ("GET", "/v1/profiles/ib-1/inbox", None),
            ("POST", "/v1/profiles/ib-1/inbox/pa:ib-1:inbox:read", None),
            ("POST", "/v1/profiles/ib-1/inbox:read-all", None),
            ("POST", "/v1/profiles/ib-1/inbox/pa:ib-1:inbox:feedback", {"useful": True})]:
        st, _ = zd.call(method, path, body, key=key)
        assert st == status, (path, key)


def test_test_send_stores_nothing(env):
    redis, zd, c = env
    res, _ = send(redis.port, [[notice("test", "x", to="ib-1", id="test:abc:inbox")],
                               [notice("test", "x", to="ghost-2", id="test:abd:inbox")],
                               [notice("test", "x", to="", id="test:abe:inbox")]], test=True)
    assert res[0]["results"][0]["outcome"] == "delivered"
    assert res[1]["results"][0] == {"id": "test:abd:inbox", "outcome": "permanent", "http": 0,
                                    "retry_after_ms": 0, "detail": "no such profile"}
    assert res[2]["results"][0]["outcome"] == "delivered"
    h, _ = inbox_keys("ib-1")
    assert c("HEXISTS", h, "test:abc:inbox") == 0
    assert c("EXISTS", *inbox_keys("ghost-2")) == 0


def test_gateway_freed_in_its_callback_cancels_the_rest(env):
    redis, zd, c = env
    res, _ = send(redis.port, [[notice("pc%d" % i, "ib-2")] for i in range(3)],
                  free_in_callback=True)
    statuses = sorted(x["status"] for x in res.values())
    assert len(res) == 3 and statuses == [-125, -125, 0]  # -ECANCELED
    for x in res.values():
        if x["status"] != 0:
            assert x["results"][0]["outcome"] == "transient"


def test_bad_batches_are_refused(env):
    redis, zd, c = env
    res, _ = send(redis.port, [[notice("p", "ib-1", id="has space")],
                               [notice("p", "ib-1")] * 101, []])
    assert all("refused" in x for x in res.values())


def test_inbox_gateway_takes_no_options(env):
    redis, zd, c = env
    scenario = {"redis": "127.0.0.1:%d" % redis.port, "partitions": PARTITIONS,
                "gateways": {"inbox": {"type": "inbox", "url": "http://x"}}, "name": "inbox",
                "batches": []}
    p = subprocess.run([SEND], input=json.dumps(scenario), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "gateways.inbox.url" in p.stderr


def test_delete_erases_the_inbox(env):
    redis, zd, c = env
    pid = "330102199001015678"  # an id that is an ID number
    assert zd.call("PUT", "/v1/profiles/" + pid, enterprise(), key="app")[0] == 200
    policy(c, "perase", ["inbox"])
    res, _ = send(redis.port, [[notice("perase", pid), notice("perase2", pid)]])
    assert outcomes(res[0])[0][0] == "delivered"
    assert zd.call("POST", "/v1/profiles/%s/inbox/perase:%s:inbox:feedback" % (pid, pid),
                   {"useful": False})[0] == 200
    assert c("EXISTS", *inbox_keys(pid)) == 2
    assert zd.call("DELETE", "/v1/profiles/" + pid, key="app")[0] == 200
    assert c("EXISTS", *inbox_keys(pid)) == 0
    # A late delivery for the erased profile stores nothing.
    res, _ = send(redis.port, [[notice("perase3", pid)]])
    assert outcomes(res[0]) == [("permanent", "no such profile")]

    def clean():
        cursor, found = "0", []
        while True:
            cursor, keys = c("SCAN", cursor, "COUNT", "1000")
            for k in keys:
                t = c("TYPE", k)
                v = {"hash": lambda: c("HGETALL", k), "zset": lambda: c("ZRANGE", k, 0, -1),
                     "stream": lambda: c("XRANGE", k, "-", "+"), "string": lambda: c("GET", k),
                     "set": lambda: c("SMEMBERS", k), "list": lambda: c("LRANGE", k, 0, -1)}[t]()
                if pid in k or pid in json.dumps(v, ensure_ascii=False):
                    found.append(k)
            if cursor == "0":
                return not found
    wait_until(clean, timeout=60, step=0.5, what="no key to hold the erased id")
    st, _ = zd.call("GET", "/v1/profiles/%s/inbox" % pid, key="app")
    assert st == 404
