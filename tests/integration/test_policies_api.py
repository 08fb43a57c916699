"""Policies (SPEC §4): publish with every field checked, idempotent repeat and 409, scheduling,
the funnel's shape and arithmetic, listing, withdraw, dry runs, one recipient's deliveries,
dead letters' input checks, and a publisher's scope on every endpoint. No dispatch engine is
needed: a published policy waits in "matching" (or "scheduled") and nothing here depends on
delivery happening."""
import json

import pytest

from conftest import Zhidad, citizen, enterprise

POP = {
    "pa-hz1": enterprise(region="330106", employees=40, tags=["hightech"]),
    "pa-hz2": enterprise(region="330108", employees=80, tags=["hightech"],
                         contacts={"zlb": "e2"}),
    "pa-hz3": enterprise(region="330110", employees=10, tags=["hightech"], contacts={}),
    "pa-nb1": enterprise(region="330203", employees=12, tags=["hightech"],
                         contacts={"sms": "+8613800009999"}),
    "pa-wz1": citizen(region="330302001", birth="1950-01-01", tags=["retired"]),
}
HIGHTECH = {"pa-hz1", "pa-hz2", "pa-hz3", "pa-nb1"}


@pytest.fixture(scope="module")
def zd(tmpdir_mod, redis):
    # These tests plant notice states by hand (docs/DESIGN.md): an API-only instance, so that
    # no delivery engine acts on them (tests/integration/test_dispatch.py runs the engine).
    z = Zhidad(tmpdir_mod, redis.port, extra_config={"delivery": {"enabled": False}})
    yield z
    z.stop()


@pytest.fixture(scope="module", autouse=True)
def population(zd):
    lines = "\n".join(json.dumps(dict(doc, id=i), ensure_ascii=False) for i, doc in POP.items())
    st, res = zd.call("POST", "/v1/profiles:import", raw=lines.encode(), key="app")
    assert st == 200 and res["failed"] == 0, res


def doc(**kw):
    d = {"title": "稳岗补贴", "summary": "s", "url": "https://example.cn/p", "issuer": "人社局",
         "category": "employment", "rule": 'tags has "hightech"', "routes": ["inbox", ["zlb", "sms"]]}
    d.update(kw)
    return {k: v for k, v in d.items() if v is not None}


BUCKETS = ("suppressed", "pending", "delivered", "dead", "withdrawn")


def bucket_sum(f):
    return (sum(f["suppressed"].values()) + sum(f["pending"].values()) + f["delivered"]
            + f["dead"] + f["withdrawn"])


def check_funnel(body):
    """The SPEC §4 shape, and the arithmetic per route and in total."""
    assert set(body) >= {"id", "status", "matched", "notices", "funnel", "routes"}
    f = body["funnel"]
    assert set(f["suppressed"]) == {"muted", "no_contact", "capped", "duplicate", "holdout"}
    assert set(f["pending"]) == {"queued", "deferred", "retrying"}
    assert set(f["feedback"]) == {"useful", "not_useful"}
    for k in ("delivered", "dead", "withdrawn", "read"):
        assert isinstance(f[k], int)
    assert body["notices"] == body["matched"] * len(body["routes"])
    assert bucket_sum(f) == body["notices"]
    for r in body["routes"]:
        assert isinstance(r["route"], (str, list))
        assert bucket_sum(r) == body["matched"]
        assert set(r["suppressed"]) == set(f["suppressed"])
        assert "delivered_by" in r
        names = [r["route"]] if isinstance(r["route"], str) else r["route"]
        assert set(r["delivered_by"]) == set(names)
    for k in ("delivered", "dead", "withdrawn"):
        assert f[k] == sum(r[k] for r in body["routes"])


