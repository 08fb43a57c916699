"""Preferences and measuring uptake (issue #7): muted categories and gateways, quiet hours in
the profile's time zone (deferred, then released at the window's end), urgent bypass, the
per-profile frequency cap across a restart and its erasure, the holdout share and reported
outcomes — against a real redis-server, real zhidad and the real webhook receiver. The funnel's
arithmetic (suppressed + pending + delivered + dead + withdrawn = matched x routes, per route
and in total) is checked after every step."""
import datetime
import json
import time
import zoneinfo

import pytest

from conftest import Resp, Zhidad, enterprise, wait_until
from webhook_receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SUPPRESSED = {"muted", "no_contact", "capped", "duplicate", "holdout"}
PENDING = {"queued", "deferred", "retrying"}


@pytest.fixture(scope="module")
def rx():
    r = Receiver(secrets=[SECRET])
    yield r
    r.close()


def hook(rx, path):
    return {"type": "webhook", "url": rx.url(path), "secret": SECRET, "batch": 10,
            "timeout_ms": 2000, "retry_base_ms": 100, "retry_max_ms": 400, "max_attempts": 3}


def start(tmpdir_mod, redis, rx, name="zhidad-prefs"):
    cfg = {"gateways": {"zlb": hook(rx, "/ok/zlb"), "sms": hook(rx, "/ok/sms"),
                        "inbox": {"type": "inbox"}},
           "delivery": {"poll_ms": 50, "lease_ms": 600, "claim_idle_ms": 4000,
                        "cap": {"count": 3, "days": 7}},
           "timezone": "Asia/Shanghai"}
    return Zhidad(tmpdir_mod, redis.port, name=name, extra_config=cfg)


@pytest.fixture(scope="module")
def z(tmpdir_mod, redis, rx):
    d = start(tmpdir_mod, redis, rx)
    yield d
    d.stop()


def put(z, pid, tag, contacts=None, prefs=None):
    p = enterprise(tags=(tag,))
    p["contacts"] = contacts if contacts is not None else {"zlb": "u-" + pid}
    if prefs:
        p["prefs"] = prefs
    st, res = z.call("PUT", "/v1/profiles/" + pid, p, key="app")
    assert st == 200, res


def import_profiles(z, prefix, n, tag):
    lines = []
    for i in range(n):
        p = enterprise(tags=(tag,))
        p["id"] = "%s%05d" % (prefix, i)
        p["contacts"] = {}
        lines.append(json.dumps(p, ensure_ascii=False))
    st, res = z.call("POST", "/v1/profiles:import", raw=("\n".join(lines) + "\n").encode(),
                     key="app", headers={"Content-Type": "application/x-ndjson"})
    assert st == 200, res
    return ["%s%05d" % (prefix, i) for i in range(n)]


def publish(z, pid, tag, routes, **extra):
    body = {"id": pid, "title": "稳岗补贴 " + pid, "category": "employment",
            "issuer": "杭州市人力社保局", "rule": 'tags has "%s"' % tag, "routes": routes}
    body.update(extra)
    st, res = z.call("POST", "/v1/policies", body)
    assert st in (200, 202), (st, res)
    return res


def check(body):
    """The funnel's shape and arithmetic, per route and in total."""
    f = body["funnel"]
    assert set(f["suppressed"]) == SUPPRESSED
    assert set(f["pending"]) == PENDING

    def total(x):
        return (sum(x["suppressed"].values()) + sum(x["pending"].values()) + x["delivered"]
                + x["dead"] + x["withdrawn"])
    assert total(f) == body["matched"] * len(body["routes"]), body
    for r in body["routes"]:
        assert set(r["suppressed"]) == SUPPRESSED
        assert total(r) == body["matched"], body
        assert all(v >= 0 for v in r["suppressed"].values()), body
        assert all(v >= 0 for v in r["pending"].values()), body


def get(z, pid):
    st, body = z.call("GET", "/v1/policies/" + pid)
    assert st == 200, body
    if body["status"] not in ("scheduled", "matching"):
        check(body)
    return body


