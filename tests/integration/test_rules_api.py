"""Rules over HTTP: preview (count, sample, breakdown), explain, segments, errors, scope."""
import json

import pytest

from conftest import citizen, enterprise

POP = {
    "r-e1": enterprise(region="330106", employees=40, tags=["hightech", "srdi"]),
    "r-e2": enterprise(region="330108", employees=250, tags=["hightech"], industry="I6510"),
    "r-e3": enterprise(region="330203", employees=20, tags=["hightech", "dishonest"]),
    "r-e4": enterprise(region="330106", employees=5000, tags=["export"], founded="2025-01-10"),
    "r-c1": citizen(region="330106001", birth="1962-03-08", tags=["retired"]),
    "r-c2": citizen(region="330203", birth="1966-06-01", tags=["retired", "veteran"]),
    "r-c3": citizen(region="330205", birth="1966-06-02", tags=["veteran"]),
}


@pytest.fixture(scope="module", autouse=True)
def population(zd):
    lines = "\n".join(json.dumps(dict(doc, id=i), ensure_ascii=False) for i, doc in POP.items())
    st, res = zd.call("POST", "/v1/profiles:import", raw=lines.encode(), key="app")
    assert st == 200 and res["failed"] == 0, res


def preview(zd, rule, key="admin", **kw):
    body = {"rule": rule}
    body.update(kw)
    return zd.call("POST", "/v1/rules:preview", body, key=key)


def ids(zd, rule, key="admin"):
    st, body = preview(zd, rule, key=key, sample=1000)
    assert st == 200, body
    return {i for i in body["sample"] if i.startswith("r-")}


def test_preview_shapes(zd):
    assert ids(zd, 'tags has "hightech"') == {"r-e1", "r-e2", "r-e3"}
    assert ids(zd, 'kind = "enterprise" and employees < 300 and region within "3301"') == \
        {"r-e1", "r-e2"}
    assert ids(zd, 'region within ["3302"] and tags has "veteran"') == {"r-c2", "r-c3"}
    assert ids(zd, 'industry within "I"') == {"r-e2"}
    assert ids(zd, 'tags has "hightech" and not tags has "dishonest"') == {"r-e1", "r-e2"}
    assert ids(zd, 'region = "330106"') == {"r-e1", "r-e4"}  # exact code, not 330106001
    assert ids(zd, 'region within "330106"') == {"r-e1", "r-e4", "r-c1"}
    assert ids(zd, 'age(founded) < 3 and kind = "enterprise"') == {"r-e4"}
    assert ids(zd, 'scale in ["medium"]') >= {"r-e2", "r-e4"}


def test_age_uses_evaluation_date(zd):
    # ZHIDA_TODAY is 2026-06-01: born 1966-06-01 turns 60 today, 1966-06-02 tomorrow.
    assert ids(zd, 'age(birth_date) >= 60') == {"r-c1", "r-c2"}
    assert ids(zd, 'age(birth_date) = 59') == {"r-c3"}


def test_preview_breakdown_and_count(zd):
    st, body = preview(zd, 'tags has "hightech"', breakdown=["region", "region:6", "kind"])
    assert st == 200, body
    assert body["count"] >= 3
    assert body["breakdown"]["region"]["3301"] >= 2
    assert body["breakdown"]["region"]["3302"] >= 1
    assert body["breakdown"]["region:6"]["330106"] >= 1
    assert body["breakdown"]["kind"]["enterprise"] == body["count"]
    assert isinstance(body["took_ms"], (int, float))
    st, err = preview(zd, 'tags has "hightech"', breakdown=["employees"])
    assert st == 400
    st, err = preview(zd, 'tags has "hightech"', breakdown=["region:5"])
    assert st == 400


def test_rule_errors_have_positions(zd):
    st, err = preview(zd, 'kind = "enterprise" and employes < 300')
    assert st == 400
    e = err["error"]
    assert e["code"] == "unknown_field"
    assert "employees" in e["message"]  # did-you-mean
    assert e["position"] == 24 and e["line"] == 1 and e["column"] == 25
    st, err = preview(zd, 'kind = "enterprise" and\n  employees <')
    assert st == 400 and err["error"]["line"] == 2
    st, err = preview(zd, 'employees = "many"')
    assert st == 400 and err["error"]["code"] == "type_mismatch"
    st, err = preview(zd, 'region within "330"')
    assert st == 400
    st, err = preview(zd, "(" * 70 + 'kind = "citizen"' + ")" * 70)
    assert st == 400 and err["error"]["code"] == "too_deep"
    st, err = preview(zd, 'tags has "' + "x" * 17000 + '"')
    assert st == 400
    st, err = zd.call("POST", "/v1/rules:preview", {"rule": "kind = \"citizen\"", "colour": 1})
    assert st == 400 and err["error"]["code"] == "unknown_field"
    st, err = zd.call("POST", "/v1/rules:preview", {"rules": "x"})
    assert st == 400