# ---- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("body,code,field", [
    (doc(title=None), "missing_field", "title"),
    (doc(title=""), "invalid_value", "title"),
    (doc(title=7), "invalid_value", "title"),
    (doc(summary=[]), "invalid_value", "summary"),
    (doc(url="ftp://x/y"), "invalid_value", "url"),
    (doc(issuer=1), "invalid_value", "issuer"),
    (doc(category="x" * 65), "invalid_value", "category"),
    (doc(rule=None), "missing_field", "rule"),
    (doc(rule=3), "invalid_value", "rule"),
    (doc(routes=None), "missing_field", "routes"),
    (doc(routes=[]), "invalid_value", "routes"),
    (doc(routes="inbox"), "invalid_value", "routes"),
    (doc(routes=["fax"]), "unknown_gateway", "routes"),
    (doc(routes=[["zlb", "fax"]]), "unknown_gateway", "routes"),
    (doc(routes=["zlb", ["sms", "zlb"]]), "invalid_value", "routes"),
    (doc(templates=[]), "invalid_value", "templates"),
    (doc(templates={"default": {"body": 1}}), "invalid_value", "templates.default.body"),
    (doc(templates={"default": {"body": "{{policy.titel}}"}}), "invalid_template",
     "templates.default.body"),
    (doc(templates={"fax": {"body": "x"}}), "unknown_gateway", "templates.fax"),
    (doc(reason_texts=[]), "invalid_value", "reason_texts"),
    (doc(publish_at="2026-06-01T09:00:00"), "invalid_value", "publish_at"),
    (doc(deadline="2026-13-01"), "invalid_value", "deadline"),
    (doc(urgent="no"), "invalid_value", "urgent"),
    (doc(match_new_profiles=0), "invalid_value", "match_new_profiles"),
    (doc(dry_run="true"), "invalid_value", "dry_run"),
    (doc(pace=0), "invalid_value", "pace"),
    (doc(pace=2.5), "invalid_value", "pace"),
    (doc(id="bad id"), "invalid_id", "id"),
    (doc(id="x" * 65), "invalid_id", "id"),
    (doc(colour="red"), "unknown_field", "colour"),
])
def test_publish_validation(zd, body, code, field):
    st, res = zd.call("POST", "/v1/policies", body)
    assert st == 400, res
    assert res["error"]["code"] == code, res
    assert res["error"]["field"] == field, res


def test_publish_not_json(zd):
    st, res = zd.call("POST", "/v1/policies", raw=b"[1]")
    assert st == 400, res
    st, res = zd.call("POST", "/v1/policies", raw=b"{")
    assert st == 400, res


@pytest.mark.parametrize("rule,code,pos", [
    ('tags has "hightech" and', "unexpected_end", 23),
    ('employes < 3', "unknown_field", 0),
])
def test_publish_rule_errors_have_positions(zd, rule, code, pos):
    st, res = zd.call("POST", "/v1/policies", doc(rule=rule))
    assert st == 400, res
    err = res["error"]
    assert err["field"] == "rule"
    assert err["position"] == pos, err
    assert "line" in err and "column" in err


def test_publish_rule_cost_limit(zd):
    rule = " or ".join("employees < %d" % i for i in range(200))
    st, res = zd.call("POST", "/v1/policies", doc(rule=rule))
    assert st == 400, res
    assert res["error"]["code"] == "rule_too_complex"
    assert res["error"]["limit"] == 1000


# ---- create, repeat, conflict, get -----------------------------------------------------------

def test_publish_idempotent_and_conflict(zd):
    body = doc(id="pa-idem")
    st, res = zd.call("POST", "/v1/policies", body)
    assert st == 202, res
    assert res == {"id": "pa-idem", "status": "matching"}
    # The same body (other key order, same instant in another offset) is the same policy.
    again = dict(reversed(list(body.items())))
    st, res = zd.call("POST", "/v1/policies", again)
    assert st == 200, res
    assert res["id"] == "pa-idem" and res["existing"] is True
    st, res = zd.call("POST", "/v1/policies", doc(id="pa-idem", title="other"))
    assert st == 409, res
    assert res["error"]["code"] == "conflict"


def test_publish_generates_an_id(zd):
    st, a = zd.call("POST", "/v1/policies", doc())
    assert st == 202, a
    st, b = zd.call("POST", "/v1/policies", doc())
    assert st == 202, b
    assert a["id"] != b["id"]
    st, got = zd.call("GET", "/v1/policies/" + a["id"])
    assert st == 200 and got["id"] == a["id"]


