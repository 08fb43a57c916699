"""The delivery engine end to end (issue #6): policies matched on the index, fanned out into
work streams, sent through real webhook gateways to the real receiver of webhook_receiver.py,
settled in the funnel, retried, dead-lettered, withdrawn, paced, scheduled, and recovered after
a SIGKILL of zhidad, against a real redis-server. Every check compares who was matched with
who the receiver saw; the funnel's arithmetic is checked at every poll."""
import json
import signal
import time

import pytest

from conftest import Zhidad, enterprise, wait_until
from webhook_receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BUCKETS = ["muted", "no_contact", "capped", "duplicate", "holdout", "queued", "deferred",
           "retrying",
           "delivered", "dead", "withdrawn"]


@pytest.fixture
def rx():
    r = Receiver(secrets=[SECRET])
    yield r
    r.close()


def hook(rx, path, **kw):
    g = {"type": "webhook", "url": rx.url(path), "secret": SECRET, "batch": 1,
         "timeout_ms": 2000, "retry_base_ms": 100, "retry_max_ms": 400, "max_attempts": 5}
    g.update(kw)
    return g


def daemon(tmpdir_mod, redis, name, gateways, delivery=None, **extra):
    cfg = {"gateways": dict(gateways, inbox={"type": "inbox"}),
           "delivery": dict({"poll_ms": 50, "lease_ms": 600, "claim_idle_ms": 4000},
                            **(delivery or {}))}
    cfg.update(extra)
    return Zhidad(tmpdir_mod, redis.port, name=name, extra_config=cfg)


def add_profiles(z, prefix, n, tag, contacts=None):
    lines = []
    for i in range(n):
        p = enterprise(tags=(tag,))
        p["contacts"] = dict(contacts if contacts is not None else {"zlb": "ent-%d" % i})
        p["id"] = "%s%05d" % (prefix, i)
        lines.append(json.dumps(p, ensure_ascii=False))
    st, res = z.call("POST", "/v1/profiles:import", raw=("\n".join(lines) + "\n").encode(),
                     key="app", headers={"Content-Type": "application/x-ndjson"})
    assert st == 200, res
    return ["%s%05d" % (prefix, i) for i in range(n)]


def meta_key(pid, what):
    return "zd:{d:%s}:%s" % (pid, what)


