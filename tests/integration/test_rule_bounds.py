"""Bounded preview answers and rule cost (issue #5 item 13).

A breakdown returns at most `limits.breakdown_max_groups` groups per dimension plus the
arithmetic of the folded rest, over at most 4 distinct dimensions; a rule whose cost after
segment expansion exceeds `limits.rule_max_cost` is a 400 `rule_too_complex`, in preview,
explain and segment writes alike.
"""
import json
import urllib.request
from collections import Counter

import pytest

from conftest import KEYS, Zhidad, enterprise

# 600 enterprises, each with 8 tags: one every profile has, two of a few shared families and
# five of its own, so the audience of `exists region` has 3,021 distinct tags.
N = 600


def tags_of(i):
    return ["all", "g%d" % (i % 7), "h%d" % (i % 13)] + ["%d.%d" % (i, k) for k in range(5)]


POP = {"b%04d" % i: enterprise(region="33%02d%02d" % (1 + i % 11, 1 + i % 9), employees=i,
                               tags=tags_of(i))
       for i in range(N)}


@pytest.fixture(scope="module", autouse=True)
def population(zd):
    lines = "\n".join(json.dumps(dict(doc, id=i), ensure_ascii=False) for i, doc in POP.items())
    st, res = zd.call("POST", "/v1/profiles:import", raw=lines.encode(), key="app")
    assert st == 200 and res["failed"] == 0, res


