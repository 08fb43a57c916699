"""A publisher's scope (a region prefix) bounds everything it can learn about profiles: one
profile's data outside the scope answers exactly like a profile that does not exist, and
preview's count, sample and breakdown never reach outside it. Admins are unaffected.

Endpoints that return one profile's data: POST /v1/rules:explain (publishers may call it) and
GET/PUT/PATCH/DELETE /v1/profiles/{id} (app and admin only: a publisher is refused by role,
whether or not the profile exists)."""
import json

import pytest

from conftest import citizen, enterprise

# hz-hrss is scoped to 3301 (Hangzhou), nb-hrss to 3302 (Ningbo).
POP = {
    "s-hz1": enterprise(region="330106", employees=40, tags=["hightech", "srdi"]),
    "s-hz2": citizen(region="330108001", birth="1958-02-03", tags=["retired", "veteran"]),
    "s-nb1": citizen(region="330206", birth="1961-07-19", tags=["retired", "disabled"]),
    "s-nb2": enterprise(region="330203", employees=12, tags=["hightech"], industry="I6510"),
    "s-wz1": enterprise(region="330302", employees=300, tags=["hightech", "export"]),
}
HZ = {"s-hz1", "s-hz2"}
MISSING = "s-nobody"


@pytest.fixture(scope="module", autouse=True)
def population(zd):
    lines = "\n".join(json.dumps(dict(doc, id=i), ensure_ascii=False) for i, doc in POP.items())
    st, res = zd.call("POST", "/v1/profiles:import", raw=lines.encode(), key="app")
    assert st == 200 and res["failed"] == 0, res


# The same request id on every probe, so that answers can be compared byte for byte (every error
# body names its request's id).
SAME_ID = {"X-Request-Id": "scope-probe"}


def explain(zd, pid, key, rule='tags has "retired" and age(birth_date) >= 60'):
    return zd.call("POST", "/v1/rules:explain", {"rule": rule, "profile": pid}, key=key,
                   headers=SAME_ID)


def test_explain_in_scope_shows_values(zd):
    st, body = explain(zd, "s-hz2", "hz")
    assert st == 200, body
    assert body["match"] is True
    assert body["clauses"][0]["value"] == ["retired", "veteran"]
    assert body["clauses"][1]["value"] == 68
    assert body["clauses"][-1] == {"text": 'region within "3301"', "result": True, "scope": True}


def test_explain_out_of_scope_is_the_same_404_as_missing(zd):
    st_missing, missing = explain(zd, MISSING, "hz")
    assert st_missing == 404 and missing["error"]["code"] == "not_found", missing
    for pid in ("s-nb1", "s-nb2", "s-wz1"):
        for rule in ('tags has "retired" and age(birth_date) >= 60', "exists region",
                     'region within "3302"', 'employees < 100 or tags has "hightech"'):
            st, body = explain(zd, pid, "hz", rule)
            # Identical status and body: probing cannot tell "elsewhere" from "nowhere".
            assert (st, body) == (st_missing, missing), (pid, rule, body)
    # No value of the profile travels: not its birth date, tags, region or age.
    st, body = explain(zd, "s-nb1", "hz")
    text = json.dumps(body, ensure_ascii=False)
    for leaked in ("1961", "330206", "disabled", "retired", "64", "clauses", "match"):
        assert leaked not in text, (leaked, text)


def test_explain_other_publisher_sees_its_own_region(zd):
    st, body = explain(zd, "s-nb1", "nb")
    assert st == 200 and body["match"] is True, body
    st, body = explain(zd, "s-hz2", "nb")
    assert st == 404 and body["error"]["code"] == "not_found", body


def test_explain_admin_is_unaffected(zd):
    for pid in POP:
        st, body = explain(zd, pid, "admin", "exists region")
        assert st == 200 and body["match"] is True, (pid, body)
        assert not any(c.get("scope") for c in body["clauses"]), body
    st, body = explain(zd, "s-nb1", "admin")
    assert st == 200 and body["clauses"][1]["value"] == 64, body
    st, _ = explain(zd, MISSING, "admin")
    assert st == 404


@pytest.mark.parametrize("method,body", [("GET", None), ("DELETE", None),
                                         ("PATCH", {"tags": ["x"]}),
                                         ("PUT", {"kind": "citizen", "region": "330206"})])
def test_profile_endpoints_refuse_publishers_whatever_the_profile(zd, method, body):
    # Publishers may not read or write profiles at all (API.md roles): the refusal must not
    # depend on whether the profile exists or where it lives.
    answers = {pid: zd.call(method, "/v1/profiles/" + pid, body, key="hz", headers=SAME_ID)
               for pid in ("s-hz1", "s-nb1", MISSING)}
    first = answers["s-hz1"]
    assert first[0] == 403 and first[1]["error"]["code"] == "forbidden", first
    assert all(a == first for a in answers.values()), answers
    # Nothing changed: the admin still sees the same documents.
    st, doc = zd.call("GET", "/v1/profiles/s-nb1", key="admin")
    assert st == 200 and doc["tags"] == ["disabled", "retired"], doc
    st, _ = zd.call("GET", "/v1/profiles/" + MISSING, key="admin")
    assert st == 404


def test_preview_sample_and_breakdown_stay_in_scope(zd):
    rule = 'exists region'
    st, body = zd.call("POST", "/v1/rules:preview",
                       {"rule": rule, "sample": 1000,
                        "breakdown": ["region", "region:6", "region:9", "kind"]},
                       key="hz")
    assert st == 200, body
    ours = {i for i in body["sample"] if i.startswith("s-")}
    assert ours == HZ, body["sample"]
    assert all(i not in body["sample"] for i in POP.keys() - HZ)
    bd = body["breakdown"]
    assert set(bd["region"]) == {"3301"}, bd
    assert all(code.startswith("3301") for code in bd["region:6"]), bd
    assert all(code.startswith("3301") for code in bd["region:9"]), bd
    # Every audience member is counted once in "kind": nothing outside the scope was added.
    assert sum(bd["kind"].values()) == body["count"] == bd["region"]["3301"]
    # At most 4 breakdown dimensions per preview (limits): tags in a second one.
    st, tb = zd.call("POST", "/v1/rules:preview", {"rule": rule, "breakdown": ["tags"]}, key="hz")
    assert st == 200 and tb["count"] == body["count"], tb
    assert "disabled" not in tb["breakdown"]["tags"] and "export" not in tb["breakdown"]["tags"], tb
    # The admin's view of the same rule does reach the other cities.
    st, body = zd.call("POST", "/v1/rules:preview",
                       {"rule": rule, "sample": 1000, "breakdown": ["region"]}, key="admin")
    assert st == 200 and set(POP) <= set(body["sample"]), body
    assert {"3301", "3302", "3303"} <= set(body["breakdown"]["region"]), body