def test_explain(zd):
    st, body = zd.call("POST", "/v1/rules:explain",
                       {"rule": 'employees < 300 and tags has "srdi"', "profile": "r-e2"})
    assert st == 200, body
    assert body["match"] is False
    assert body["clauses"][0] == {"text": "employees < 300", "result": True, "value": 250}
    assert body["clauses"][1]["text"] == 'tags has "srdi"'
    assert body["clauses"][1]["result"] is False
    st, body = zd.call("POST", "/v1/rules:explain",
                       {"rule": 'employees < 300 and tags has "srdi"', "profile": "r-e1"})
    assert body["match"] is True
    st, _ = zd.call("POST", "/v1/rules:explain", {"rule": "exists region", "profile": "nope"})
    assert st == 404


def test_explain_agrees_with_preview(zd):
    rules = ['tags has "hightech" and not region within "3302"',
             'age(birth_date) >= 60 or employees > 100',
             'not (kind = "enterprise" and not tags has "dishonest")',
             'industry != "C1311"']
    for rule in rules:
        members = ids(zd, rule)
        for pid in POP:
            st, body = zd.call("POST", "/v1/rules:explain", {"rule": rule, "profile": pid})
            assert st == 200, body
            assert body["match"] == (pid in members), (rule, pid)


def test_segments(zd):
    st, body = zd.call("PUT", "/v1/segments/smb", {"rule": 'kind = "enterprise" and employees < 300'})
    assert st == 200, body
    st, body = zd.call("GET", "/v1/segments/smb", key="viewer")
    assert st == 200 and body["rule"] == 'kind = "enterprise" and employees < 300'
    assert ids(zd, 'segment "smb" and tags has "hightech"') == {"r-e1", "r-e2", "r-e3"}
    st, err = zd.call("PUT", "/v1/segments/loop", {"rule": 'segment "loop2"'})
    assert st == 400 and err["error"]["code"] == "unknown_segment"
    st, _ = zd.call("PUT", "/v1/segments/loop2", {"rule": 'tags has "x"'})
    assert st == 200
    st, _ = zd.call("PUT", "/v1/segments/loop", {"rule": 'segment "loop2"'})
    assert st == 200
    st, err = zd.call("PUT", "/v1/segments/loop2", {"rule": 'segment "loop"'})
    assert st == 400 and err["error"]["code"] == "segment_cycle"
    st, err = zd.call("PUT", "/v1/segments/bad", {"rule": 'employees < "x"'})
    assert st == 400
    st, _ = zd.call("PUT", "/v1/segments/x", {"rule": "exists region"}, key="viewer")
    assert st == 403
    st, _ = zd.call("DELETE", "/v1/segments/smb")
    assert st == 200
    st, _ = zd.call("GET", "/v1/segments/smb")
    assert st == 404
    st, err = preview(zd, 'segment "smb"')
    assert st == 400 and err["error"]["code"] == "unknown_segment"


def test_publisher_scope(zd):
    # hz-hrss is scoped to 3301: its audience never leaves Hangzhou.
    assert ids(zd, 'tags has "hightech"', key="hz") == {"r-e1", "r-e2"}
    assert ids(zd, 'tags has "hightech"', key="nb") == {"r-e3"}
    st, body = zd.call("POST", "/v1/rules:explain",
                       {"rule": 'tags has "hightech"', "profile": "r-e1"}, key="hz")
    assert st == 200 and body["match"] is True, body
    assert body["clauses"][-1]["scope"] is True
    # r-e3 is in Ningbo (330203): outside hz's scope it is "not found", values and all
    # (tests/integration/test_scope.py covers this in depth).
    st, body = zd.call("POST", "/v1/rules:explain",
                       {"rule": 'tags has "hightech"', "profile": "r-e3"}, key="hz",
                       headers={"X-Request-Id": "rules-scope"})
    assert st == 404 and body == {"error": {"code": "not_found",
                                            "message": "no profile with this id",
                                            "request_id": "rules-scope"}}, body
    st, _ = zd.call("POST", "/v1/rules:explain", {"rule": "exists region", "profile": "r-e3"},
                    key="viewer")
    assert st == 403
    st, body = preview(zd, 'tags has "hightech"', key="viewer")
    assert st == 200
