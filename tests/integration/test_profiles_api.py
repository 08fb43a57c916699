"""Profiles over HTTP against a real zhidad + redis-server: CRUD, merge, erasure, import."""
import json

from conftest import citizen, enterprise


def count(zd, rule, key="admin"):
    st, body = zd.call("POST", "/v1/rules:preview", {"rule": rule, "sample": 0}, key=key)
    assert st == 200, body
    return body["count"]


def test_put_get_roundtrip(zd):
    st, body = zd.call("PUT", "/v1/profiles/e-rt-1", enterprise(employees=40), key="app")
    assert st == 200, body
    assert body["id"] == "e-rt-1"
    assert body["attrs"]["employees"] == 40
    assert body["tags"] == ["hightech"]
    st, got = zd.call("GET", "/v1/profiles/e-rt-1", key="app")
    assert st == 200
    assert got["attrs"] == body["attrs"]
    assert got["fields"]["company"] == "杭州某某科技有限公司"
    assert got["version"] == body["version"]


def test_put_is_visible_to_preview_immediately(zd):
    before = count(zd, 'tags has "rt-marker"')
    st, _ = zd.call("PUT", "/v1/profiles/e-rt-2", enterprise(tags=["rt-marker"]), key="app")
    assert st == 200
    assert count(zd, 'tags has "rt-marker"') == before + 1


def test_update_moves_index_memberships(zd):
    zd.call("PUT", "/v1/profiles/e-mv", enterprise(employees=10, tags=["mv-a"]), key="app")
    assert count(zd, 'tags has "mv-a"') == 1
    zd.call("PUT", "/v1/profiles/e-mv", enterprise(employees=900, tags=["mv-b"]), key="app")
    assert count(zd, 'tags has "mv-a"') == 0
    assert count(zd, 'tags has "mv-b" and employees >= 900') == 1


def test_patch_merges(zd):
    zd.call("PUT", "/v1/profiles/e-patch", enterprise(employees=10, tags=["p1"]), key="app")
    st, body = zd.call("PATCH", "/v1/profiles/e-patch",
                       {"attrs": {"employees": 250}, "tags": ["p2"]}, key="app")
    assert st == 200, body
    assert body["attrs"]["employees"] == 250
    assert body["attrs"]["industry"] == "C1311"  # untouched attrs survive the merge
    assert body["tags"] == ["p2"]
    assert count(zd, 'tags has "p2" and employees = 250') == 1
    # null removes a member (RFC 7386)
    st, body = zd.call("PATCH", "/v1/profiles/e-patch", {"attrs": {"founded": None}}, key="app")
    assert st == 200
    assert "founded" not in body["attrs"]
    # a PATCH that makes the profile invalid is refused and changes nothing
    st, err = zd.call("PATCH", "/v1/profiles/e-patch", {"attrs": {"employees": "many"}}, key="app")
    assert st == 400
    assert err["error"]["field"] == "attrs.employees"
    st, body = zd.call("GET", "/v1/profiles/e-patch", key="app")
    assert body["attrs"]["employees"] == 250
    st, _ = zd.call("PATCH", "/v1/profiles/nobody-here", {"tags": []}, key="app")
    assert st == 404


def test_delete_erases_profile_and_index(zd, redis):
    zd.call("PUT", "/v1/profiles/c-del", citizen(tags=["del-me"]), key="app")
    assert count(zd, 'tags has "del-me"') == 1
    st, body = zd.call("DELETE", "/v1/profiles/c-del", key="app")
    assert st == 200 and body["deleted"] is True
    assert count(zd, 'tags has "del-me"') == 0
    st, _ = zd.call("GET", "/v1/profiles/c-del", key="app")
    assert st == 404
    st, _ = zd.call("DELETE", "/v1/profiles/c-del", key="app")
    assert st == 404
    # The stored document is gone from every partition hash.
    r = redis.client()
    try:
        for p in range(4):
            assert r("HEXISTS", "zd:{p%d}:profiles" % p, "c-del") == 0
        audit = r("XREVRANGE", "zd:{audit}:audit", "+", "-", "COUNT", "20")
        deletes = [e[1] for e in audit if "profile.delete" in e[1]]
        assert deletes, audit
        # The id may be an ID number: the audit names the erased profile by partition/dense id.
        assert not any("c-del" in str(d) for d in deletes)
        assert any(v.startswith("p") and "/" in v for d in deletes for v in d)
    finally:
        r.close()