def wait(z, pid, pred, what, timeout=60):
    seen = {}

    def ok():
        seen["b"] = get(z, pid)
        return seen["b"]["status"] not in ("scheduled", "matching") and pred(seen["b"])
    wait_until(ok, timeout=timeout, step=0.1, what=what)
    return seen["b"]


def done(z, pid, timeout=60):
    return wait(z, pid, lambda b: b["status"] in ("done", "active"), pid + " done", timeout)


def status_of(z, pid, profile):
    st, body = z.call("GET", "/v1/policies/%s/deliveries/%s" % (pid, profile))
    assert st == 200, body
    return [(r["status"], r.get("gateway")) for r in body["routes"]]


def got(rx, pid):
    """profile -> gateways that received pid's notice."""
    out = {}
    with rx.lock:
        reqs = list(rx.requests)
    for q in reqs:
        for n in (q["json"] or {}).get("notices", []):
            if n["policy"] == pid:
                out.setdefault(n["profile"], set()).add(n["gateway"])
    return out


def test_muted_category_and_gateway(z, rx):
    put(z, "mu-cat", "mute1", {"zlb": "a", "sms": "+8613800000001"},
        {"mute_categories": ["employment"]})
    put(z, "mu-gw", "mute1", {"zlb": "b", "sms": "+8613800000002"}, {"mute_gateways": ["zlb"]})
    put(z, "mu-only", "mute1", {"zlb": "c"}, {"mute_gateways": ["zlb"]})
    put(z, "mu-none", "mute1", {"zlb": "d", "sms": "+8613800000004"},
        {"mute_categories": ["tax"]})
    publish(z, "pr-mute", "mute1", [["zlb", "sms"]])
    b = done(z, "pr-mute")
    assert b["matched"] == 4
    f = b["funnel"]
    assert f["suppressed"]["muted"] == 2 and f["delivered"] == 2, f
    assert b["routes"][0]["delivered_by"] == {"zlb": 1, "sms": 1}
    seen = got(rx, "pr-mute")
    # The chain skips the muted gateway and goes on to the next one.
    assert seen == {"mu-gw": {"sms"}, "mu-none": {"zlb"}}, seen
    assert status_of(z, "pr-mute", "mu-cat") == [("muted", "zlb")]
    assert status_of(z, "pr-mute", "mu-only")[0][0] == "muted"
    # A profile's prefs are checked: unknown zones are refused.
    p = enterprise(tags=("mute1",))
    p["contacts"] = {"zlb": "e"}
    p["prefs"] = {"timezone": "Mars/Olympus"}
    st, res = z.call("PUT", "/v1/profiles/mu-bad", p, key="app")
    assert st == 400 and res["error"]["field"] == "prefs.timezone", res


