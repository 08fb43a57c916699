"""The API the operator console (issue #8) reads: segment lists with cursors, per-clause counts
of a rule (and the narrowing of its top-level AND chain), number and age buckets, a random
sample, and the audit stream newest first. Every answer is checked against arithmetic on the
known population or against separate previews, and a publisher's answers against its scope."""
import datetime
import json
import re
import urllib.parse

import pytest

from conftest import citizen

TODAY = datetime.date(2026, 6, 1)  # ZHIDA_TODAY of the harness
AUDIT = "zd:{audit}:audit"  # ZD_KEY_AUDIT in redis/keys.h

EMPLOYEES = [0, 5, 9, 10, 11, 49, 50, 51, 299, 300, 301, 999, 1000, 1001, 5000, None]
CAPITAL = [0, 100.49, 100.5, 100.51, 7, None]
REGIONS = ["330106", "330108", "330203", "330302"]
# Birthdays on both sides of the 18th, 35th and 60th birthday on TODAY.
BIRTHS = ["2008-06-01", "2008-06-02", "1991-06-01", "1991-06-02", "1966-06-01", "1966-06-02",
          "2010-01-01", "1950-01-01", "2026-05-31", None]


def make_population():
    pop = {}
    for i in range(64):
        attrs = {"industry": "C1311" if i % 3 else "I6510", "scale": "small"}
        emp, cap = EMPLOYEES[i % len(EMPLOYEES)], CAPITAL[i % len(CAPITAL)]
        if emp is not None:
            attrs["employees"] = emp
        if cap is not None:
            attrs["registered_capital"] = cap
        tags = ["hightech"] if i % 2 else ["srdi"]
        if i % 5 == 0:
            tags.append("dishonest")
        if i % 7 == 0:
            tags.append("高新")
        pop["ce%02d" % i] = {"kind": "enterprise", "region": REGIONS[i % len(REGIONS)],
                             "attrs": attrs, "tags": tags}
    for i in range(40):
        birth = BIRTHS[i % len(BIRTHS)]
        doc = citizen(region=REGIONS[(i + 1) % len(REGIONS)] + "001", tags=["retired"])
        if birth is None:
            del doc["attrs"]["birth_date"]
        else:
            doc["attrs"]["birth_date"] = birth
        pop["cc%02d" % i] = doc
    return pop


POP = make_population()


def age(birth):
    b = datetime.date.fromisoformat(birth)
    return TODAY.year - b.year - ((TODAY.month, TODAY.day) < (b.month, b.day))


def in_scope(doc, scope):
    return scope is None or doc["region"].startswith(scope)


@pytest.fixture(scope="module", autouse=True)
def population(zd):
    lines = "\n".join(json.dumps(dict(doc, id=i), ensure_ascii=False) for i, doc in POP.items())
    st, res = zd.call("POST", "/v1/profiles:import", raw=lines.encode(), key="app")
    assert st == 200 and res["failed"] == 0, res


def preview(zd, rule, key="admin", **kw):
    body = {"rule": rule}
    body.update(kw)
    return zd.call("POST", "/v1/rules:preview", body, key=key)


def count(zd, rule, key="admin"):
    st, body = preview(zd, rule, key=key)
    assert st == 200, body
    return body["count"]


def audience(zd, rule, key="admin"):
    st, body = preview(zd, rule, key=key, sample=1000)
    assert st == 200 and body["count"] <= 1000, body
    return set(body["sample"])


def error_of(st, body, status=400):
    assert st == status, body
    return body["error"]


# ---- segments: a sorted list with a cursor ------------------------------------------------

SEGMENTS = {"zeta": ("admin", 'tags has "srdi"'), "alpha": ("hz", "employees < 50"),
            "mid.1": ("nb", 'kind = "citizen"'), "mid-0": ("admin", "exists region"),
            "Beta": ("admin", "employees >= 300"), "b_2": ("hz", 'tags has "hightech"'),
            "omega": ("admin", 'segment "alpha" and segment "b_2"')}


