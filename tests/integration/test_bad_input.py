"""Every endpoint refuses bad input with a JSON error naming what was wrong, and changes
nothing: no auth, a wrong role, malformed JSON, invalid UTF-8, oversized bodies, unknown fields."""
import pytest

ENDPOINTS = [
    # method, path, a valid body, roles allowed
    ("PUT", "/v1/profiles/bi-1", {"kind": "citizen"}, {"admin", "app"}),
    ("PATCH", "/v1/profiles/bi-1", {"tags": ["x"]}, {"admin", "app"}),
    ("GET", "/v1/profiles/bi-1", None, {"admin", "app"}),
    ("DELETE", "/v1/profiles/bi-none", None, {"admin", "app"}),
    ("POST", "/v1/profiles:import", None, {"admin", "app"}),
    ("POST", "/v1/rules:preview", {"rule": "exists region"}, {"admin", "hz", "viewer"}),
    ("POST", "/v1/rules:explain", {"rule": "exists region", "profile": "bi-1"}, {"admin", "hz"}),
    ("PUT", "/v1/segments/bi-seg", {"rule": "exists region"}, {"admin", "hz"}),
    ("GET", "/v1/segments/bi-seg", None, {"admin", "hz", "viewer", "app"}),
    ("DELETE", "/v1/segments/bi-none", None, {"admin", "hz"}),
]
JSON_ENDPOINTS = [e for e in ENDPOINTS if e[2] is not None]


def is_error(body, code=None):
    assert isinstance(body, dict) and "error" in body, body
    e = body["error"]
    assert e["code"] and e["message"], body
    if code:
        assert e["code"] == code, body


@pytest.mark.parametrize("method,path,body,roles", ENDPOINTS, ids=lambda v: str(v)[:30])
def test_missing_and_wrong_keys(zd, method, path, body, roles):
    st, res = zd.call(method, path, body, key=None)
    assert st == 401
    is_error(res, "unauthorized")
    st, res = zd.call(method, path, body, key="wrong-key-" + "x" * 20)
    assert st == 401
    for role in {"admin", "app", "viewer", "hz"} - roles:
        st, res = zd.call(method, path, body, key=role)
        assert st == 403, (role, res)
        is_error(res, "forbidden")


@pytest.mark.parametrize("method,path,body,roles", JSON_ENDPOINTS, ids=lambda v: str(v)[:30])
def test_malformed_bodies(zd, method, path, body, roles):
    key = "admin"
    st, _ = zd.call("PUT", "/v1/profiles/bi-1", {"kind": "citizen"}, key=key)
    assert st == 200
    for raw in (b"{", b"null", b"[]", b'{"a": 1,}', b"\xff\xfe{}"):
        st, res = zd.call(method, path, raw=raw, key=key)
        assert st == 400, (raw, res)
        is_error(res)
    st, res = zd.call(method, path, raw=b'{"rule": "' + b"\xc3\x28" + b'"}', key=key)
    assert st == 400
    is_error(res)
    big = b'{"rule": "' + b" " * (1024 * 1024 + 10) + b'"}'
    st, res = zd.call(method, path, raw=big, key=key)
    assert st == 413, res
    is_error(res)
    st, res = zd.call(method, path, dict(body, surprise=1), key=key)
    assert st == 400
    is_error(res)
    assert "surprise" in res["error"]["message"] or res["error"].get("field") == "surprise"


def test_rule_fields_have_types(zd):
    for body in ({"rule": 5}, {"rule": "exists region", "sample": -1},
                 {"rule": "exists region", "sample": "3"}, {"rule": "exists region", "breakdown": "region"},
                 {"rule": "exists region", "breakdown": [1]}):
        st, res = zd.call("POST", "/v1/rules:preview", body)
        assert st == 400, (body, res)
        is_error(res)
    st, res = zd.call("POST", "/v1/rules:explain", {"rule": "exists region", "profile": "a b"})
    assert st == 400
    is_error(res, "invalid_id")
    st, res = zd.call("PUT", "/v1/segments/bad%20name", {"rule": "exists region"})
    assert st == 400
    is_error(res, "invalid_name")


def test_import_refuses_bad_utf8_lines_only(zd):
    raw = b'{"id": "bu-1", "kind": "citizen"}\n{"id": "bu-2", "kind": "citizen", "fields": {"n": "\xff"}}\n'
    st, res = zd.call("POST", "/v1/profiles:import", raw=raw, key="app")
    assert st == 200, res
    assert res["imported"] == 1 and res["failed"] == 1
    assert res["errors"][0]["line"] == 2
    st, _ = zd.call("GET", "/v1/profiles/bu-2", key="app")
    assert st == 404


def test_unknown_method_and_path(zd):
    st, res = zd.call("POST", "/v1/profiles/x", {"kind": "citizen"}, key="app")
    assert st == 405
    is_error(res)
    st, res = zd.call("GET", "/v2/anything", key="app")
    assert st == 404
    is_error(res, "not_found")
