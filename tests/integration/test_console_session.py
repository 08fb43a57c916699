"""The console's sign-in sessions (POST /v1/sessions, GET/DELETE /v1/sessions/current) and its
static files at /console/: a session cookie stands for its key (same role and scope), writes
made with it need the CSRF token, sign-out and expiry end it server-side, a reload that
changes the key ends it; the files come with a strict CSP, nosniff, ETag revalidation."""
import http.client
import json
import signal
import time

import pytest

from conftest import KEYS, Zhidad, enterprise, wait_until


def raw(zd, method, path, body=None, headers=None):
    """(status, headers dict (lower-case names; Set-Cookie as a list), bytes) without a key."""
    c = http.client.HTTPConnection("127.0.0.1", zd.port, timeout=30)
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    c.request(method, path, body=data, headers=headers or {})
    r = c.getresponse()
    payload = r.read()
    hdrs = {}
    for k, v in r.getheaders():
        if k.lower() == "set-cookie":
            hdrs.setdefault("set-cookie", []).append(v)
        else:
            hdrs[k.lower()] = v
    c.close()
    return r.status, hdrs, payload


def sign_in(zd, who):
    st, h, body = raw(zd, "POST", "/v1/sessions", {"key": KEYS[who]},
                      {"Content-Type": "application/json"})
    assert st == 201, body
    cookie = h["set-cookie"][0]
    sid = cookie.split(";", 1)[0]
    return sid, json.loads(body), cookie


def test_sign_in_sets_a_strict_httponly_cookie_and_answers_a_csrf_token(zd):
    sid, info, cookie = sign_in(zd, "hz")
    attrs = [a.strip() for a in cookie.split(";")]
    assert attrs[0].startswith("zd_session=") and len(attrs[0]) == len("zd_session=") + 64
    assert "HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/" in attrs
    assert "Secure" not in attrs  # console.cookie_secure is off by default
    assert any(a.startswith("Max-Age=") for a in attrs)
    assert info["role"] == "publisher" and info["scope"] == "3301"
    assert info["key_name"] == "hz-hrss"
    assert len(info["csrf_token"]) == 64 and info["idle_timeout_s"] == 1800
    # The key never comes back, and the cookie is not the key.
    assert KEYS["hz"] not in json.dumps(info) and KEYS["hz"] not in cookie
    st, _, body = raw(zd, "GET", "/v1/sessions/current", headers={"Cookie": sid})
    assert st == 200 and json.loads(body) == info


def test_bad_sign_ins(zd):
    def post(body):
        st, h, b = raw(zd, "POST", "/v1/sessions", body, {"Content-Type": "application/json"})
        assert "set-cookie" not in h
        return st, json.loads(b)["error"]
    st, e = post({"key": "not-a-key"})
    assert st == 401 and e["code"] == "unauthorized"
    st, e = post({})
    assert st == 400 and e["code"] == "missing_field" and e["field"] == "key"
    st, e = post({"key": 5})
    assert st == 400 and e["code"] == "invalid_type"
    st, e = post({"key": KEYS["admin"], "remember": True})
    assert st == 400 and e["code"] == "unknown_field" and e["field"] == "remember"
    assert KEYS["admin"] not in zd.read_log()


def test_sign_in_with_the_key_in_the_authorization_header_only(zd):
    # What the console sends: no body, the key as a Bearer token (SPEC: the key travels only
    # in the Authorization header).
    st, h, body = raw(zd, "POST", "/v1/sessions", None,
                      {"Authorization": "Bearer " + KEYS["viewer"]})
    assert st == 201, body
    info = json.loads(body)
    assert info["role"] == "viewer" and KEYS["viewer"] not in body.decode()
    sid = h["set-cookie"][0].split(";", 1)[0]
    st, _, body = raw(zd, "GET", "/v1/sessions/current", headers={"Cookie": sid})
    assert st == 200 and json.loads(body)["csrf_token"] == info["csrf_token"]
    for bad in ("Bearer not-a-key", "Basic " + KEYS["viewer"], "Bearer "):
        st, h, body = raw(zd, "POST", "/v1/sessions", None, {"Authorization": bad})
        assert st == 401 and json.loads(body)["error"]["code"] == "unauthorized", bad
        assert "set-cookie" not in h and h["www-authenticate"].startswith("Bearer")
    assert KEYS["viewer"] not in zd.read_log()


