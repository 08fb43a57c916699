"""POST /v1/gateways/{name}:test (issue #6, SPEC §5): one signed test notice through a
configured gateway of a real zhidad, to a real receiver (webhook_receiver.py) that verifies the
Standard Webhooks signature, and the receiver's answer reported back: 200 delivered, 500
transient, 404 permanent, a timeout, a closed connection; the inbox (which stores nothing for a
test); unknown and unavailable gateways; bad bodies; roles."""
import pytest

from conftest import RedisServer, Zhidad, citizen
from webhook_receiver import Receiver

A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="module")
def env(tmpdir_mod):
    rx = Receiver(secrets=[A])

    def hook(path, **kw):
        o = {"type": "webhook", "url": rx.url(path), "secret": A, "timeout_ms": 2000,
             "max_attempts": 3}
        o.update(kw)
        return o

    gateways = {"hook": hook("/ok"), "down": hook("/status/500"), "gone": hook("/status/404"),
                "slow": hook("/slow/3000", timeout_ms=300), "hangup": hook("/close"),
                "echo": hook("/echo"), "inbox": {"type": "inbox"}, "sms": {"type": "sms_http", "url": "http://127.0.0.1:9/sms", "format": "form", "body": "to={{to}}&text={{body}}"}}
    r = RedisServer(tmpdir_mod)
    z = Zhidad(tmpdir_mod, r.port, name="gwtest", extra_config={"gateways": gateways})
    yield rx, z, r
    z.stop()
    r.stop()
    rx.close()


def test_delivered_with_a_signature_that_verifies(env):
    rx, zd, _ = env
    n0 = len(rx.requests)
    st, body = zd.call("POST", "/v1/gateways/hook:test", {"to": "user-8812", "title": "你好"},
                       key="app")
    assert st == 200, body
    assert body["gateway"] == "hook" and body["outcome"] == "delivered"
    assert body["http_status"] == 200 and body["detail"] == "HTTP 200" and body["answer"] == "{}"
    assert body["id"].startswith("test:") and body["id"].endswith(":hook")
    (req,) = rx.requests[n0:]
    assert req["verified"] == [True]
    assert req["headers"]["webhook-id"] == body["id"]
    assert req["headers"]["idempotency-key"] == body["id"]
    (n,) = req["json"]["notices"]
    assert n["id"] == body["id"] and n["policy"] == "test" and n["gateway"] == "hook"
    assert n["to"] == "user-8812" and n["title"] == "你好" and n["attempt"] == 1
    assert n["profile"] == body["id"].split(":")[1]


def test_without_a_body_defaults(env):
    rx, zd, _ = env
    st, body = zd.call("POST", "/v1/gateways/hook:test", key="admin")
    assert st == 200 and body["outcome"] == "delivered"
    n = rx.requests[-1]["json"]["notices"][0]
    assert n["to"] == "" and n["title"] == "zhida test notice" and n["body"]


@pytest.mark.parametrize("name,outcome,http,detail", [
    ("down", "transient", 500, "HTTP 500"),
    ("gone", "permanent", 404, "HTTP 404"),
])
def test_receiver_errors_are_classified(env, name, outcome, http, detail):
    rx, zd, _ = env
    st, body = zd.call("POST", "/v1/gateways/%s:test" % name, {}, key="app")
    assert st == 200
    assert (body["outcome"], body["http_status"], body["detail"]) == (outcome, http, detail)
    assert body["answer"] == '{"error": "as asked"}'


def test_timeout_and_hangup_are_transient(env):
    rx, zd, _ = env
    st, body = zd.call("POST", "/v1/gateways/slow:test", key="app")
    assert st == 200 and body["outcome"] == "transient" and body["http_status"] == 0
    assert "timeout" in body["detail"] or "timed out" in body["detail"], body
    st, body = zd.call("POST", "/v1/gateways/hangup:test", key="app")
    assert st == 200 and body["outcome"] == "transient" and body["http_status"] == 0


def test_answer_is_masked(env):
    rx, zd, _ = env
    st, body = zd.call("POST", "/v1/gateways/echo:test",
                       {"to": "+8613912345678", "body": "联系 a.b@example.cn"}, key="app")
    assert st == 200 and body["outcome"] == "permanent" and body["http_status"] == 401
    assert "13912345678" not in body["answer"] and "a.b@example.cn" not in body["answer"]
    assert "bad signature" in body["answer"]


def test_inbox_test_stores_nothing(env):
    rx, zd, redis = env
    p = citizen()
    p["contacts"] = {"sms": "+8613900004321"}  # this config has no zlb gateway
    assert zd.call("PUT", "/v1/profiles/gt-1", p, key="app")[0] == 200
    st, body = zd.call("POST", "/v1/gateways/inbox:test", {"to": "gt-1"}, key="app")
    assert st == 200 and body["outcome"] == "delivered" and body["http_status"] == 0
    assert "stores nothing" in body["detail"]
    st, body = zd.call("POST", "/v1/gateways/inbox:test", {"to": "gt-none"}, key="app")
    assert st == 200 and body["outcome"] == "permanent" and body["detail"] == "no such profile"
    st, body = zd.call("POST", "/v1/gateways/inbox:test", key="app")
    assert st == 200 and body["outcome"] == "delivered"
    st, page = zd.call("GET", "/v1/profiles/gt-1/inbox", key="app")
    assert st == 200 and page["items"] == [] and page["unread"] == 0
    c = redis.client()
    try:
        assert c("KEYS", "*inbox*") == []
    finally:
        c.close()


def test_unknown_and_unreachable_gateways(env):
    rx, zd, _ = env
    st, body = zd.call("POST", "/v1/gateways/nope:test", key="app")
    assert st == 404 and body["error"]["code"] == "not_found"
    # sms_http is implemented now: its provider (port 9, nothing listening) is unreachable,
    # which is transient, not a permanent failure.
    st, body = zd.call("POST", "/v1/gateways/sms:test", {"to": "13900001111"}, key="app")
    assert st == 200 and body["outcome"] == "transient", body


@pytest.mark.parametrize("body,code,field", [
    ({"to": 3}, "invalid_type", "to"),
    ({"title": None}, "invalid_type", "title"),
    ({"body": "x" * 4001}, "out_of_range", "body"),
    ({"to": "x" * 257}, "out_of_range", "to"),
    ({"url": "http://elsewhere"}, "unknown_field", "url"),
    ([1], "bad_json", None),
])
def test_bad_bodies(env, body, code, field):
    rx, zd, _ = env
    n0 = len(rx.requests)
    st, b = zd.call("POST", "/v1/gateways/hook:test", body, key="app")
    assert st == 400 and b["error"]["code"] == code
    if field:
        assert b["error"]["field"] == field
    assert len(rx.requests) == n0  # nothing was sent


@pytest.mark.parametrize("key,status", [("viewer", 403), ("hz", 403), (None, 401)])
def test_roles(env, key, status):
    rx, zd, _ = env
    n0 = len(rx.requests)
    st, _ = zd.call("POST", "/v1/gateways/hook:test", {}, key=key)
    assert st == status
    assert len(rx.requests) == n0
