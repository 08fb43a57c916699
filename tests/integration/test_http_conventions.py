"""HTTP conventions (issue #9): HEAD and OPTIONS answered by zhidad, ETag / If-Match /
If-None-Match on profile writes (412 on a mismatch, nothing written), Retry-After on every 503,
a whole-request 503 from an import while not ready, 415 for a PATCH that is not a merge patch,
request ids (X-Request-Id / traceparent) in answers, error bodies and logs, import lines with
"op": "delete", and every error code the sources can answer listed in docs/API.md."""
import http.client
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

from conftest import KEYS, ROOT, RedisServer, Zhidad, enterprise, wait_until

MERGE_PATCH = "application/merge-patch+json"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def raw(z, method, path, body=None, key="admin", headers=None, conn=None):
    """(status, headers with lower-case names, body bytes) of one request."""
    c = conn or http.client.HTTPConnection("127.0.0.1", z.port, timeout=60)
    h = {}
    if key is not None:
        h["Authorization"] = "Bearer " + KEYS.get(key, key)
    if isinstance(body, (dict, list)):
        body = json.dumps(body, ensure_ascii=False).encode()
        h["Content-Type"] = MERGE_PATCH if method == "PATCH" else "application/json"
    h.update(headers or {})
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if conn is None:
            c.close()


def err_code(data):
    return json.loads(data)["error"]["code"]


def allow_set(headers):
    return set(m.strip() for m in headers["allow"].split(","))


# ---- HEAD and OPTIONS ------------------------------------------------------------------------


def test_head_is_get_without_a_body(zd):
    st, _ = zd.call("PUT", "/v1/profiles/hc-head", enterprise(), key="app")
    assert st == 200
    for path, key in (("/healthz", None), ("/readyz", None), ("/metrics", None),
                      ("/v1/profiles/hc-head", "app"), ("/v1/segments/hc-none", "viewer")):
        # One connection for HEAD then GET: a body after the HEAD answer would be read as the
        # GET's answer and break it.
        c = http.client.HTTPConnection("127.0.0.1", zd.port, timeout=60)
        try:
            sth, hh, bh = raw(zd, "HEAD", path, key=key, conn=c)
            st, h, body = raw(zd, "GET", path, key=key, conn=c)
        finally:
            c.close()
        assert sth == st and st in (200, 404), (path, sth, st)
        assert bh == b""
        assert hh["content-type"] == h["content-type"]
        assert "x-request-id" in hh
        if path != "/metrics":  # the metrics change between the two requests
            assert int(hh["content-length"]) == len(body), path
    st, h, _ = raw(zd, "HEAD", "/v1/profiles/hc-head", key="app")
    assert st == 200 and h["etag"] == '"1"'
    # Auth and roles apply as to GET.
    st, h, b = raw(zd, "HEAD", "/v1/profiles/hc-head", key=None)
    assert st == 401 and b == b"" and "www-authenticate" in h
    st, _, _ = raw(zd, "HEAD", "/v1/profiles/hc-head", key="viewer")
    assert st == 403
    # A path without GET: 405 naming what it has.
    st, h, _ = raw(zd, "HEAD", "/v1/rules:preview", key="admin")
    assert st == 405 and allow_set(h) == {"POST", "OPTIONS"}