def test_a_session_is_its_keys_identity_role_and_scope(zd):
    for i, region in enumerate(["330106", "330203"]):
        st, _ = zd.call("PUT", "/v1/profiles/sess%d" % i, enterprise(region=region))
        assert st == 200
    sid, info, _ = sign_in(zd, "hz")
    csrf = {"Cookie": sid, "X-CSRF-Token": info["csrf_token"],
            "Content-Type": "application/json"}
    rule = {"rule": 'tags has "hightech"'}
    st, _, body = raw(zd, "POST", "/v1/rules:preview", rule, csrf)
    assert st == 200
    st2, want = zd.call("POST", "/v1/rules:preview", rule, key="hz")
    assert json.loads(body)["count"] == want["count"]
    # A publisher may not read profiles, with a cookie as with its key.
    st, _, _ = raw(zd, "GET", "/v1/profiles/sess0", headers={"Cookie": sid})
    assert st == 403
    # The viewer's session: reads, no writes.
    vsid, vinfo, _ = sign_in(zd, "viewer")
    vh = {"Cookie": vsid, "X-CSRF-Token": vinfo["csrf_token"]}
    st, _, _ = raw(zd, "GET", "/v1/segments", headers=vh)
    assert st == 200
    st, _, body = raw(zd, "PUT", "/v1/segments/x", {"rule": 'kind = "citizen"'}, vh)
    assert st == 403 and json.loads(body)["error"]["code"] == "forbidden"


def test_writes_with_the_cookie_need_the_csrf_token(zd):
    sid, info, _ = sign_in(zd, "admin")
    seg = {"rule": 'kind = "enterprise"'}
    for hdrs in ({"Cookie": sid}, {"Cookie": sid, "X-CSRF-Token": "0" * 64},
                 {"Cookie": sid, "X-CSRF-Token": info["csrf_token"][:-1]}):
        st, _, body = raw(zd, "PUT", "/v1/segments/csrf-seg", seg, hdrs)
        assert st == 403, body
        assert json.loads(body)["error"]["code"] == "csrf_failed"
        st, _, body = raw(zd, "DELETE", "/v1/sessions/current", None, hdrs)
        assert st == 403 and json.loads(body)["error"]["code"] == "csrf_failed"
    st, _, _ = zd.call("GET", "/v1/segments/csrf-seg")[0], None, None
    assert st == 404
    ok = {"Cookie": sid, "X-CSRF-Token": info["csrf_token"]}
    st, _, body = raw(zd, "PUT", "/v1/segments/csrf-seg", seg, ok)
    assert st == 200, body
    # Reads need no token.
    st, _, _ = raw(zd, "GET", "/v1/segments/csrf-seg", headers={"Cookie": sid})
    assert st == 200
    # A Bearer key needs none either, and a Bearer header decides alone: a wrong key with a
    # good cookie is 401.
    st, _ = zd.call("PUT", "/v1/segments/csrf-seg", seg)
    assert st == 200
    st, _, _ = raw(zd, "GET", "/v1/segments", headers={"Cookie": sid,
                                                        "Authorization": "Bearer nope"})
    assert st == 401