def hhmm(m):
    m %= 1440
    return "%02d:%02d" % (m // 60, m % 60)


def local_minutes(tz):
    now = datetime.datetime.now(zoneinfo.ZoneInfo(tz))
    return now.hour * 60 + now.minute, now


def test_quiet_hours_two_zones_then_urgent(z, rx):
    # Asia/Shanghai (the config's zone, no prefs.timezone): a window across midnight that
    # holds now — it starts one minute after it ends, an hour from now.
    sh, _ = local_minutes("Asia/Shanghai")
    end = sh + 61 if (sh + 61) % 1440 != 1439 else sh + 62
    across = hhmm(end + 1) + "-" + hhmm(end)
    assert (end + 1) % 1440 > end % 1440  # start > end: across midnight
    put(z, "qh-sh", "quiet1", prefs={"quiet_hours": across})
    # America/New_York: now - 30 min .. now + 61 min of New York's clock.
    ny, _ = local_minutes("America/New_York")
    ny_window = hhmm(ny - 30) + "-" + hhmm(ny + 61)
    put(z, "qh-ny", "quiet1", prefs={"quiet_hours": ny_window, "timezone": "America/New_York"})
    # The same window read in the configured zone (12-13 hours away) is not active: sent.
    put(z, "qh-ny-as-sh", "quiet1", prefs={"quiet_hours": ny_window})
    t0 = time.time()
    publish(z, "pr-quiet", "quiet1", ["zlb"])
    b = wait(z, "pr-quiet", lambda b: b["funnel"]["pending"]["deferred"] == 2
             and b["funnel"]["delivered"] == 1, "two deferred, one delivered")
    assert b["status"] == "dispatching"
    assert set(got(rx, "pr-quiet")) == {"qh-ny-as-sh"}
    assert status_of(z, "pr-quiet", "qh-sh") == [("deferred", "zlb")]
    # Each waits in the retry zset until its window's end (about 61 minutes from now).
    r = z_redis(z)
    try:
        due = r("ZRANGE", "zd:{d:pr-quiet}:retry", "0", "-1", "WITHSCORES")
    finally:
        r.close()
    scores = [int(due[i]) / 1000 for i in range(1, len(due), 2)]
    assert len(scores) == 2
    for s in scores:
        assert 58 * 60 < s - t0 < 63 * 60, (s - t0)
    # An urgent policy is not held by quiet hours.
    publish(z, "pr-quiet-urgent", "quiet1", ["zlb"], urgent=True)
    b = done(z, "pr-quiet-urgent")
    assert b["funnel"]["delivered"] == 3 and b["funnel"]["pending"]["deferred"] == 0
    # Withdrawing moves the deferred ones to withdrawn; the sums still hold.
    st, _ = z.call("POST", "/v1/policies/pr-quiet:withdraw")
    assert st == 200
    b = get(z, "pr-quiet")
    assert b["funnel"]["withdrawn"] == 2 and b["funnel"]["pending"]["deferred"] == 0


def z_redis(z):
    return Resp(z.redis_port)


def test_deferred_then_released(z, rx):
    sh, now = local_minutes("Asia/Shanghai")
    # The window ends at the next minute boundary (or the one after, when it is too close).
    end = sh + 1 if now.second < 45 else sh + 2
    put(z, "qr-1", "quiet2", prefs={"quiet_hours": hhmm(sh - 60) + "-" + hhmm(end)})
    put(z, "qr-2", "quiet2")
    publish(z, "pr-release", "quiet2", ["zlb"])
    wait(z, "pr-release", lambda b: b["funnel"]["pending"]["deferred"] == 1
         and b["funnel"]["delivered"] == 1, "one deferred")
    assert set(got(rx, "pr-release")) == {"qr-2"}
    b = wait(z, "pr-release", lambda b: b["status"] == "done", "released at the window's end",
             timeout=200)
    assert b["funnel"]["delivered"] == 2 and b["funnel"]["pending"]["deferred"] == 0
    assert set(got(rx, "pr-release")) == {"qr-1", "qr-2"}


def test_cap_across_restart_and_erasure(tmpdir_mod, redis, rx, z):
    for pid in ("cap-a", "cap-b"):
        put(z, pid, "cap1")
    for k in range(3):
        publish(z, "pr-cap-%d" % k, "cap1", ["zlb", "inbox"])
        b = done(z, "pr-cap-%d" % k)
        assert b["funnel"]["delivered"] == 4, b
    publish(z, "pr-cap-3", "cap1", ["zlb", "inbox"])
    b = done(z, "pr-cap-3")
    # One per (policy, profile), not per route: both routes of both profiles are capped.
    assert b["funnel"]["suppressed"]["capped"] == 4 and b["funnel"]["delivered"] == 0, b
    assert status_of(z, "pr-cap-3", "cap-a") == [("capped", "zlb"), ("capped", "inbox")]
    z.stop()
    z.start()
    publish(z, "pr-cap-4", "cap1", ["zlb"])
    b = done(z, "pr-cap-4")
    assert b["funnel"]["suppressed"]["capped"] == 2 and b["funnel"]["delivered"] == 0, b
    # Urgent policies are not capped and take no place in the window.
    publish(z, "pr-cap-urgent", "cap1", ["zlb"], urgent=True)
    b = done(z, "pr-cap-urgent")
    assert b["funnel"]["delivered"] == 2
    assert "cap-a" not in got(rx, "pr-cap-4")
    r = z_redis(z)
    try:
        keys = [k for k in r("KEYS", "zd:{p*}:cap:*")]
        members = {k: sorted(r("ZRANGE", k, "0", "-1")) for k in keys}
    finally:
        r.close()
    assert len(keys) >= 2
    assert ["pr-cap-0", "pr-cap-1", "pr-cap-2"] in members.values(), members
    st, _ = z.call("DELETE", "/v1/profiles/cap-a", key="app")
    assert st in (200, 204)
    r = z_redis(z)
    try:
        left = r("KEYS", "zd:{p*}:cap:*")
    finally:
        r.close()
    assert len(left) == len(keys) - 1, (keys, left)


def holdout_point(policy, profile):
    """The same hash as delivery/prefs.c zd_holdout_point."""
    h = 14695981039346656037
    for c in policy.encode() + b"\0" + profile.encode():
        h ^= c
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 31
    return (h >> 11) * (1.0 / 9007199254740992.0) * 100.0


def test_holdout_and_outcomes(z):
    ids = import_profiles(z, "ho", 2000, "hold1")
    body = {"id": "pr-hold", "title": "holdout", "category": "employment",
            "rule": 'tags has "hold1"', "routes": ["inbox"], "holdout_percent": 12.5}
    st, dry = z.call("POST", "/v1/policies", dict(body, dry_run=True))
    assert st == 200, dry
    expected = {p for p in ids if holdout_point("pr-hold", p) < 12.5}
    assert abs(len(expected) - 250) < 45  # ≈ 12.5 % of 2,000
    assert dry["funnel"]["suppressed"]["holdout"] == len(expected), dry
    st, res = z.call("POST", "/v1/policies", body)
    assert st == 202, res
    b = done(z, "pr-hold", timeout=120)
    assert b["funnel"]["suppressed"]["holdout"] == len(expected)
    assert b["funnel"]["delivered"] == 2000 - len(expected)
    assert b["policy"]["holdout_percent"] == 12.5
    held = sorted(expected)[:5]
    treated = sorted(set(ids) - expected)[:5]
    for p in held:
        assert status_of(z, "pr-hold", p) == [("holdout", "inbox")]
    st, inbox = z.call("GET", "/v1/profiles/%s/inbox" % held[0], key="app")
    assert st == 200 and not inbox["items"], inbox
    # The same id republished: the same policy, the same groups.
    st, res = z.call("POST", "/v1/policies", body)
    assert st == 200, res
    assert get(z, "pr-hold")["funnel"]["suppressed"]["holdout"] == len(expected)
    # Outcomes, per group; a repeat and an unknown profile are not counted.
    st, res = z.call("POST", "/v1/policies/pr-hold/outcomes",
                     {"profiles": held[:3] + treated + ["nobody-here"]}, key="app")
    assert st == 200, res
    assert res == {"recorded": 8, "repeated": 0, "unknown": 1}, res
    st, res = z.call("POST", "/v1/policies/pr-hold/outcomes", {"profiles": held[:4]}, key="app")
    assert res == {"recorded": 1, "repeated": 3, "unknown": 0}, res
    b = get(z, "pr-hold")
    assert b["outcomes"] == {
        "treated": {"recipients": 2000 - len(expected), "applied": 5},
        "holdout": {"recipients": len(expected), "applied": 4}}, b["outcomes"]
    # Bad input and roles.
    st, res = z.call("POST", "/v1/policies/pr-hold/outcomes", {"profiles": []}, key="app")
    assert st == 400 and res["error"]["code"] == "invalid_value"
    st, res = z.call("POST", "/v1/policies/pr-hold/outcomes",
                     {"profiles": ["x"] * 1001}, key="app")
    assert st == 400
    st, res = z.call("POST", "/v1/policies/pr-hold/outcomes", {"profiles": ["a b"]}, key="app")
    assert st == 400
    st, res = z.call("POST", "/v1/policies/pr-hold/outcomes", {"profiles": ["a"]}, key="viewer")
    assert st == 403
    st, res = z.call("POST", "/v1/policies/no-such/outcomes", {"profiles": ["a"]}, key="app")
    assert st == 404
    st, res = z.call("POST", "/v1/policies", dict(body, id="pr-hold-bad", holdout_percent=51))
    assert st == 400 and res["error"]["field"] == "holdout_percent"