def test_options_lists_the_methods_of_a_path(zd):
    cases = {
        "/v1/profiles/anything": {"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"},
        "/v1/profiles:import": {"POST", "OPTIONS"},
        "/v1/rules:preview": {"POST", "OPTIONS"},
        "/v1/segments/s1": {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"},
        "/healthz": {"GET", "HEAD", "OPTIONS"},
        "/metrics": {"GET", "HEAD", "OPTIONS"},
    }
    for path, methods in cases.items():
        st, h, body = raw(zd, "OPTIONS", path, key=None)  # no key needed
        assert st == 204 and body == b"", (path, st, body)
        assert allow_set(h) == methods, (path, h["allow"])
        assert "x-request-id" in h
    st, h, body = raw(zd, "OPTIONS", "/nope", key=None)
    assert st == 404 and err_code(body) == "not_found"
    # 405 answers name HEAD and OPTIONS too.
    st, h, body = raw(zd, "PUT", "/healthz", key="admin")
    assert st == 405 and allow_set(h) == {"GET", "HEAD", "OPTIONS"}
    assert err_code(body) == "method_not_allowed"
    # Other methods get a JSON answer, not evhttp's HTML.
    st, h, body = raw(zd, "TRACE", "/healthz", key=None)
    assert st == 405 and err_code(body) == "method_not_allowed"


def test_head_with_a_body_is_refused(zd):
    s = socket.create_connection(("127.0.0.1", zd.port), timeout=10)
    try:
        s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 400"), data
    finally:
        s.close()


# ---- ETag, If-Match, If-None-Match -----------------------------------------------------------


def get_profile(zd, pid):
    st, h, body = raw(zd, "GET", "/v1/profiles/" + pid, key="app")
    return st, h.get("etag"), json.loads(body)


def test_etag_and_preconditions(zd):
    pid = "hc-etag"
    path = "/v1/profiles/" + pid
    st, h, body = raw(zd, "PUT", path, enterprise(employees=10), key="app")
    assert st == 200 and h["etag"] == '"1"' and json.loads(body)["version"] == 1
    st, etag, doc = get_profile(zd, pid)
    assert st == 200 and etag == '"1"'

    st, h, _ = raw(zd, "PUT", path, enterprise(employees=11), key="app",
                   headers={"If-Match": '"1"'})
    assert st == 200 and h["etag"] == '"2"'
    # A stale version: 412 and nothing written.
    st, h, body = raw(zd, "PUT", path, enterprise(employees=12), key="app",
                      headers={"If-Match": '"1"'})
    assert st == 412 and err_code(body) == "precondition_failed", body
    assert json.loads(body)["error"]["request_id"] == h["x-request-id"]
    st, etag, doc = get_profile(zd, pid)
    assert etag == '"2"' and doc["attrs"]["employees"] == 11

    st, h, _ = raw(zd, "PATCH", path, {"attrs": {"employees": 13}}, key="app",
                   headers={"If-Match": '"2"'})
    assert st == 200 and h["etag"] == '"3"'
    for stale in ('"2"', 'W/"3"', '"3x"'):  # weak tags never match If-Match
        st, _, body = raw(zd, "PATCH", path, {"attrs": {"employees": 14}}, key="app",
                          headers={"If-Match": stale})
        assert st == 412 and err_code(body) == "precondition_failed", (stale, body)
    st, etag, doc = get_profile(zd, pid)
    assert etag == '"3"' and doc["attrs"]["employees"] == 13
    # A list matches when one of its tags does; "*" when the profile exists.
    st, h, _ = raw(zd, "PATCH", path, {"attrs": {"employees": 15}}, key="app",
                   headers={"If-Match": '"1", "3"'})
    assert st == 200 and h["etag"] == '"4"'
    st, h, _ = raw(zd, "PUT", path, enterprise(employees=16), key="app",
                   headers={"If-Match": "*"})
    assert st == 200 and h["etag"] == '"5"'
    # The same document again: a no-op, the same version and ETag.
    st, h, _ = raw(zd, "PUT", path, enterprise(employees=16), key="app",
                   headers={"If-Match": '"5"'})
    assert st == 200 and h["etag"] == '"5"'
    # Create-only.
    st, _, body = raw(zd, "PUT", path, enterprise(employees=17), key="app",
                      headers={"If-None-Match": "*"})
    assert st == 412 and err_code(body) == "precondition_failed"
    # DELETE: a stale version keeps the profile.
    st, _, body = raw(zd, "DELETE", path, key="app", headers={"If-Match": '"4"'})
    assert st == 412 and err_code(body) == "precondition_failed"
    assert get_profile(zd, pid)[0] == 200
    st, _, body = raw(zd, "DELETE", path, key="app", headers={"If-Match": '"5"'})
    assert st == 200 and json.loads(body)["deleted"] is True
    # Absent: every If-Match fails and nothing is created.
    for method, hdr in (("PUT", "*"), ("PUT", '"5"'), ("PATCH", '"5"'), ("DELETE", '"5"')):
        st, _, body = raw(zd, method, path, enterprise() if method == "PUT" else
                          ({"tags": []} if method == "PATCH" else None), key="app",
                          headers={"If-Match": hdr})
        assert st == 412 and err_code(body) == "precondition_failed", (method, hdr, body)
    assert get_profile(zd, pid)[0] == 404
    st, h, _ = raw(zd, "PUT", path, enterprise(), key="app", headers={"If-None-Match": "*"})
    assert st == 200 and h["etag"] == '"1"'
    # A malformed header is the client's error, not a silent unconditional write.
    for bad in ("1", '"1', "*, \"1\""):
        st, _, body = raw(zd, "PUT", path, enterprise(employees=99), key="app",
                          headers={"If-Match": bad})
        assert st == 400 and err_code(body) == "bad_request", (bad, body)
        assert json.loads(body)["error"]["field"] == "If-Match"
    assert get_profile(zd, pid)[2]["version"] == 1


def test_if_match_lets_one_of_concurrent_writers_win(zd):
    """Eight writers read version 1 and write with If-Match "1" at once: exactly one wins, the
    others get 412, and the stored profile is the winner's (no lost update)."""
    pid = "hc-race"
    path = "/v1/profiles/" + pid
    st, _ = zd.call("PUT", path, enterprise(employees=1), key="app")
    assert st == 200
    for method, version in (("PUT", 1), ("PATCH", 2)):
        results = {}
        go = threading.Barrier(8)

        def write(i):
            body = (enterprise(employees=100 + i) if method == "PUT"
                    else {"attrs": {"employees": 200 + i}})
            go.wait()
            results[i] = raw(zd, method, path, body, key="app",
                             headers={"If-Match": '"%d"' % version})

        threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [i for i, r in results.items() if r[0] == 200]
        losers = [r for r in results.values() if r[0] != 200]
        assert len(winners) == 1, [r[0] for r in results.values()]
        assert all(r[0] == 412 and err_code(r[2]) == "precondition_failed" for r in losers)
        st, etag, doc = get_profile(zd, pid)
        assert etag == '"%d"' % (version + 1)
        assert doc["attrs"]["employees"] == (100 if method == "PUT" else 200) + winners[0]


# ---- 415 for a PATCH that is not a merge patch -----------------------------------------------


def test_patch_needs_the_merge_patch_media_type(zd):
    pid = "hc-ct"
    st, _ = zd.call("PUT", "/v1/profiles/" + pid, enterprise(employees=5), key="app")
    assert st == 200
    patch = json.dumps({"attrs": {"employees": 6}}).encode()
    for ctype in ("application/json", "text/plain", None, "application/json-patch+json"):
        headers = {"Content-Type": ctype} if ctype else {}
        st, h, body = raw(zd, "PATCH", "/v1/profiles/" + pid, patch, key="app", headers=headers)
        assert st == 415, (ctype, st, body)
        err = json.loads(body)["error"]
        assert err["code"] == "unsupported_media_type" and MERGE_PATCH in err["message"]
        assert h["accept-patch"] == MERGE_PATCH
    assert get_profile(zd, pid)[2]["attrs"]["employees"] == 5
    for ctype in (MERGE_PATCH + "; charset=utf-8", "Application/Merge-Patch+JSON"):
        st, _, body = raw(zd, "PATCH", "/v1/profiles/" + pid, patch, key="app",
                          headers={"Content-Type": ctype})
        assert st == 200, (ctype, body)


# ---- request ids -----------------------------------------------------------------------------


def test_request_ids(zd):
    st, h, _ = raw(zd, "GET", "/healthz", key=None, headers={"X-Request-Id": "it-rid-0001"})
    assert st == 200 and h["x-request-id"] == "it-rid-0001"
    ids = set()
    for _ in range(3):
        st, h, _ = raw(zd, "GET", "/healthz", key=None)
        assert HEX32.match(h["x-request-id"]), h["x-request-id"]
        ids.add(h["x-request-id"])
    assert len(ids) == 3
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    st, h, _ = raw(zd, "GET", "/healthz", key=None, headers={"traceparent": tp})
    assert h["x-request-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    st, h, _ = raw(zd, "GET", "/healthz", key=None,
                   headers={"traceparent": tp, "X-Request-Id": "it-rid-both"})
    assert h["x-request-id"] == "it-rid-both"
    # Ids that are too long, hold spaces, quotes or what looks like personal data are replaced.
    for bad in ("a" * 129, "has space", 'quo"te', "13812345678", "x@example.cn", "back\\slash",
                "req-a13812345678"):
        st, h, _ = raw(zd, "GET", "/healthz", key=None, headers={"X-Request-Id": bad})
        assert HEX32.match(h["x-request-id"]), (bad, h["x-request-id"])
    for bad in ("00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "garbage"):
        st, h, _ = raw(zd, "GET", "/healthz", key=None, headers={"traceparent": bad})
        assert HEX32.match(h["x-request-id"]) and h["x-request-id"] != "0" * 32, bad
    st, h, _ = raw(zd, "GET", "/healthz", key=None, headers={"X-Request-Id": "a" * 128})
    assert h["x-request-id"] == "a" * 128

    # Every error body carries it, from handlers and from the HTTP layer.
    for method, path, key in (("GET", "/v1/profiles/hc-missing", "app"),
                              ("GET", "/v1/profiles/hc-missing", None),
                              ("GET", "/v1/profiles/hc-missing", "viewer"),
                              ("GET", "/nope", None)):
        st, h, body = raw(zd, method, path, key=key, headers={"X-Request-Id": "it-rid-err"})
        assert st >= 400 and h["x-request-id"] == "it-rid-err"
        assert json.loads(body)["error"]["request_id"] == "it-rid-err", body
    # A request refused from its head, before its body is read.
    s = socket.create_connection(("127.0.0.1", zd.port), timeout=10)
    try:
        s.sendall(b"POST /v1/rules:preview HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + KEYS["admin"].encode() + b"\r\nX-Request-Id: it-rid-413\r\n"
                  b"Content-Length: 50000000\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"X-Request-Id: it-rid-413" in head, head
    assert json.loads(body)["error"]["request_id"] == "it-rid-413"

    # The access-log line names it.
    raw(zd, "GET", "/v1/profiles/hc-logged", key="app", headers={"X-Request-Id": "it-rid-log"})
    wait_until(lambda: re.search(r"http: GET /v1/profiles/hc-logged 404 .*request_id=it-rid-log",
                                 zd.read_log()), what="the access line with the request id")


def test_request_id_in_handler_logs(zd, redis):
    """A line a handler logs while serving a request (here from a Redis callback) names it."""
    from test_validation import partition_of
    pid = "hc-badstored"
    st, _ = zd.call("PUT", "/v1/profiles/" + pid, enterprise(), key="app")
    assert st == 200
    r = redis.client()
    try:
        key = "zd:{p%d}:profiles" % partition_of(pid)
        r("HSET", key, pid, r("HGET", key, pid)[:-5])
    finally:
        r.close()
    st, h, body = raw(zd, "PATCH", "/v1/profiles/" + pid, {"tags": ["x"]}, key="app",
                      headers={"X-Request-Id": "it-rid-patch"})
    assert st == 500 and err_code(body) == "invalid_stored_profile"
    assert re.search(r"stored profile hc-badstored is not valid JSON.*request_id=it-rid-patch",
                     zd.read_log())
    st, _, _ = raw(zd, "POST", "/v1/profiles:import",
                   json.dumps(dict(enterprise(), id="hc-imp-rid")).encode(), key="app",
                   headers={"X-Request-Id": "it-rid-import"})
    assert st == 200
    wait_until(lambda: re.search(r"import: 1 lines.*request_id=it-rid-import", zd.read_log()),
               what="the import line with the request id")


# ---- import: "op": "delete" -----------------------------------------------------------------


def ndjson(*lines):
    return "\n".join(json.dumps(l, ensure_ascii=False) if not isinstance(l, str) else l
                     for l in lines).encode()


def test_import_delete_lines(zd, redis):
    for pid in ("hc-del-a", "hc-del-b"):
        st, _ = zd.call("PUT", "/v1/profiles/" + pid, enterprise(tags=["hcdel"]), key="app")
        assert st == 200
    body = ndjson({"id": "hc-del-a", "op": "delete"},
                  {"id": "hc-del-never", "op": "delete"},
                  dict(enterprise(tags=["hcdel"]), id="hc-del-c", op="put"),
                  dict(enterprise(tags=["hcdel"]), id="hc-del-d"),
                  {"id": "hc-del-b", "op": "frobnicate"},
                  {"id": "hc-del-b", "op": "delete", "kind": "citizen"},
                  {"op": "delete"},
                  {"id": "bad id!", "op": "delete"},
                  {"id": "hc-del-b", "op": 1})
    st, res = zd.call("POST", "/v1/profiles:import", raw=body, key="app")
    assert st == 200, res
    assert (res["lines"], res["imported"], res["deleted"], res["unchanged"], res["failed"]) == \
        (9, 2, 1, 1, 5), res
    errs = {e["line"]: e for e in res["errors"]}
    assert errs[5]["error"]["code"] == "invalid_value" and errs[5]["error"]["field"] == "op"
    assert errs[5]["id"] == "hc-del-b"
    assert errs[6]["error"]["code"] == "unknown_field" and errs[6]["error"]["field"] == "kind"
    assert errs[7]["error"]["code"] == "missing_field" and errs[7]["error"]["field"] == "id"
    assert errs[8]["error"]["code"] == "invalid_id"
    assert errs[9]["error"]["code"] == "invalid_type" and errs[9]["error"]["field"] == "op"
    assert zd.call("GET", "/v1/profiles/hc-del-a", key="app")[0] == 404
    for pid in ("hc-del-b", "hc-del-c", "hc-del-d"):
        assert zd.call("GET", "/v1/profiles/" + pid, key="app")[0] == 200, pid
    st, prev = zd.call("POST", "/v1/rules:preview", {"rule": 'tags has "hcdel"'})
    assert prev["count"] == 3
    # Lines apply in order: put, delete, put ends with the last put; put, delete with nothing.
    body = ndjson(dict(enterprise(employees=1), id="hc-ord-x"), {"id": "hc-ord-x", "op": "delete"},
                  dict(enterprise(employees=2), id="hc-ord-x"),
                  dict(enterprise(employees=3), id="hc-ord-y"), {"id": "hc-ord-y", "op": "delete"})
    st, res = zd.call("POST", "/v1/profiles:import", raw=body, key="app")
    assert st == 200 and res["failed"] == 0 and res["deleted"] == 2, res
    st, doc = zd.call("GET", "/v1/profiles/hc-ord-x", key="app")
    assert st == 200 and doc["attrs"]["employees"] == 2
    assert zd.call("GET", "/v1/profiles/hc-ord-y", key="app")[0] == 404
    # An erasure like DELETE's: audited by partition/dense id, never by the id.
    r = redis.client()
    try:
        recs = [e[1] for e in r("XRANGE", "zd:{audit}:audit", "-", "+")]
    finally:
        r.close()
    deletes = [x for x in recs if x[x.index("action") + 1] == "profile.delete"]
    assert len([x for x in deletes if x[x.index("key") + 1] == "app1"]) >= 3
    assert not any("hc-del-a" in v for x in recs for v in x)
    # Again: a delete of what is gone is unchanged, not an error (idempotent sync).
    st, res = zd.call("POST", "/v1/profiles:import",
                      raw=ndjson({"id": "hc-del-a", "op": "delete"}), key="app")
    assert st == 200 and res["unchanged"] == 1 and res["deleted"] == 0 and res["failed"] == 0


# ---- 503s: Retry-After, and an import while not ready ----------------------------------------


def test_retry_after_on_every_503(tmp_path):
    redis = RedisServer(str(tmp_path))
    z = None
    idle = []
    try:
        z = Zhidad(str(tmp_path), redis.port, name="ra", extra_config={
            "redis_client": {"deadline_ms": 2000, "reconnect_min_ms": 50,
                             "reconnect_max_ms": 200},
            "limits": {"max_connections": 4}})
        st, _ = z.call("PUT", "/v1/profiles/ra-1", enterprise(), key="app")
        assert st == 200
        redis.stop()
        wait_until(lambda: z.call("GET", "/readyz", key=None)[0] == 503, what="not ready")

        def check(method, path, body=None, key="app", code=None):
            st, h, data = raw(z, method, path, body, key=key)
            assert st == 503, (method, path, st, data)
            assert int(h["retry-after"]) >= 1, (method, path, h)
            if code:
                assert err_code(data) == code, (method, path, data)

        check("GET", "/readyz", key=None)
        check("GET", "/v1/profiles/ra-1", code="store_unavailable")
        check("PUT", "/v1/profiles/ra-2", enterprise(), code="store_unavailable")
        check("PATCH", "/v1/profiles/ra-1", {"tags": []}, code="store_unavailable")
        check("DELETE", "/v1/profiles/ra-1", code="store_unavailable")
        check("POST", "/v1/rules:preview", {"rule": 'segment "x"'}, key="admin",
              code="store_unavailable")
        check("GET", "/v1/segments/x", key="admin", code="store_unavailable")
        check("POST", "/v1/profiles:import", ndjson(dict(enterprise(), id="ra-3")),
              code="not_ready")

        # Over max_connections: answered at accept.
        for _ in range(4):
            idle.append(socket.create_connection(("127.0.0.1", z.port), timeout=10))
        time.sleep(0.2)
        st, h, data = raw(z, "GET", "/healthz", key=None)
        assert st == 503 and err_code(data) == "too_many_connections"
        assert int(h["retry-after"]) >= 1
        for s in idle[1:]:
            s.close()
        del idle[1:]
        a_idle = idle[0]
        b_idle = socket.create_connection(("127.0.0.1", z.port), timeout=10)
        idle.append(b_idle)
        time.sleep(0.2)

        # Stopping: a request that waits for Redis keeps the drain going while requests on
        # connections already open get 503 shutting_down, with and without a body.
        def slow_get():
            try:
                raw(z, "GET", "/v1/profiles/ra-1", key="app")
            except OSError:
                pass  # zhidad may close it unanswered when the drain ends

        slow = threading.Thread(target=slow_get)
        slow.start()
        time.sleep(0.3)
        z.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        for s, req in ((a_idle, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
                       (b_idle, b"POST /v1/rules:preview HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: 2\r\n\r\n{}")):
            s.sendall(req)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            head = data.split(b"\r\n\r\n")[0].decode()
            assert head.startswith("HTTP/1.1 503"), head
            assert re.search(r"(?im)^Retry-After: \d+\r?$", head), head
        slow.join()
        assert z.proc.wait(timeout=30) == 0
    finally:
        for s in idle:
            s.close()
        if z:
            z.stop()
        redis.stop()


class UnreadyZhidad(Zhidad):
    """A zhidad that is not waited for: it may never become ready."""

    def start(self, wait_ready=False):
        super().start(wait_ready=False)
        wait_until(lambda: self.call("GET", "/healthz", key=None)[0] == 200,
                   what="zhidad to answer")


def test_import_while_not_ready_is_refused_whole(tmp_path):
    redis = RedisServer(str(tmp_path))
    a = b = None
    try:
        a = Zhidad(str(tmp_path), redis.port, name="nr-a")
        st, _ = a.call("PUT", "/v1/profiles/nr-seed", enterprise(employees=1), key="app")
        assert st == 200
        a.stop()
        a = None
        # Every index update fails: the index never loads, Redis is fine.
        b = UnreadyZhidad(str(tmp_path), redis.port, name="nr-b",
                          env={"ZHIDA_FAULT": "index_put:1x1000000000"})
        if "ZHIDA_FAULT is set but ignored" in b.read_log():
            pytest.skip("this zhidad build has no fault injection (a debug build has)")
        assert b.call("GET", "/readyz", key=None)[0] == 503
        body = ndjson(dict(enterprise(), id="nr-new"), {"id": "nr-seed", "op": "delete"},
                      dict(enterprise(employees=9), id="nr-seed"))
        st, h, data = raw(b, "POST", "/v1/profiles:import", body, key="app")
        assert st == 503 and err_code(data) == "not_ready", data
        assert int(h["retry-after"]) >= 1
        r = redis.client()
        try:
            assert sum(r("HLEN", "zd:{p%d}:profiles" % p) for p in range(4)) == 1
            assert sum(r("XLEN", "zd:{p%d}:changes" % p) for p in range(4)) == 1
        finally:
            r.close()
        st, doc = b.call("GET", "/v1/profiles/nr-seed", key="app")
        assert st == 200 and doc["attrs"]["employees"] == 1
    finally:
        for z in (a, b):
            if z:
                z.stop()
        redis.stop()


# ---- every error code is documented ----------------------------------------------------------

# Where the sources name the codes they answer with.
CODE_PATTERNS = [
    (r"zhidad/.*\.c$", r"zd_req_reply_error(?:_extra)?\(\s*[^,;]+,\s*[^,;]+,\s*\"([a-z_]+)\""),
    (r"zhidad/.*\.c$", r"\b(?:refuse|early_reply|build_answer)\(\s*[^,;]+,\s*[^,;]+,\s*[^,;]+,"
                       r"\s*\"([a-z_]+)\""),
    (r"zhidad/.*\.c$", r"reply_error_code\(\s*[^,;]+,\s*[^,;]+,\s*\"([a-z_]+)\""),
    (r"(zhidad/.*|profiles/(profile|json))\.c$", r"zd_error_set\(\s*[^,;]+,\s*\"([a-z_]+)\""),
    (r"matcher/.*\.c$", r"set_error\(\s*[^,;]+,\s*[^,;]+,\s*\"([a-z_]+)\""),
    (r"matcher/.*\.c$", r"snprintf\(\s*\w+->code,\s*sizeof\([^)]*\),\s*\"([a-z_]+)\""),
]


def source_codes():
    found = {}
    for folder in ("zhidad", "profiles", "matcher"):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            rel = folder + "/" + name
            pats = [p for f, p in CODE_PATTERNS if re.match(f, rel)]
            if not pats:
                continue
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                text = f.read()
            for p in pats:
                for m in re.finditer(p, text):
                    found.setdefault(m.group(1), set()).add(rel)
    return found


def documented_codes():
    with open(os.path.join(ROOT, "docs", "API.md"), encoding="utf-8") as f:
        text = f.read()
    codes = set()
    for line in text.splitlines():
        if re.match(r"^\| [1-5]\d\d \|", line):
            codes.update(re.findall(r"`([a-z_]+)`", line.split("|")[2]))
    return codes


def test_every_error_code_is_documented():
    found = source_codes()
    assert len(found) >= 40, sorted(found)  # the patterns still find the calls
    for code in ("not_found", "syntax_error", "too_many_connections", "out_of_range"):
        assert code in found, code
    missing = {c: sorted(f) for c, f in found.items() if c not in documented_codes()}
    assert not missing, "error codes not in docs/API.md's table: %s" % missing