def test_import_counts_and_line_errors(zd):
    lines = [
        json.dumps(dict(enterprise(tags=["imp"]), id="imp-1"), ensure_ascii=False),
        json.dumps(dict(enterprise(tags=["imp"], employees=5), id="imp-2"), ensure_ascii=False),
        "{not json",
        json.dumps(dict(enterprise(tags=["imp"]), id="imp-3", attrs={"employees": "x"})),
        "",
        json.dumps({"kind": "citizen"}),  # no id
        json.dumps(dict(citizen(tags=["imp"]), id="imp-4"), ensure_ascii=False),
    ]
    body = ("\n".join(lines) + "\n").encode()
    st, res = zd.call("POST", "/v1/profiles:import", raw=body, key="app",
                      headers={"Content-Type": "application/x-ndjson"})
    assert st == 200, res
    assert res["imported"] == 3
    assert res["failed"] == 3
    by_line = {e["line"]: e for e in res["errors"]}
    assert by_line[3]["error"]["code"] == "bad_json"
    assert by_line[4]["error"]["field"] == "attrs.employees"
    assert by_line[4]["id"] == "imp-3"
    assert by_line[6]["error"]["field"] == "id"
    assert count(zd, 'tags has "imp"') == 3
    st, _ = zd.call("GET", "/v1/profiles/imp-3", key="app")
    assert st == 404  # a bad line is never half-applied
    # Importing the same lines again changes nothing.
    st, res = zd.call("POST", "/v1/profiles:import", raw=body, key="app")
    assert res["imported"] == 0 and res["unchanged"] == 3


def test_profile_validation_errors_name_the_field(zd):
    cases = [
        ({"kind": "citizen", "attrs": {"employees": "many"}}, "attrs.employees"),
        ({"kind": "citizen", "attrs": {"employes": 3}}, "attrs.employes"),
        ({"kind": "citizen", "region": "330"}, "region"),
        ({"kind": "robot"}, "kind"),
        ({"kind": "citizen", "contacts": {"fax": "+8613800001111"}}, "contacts.fax"),
        ({"kind": "citizen", "colour": "red"}, "colour"),
        ({"kind": "citizen", "attrs": {"birth_date": "1962-02-30"}}, "attrs.birth_date"),
    ]
    for doc, field in cases:
        st, err = zd.call("PUT", "/v1/profiles/bad-1", doc, key="app")
        assert st == 400, (doc, err)
        assert err["error"]["field"] == field, (doc, err)
        assert err["error"]["code"] and err["error"]["message"]
        assert "13800001111" not in json.dumps(err)
    st, _ = zd.call("GET", "/v1/profiles/bad-1", key="app")
    assert st == 404


def test_bad_requests(zd):
    st, err = zd.call("PUT", "/v1/profiles/x1", raw=b"{oops", key="app")
    assert st == 400 and err["error"]["code"] == "bad_json"
    st, err = zd.call("PUT", "/v1/profiles/x1", raw=b'{"kind": "citizen", "fields": {"name": "\xff"}}',
                      key="app")
    assert st == 400
    st, err = zd.call("PUT", "/v1/profiles/x1", raw=b"[1, 2]", key="app")
    assert st == 400
    big = b'{"kind": "citizen", "fields": {"x": "' + b"a" * (1100 * 1024) + b'"}}'
    st, err = zd.call("PUT", "/v1/profiles/x1", raw=big, key="app")
    assert st == 413, err
    deep = b'{"kind": "citizen", "fields": ' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"}"
    st, err = zd.call("PUT", "/v1/profiles/x1", raw=deep, key="app")
    assert st == 400
    st, err = zd.call("PUT", "/v1/profiles/" + "a" * 129, {"kind": "citizen"}, key="app")
    assert st == 400 and err["error"]["code"] == "invalid_id"
    st, _ = zd.call("GET", "/v1/nothing-here", key="app")
    assert st == 404


def test_auth_and_roles(zd):
    st, err = zd.call("GET", "/v1/profiles/e-rt-1", key=None)
    assert st == 401 and err["error"]["code"] == "unauthorized"
    st, err = zd.call("GET", "/v1/profiles/e-rt-1", key="not-a-real-key-at-all")
    assert st == 401
    st, err = zd.call("GET", "/v1/profiles/e-rt-1", key="viewer")
    assert st == 403 and err["error"]["code"] == "forbidden"
    st, err = zd.call("PUT", "/v1/profiles/e-x", enterprise(), key="hz")
    assert st == 403
    st, _ = zd.call("GET", "/healthz", key=None)
    assert st == 200


def test_key_use_is_audited_and_counted(tmp_path, redis):
    from conftest import Zhidad
    z = Zhidad(str(tmp_path), redis.port, name="audit",
               extra_config={"key_audit_interval_s": 1, "metrics_key_names": True})
    try:
        for _ in range(3):
            st, _ = z.call("POST", "/v1/rules:preview", {"rule": "exists region"}, key="viewer")
            assert st == 200
        st, _ = z.call("GET", "/v1/profiles/x", key="viewer")
        assert st == 403
        st, text = z.call("GET", "/metrics", key=None)
        assert 'zhida_api_key_requests_total{key="watch",role="viewer",outcome="used"} 3' in text
        assert 'zhida_api_key_requests_total{key="watch",role="viewer",outcome="denied"} 1' in text
        r = redis.client()
        try:
            def audited():
                recs = r("XRANGE", "zd:{audit}:audit", "-", "+")
                return [e[1] for e in recs if "key.use" in e[1] and "watch" in e[1]]
            import time
            deadline = time.monotonic() + 10
            while not audited() and time.monotonic() < deadline:
                time.sleep(0.1)
            rec = audited()[0]
            assert rec[rec.index("role") + 1] == "viewer"
            assert rec[rec.index("target") + 1] == "used=3 denied=1"
        finally:
            r.close()
    finally:
        z.stop()