def publish(z, redis, pid, tag, routes, publish_at_ms=0, **extra):
    """POST /v1/policies: a policy whose rule selects the profiles tagged `tag`."""
    body = {"id": pid, "title": "稳岗补贴 %s" % pid, "summary": "您可能符合申领条件",
            "url": "https://example.gov.cn/p/" + pid, "category": "employment",
            "issuer": "杭州市人力社保局", "rule": 'tags has "%s"' % tag, "routes": routes}
    body.update(extra)
    if publish_at_ms:
        body["publish_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                           time.gmtime(publish_at_ms / 1000))
    st, res = z.call("POST", "/v1/policies", body)
    if st in (200, 201, 202):
        return res
    raise AssertionError((st, res))


def hgetall(r, key):
    v = r("HGETALL", key) or []
    return {v[i]: v[i + 1] for i in range(0, len(v), 2)}


def funnel(redis, pid, nroutes):
    """(meta, per-route buckets); asserts the invariant whenever the audience is frozen."""
    r = redis.client()
    try:
        meta = hgetall(r, meta_key(pid, "meta"))
        f = hgetall(r, meta_key(pid, "funnel"))
    finally:
        r.close()
    meta.pop("doc", None)
    routes = []
    for i in range(nroutes):
        b = {k: int(f.get("%d:%s" % (i, k), 0)) for k in BUCKETS}
        b["by"] = {k.split(":", 2)[2]: int(v) for k, v in f.items()
                   if k.startswith("%d:by:" % i)}
        assert all(v >= 0 for k, v in b.items() if k != "by"), (b, meta)
        if meta.get("status") not in (None, "scheduled", "matching"):
            assert sum(b[k] for k in BUCKETS) == int(meta["matched"]), (i, b, meta)
            assert sum(b["by"].values()) == b["delivered"], b
        routes.append(b)
    return meta, routes


def wait_status(redis, pid, nroutes, statuses, timeout=60):
    """Polls the funnel (checking the sums each time) until the status is one of statuses."""
    seen = {}

    def done():
        meta, routes = funnel(redis, pid, nroutes)
        seen["meta"], seen["routes"] = meta, routes
        return meta.get("status") in statuses
    wait_until(done, timeout=timeout, step=0.1, what="policy %s to be %s" % (pid, statuses))
    return seen["meta"], seen["routes"]


def received(rx, pid):
    """notice id -> number of requests that carried it (every one verified)."""
    out = {}
    with rx.lock:
        reqs = list(rx.requests)
    for q in reqs:
        if not q["json"]:
            continue
        for n in q["json"]["notices"]:
            if n["policy"] != pid:
                continue
            assert any(q["verified"]), "a request without a valid signature"
            out[n["id"]] = out.get(n["id"], 0) + 1
    return out


def deliveries(rx, pid, path_prefix):
    out = []
    with rx.lock:
        reqs = list(rx.requests)
    for q in reqs:
        if q["json"] and q["path"].startswith(path_prefix):
            out += [(q["time"], n) for n in q["json"]["notices"] if n["policy"] == pid]
    return out


def metric(z, name, labels=""):
    st, text = z.call("GET", "/metrics", key=None)
    assert st == 200
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if line.split("{")[0].split(" ")[0] == name and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def xpending(redis, pid):
    r = redis.client()
    try:
        return int(r("XPENDING", meta_key(pid, "work"), "zd")[0])
    finally:
        r.close()


# ---- tests --------------------------------------------------------------------------------


def test_every_matched_profile_receives_exactly_once(tmpdir_mod, redis, rx):
    z = daemon(tmpdir_mod, redis, "d-once", {"zlb": hook(rx, "/ok", batch=7),
                                             "zlb2": hook(rx, "/ok/2"),
                                             "zlb3": hook(rx, "/ok/3", batch=3)})
    try:
        ids = add_profiles(z, "once", 40, "d_once", contacts={"zlb": "ent-1", "zlb3": "ent-3"})
        add_profiles(z, "other", 5, "d_other")
        # No profile has a zlb2 contact: the second route's chain moves on to zlb3.
        publish(z, redis, "p-once", "d_once", ["zlb", ["zlb2", "zlb3"], "inbox"])
        meta, routes = wait_status(redis, "p-once", 3, ("done",))
        assert int(meta["matched"]) == 40
        got = received(rx, "p-once")
        want = {"p-once:%s:%s" % (i, g) for i in ids for g in ("zlb", "zlb3")}
        assert set(got) == want, "unexpected or lost recipients"
        assert all(v == 1 for v in got.values()), got
        assert routes[0]["delivered"] == 40 and routes[0]["by"] == {"zlb": 40}, routes
        assert routes[1]["delivered"] == 40 and routes[1]["by"] == {"zlb3": 40}, routes
        assert routes[2]["delivered"] == 40 and routes[2]["by"] == {"inbox": 40}, routes
        st, box = z.call("GET", "/v1/profiles/%s/inbox" % ids[0], key="app")
        assert st == 200 and "p-once:%s:inbox" % ids[0] in json.dumps(box), box
        assert not deliveries(rx, "p-once", "/ok/2")
        for _, n in deliveries(rx, "p-once", "/ok"):
            assert n["to"] == "ent-" + n["gateway"][-1:].replace("b", "1")
            assert n["title"] == "稳岗补贴 p-once" and n["body"] == "您可能符合申领条件"
            assert n["url"] == "https://example.gov.cn/p/p-once" and n["attempt"] == 1
        assert xpending(redis, "p-once") == 0
        assert metric(z, "zhida_delivery_notices_total", 'outcome="delivered"') >= 80
        assert metric(z, "zhida_delivery_latency_seconds_count") >= 80
    finally:
        z.stop()


def test_500_then_recovery_is_retried_then_delivered(tmpdir_mod, redis, rx):
    z = daemon(tmpdir_mod, redis, "d-500", {"zlb": hook(rx, "/flaky/2/500")})
    try:
        ids = add_profiles(z, "flaky", 6, "d_flaky")
        publish(z, redis, "p-flaky", "d_flaky", ["zlb"])
        meta, routes = wait_status(redis, "p-flaky", 1, ("done",))
        assert routes[0]["delivered"] == 6 and routes[0]["dead"] == 0
        got = received(rx, "p-flaky")
        assert got == {"p-flaky:%s:zlb" % i: 3 for i in ids}
        attempts = sorted(n["attempt"] for _, n in deliveries(rx, "p-flaky", "/flaky"))
        assert attempts == sorted([1, 2, 3] * 6)
        assert metric(z, "zhida_delivery_retries_total") >= 12
    finally:
        z.stop()


def test_429_retry_after_is_honored(tmpdir_mod, redis, rx):
    z = daemon(tmpdir_mod, redis, "d-429", {"zlb": hook(rx, "/ra-once/2")})
    try:
        add_profiles(z, "ra", 3, "d_ra")
        publish(z, redis, "p-ra", "d_ra", ["zlb"])
        wait_status(redis, "p-ra", 1, ("done",))
        times = {}
        for t, n in deliveries(rx, "p-ra", "/ra-once"):
            times.setdefault(n["id"], []).append(t)
        assert len(times) == 3
        for tt in times.values():
            assert len(tt) == 2
            # Never retried before the receiver's Retry-After (2 s) passed.
            assert tt[1] - tt[0] >= 1.95, tt
    finally:
        z.stop()


def test_2xx_with_a_failed_list(tmpdir_mod, redis, rx):
    z = daemon(tmpdir_mod, redis, "d-failed", {"zlb": hook(rx, "/failed", batch=10)})
    try:
        ids = add_profiles(z, "fl", 6, "d_fl")
        for i in ids[:2]:
            rx.failed["p-fl:%s:zlb" % i] = True   # permanent: dead
        for i in ids[2:4]:
            rx.failed["p-fl:%s:zlb" % i] = 1      # transient once: retried, then delivered
        publish(z, redis, "p-fl", "d_fl", ["zlb"])
        meta, routes = wait_status(redis, "p-fl", 1, ("done",))
        assert routes[0]["dead"] == 2 and routes[0]["delivered"] == 4, routes
        got = received(rx, "p-fl")
        assert [got["p-fl:%s:zlb" % i] for i in ids] == [1, 1, 2, 2, 1, 1]
        r = redis.client()
        try:
            dead = r("XRANGE", meta_key("p-fl", "dead"), "-", "+")
        finally:
            r.close()
        assert len(dead) == 2
        d = dict(zip(dead[0][1][::2], dead[0][1][1::2]))
        assert d["g"] == "zlb" and d["h"] == "200" and d["n"].endswith(".0.0.1")
    finally:
        z.stop()


def test_chain_permanent_4xx_then_second_gateway_and_no_contact(tmpdir_mod, redis, rx):
    z = daemon(tmpdir_mod, redis, "d-chain", {"zlb": hook(rx, "/status/400"),
                                              "wx": hook(rx, "/wx"),
                                              "sms": hook(rx, "/ok")})
    try:
        # Contacts: none for wx (skipped: no contact), zlb answers 400 (permanent), sms
        # delivers; a last group has no contact on any gateway of the chain.
        ids = add_profiles(z, "ch", 5, "d_ch", contacts={"zlb": "u", "sms": "+8613800001234"})
        add_profiles(z, "nc", 2, "d_ch", contacts={})
        publish(z, redis, "p-ch", "d_ch", [["wx", "zlb", "sms"]])
        meta, routes = wait_status(redis, "p-ch", 1, ("done",))
        assert routes[0]["delivered"] == 5 and routes[0]["by"] == {"sms": 5}, routes
        assert routes[0]["no_contact"] == 2 and routes[0]["dead"] == 0
        assert set(received(rx, "p-ch")) == {"p-ch:%s:zlb" % i for i in ids} | \
            {"p-ch:%s:sms" % i for i in ids}
        assert not deliveries(rx, "p-ch", "/wx")
        r = redis.client()
        try:
            states = hgetall(r, meta_key("p-ch", "st"))
        finally:
            r.close()
        logs = sorted(v for v in states.values() if v.startswith("d|"))
        assert len(logs) == 5
        # delivered by the chain's third gateway; the log says wx: no contact, zlb: 400.
        assert all(v.startswith("d|2|1|") and ",0,n,0;" in v and ",1,p,400;" in v
                   for v in logs), logs
        assert sum(v.startswith("n|") for v in states.values()) == 2
    finally:
        z.stop()


def test_max_attempts_exhausted_is_dead(tmpdir_mod, redis, rx):
    z = daemon(tmpdir_mod, redis, "d-dead", {"zlb": hook(rx, "/status/503", max_attempts=3)})
    try:
        ids = add_profiles(z, "dd", 4, "d_dd")
        publish(z, redis, "p-dd", "d_dd", ["zlb"])
        meta, routes = wait_status(redis, "p-dd", 1, ("done",))
        assert routes[0]["dead"] == 4 and routes[0]["delivered"] == 0
        assert received(rx, "p-dd") == {"p-dd:%s:zlb" % i: 3 for i in ids}
        r = redis.client()
        try:
            assert r("XLEN", meta_key("p-dd", "dead")) == 4
        finally:
            r.close()
        assert metric(z, "zhida_delivery_dead_letters_total") >= 4
    finally:
        z.stop()


@pytest.mark.parametrize("path", ["/slow/1500", "/close"])
def test_slow_past_the_timeout_and_close_are_retried(tmpdir_mod, redis, rx, path):
    pid = "p-sl" + path.split("/")[1]
    # One recipient: the webhook gateway serializes plain-HTTP requests to one receiver
    # behind a slow one (CURLOPT_PIPEWAIT), which would time several out in its queue.
    z = daemon(tmpdir_mod, redis, "d-" + pid, {"zlb": hook(rx, path, timeout_ms=500,
                                                           max_attempts=2)})
    try:
        ids = add_profiles(z, "sl" + path.split("/")[1][:2], 1, "d_" + pid.replace("-", "_"))
        publish(z, redis, pid, "d_" + pid.replace("-", "_"), ["zlb"])
        meta, routes = wait_status(redis, pid, 1, ("done",))
        assert routes[0]["dead"] == 1
        assert received(rx, pid) == {"%s:%s:zlb" % (pid, i): 2 for i in ids}
    finally:
        z.stop()


def test_paced_policy_is_spread_out(tmpdir_mod, redis, rx):
    z = daemon(tmpdir_mod, redis, "d-pace", {"zlb": hook(rx, "/ok", batch=50)})
    try:
        add_profiles(z, "pc", 6, "d_pc")
        publish(z, redis, "p-pc", "d_pc", ["zlb"], pace=120)
        wait_status(redis, "p-pc", 1, ("done",))
        t = sorted(x[0] for x in deliveries(rx, "p-pc", "/ok"))
        assert len(t) == 6
        # 120 a minute is 2 a second in batches of 2: three batches at least 1 s apart.
        assert t[-1] - t[0] >= 1.8, t
    finally:
        z.stop()


def test_scheduled_policy_starts_at_publish_at(tmpdir_mod, redis, rx):
    z = daemon(tmpdir_mod, redis, "d-sched", {"zlb": hook(rx, "/ok")})
    try:
        add_profiles(z, "sc", 3, "d_sc")
        at = (int(time.time()) + 3) * 1000
        publish(z, redis, "p-sc", "d_sc", ["zlb"], publish_at_ms=at)
        meta, _ = funnel(redis, "p-sc", 1)
        assert meta["status"] == "scheduled"
        meta, routes = wait_status(redis, "p-sc", 1, ("done",))
        assert int(meta["started_ms"]) >= at and int(meta["fence"]) >= 1
        assert routes[0]["delivered"] == 3
        assert metric(z, "zhida_delivery_scheduler_leader") == 1
    finally:
        z.stop()


def test_withdraw_mid_dispatch_stops_sending(tmpdir_mod, redis, rx):
    z = daemon(tmpdir_mod, redis, "d-wd", {"zlb": hook(rx, "/ok?delay_ms=100", concurrency=1)})
    try:
        add_profiles(z, "wd", 40, "d_wd")
        publish(z, redis, "p-wd", "d_wd", ["zlb"])
        wait_until(lambda: len(received(rx, "p-wd")) >= 3, what="first sends")
        st, res = z.call("POST", "/v1/policies/p-wd:withdraw")
        if st in (404, 405):
            pytest.skip("the withdraw API has not landed on this branch")
        assert st == 200, res
        n_at = len(received(rx, "p-wd"))
        meta, routes = wait_status(redis, "p-wd", 1, ("withdrawn",))
        # Give in-flight batches time to come back, then nothing more may arrive.
        time.sleep(1.0)
        n_after = len(received(rx, "p-wd"))
        # At most the batches handed to the gateway before the engine saw the withdraw
        # (2 x concurrency) plus one sweep's worth.
        assert n_after - n_at <= 4, (n_at, n_after)
        time.sleep(1.0)
        assert len(received(rx, "p-wd")) == n_after
        meta, routes = funnel(redis, "p-wd", 1)
        assert routes[0]["delivered"] + routes[0]["withdrawn"] == 40
        assert routes[0]["delivered"] == n_after
    finally:
        z.stop()


def test_sigkill_mid_dispatch_loses_nothing(tmpdir_mod, redis, rx):
    gw = {"zlb": hook(rx, "/ok?delay_ms=20", batch=10, concurrency=2)}
    z = daemon(tmpdir_mod, redis, "d-kill", gw, delivery={"chunk": 100})
    try:
        ids = add_profiles(z, "kill", 2000, "d_kill")
        publish(z, redis, "p-kill", "d_kill", ["zlb"])
        wait_until(lambda: len(received(rx, "p-kill")) >= 300, timeout=60, what="sends")
        z.stop(sig=signal.SIGKILL, expect_clean=False)
        before = len(received(rx, "p-kill"))
        assert before < 2000, "the dispatch ended before the kill: make it larger"
        meta, routes = funnel(redis, "p-kill", 1)
        z.start()
        meta, routes = wait_status(redis, "p-kill", 1, ("done",), timeout=120)
        got = received(rx, "p-kill")
        want = {"p-kill:%s:zlb" % i for i in ids}
        lost = want - set(got)
        unexpected = set(got) - want
        dups = sum(v - 1 for v in got.values())
        print("sigkill: received before the kill %d, duplicates %d" % (before, dups))
        assert not lost and not unexpected
        assert routes[0]["delivered"] == 2000
        assert xpending(redis, "p-kill") == 0
        r = redis.client()
        try:
            wait_until(lambda: r("XLEN", meta_key("p-kill", "work")) == 0, timeout=10,
                       what="the stream to be trimmed")
            assert r("SISMEMBER", "zd:{pol}:active", "p-kill") == 0
        finally:
            r.close()
    finally:
        z.stop()