def test_sign_out_ends_the_session_server_side(zd, redis):
    sid, info, _ = sign_in(zd, "admin")
    ok = {"Cookie": sid, "X-CSRF-Token": info["csrf_token"]}
    st, h, body = raw(zd, "DELETE", "/v1/sessions/current", None, ok)
    assert st == 200 and json.loads(body) == {"deleted": True}
    assert "Max-Age=0" in h["set-cookie"][0]
    # The same cookie, replayed, is dead.
    st, h, body = raw(zd, "GET", "/v1/segments", headers={"Cookie": sid})
    assert st == 401 and json.loads(body)["error"]["code"] == "unauthorized"
    st, _, _ = raw(zd, "GET", "/v1/sessions/current", headers={"Cookie": sid})
    assert st == 401
    # Without a session there is nothing to end or show.
    st, _ = zd.call("GET", "/v1/sessions/current")
    assert st == 404
    st, _, _ = raw(zd, "GET", "/v1/segments", headers={"Cookie": "zd_session=" + "a" * 64})
    assert st == 401
    # Sign-in and sign-out are audited, without the key.
    def audit():
        return json.dumps(redis.client()("XRANGE", "zd:{audit}:audit", "-", "+"), default=str)
    wait_until(lambda: "session.delete" in audit() and "session.create" in audit(),
               what="session audit records")
    assert KEYS["admin"] not in audit() and info["csrf_token"] not in audit()


def test_sessions_expire_when_idle(tmp_path, redis):
    z = Zhidad(str(tmp_path), redis.port, name="short",
               extra_config={"console": {"session_idle_s": 10, "session_max_s": 10}})
    try:
        sid, info, cookie = sign_in(z, "viewer")
        assert "Max-Age=10" in cookie and info["idle_timeout_s"] == 10
        st, _, _ = raw(z, "GET", "/v1/segments", headers={"Cookie": sid})
        assert st == 200
        time.sleep(10.5)
        st, _, _ = raw(z, "GET", "/v1/segments", headers={"Cookie": sid})
        assert st == 401
    finally:
        z.stop()


def test_a_reload_that_changes_the_key_ends_its_sessions(tmp_path, redis):
    z = Zhidad(str(tmp_path), redis.port, name="reload")
    try:
        keep, _, _ = sign_in(z, "viewer")
        gone, _, _ = sign_in(z, "hz")
        cfg = json.loads(open(z.config_path).read().split("\n", 1)[1])
        for k in cfg["api_keys"]:
            if k["name"] == "hz-hrss":
                k["key"] = "a-rotated-publisher-key-0123"
        with open(z.config_path, "w") as f:
            json.dump(cfg, f)
        z.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: raw(z, "GET", "/v1/segments", headers={"Cookie": gone})[0] == 401,
                   what="the rotated key's session to end")
        assert raw(z, "GET", "/v1/segments", headers={"Cookie": keep})[0] == 200
    finally:
        z.stop()


def test_the_console_is_served_with_a_strict_csp(zd):
    st, h, body = raw(zd, "GET", "/console/")
    assert st == 200 and h["content-type"] == "text/html; charset=utf-8"
    csp = h["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert h["cache-control"] == "no-cache" and h["etag"].startswith('"')
    html = body.decode()
    assert "<script" in html and 'type="module"' in html
    # No inline script or style: every <script> has a src, no style attributes.
    assert "<style" not in html and " style=" not in html
    for chunk in html.split("<script")[1:]:
        assert 'src="' in chunk.split(">", 1)[0]
    st, h2, _ = raw(zd, "GET", "/console/", headers={"If-None-Match": h["etag"]})
    assert st == 304 and h2["etag"] == h["etag"]
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css"),
                        ("chart.js", "text/javascript"),
                        ("regions-zj.tsv", "text/tab-separated-values")):
        st, h, body = raw(zd, "GET", "/console/" + name)
        assert st == 200 and h["content-type"].startswith(ctype), name
        assert len(body) > 100 and "content-security-policy" in h
    st, h, body = raw(zd, "HEAD", "/console/chart.js")
    assert st == 200 and body == b"" and int(h["content-length"]) > 100000
    st, h, _ = raw(zd, "GET", "/console")
    assert st == 308 and h["location"] == "/console/"
    st, _, body = raw(zd, "GET", "/console/nope.js")
    assert st == 404 and json.loads(body)["error"]["code"] == "not_found"
    st, _, _ = raw(zd, "GET", "/console/../zhida.json")
    assert st == 404