def raw_preview(zd, body, key="admin"):
    """POST /v1/rules:preview; returns (status, raw bytes, list of (key, value) pairs per
    object) so that duplicate keys in the answer are visible."""
    req = urllib.request.Request("http://127.0.0.1:%d/v1/rules:preview" % zd.port,
                                 data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", "Bearer " + KEYS[key])
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            payload, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        payload, status = e.read(), e.code
    return status, payload, json.loads(payload, object_pairs_hook=list)


def preview(zd, rule, key="admin", **kw):
    body = {"rule": rule, "sample": 0}
    body.update(kw)
    return zd.call("POST", "/v1/rules:preview", body, key=key)


def expected_groups(values):
    """Counts of values, ordered as the API orders groups: count descending, then value."""
    c = Counter(values)
    return sorted(c.items(), key=lambda kv: (-kv[1], kv[0].encode()))


def test_repeated_tags_breakdown_is_deduplicated_and_bounded(zd):
    st, payload, pairs = raw_preview(zd, {"rule": "exists region", "sample": 0,
                                          "breakdown": ["tags"] * 8})
    assert st == 200, payload
    # The answer holds one "tags" dimension, not eight, and at most 100 groups of it.
    bd = dict(pairs)["breakdown"]
    assert [k for k, _ in bd] == ["tags"]
    assert len(payload) < 16 * 1024, len(payload)
    body = json.loads(payload)
    groups = list(body["breakdown"]["tags"].items())
    full = expected_groups(t for i in range(N) for t in tags_of(i))
    assert len(full) == 3021
    assert groups == full[:100]  # the top 100, count descending, ties by value
    cut = body["breakdown_truncated"]["tags"]
    assert cut == {"groups": 3021, "other_groups": 2921,
                   "other": sum(n for _, n in full[100:])}
    # Shown groups plus the folded rest add up to the untruncated total.
    assert sum(n for _, n in groups) + cut["other"] == 8 * N
    # The example of docs/API.md.
    st, body = preview(zd, "exists region", breakdown=["tags"], breakdown_limit=4)
    assert st == 200 and body["count"] == 600
    assert body["breakdown"] == {"tags": {"all": 600, "g0": 86, "g1": 86, "g2": 86}}
    assert body["breakdown_truncated"] == {"tags": {"groups": 3021, "other_groups": 3017,
                                                    "other": 3942}}


def test_breakdown_limit_and_other_adds_up_to_count(zd):
    st, body = preview(zd, "employees < 300", breakdown=["region:6", "kind"], breakdown_limit=5)
    assert st == 200, body
    assert body["count"] == 300
    regions = expected_groups(POP["b%04d" % i]["region"] for i in range(300))
    assert list(body["breakdown"]["region:6"].items()) == regions[:5]
    cut = body["breakdown_truncated"]["region:6"]
    assert cut["groups"] == len(regions) and cut["other_groups"] == len(regions) - 5
    assert sum(body["breakdown"]["region:6"].values()) + cut["other"] == body["count"]
    # A dimension that was not cut has no truncation entry, and the SPEC shape is unchanged.
    assert body["breakdown"]["kind"] == {"enterprise": 300}
    assert "kind" not in body["breakdown_truncated"]
    st, body = preview(zd, "employees < 300", breakdown=["region", "kind"])
    assert st == 200, body
    assert sum(body["breakdown"]["region"].values()) == body["count"]
    assert "breakdown_truncated" not in body
    # breakdown_limit 0: only the totals.
    st, body = preview(zd, "exists region", breakdown=["kind"], breakdown_limit=0)
    assert st == 200 and body["breakdown"]["kind"] == {}
    assert body["breakdown_truncated"]["kind"] == {"groups": 1, "other_groups": 1, "other": N}
    for bad in (-1, 101, 2.5, "5"):
        st, err = preview(zd, "exists region", breakdown=["kind"], breakdown_limit=bad)
        assert st == 400 and err["error"]["code"] == "invalid_value", (bad, err)
        assert err["error"]["field"] == "breakdown_limit"
        assert "100" in err["error"]["message"]


def test_breakdown_dimension_limit(zd):
    # Duplicates count once: four distinct dimensions are fine however often they repeat.
    st, body = preview(zd, "exists region",
                       breakdown=["region", "kind", "region", "scale", "tags", "kind"] * 50)
    assert st == 200, body
    assert list(body["breakdown"]) == ["region", "kind", "scale", "tags"]
    st, err = preview(zd, "exists region",
                      breakdown=["region", "kind", "scale", "tags", "region:6"])
    assert st == 400, err
    e = err["error"]
    assert e["code"] == "invalid_value" and e["field"] == "breakdown"
    assert "at most 4" in e["message"]


def wide_rule(n):
    """n leaf comparisons of cost 1 each (up to 800 within the 16 KiB text limit)."""
    return " or ".join('tags has "%d.0"' % i for i in range(n))


def test_rule_cost_after_segment_expansion(zd):
    # 800 comparisons in one segment are fine; the same segment 16 times over is 12,800.
    st, body = zd.call("PUT", "/v1/segments/wide", {"rule": wide_rule(800)})
    assert st == 200, body
    st, body = preview(zd, 'segment "wide"')
    assert st == 200 and body["count"] == N, body
    sixteen = " or ".join(['segment "wide"'] * 16)
    st, err = zd.call("PUT", "/v1/segments/wider", {"rule": sixteen})
    assert st == 400, err
    e = err["error"]
    assert e["code"] == "rule_too_complex"
    assert "12800" in e["message"] and "limits.rule_max_cost" in e["message"]
    assert "1000" in e["message"]
    assert e["cost"] == 12800 and e["limit"] == 1000 and e["comparisons"] == 12800
    st, _ = zd.call("GET", "/v1/segments/wider")
    assert st == 404  # refused, so not saved
    st, err = preview(zd, sixteen)
    assert st == 400 and err["error"]["code"] == "rule_too_complex", err
    st, err = zd.call("POST", "/v1/rules:explain", {"rule": sixteen, "profile": "b0001"})
    assert st == 400 and err["error"]["code"] == "rule_too_complex", err


def test_segment_that_grew_is_checked_where_it_is_used(zd):
    # "fan" uses "leaf" 16 times; "leaf" then grows to 800 comparisons, each fine alone.
    assert zd.call("PUT", "/v1/segments/leaf", {"rule": 'tags has "all"'})[0] == 200
    fan = " or ".join(['segment "leaf"'] * 16)
    assert zd.call("PUT", "/v1/segments/fan", {"rule": fan})[0] == 200
    assert preview(zd, 'segment "fan"')[0] == 200
    assert zd.call("PUT", "/v1/segments/leaf", {"rule": wide_rule(800)})[0] == 200
    st, err = preview(zd, 'segment "fan" and exists region')
    assert st == 400 and err["error"]["code"] == "rule_too_complex", err
    assert err["error"]["cost"] == 12801
    st, err = zd.call("POST", "/v1/rules:explain", {"rule": 'segment "fan"', "profile": "b0001"})
    assert st == 400 and err["error"]["code"] == "rule_too_complex", err
    st, err = zd.call("PUT", "/v1/segments/uses-fan", {"rule": 'segment "fan"'})
    assert st == 400 and err["error"]["code"] == "rule_too_complex", err


@pytest.fixture(scope="module")
def tight(tmpdir_mod, redis, zd):
    """A second instance over the same data with small limits."""
    z = Zhidad(tmpdir_mod, redis.port, name="tight",
               extra_config={"limits": {"rule_max_cost": 20, "breakdown_max_groups": 3}})
    yield z
    z.stop()


def test_configured_limits(tight):
    st, body = preview(tight, wide_rule(20))
    assert st == 200, body
    st, err = preview(tight, wide_rule(21))
    assert st == 400 and err["error"]["code"] == "rule_too_complex", err
    assert "21" in err["error"]["message"] and "20" in err["error"]["message"]
    # A number comparison is a range scan and costs 8: two fit in 20, three do not.
    assert preview(tight, "employees < 5 or employees > 500")[0] == 200
    st, err = preview(tight, "employees < 5 or employees > 500 or employees = 7")
    assert st == 400 and err["error"]["cost"] == 24, err
    st, body = preview(tight, "exists region", breakdown=["region:6"])
    assert st == 200 and len(body["breakdown"]["region:6"]) == 3
    assert body["breakdown_truncated"]["region:6"]["other_groups"] == 99 - 3
    st, err = preview(tight, "exists region", breakdown=["region:6"], breakdown_limit=4)
    assert st == 400 and err["error"]["field"] == "breakdown_limit"