def test_publish_scheduled(zd):
    st, res = zd.call("POST", "/v1/policies",
                      doc(id="pa-sched", publish_at="2099-06-01T09:00:00+08:00"))
    assert st == 202, res
    assert res["status"] == "scheduled"
    st, got = zd.call("GET", "/v1/policies/pa-sched")
    assert st == 200, got
    assert got["status"] == "scheduled"
    assert got["policy"]["publish_at"] == "2099-06-01T01:00:00.000Z"
    check_funnel(got)


def test_get_funnel_shape(zd):
    st, res = zd.call("POST", "/v1/policies", doc(id="pa-shape", deadline="2026-07-01",
                                                   templates={"default": {"title": "x"}}))
    assert st == 202, res
    st, got = zd.call("GET", "/v1/policies/pa-shape")
    assert st == 200, got
    check_funnel(got)
    assert got["routes"][0]["route"] == "inbox"
    assert got["routes"][1]["route"] == ["zlb", "sms"]
    assert got["routes"][1]["delivered_by"] == {"zlb": 0, "sms": 0}
    p = got["policy"]
    assert p["title"] == "稳岗补贴" and p["deadline"] == "2026-07-01"
    assert p["rule"] == p["effective_rule"] == 'tags has "hightech"'
    assert p["owner"] == "ops" and p["scope"] is None
    assert p["templates"] == {"default": {"title": "x"}}


def test_get_missing_and_bad_id(zd):
    st, res = zd.call("GET", "/v1/policies/pa-nope")
    assert st == 404 and res["error"]["code"] == "not_found"
    st, res = zd.call("GET", "/v1/policies/a%20b")
    assert st == 400 and res["error"]["code"] == "invalid_id"


def test_roles(zd):
    st, res = zd.call("POST", "/v1/policies", doc(id="pa-viewer"), key="viewer")
    assert st == 403, res
    st, res = zd.call("POST", "/v1/policies", doc(id="pa-app"), key="app")
    assert st == 403, res
    st, res = zd.call("GET", "/v1/policies/pa-shape", key="app")
    assert st == 403, res
    st, res = zd.call("GET", "/v1/policies", key="app")
    assert st == 403, res
    st, res = zd.call("GET", "/v1/policies/pa-shape", key="viewer")
    assert st == 200, res
    st, res = zd.call("POST", "/v1/policies/pa-shape:withdraw", key="viewer")
    assert st == 403, res


# ---- list ----------------------------------------------------------------------------------