@pytest.fixture(scope="module")
def segments(zd):
    for name, (key, rule) in SEGMENTS.items():
        st, body = zd.call("PUT", "/v1/segments/" + name, {"rule": rule}, key=key)
        assert st == 200, body
    return SEGMENTS


def list_segments(zd, key="admin", **query):
    q = urllib.parse.urlencode(query)
    return zd.call("GET", "/v1/segments" + ("?" + q if q else ""), key=key)


def all_pages(zd, limit, key="admin"):
    names, cursor, pages = [], None, 0
    while True:
        query = {"limit": limit}
        if cursor:
            query["cursor"] = cursor
        st, body = list_segments(zd, key=key, **query)
        assert st == 200, body
        assert len(body["segments"]) <= limit
        names += [s["name"] for s in body["segments"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return names, pages
        assert pages < 100


def test_segment_list_is_sorted_with_owner_and_rule(zd, segments):
    st, body = list_segments(zd)
    assert st == 200, body
    want = sorted(segments)  # byte order: upper case first
    assert [s["name"] for s in body["segments"]] == want
    assert body["next_cursor"] is None
    owners = {"admin": "*", "hz": "3301", "nb": "3302"}
    for s in body["segments"]:
        key, rule = segments[s["name"]]
        assert s == {"name": s["name"], "owner": owners[key], "rule": rule}


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 500])
def test_segment_list_pages_cover_everything_once(zd, segments, limit):
    names, pages = all_pages(zd, limit)
    assert names == sorted(segments)
    assert pages == max(1, -(-len(segments) // limit))


def test_segment_list_cursor_survives_writes_between_pages(zd, segments):
    st, first = list_segments(zd, limit=3)
    assert st == 200 and len(first["segments"]) == 3, first
    # A segment sorting before the cursor appears, one after it goes: the next page neither
    # repeats nor skips the others.
    assert zd.call("PUT", "/v1/segments/AAA", {"rule": "exists kind"})[0] == 200
    assert zd.call("DELETE", "/v1/segments/mid.1", key="nb")[0] == 200
    try:
        st, rest = list_segments(zd, limit=500, cursor=first["next_cursor"])
        assert st == 200, rest
        seen = [s["name"] for s in first["segments"] + rest["segments"]]
        assert seen == sorted(set(segments) - {"mid.1"})
    finally:
        zd.call("DELETE", "/v1/segments/AAA")
        zd.call("PUT", "/v1/segments/mid.1", {"rule": SEGMENTS["mid.1"][1]}, key="nb")


@pytest.mark.parametrize("key", ["viewer", "app", "hz", "nb"])
def test_segment_list_roles_like_segment_get(zd, segments, key):
    st, body = list_segments(zd, key=key)
    assert st == 200, body
    assert len(body["segments"]) == len(segments)
    assert list_segments(zd, key=None)[0] == 401


@pytest.mark.parametrize("query,code,field", [
    ({"limit": 0}, "invalid_value", "limit"), ({"limit": 501}, "invalid_value", "limit"),
    ({"limit": -1}, "invalid_value", "limit"), ({"limit": "ten"}, "invalid_value", "limit"),
    ({"limit": "1.5"}, "invalid_value", "limit"), ({"limit": ""}, "invalid_value", "limit"),
    ({"cursor": "not a cursor"}, "invalid_cursor", "cursor"),
    ({"cursor": ""}, "invalid_cursor", "cursor"),
    ({"cursor": "%%%"}, "invalid_cursor", "cursor"),
    ({"cursor": "x" * 300}, "invalid_cursor", "cursor")])
def test_segment_list_bad_query(zd, segments, query, code, field):
    err = error_of(*list_segments(zd, **query))
    assert err["code"] == code and err["field"] == field, err


# ---- per-clause counts and the narrowing of the AND chain ---------------------------------

RULE = ('kind = "enterprise" and segment "alpha" and (tags has "高新" or employees >= 1000)\n'
        '  and not tags has "dishonest" and region within ["3301", "3302"]')


def clause_counts(zd, rule, key="admin", **kw):
    st, body = preview(zd, rule, key=key, clauses=True, **kw)
    assert st == 200, body
    return body


@pytest.mark.parametrize("key", ["admin", "viewer", "hz", "nb"])
def test_clause_counts_equal_separate_previews(zd, segments, key):
    body = clause_counts(zd, RULE, key=key)
    clauses = [c for c in body["clauses"] if not c.get("scope")]
    texts = [c["text"] for c in clauses]
    assert texts == ['kind = "enterprise"', "employees < 50", 'tags has "高新"',
                     "employees >= 1000", 'tags has "dishonest"',
                     'region within ["3301", "3302"]']
    for c in clauses:
        # Each clause alone, previewed by the same key: the same count (scoped for publishers).
        assert c["count"] == count(zd, c["text"], key=key), c
    assert clauses[1]["segment"] == "alpha"
    assert [c.get("negated", False) for c in clauses] == [False] * 4 + [True, False]
    assert body["count"] == count(zd, RULE, key=key)


def test_clause_positions_are_byte_offsets_in_their_text(zd, segments):
    body = clause_counts(zd, RULE)
    raw = RULE.encode()
    for c in body["clauses"]:
        text = SEGMENTS[c["segment"]][1] if "segment" in c else RULE
        src = text.encode()
        t = c["text"].encode()
        assert src[c["position"]:c["position"] + len(t)] == t, c
    # Byte offsets, not characters: "高新" takes 6 bytes of UTF-8.
    assert body["clauses"][3]["position"] == raw.index(b"employees >= 1000")


@pytest.mark.parametrize("key", ["admin", "hz"])
def test_narrowing_is_the_cumulative_and_chain(zd, segments, key):
    body = clause_counts(zd, RULE, key=key)
    steps = body["narrowing"]
    # Parentheses and segments that are ANDs join the chain: the segment's own clause, the
    # OR group as written with its parentheses, the `not` with its clause.
    assert [s["text"] for s in steps] == [
        'kind = "enterprise"', "employees < 50", '(tags has "高新" or employees >= 1000)',
        'not tags has "dishonest"', 'region within ["3301", "3302"]']
    assert steps[1]["segment"] == "alpha" and "segment" not in steps[2]
    for j, s in enumerate(steps):
        so_far = " and ".join("(%s)" % t["text"] for t in steps[:j + 1])
        assert s["count"] == count(zd, so_far, key=key), (j, s)
    assert [s["count"] for s in steps] == sorted((s["count"] for s in steps), reverse=True)
    assert steps[-1]["count"] == body["count"]


def test_narrowing_of_a_rule_that_is_no_and_chain(zd, segments):
    body = clause_counts(zd, 'tags has "srdi" or employees < 10')
    assert [s["text"] for s in body["narrowing"]] == ['tags has "srdi" or employees < 10']
    assert body["narrowing"][0]["count"] == body["count"]
    assert len(body["clauses"]) == 2


def test_publisher_clause_counts_stay_in_scope(zd, segments):
    hz = clause_counts(zd, RULE, key="hz")
    admin = clause_counts(zd, RULE)
    scope = hz["clauses"][-1]
    assert scope == {"text": 'region within "3301"', "count": count(zd, 'region within "3301"'),
                     "scope": True}
    for c_hz, c_admin in zip(hz["clauses"], admin["clauses"]):
        assert c_hz["text"] == c_admin["text"]
        assert c_hz["count"] == count(zd, '(%s) and region within "3301"' % c_hz["text"])
        assert c_hz["count"] <= c_admin["count"]
    assert not any(c.get("scope") for c in admin["clauses"])
    # Nothing in the answer counts profiles outside the scope.
    assert hz["narrowing"][0]["count"] == count(zd, 'kind = "enterprise" and region within "3301"')


def test_clause_counts_with_sample_and_breakdown_keep_their_answers(zd, segments):
    plain = preview(zd, RULE, sample=5, breakdown=["region"])[1]
    both = preview(zd, RULE, sample=5, breakdown=["region"], clauses=True)[1]
    for k in ("count", "sample", "breakdown"):
        assert plain[k] == both[k]
    assert "clauses" not in plain and "narrowing" not in plain
    off = preview(zd, RULE, clauses=False)[1]
    assert "clauses" not in off


@pytest.mark.parametrize("value", [1, "true", None, [True]])
def test_clauses_must_be_a_boolean(zd, value):
    err = error_of(*preview(zd, "exists kind", clauses=value))
    assert err["code"] == "invalid_value" and err["field"] == "clauses", err


def test_clause_counts_respect_the_rule_cost(tmp_path_factory, redis):
    from conftest import Zhidad
    z = Zhidad(str(tmp_path_factory.mktemp("cost")), redis.port, name="cost",
               extra_config={"limits": {"rule_max_cost": 20}})
    try:
        # 2 range scans (16) + 1 tag: within the limit, with or without clauses.
        st, body = preview(z, 'employees < 50 and employees > 5 and tags has "srdi"',
                           clauses=True)
        assert st == 200 and len(body["clauses"]) == 3, body
        st, body = preview(z, "employees < 50 and employees > 5 and employees > 1", clauses=True)
        assert error_of(st, body)["code"] == "rule_too_complex"
        # Bucket boundaries are range scans too, with a budget of the same size: 2 of them (16)
        # fit, 3 (24) do not, whatever the rule costs.
        st, body = preview(z, "employees < 50 and employees > 5", breakdown=[
            "employees:buckets=1", "age(birth_date):buckets=18"])
        assert st == 200, body
        st, body = preview(z, "exists kind", breakdown=["employees:buckets=1,2,3"])
        err = error_of(st, body)
        assert err["code"] == "invalid_breakdown" and err["field"] == "breakdown", err
        assert "limits.rule_max_cost" in err["message"] and "24" in err["message"], err
    finally:
        z.stop()


def test_bucket_scans_are_bounded_by_the_rule_cost_limit(zd):
    def dims(n):
        return ["employees:buckets=" + ",".join(str(i) for i in range(n)),
                "registered_capital:buckets=" + ",".join(str(i) for i in range(n)),
                "age(birth_date):buckets=" + ",".join(str(i) for i in range(n)),
                "age(founded):buckets=" + ",".join(str(i) for i in range(n))]
    # 4 x 31 boundaries cost 992, within the default limit of 1000; 4 x 32 cost 1024.
    st, body = preview(zd, "exists kind", breakdown=dims(31))
    assert st == 200 and all(sum(b.values()) == body["count"] for b in body["breakdown"].values())
    err = error_of(*preview(zd, "exists kind", breakdown=dims(32)))
    assert err["code"] == "invalid_breakdown" and "1024" in err["message"], err


# ---- buckets of numbers and ages ----------------------------------------------------------

def expect_buckets(values, bounds, labels):
    """values: the audience's values (None = missing); labels: the keys in bucket order."""
    out = dict.fromkeys(labels, 0)
    out["missing"] = 0
    for v in values:
        if v is None:
            out["missing"] += 1
            continue
        i = sum(1 for b in bounds if v >= b)
        out[labels[i]] += 1
    return out


def members(scope=None, kind=None):
    return [d for d in POP.values()
            if in_scope(d, scope) and (kind is None or d["kind"] == kind)]


@pytest.mark.parametrize("key,scope", [("admin", None), ("hz", "3301"), ("nb", "3302")])
def test_employee_buckets_are_exact(zd, key, scope):
    spec = "employees:buckets=0,10,50,300,1000"
    st, body = preview(zd, 'kind = "enterprise"', key=key, breakdown=[spec])
    assert st == 200, body
    labels = ["<0", "0-9", "10-49", "50-299", "300-999", ">=1000"]
    got = body["breakdown"][spec]
    assert list(got) == labels + ["missing"]
    values = [d["attrs"].get("employees") for d in members(scope, "enterprise")]
    assert got == expect_buckets(values, [0, 10, 50, 300, 1000], labels)
    assert sum(got.values()) == body["count"] == len(values)


@pytest.mark.parametrize("key,scope", [("admin", None), ("hz", "3301")])
def test_age_buckets_are_exact(zd, key, scope):
    spec = "age(birth_date):buckets=18,35,60"
    st, body = preview(zd, 'kind = "citizen"', key=key, breakdown=[spec])
    assert st == 200, body
    labels = ["<18", "18-34", "35-59", ">=60"]
    got = body["breakdown"][spec]
    assert list(got) == labels + ["missing"]
    births = [d["attrs"].get("birth_date") for d in members(scope, "citizen")]
    want = expect_buckets([age(b) if b else None for b in births], [18, 35, 60], labels)
    assert got == want and sum(got.values()) == body["count"]
    # The same numbers as rules over age(): the buckets use the rules' range machinery.
    s = ' and kind = "citizen"'
    assert got["<18"] == count(zd, "age(birth_date) < 18" + s, key=key)
    assert got["18-34"] == count(zd, "age(birth_date) >= 18 and age(birth_date) < 35" + s, key=key)
    assert got[">=60"] == count(zd, "age(birth_date) >= 60" + s, key=key)
    assert got["missing"] == count(zd, "not exists birth_date" + s, key=key)


def test_buckets_of_a_number_with_decimals(zd):
    spec = "registered_capital:buckets=0,100.5,100.51"
    st, body = preview(zd, 'kind = "enterprise"', breakdown=[spec])
    assert st == 200, body
    labels = ["<0", "0-100.49", "100.5", ">=100.51"]
    got = body["breakdown"][spec]
    values = [d["attrs"].get("registered_capital") for d in members(kind="enterprise")]
    assert got == expect_buckets(values, [0, 100.5, 100.51], labels)
    assert list(got) == labels + ["missing"]


def test_single_value_buckets_and_whole_population(zd):
    spec = "employees:buckets=9,10,11"
    st, body = preview(zd, "exists kind", breakdown=[spec, "kind"])
    assert st == 200, body
    got = body["breakdown"][spec]
    assert list(got) == ["<9", "9", "10", ">=11", "missing"]
    values = [d["attrs"].get("employees") for d in POP.values()]
    assert got == expect_buckets(values, [9, 10, 11], ["<9", "9", "10", ">=11"])
    assert sum(got.values()) == body["count"] == len(POP)
    assert body["breakdown"]["kind"] == {"citizen": 40, "enterprise": 64}


def test_buckets_count_toward_the_breakdown_dimensions(zd):
    dims = ["employees:buckets=1", "employees:buckets=2", "kind", "region", "tags"]
    err = error_of(*preview(zd, "exists kind", breakdown=dims))
    assert err["code"] == "invalid_value" and err["field"] == "breakdown", err


@pytest.mark.parametrize("spec,code", [
    ("employees:buckets=", "invalid_breakdown"),
    ("employees:buckets=10,5", "invalid_breakdown"),
    ("employees:buckets=1,1", "invalid_breakdown"),
    ("employees:buckets=1,,2", "invalid_breakdown"),
    ("employees:buckets=a", "invalid_breakdown"),
    ("employees:buckets=1e3", "invalid_breakdown"),
    ("employees:buckets=1.5", "invalid_breakdown"),
    ("employees:buckets=99999999999999999999999", "invalid_breakdown"),
    ("employees:buckets=" + ",".join(str(i) for i in range(33)), "invalid_breakdown"),
    ("employees:bins=1,2", "invalid_breakdown"),
    ("employees:6", "invalid_breakdown"),
    ("employees", "invalid_breakdown"),
    ("region:buckets=1,2", "invalid_breakdown"),
    ("founded:buckets=1,2", "invalid_breakdown"),
    ("age(employees):buckets=1", "invalid_breakdown"),
    ("age(birth_date)", "invalid_breakdown"),
    ("age(birth_date):buckets=1001", "invalid_breakdown"),
    ("age(birthdate):buckets=18", "unknown_field"),
    ("age(birth_date:buckets=18", "invalid_breakdown"),
    ("emploees:buckets=1", "unknown_field")])
def test_bad_bucket_specs(zd, spec, code):
    err = error_of(*preview(zd, "exists kind", breakdown=[spec]))
    assert err["code"] == code, (spec, err)
    assert err["field"] == "breakdown", err


def test_bucket_errors_name_the_problem(zd):
    err = error_of(*preview(zd, "exists kind", breakdown=["employees:buckets=10,5"]))
    assert "ascending" in err["message"] and "5" in err["message"], err
    err = error_of(*preview(zd, "exists kind", breakdown=["employees:buckets=1.5"]))
    assert "decimals" in err["message"], err
    err = error_of(*preview(zd, "exists kind", breakdown=["employees"]))
    assert "buckets=" in err["message"], err


# ---- random samples -----------------------------------------------------------------------

def test_random_sample_is_reproducible_and_in_the_audience(zd):
    rule = 'kind = "enterprise"'
    members_ = audience(zd, rule)
    st, a = preview(zd, rule, sample=10, sample_order="random", seed=42)
    assert st == 200, a
    assert a["seed"] == 42
    assert len(a["sample"]) == 10 == len(set(a["sample"]))
    assert set(a["sample"]) <= members_
    st, b = preview(zd, rule, sample=10, sample_order="random", seed=42)
    assert b["sample"] == a["sample"]
    st, c = preview(zd, rule, sample=10, sample_order="random", seed=43)
    assert c["sample"] != a["sample"]
    # Without a seed the server picks one and says which, so the draw can be repeated.
    st, d = preview(zd, rule, sample=10, sample_order="random")
    assert st == 200 and isinstance(d["seed"], int) and 0 <= d["seed"] < 2 ** 53, d
    st, e = preview(zd, rule, sample=10, sample_order="random", seed=d["seed"])
    assert e["sample"] == d["sample"]


def test_random_sample_of_a_small_audience_is_all_of_it(zd):
    rule = 'kind = "enterprise" and employees = 5000'
    st, body = preview(zd, rule, sample=1000, sample_order="random", seed=1)
    assert st == 200, body
    assert sorted(body["sample"]) == sorted(audience(zd, rule)) and body["count"] == 4
    st, body = preview(zd, "employees = 123456", sample=10, sample_order="random", seed=1)
    assert st == 200 and body["sample"] == [] and body["count"] == 0


def test_random_sample_is_uniform(zd):
    """Every member turns up about as often: 300 draws of 4 from 16 give each member 75 hits
    on average; with fixed seeds the result is deterministic, the bounds are only loose."""
    rule = 'kind = "enterprise" and region within "330106"'
    members_ = audience(zd, rule)
    assert len(members_) == 16
    hits = dict.fromkeys(members_, 0)
    firsts = dict.fromkeys(members_, 0)
    for seed in range(300):
        st, body = preview(zd, rule, sample=4, sample_order="random", seed=seed)
        assert st == 200 and len(set(body["sample"])) == 4, body
        for i in body["sample"]:
            hits[i] += 1
        firsts[body["sample"][0]] += 1
    assert min(hits.values()) >= 40 and max(hits.values()) <= 115, hits
    # The order is random too (not index order): every member comes first now and then.
    assert min(firsts.values()) >= 3, firsts


def test_index_order_stays_the_default(zd):
    rule = 'kind = "citizen"'
    st, default = preview(zd, rule, sample=7)
    st2, index = preview(zd, rule, sample=7, sample_order="index")
    assert st == st2 == 200
    assert default["sample"] == index["sample"]
    assert "seed" not in default and "seed" not in index


def test_publisher_random_sample_stays_in_scope(zd):
    hz = {i for i, d in POP.items() if d["region"].startswith("3301")}
    for seed in range(20):
        st, body = preview(zd, "exists kind", key="hz", sample=30, sample_order="random",
                           seed=seed)
        assert st == 200 and set(body["sample"]) <= hz, body


@pytest.mark.parametrize("extra,field", [
    ({"sample_order": "shuffled"}, "sample_order"), ({"sample_order": 1}, "sample_order"),
    ({"sample_order": "random", "seed": -1}, "seed"),
    ({"sample_order": "random", "seed": 1.5}, "seed"),
    ({"sample_order": "random", "seed": "7"}, "seed"),
    ({"sample_order": "random", "seed": 2 ** 53}, "seed"),
    ({"seed": 7}, "seed"), ({"sample_order": "index", "seed": 7}, "seed")])
def test_bad_sample_options(zd, extra, field):
    err = error_of(*preview(zd, "exists kind", **extra))
    assert err["code"] == "invalid_value" and err["field"] == field, err


# ---- the audit stream ---------------------------------------------------------------------

def read_audit(zd, key="admin", **query):
    q = urllib.parse.urlencode(query)
    return zd.call("GET", "/v1/audit" + ("?" + q if q else ""), key=key)


def stream(redis, upto=None):
    """The audit stream newest first, from the record `upto` on (a key.use summary may be
    appended at any time, so answers are compared with the stream up to their newest id)."""
    r = redis.client()
    try:
        return r("XREVRANGE", AUDIT, upto or "+", "-")
    finally:
        r.close()


@pytest.fixture(scope="module")
def audited(zd, segments):
    """A few records of each kind: segment writes (by admin and hz), a profile delete."""
    for i in range(3):
        assert zd.call("PUT", "/v1/segments/aud-%d" % i, {"rule": "exists kind"},
                       key="hz")[0] == 200
    assert zd.call("DELETE", "/v1/segments/aud-1", key="hz")[0] == 200
    assert zd.call("PUT", "/v1/profiles/aud-p", citizen(), key="app")[0] == 200
    assert zd.call("DELETE", "/v1/profiles/aud-p", key="app")[0] == 200


def test_audit_reads_the_stream_newest_first(zd, redis, audited):
    st, body = read_audit(zd, limit=500)
    assert st == 200, body
    want = stream(redis, body["records"][0]["id"])
    assert [r["id"] for r in body["records"]] == [e[0] for e in want][:500]
    for rec, (sid, fields) in zip(body["records"], want):
        f = dict(zip(fields[::2], fields[1::2]))
        assert rec == {"id": sid, "time": rec["time"], "action": f["action"], "key": f["key"],
                       "role": f["role"], "target": f["target"]}
        ms = int(sid.split("-")[0])
        t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
        assert rec["time"] == t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)
    newest = body["records"][0]
    assert newest["action"] == "profile.delete" and newest["key"] == "app1"
    assert newest["role"] == "app" and re.fullmatch(r"p\d+/\d+", newest["target"]), newest
    # The id of the deleted profile never appears: targets of deletes are partition/dense.
    assert "aud-p" not in json.dumps(body)


def test_audit_pages_with_a_cursor(zd, redis, audited):
    ids, cursor = [], None
    for _ in range(100):
        query = {"limit": 2}
        if cursor:
            query["cursor"] = cursor
        st, body = read_audit(zd, **query)
        assert st == 200 and len(body["records"]) <= 2, body
        ids += [r["id"] for r in body["records"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert ids == [e[0] for e in stream(redis, ids[0])][:len(ids)]
    assert len(ids) == len(set(ids)) >= 6


def test_audit_filters_by_action(zd, redis, audited):
    st, body = read_audit(zd, action="segment.put", limit=500)
    assert st == 200, body
    want = [e[0] for e in stream(redis, body["records"][0]["id"])
            if dict(zip(e[1][::2], e[1][1::2]))["action"] == "segment.put"]
    assert [r["id"] for r in body["records"]] == want
    assert {r["action"] for r in body["records"]} == {"segment.put"}
    assert any(r["key"] == "hz-hrss" and r["target"] == "aud-2" for r in body["records"])
    st, body = read_audit(zd, action="segment.delete", limit=1)
    assert st == 200 and [r["target"] for r in body["records"]] == ["aud-1"], body
    st, body = read_audit(zd, action="policy.publish")
    assert st == 200 and body == {"records": [], "next_cursor": None}, body


def test_audit_filter_scans_a_bounded_number_of_records(zd, redis, audited):
    """A rare action behind many others: each request scans at most 10,000 records, says
    where it stopped, and the cursor leads on to the match."""
    r = redis.client()
    try:
        r("EVAL", "for i = 1, 25000 do redis.call('XADD', KEYS[1], '*', 'action', 'key.use', "
                  "'key', 'flood', 'role', 'viewer', 'target', 'used=1 denied=0') end", 1, AUDIT)
    finally:
        r.close()
    st, body = read_audit(zd, action="segment.delete", limit=1)
    assert st == 200 and body["records"] == [] and body["next_cursor"], body
    found, cursor, requests = [], body["next_cursor"], 1
    while cursor and not found:
        st, body = read_audit(zd, action="segment.delete", limit=1, cursor=cursor)
        assert st == 200, body
        found, cursor, requests = body["records"], body["next_cursor"], requests + 1
    assert [r["target"] for r in found] == ["aud-1"] and requests == 3


@pytest.mark.parametrize("key", ["hz", "viewer", "app"])
def test_audit_is_admin_only(zd, audited, key):
    err = error_of(*read_audit(zd, key=key), status=403)
    assert err["code"] == "forbidden"
    assert read_audit(zd, key=None)[0] == 401


@pytest.mark.parametrize("query,code,field", [
    ({"limit": 0}, "invalid_value", "limit"), ({"limit": 501}, "invalid_value", "limit"),
    ({"limit": "x"}, "invalid_value", "limit"),
    ({"cursor": "abc"}, "invalid_cursor", "cursor"), ({"cursor": "1-2-3"}, "invalid_cursor", "cursor"),
    ({"cursor": "-1-0"}, "invalid_cursor", "cursor"), ({"cursor": ""}, "invalid_cursor", "cursor"),
    ({"cursor": "99999999999999999999999-0"}, "invalid_cursor", "cursor"),
    ({"action": ""}, "invalid_value", "action"), ({"action": "Segment.Put"}, "invalid_value", "action"),
    ({"action": "a b"}, "invalid_value", "action"), ({"action": "x" * 65}, "invalid_value", "action")])
def test_audit_bad_query(zd, audited, query, code, field):
    err = error_of(*read_audit(zd, **query))
    assert err["code"] == code and err["field"] == field, err


def test_gateways_list_names_and_types_only(zd):
    """GET /v1/gateways (the policy form's routes): names and types in the config's order, no
    URL or secret; admin, publisher and viewer may read it, the app may not."""
    for key in ("admin", "hz", "viewer"):
        st, body = zd.call("GET", "/v1/gateways", key=key)
        assert st == 200, body
        assert body == {"gateways": [{"name": "zlb", "type": "webhook"},
                                     {"name": "inbox", "type": "inbox"},
                                     {"name": "sms", "type": "sms_http"},
                                     {"name": "email", "type": "smtp"}]}
        assert "whsec_" not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)
    st, body = zd.call("GET", "/v1/gateways", key="app")
    assert st == 403, body
    st, body = zd.call("GET", "/v1/gateways", key=None)
    assert st == 401, body