def test_list_filter_and_cursor(zd):
    ids = ["pa-list%d" % i for i in range(5)]
    for i in ids:
        st, res = zd.call("POST", "/v1/policies", doc(id=i))
        assert st == 202, res
    seen = []
    cursor = None
    while True:
        q = "/v1/policies?limit=2" + ("&cursor=" + cursor if cursor else "")
        st, page = zd.call("GET", q)
        assert st == 200, page
        assert len(page["policies"]) <= 2
        for p in page["policies"]:
            check_funnel(p)
        seen += [p["id"] for p in page["policies"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # Newest first, each once.
    assert len(seen) == len(set(seen))
    pos = [seen.index(i) for i in ids]
    assert pos == sorted(pos, reverse=True)
    st, page = zd.call("GET", "/v1/policies?status=scheduled&limit=500")
    assert st == 200
    assert page["policies"] and all(p["status"] == "scheduled" for p in page["policies"])
    assert "pa-sched" in [p["id"] for p in page["policies"]]
    st, res = zd.call("GET", "/v1/policies?status=sleeping")
    assert st == 400 and res["error"]["field"] == "status"
    st, res = zd.call("GET", "/v1/policies?cursor=abc")
    assert st == 400 and res["error"]["code"] == "invalid_cursor"
    st, res = zd.call("GET", "/v1/policies?limit=0")
    assert st == 400 and res["error"]["field"] == "limit"


# ---- withdraw ------------------------------------------------------------------------------

def test_withdraw_scheduled(zd):
    st, res = zd.call("POST", "/v1/policies",
                      doc(id="pa-wd", publish_at="2099-01-01T00:00:00Z"))
    assert st == 202, res
    st, res = zd.call("POST", "/v1/policies/pa-wd:withdraw")
    assert st == 200, res
    assert res["status"] == "withdrawn" and res["was"] == "scheduled"
    st, got = zd.call("GET", "/v1/policies/pa-wd")
    assert got["status"] == "withdrawn"
    check_funnel(got)
    assert got["funnel"]["withdrawn"] == got["notices"]
    assert got["times"]["withdrawn"] is not None
    st, res = zd.call("POST", "/v1/policies/pa-wd:withdraw")
    assert st == 409, res
    assert res["error"]["code"] == "policy_finished" and res["error"]["status"] == "withdrawn"
    st, res = zd.call("POST", "/v1/policies/pa-missing:withdraw")
    assert st == 404, res
    # Audited with the key's name and role.
    st, audit = zd.call("GET", "/v1/audit?action=policy.withdraw")
    assert st == 200
    assert any(r["target"] == "pa-wd" and r["key"] == "ops" and r["role"] == "admin"
               for r in audit["records"]), audit
    st, audit = zd.call("GET", "/v1/audit?action=policy.publish")
    assert any(r["target"] == "pa-wd" for r in audit["records"]), audit


# ---- publisher scope -----------------------------------------------------------------------

def test_publisher_scope_everywhere(zd):
    st, res = zd.call("POST", "/v1/policies", doc(id="pa-hz", routes=["inbox"]), key="hz")
    assert st == 202, res
    st, res = zd.call("POST", "/v1/policies", doc(id="pa-nb", routes=["inbox"]), key="nb")
    assert st == 202, res
    st, got = zd.call("GET", "/v1/policies/pa-hz", key="hz")
    assert st == 200, got
    assert got["policy"]["effective_rule"] == '(tags has "hightech") and region within "3301"'
    assert got["policy"]["scope"] == "3301"
    st_missing, missing = zd.call("GET", "/v1/policies/pa-nothing", key="hz",
                                  headers={"X-Request-Id": "same"})
    for path in ("/v1/policies/pa-nb", "/v1/policies/pa-shape"):
        st, res = zd.call("GET", path, key="hz", headers={"X-Request-Id": "same"})
        assert (st, res) == (st_missing, missing), path
    st, res = zd.call("POST", "/v1/policies/pa-nb:withdraw", key="hz")
    assert st == 404 and res["error"]["code"] == "not_found"
    st, res = zd.call("GET", "/v1/policies/pa-nb/deliveries/pa-nb1", key="hz")
    assert st == 404 and res["error"]["code"] == "not_found"
    st, page = zd.call("GET", "/v1/policies?limit=500", key="hz")
    assert st == 200
    assert {p["id"] for p in page["policies"]} == {"pa-hz"}
    st, res = zd.call("GET", "/v1/deadletters?policy=pa-nb", key="hz")
    assert st == 404 and res["error"]["code"] == "not_found", res
    st, res = zd.call("POST", "/v1/deadletters:replay", {"policy": "pa-nb"}, key="hz")
    assert st == 404 and res["error"]["code"] == "not_found", res
    # The owner may withdraw its own.
    st, res = zd.call("POST", "/v1/policies/pa-nb:withdraw", key="nb")
    assert st == 200, res
    # A publisher's dry run counts only its region.
    st, dry = zd.call("POST", "/v1/policies", doc(routes=["inbox"], dry_run=True), key="hz")
    assert st == 200, dry
    assert dry["matched"] == 3
    st, prev = zd.call("POST", "/v1/rules:preview", {"rule": 'tags has "hightech"'}, key="hz")
    assert dry["matched"] == prev["count"]


# ---- dry run -------------------------------------------------------------------------------

def test_dry_run_counts(zd):
    body = doc(id="pa-dry", routes=["inbox", "zlb", ["zlb2", "sms"]], dry_run=True)
    st, res = zd.call("POST", "/v1/policies", body)
    assert st == 400 and res["error"]["code"] == "unknown_gateway"
    body["routes"] = ["inbox", "email", ["zlb", "sms"]]
    st, dry = zd.call("POST", "/v1/policies", body)
    assert st == 200, dry
    check_funnel(dry)
    assert dry["status"] == "dry_run" and dry["estimated"] is False
    st, prev = zd.call("POST", "/v1/rules:preview", {"rule": 'tags has "hightech"'})
    assert dry["matched"] == prev["count"] == len(HIGHTECH)
    nc = [r["suppressed"]["no_contact"] for r in dry["routes"]]
    # inbox needs none; only pa-hz1 has an e-mail; all but pa-hz3 have zlb or sms.
    assert nc == [0, 3, 1], dry["routes"]
    assert [r["pending"]["queued"] for r in dry["routes"]] == [4, 1, 3]
    # Only pa-hz1 and pa-nb1 have an sms number.
    st, dry = zd.call("POST", "/v1/policies", dict(body, routes=["sms"]))
    assert st == 200, dry
    assert dry["routes"][0]["suppressed"]["no_contact"] == 2
    # Nothing stored.
    st, res = zd.call("GET", "/v1/policies/pa-dry")
    assert st == 404


def test_dry_run_sampled(tmpdir_mod, redis):
    from conftest import Zhidad
    z = Zhidad(tmpdir_mod, redis.port, name="zhidad-dry", extra_config={
        "delivery": {"dry_run_read_max": 2}})
    try:
        st, dry = z.call("POST", "/v1/policies", doc(routes=["inbox", "email"], dry_run=True))
        assert st == 200, dry
        assert dry["estimated"] is True
        assert dry["matched"] == len(HIGHTECH)
        assert dry["contacts_read"] == 2
        check_funnel(dry)
    finally:
        z.stop()


# ---- deliveries ----------------------------------------------------------------------------

def test_deliveries_before_matching(zd):
    st, res = zd.call("GET", "/v1/policies/pa-shape/deliveries/pa-hz1")
    assert st == 404 and res["error"]["code"] == "not_matched_yet", res
    st, res = zd.call("GET", "/v1/policies/pa-shape/deliveries/pa-ghost")
    assert st == 404 and res["error"]["code"] == "profile_not_found", res
    st, res = zd.call("GET", "/v1/policies/pa-ghost/deliveries/pa-hz1")
    assert st == 404 and res["error"]["code"] == "not_found", res
    st, res = zd.call("GET", "/v1/policies/pa-hz/deliveries/pa-nb1", key="hz")
    assert st == 404 and res["error"]["code"] == "profile_not_found", res


# ---- dead letters: input -------------------------------------------------------------------

def test_deadletters_input(zd):
    st, res = zd.call("POST", "/v1/policies", doc(id="pa-dlin"))
    assert st in (200, 202), res
    st, res = zd.call("GET", "/v1/deadletters")
    assert st == 200, res
    assert isinstance(res["deadletters"], list) and "next_cursor" in res
    st, res = zd.call("GET", "/v1/deadletters?policy=pa-dlin&gateway=zlb")
    assert st == 200 and res["deadletters"] == []
    st, res = zd.call("GET", "/v1/deadletters?policy=bad%20id")
    assert st == 400 and res["error"]["code"] == "invalid_id"
    st, res = zd.call("GET", "/v1/deadletters?gateway=fax")
    assert st == 400 and res["error"]["code"] == "unknown_gateway"
    st, res = zd.call("GET", "/v1/deadletters?policy=pa-nope")
    assert st == 404
    st, res = zd.call("GET", "/v1/deadletters?cursor=zzz")
    assert st == 400 and res["error"]["code"] == "invalid_cursor"
    for body, field in [({}, ""), ({"policy": "pa-dlin", "gateway": "zlb"}, ""),
                        ({"ids": []}, "ids"), ({"ids": ["nope"]}, "ids"),
                        ({"ids": [1]}, "ids"), ({"gateway": "fax"}, "gateway"),
                        ({"policy": 5}, "policy"), ({"what": 1}, "what")]:
        st, res = zd.call("POST", "/v1/deadletters:replay", body)
        assert st == 400, (body, res)
        assert res["error"].get("field", "") == field, (body, res)
    st, res = zd.call("POST", "/v1/deadletters:replay", {"policy": "pa-dlin"})
    assert st == 200 and res == {"replayed": 0}, res
    st, res = zd.call("POST", "/v1/deadletters:replay", {"gateway": "zlb"})
    assert st == 200 and res["replayed"] == 0, res
    st, res = zd.call("POST", "/v1/deadletters:replay", {"ids": ["pa-dlin:pa-hz1:zlb"]})
    assert st == 200 and res["replayed"] == 0, res
    st, res = zd.call("POST", "/v1/deadletters:replay", {"policy": "pa-dlin"}, key="viewer")
    assert st == 403


# ---- dead letters, deliveries and replay on state planted as the workers write it ------------
# (docs/DESIGN.md "Delivery": notice state "<b>|<gwi>|<attempt>|<log>", funnel "<r>:<bucket>",
# dead entries "n <gid.route.gwi.attempt> g h e t", aud = partition -> portable roaring).

def gid_of(redis, pid):
    r = redis.client()
    try:
        for part in range(4):
            v = r("HGET", "zd:{p%d}:profiles" % part, pid)
            if v:
                return part << 26 | int(v.split(",", 1)[0])
    finally:
        r.close()
    raise AssertionError("no profile " + pid)


def roaring_of(values):
    """CRoaring's portable format, array containers only (no run containers)."""
    import struct
    groups = {}
    for v in sorted(values):
        groups.setdefault(v >> 16, []).append(v & 0xffff)
    out = struct.pack("<II", 12346, len(groups))
    for k, lows in sorted(groups.items()):
        out += struct.pack("<HH", k, len(lows) - 1)
    off = len(out) + 4 * len(groups)
    for k, lows in sorted(groups.items()):
        out += struct.pack("<I", off)
        off += 2 * len(lows)
    for k, lows in sorted(groups.items()):
        out += b"".join(struct.pack("<H", x) for x in lows)
    return out


def plant_dead(zd, redis, pid, profiles, gateway="zlb"):
    """Publishes pid (routes inbox, [zlb, sms]), then makes it look done: every recipient
    delivered on route 0 and dead on route 1 at `gateway`."""
    st, res = zd.call("POST", "/v1/policies", doc(id=pid))
    assert st == 202, res
    gids = [gid_of(redis, p) for p in profiles]
    gwi = ["zlb", "sms"].index(gateway)
    r = redis.client()
    try:
        meta, funnel = "zd:{d:%s}:meta" % pid, "zd:{d:%s}:funnel" % pid
        r("HSET", meta, "status", "done", "matched", len(gids), "done_ms", 1)
        r("HSET", funnel, "0:queued", 0, "0:delivered", len(gids), "0:by:inbox", len(gids),
          "1:queued", 0, "1:dead", len(gids))
        for part in {g >> 26 for g in gids}:
            r("HSET", "zd:{d:%s}:aud" % pid, str(part),
              roaring_of([g & ((1 << 26) - 1) for g in gids if g >> 26 == part]))
        for g in gids:
            r("HSET", "zd:{d:%s}:st" % pid, "%d.0" % g, "d|0|1|1780000000000,0,d,0")
            r("HSET", "zd:{d:%s}:st" % pid, "%d.1" % g,
              "x|%d|3|1780000000000,%d,t,503;1780000001000,%d,t,500;1780000003000,%d,p,410"
              % (gwi, gwi, gwi, gwi))
            r("XADD", "zd:{d:%s}:dead" % pid, "*", "n", "%d.1.%d.3" % (g, gwi), "g", gateway,
              "h", "410", "e", "HTTP 410", "t", "1780000003000")
        r("SREM", "zd:{pol}:active", pid)
    finally:
        r.close()
    return gids


def test_deadletters_list_deliveries_and_replay(zd, redis):
    gids = plant_dead(zd, redis, "pa-dl", ["pa-hz1", "pa-hz2"])
    st, got = zd.call("GET", "/v1/policies/pa-dl")
    assert st == 200 and got["status"] == "done"
    check_funnel(got)
    assert got["routes"][1]["dead"] == 2 and got["routes"][0]["delivered_by"] == {"inbox": 2}

    st, dl = zd.call("GET", "/v1/policies/pa-dl/deliveries/pa-hz1")
    assert st == 200, dl
    assert dl["routes"][0]["status"] == "delivered" and dl["routes"][0]["gateway"] == "inbox"
    r1 = dl["routes"][1]
    assert r1["route"] == ["zlb", "sms"] and r1["status"] == "dead" and r1["gateway"] == "zlb"
    assert r1["notice"] == "pa-dl:pa-hz1:zlb"
    assert [a["http_status"] for a in r1["attempts"]] == [503, 500, 410]
    assert [a["outcome"] for a in r1["attempts"]] == ["transient", "transient", "permanent"]
    assert r1["attempts"][0] == {"at": "2026-05-28T20:26:40.000Z", "gateway": "zlb",
                                 "outcome": "transient", "http_status": 503}
    st, res = zd.call("GET", "/v1/policies/pa-dl/deliveries/pa-nb1")
    assert st == 404 and res["error"]["code"] == "not_reached", res

    st, page = zd.call("GET", "/v1/deadletters?policy=pa-dl")
    assert st == 200, page
    items = page["deadletters"]
    assert {i["id"] for i in items} == {"pa-dl:pa-hz1:zlb", "pa-dl:pa-hz2:zlb"}
    assert all(i["attempts"] == 3 and i["http_status"] == 410 and i["gateway"] == "zlb"
               and i["detail"] == "HTTP 410" and i["policy"] == "pa-dl" for i in items)
    st, page = zd.call("GET", "/v1/deadletters?policy=pa-dl&gateway=sms")
    assert page["deadletters"] == []
    # Across policies, a page at a time.
    st, page = zd.call("GET", "/v1/deadletters?limit=1")
    assert st == 200 and len(page["deadletters"]) == 1 and page["next_cursor"]
    st, page2 = zd.call("GET", "/v1/deadletters?limit=5&cursor=" + page["next_cursor"])
    assert st == 200, page2
    assert {i["id"] for i in page["deadletters"] + page2["deadletters"]} >= {
        "pa-dl:pa-hz1:zlb", "pa-dl:pa-hz2:zlb"}
    # A viewer may read them, a publisher of another scope never sees them.
    st, page = zd.call("GET", "/v1/deadletters", key="viewer")
    assert st == 200 and len(page["deadletters"]) >= 2
    st, page = zd.call("GET", "/v1/deadletters", key="nb")
    assert st == 200 and page["deadletters"] == []

    # Replay one by its notice id, then the rest by policy.
    st, res = zd.call("POST", "/v1/deadletters:replay", {"ids": ["pa-dl:pa-hz1:zlb"]})
    assert st == 200 and res == {"replayed": 1}, res
    st, got = zd.call("GET", "/v1/policies/pa-dl")
    assert got["status"] == "dispatching"
    assert got["routes"][1]["dead"] == 1 and got["routes"][1]["pending"]["queued"] == 1
    check_funnel(got)
    st, dl = zd.call("GET", "/v1/policies/pa-dl/deliveries/pa-hz1")
    assert dl["routes"][1]["status"] == "queued" and len(dl["routes"][1]["attempts"]) == 3
    st, res = zd.call("POST", "/v1/deadletters:replay", {"policy": "pa-dl"})
    assert st == 200 and res == {"replayed": 1}, res
    st, res = zd.call("POST", "/v1/deadletters:replay", {"policy": "pa-dl"})
    assert res == {"replayed": 0}
    r = redis.client()
    try:
        assert r("XLEN", "zd:{d:pa-dl}:dead") == 0
        assert sorted(r("ZRANGE", "zd:{d:pa-dl}:retry", 0, -1)) == sorted(
            "%d.1.0.1" % g for g in gids)
        assert r("SISMEMBER", "zd:{pol}:active", "pa-dl") == 1
    finally:
        r.close()
    st, got = zd.call("GET", "/v1/policies/pa-dl")
    assert got["routes"][1]["dead"] == 0 and got["routes"][1]["pending"]["queued"] == 2
    check_funnel(got)
    st, audit = zd.call("GET", "/v1/audit?action=deadletter.replay")
    assert any(a["target"] == "policy:pa-dl" for a in audit["records"]), audit

    # By gateway, across policies: a publisher only replays its own scope's.
    plant_dead(zd, redis, "pa-dl2", ["pa-hz3"], gateway="sms")
    st, res = zd.call("POST", "/v1/deadletters:replay", {"gateway": "sms"}, key="nb")
    assert st == 200 and res == {"replayed": 0}, res
    st, res = zd.call("POST", "/v1/deadletters:replay", {"gateway": "zlb"})
    assert res == {"replayed": 0}, res
    st, res = zd.call("POST", "/v1/deadletters:replay", {"gateway": "sms"})
    assert res == {"replayed": 1}, res

    # Withdrawing a dispatching policy moves every pending notice to withdrawn.
    st, res = zd.call("POST", "/v1/policies/pa-dl:withdraw")
    assert st == 200 and res["was"] == "dispatching"
    st, got = zd.call("GET", "/v1/policies/pa-dl")
    assert got["routes"][1]["withdrawn"] == 2 and got["routes"][1]["pending"]["queued"] == 0
    check_funnel(got)
    st, dl = zd.call("GET", "/v1/policies/pa-dl/deliveries/pa-hz2")
    assert dl["routes"][1]["status"] == "withdrawn"
    r = redis.client()
    try:
        assert r("EXISTS", "zd:{d:pa-dl}:retry") == 0
        assert r("SISMEMBER", "zd:{pol}:active", "pa-dl") == 0
    finally:
        r.close()


# ---- the command-line client ---------------------------------------------------------------

def zhida(zd, *args, key="admin", stdin=None):
    import os
    import subprocess
    from conftest import KEYS, ZHIDA
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIDA_")}
    env.update(ZHIDA_URL="http://127.0.0.1:%d" % zd.port, ZHIDA_KEY=KEYS.get(key, key))
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return subprocess.run(["" + ZHIDA] + list(args), env=env, input=stdin, capture_output=True,
                          timeout=120)


def test_cli_publish_status_withdraw_dlq(zd, redis):
    body = json.dumps(doc(id="pa-cli", publish_at="2099-01-01T00:00:00Z"),
                      ensure_ascii=False).encode()
    p = zhida(zd, "publish", "-", stdin=body)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"id": "pa-cli", "status": "scheduled"}
    p = zhida(zd, "publish", "-", stdin=body.replace(b"s\"", b"t\"", 1))
    assert p.returncode == 3, p.stderr  # 409: another body
    p = zhida(zd, "status", "pa-cli")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["status"] == "scheduled"
    check_funnel(got)
    p = zhida(zd, "withdraw", "pa-cli")
    assert p.returncode == 0 and json.loads(p.stdout)["status"] == "withdrawn", p.stderr
    p = zhida(zd, "withdraw", "pa-cli")
    assert p.returncode == 3 and b"policy_finished" in p.stderr
    p = zhida(zd, "status", "pa-nothing-here")
    assert p.returncode == 3
    plant_dead(zd, redis, "pa-cli2", ["pa-hz1"])
    p = zhida(zd, "dlq", "list", "--policy", "pa-cli2")
    assert p.returncode == 0, p.stderr
    assert [d["id"] for d in json.loads(p.stdout)["deadletters"]] == ["pa-cli2:pa-hz1:zlb"]
    p = zhida(zd, "dlq", "list", "--gateway", "sms", "--policy", "pa-cli2")
    assert json.loads(p.stdout)["deadletters"] == []
    p = zhida(zd, "dlq", "replay", "--policy", "pa-cli2", "pa-cli2:pa-hz1:zlb")
    assert p.returncode == 2  # exactly one way of choosing
    p = zhida(zd, "dlq", "replay", "pa-cli2:pa-hz1:zlb")
    assert p.returncode == 0 and json.loads(p.stdout) == {"replayed": 1}, p.stderr
    p = zhida(zd, "publish", "/nonexistent/file.json")
    assert p.returncode == 2
    p = zhida(zd, "status", "pa-cli", "--policy", "x")
    assert p.returncode == 2
