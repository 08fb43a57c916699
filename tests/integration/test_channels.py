"""Every channel (issue #7): gateway plugins loaded from plugin_dir (tests/plugins, built by
meson) and refused when their ABI does not match; the sms_http gateway against a real HTTP
receiver; the smtp gateway against a real SMTP receiver (aiosmtpd) started here. Policies are
published through the API and delivered by the engine; outcomes are read back from the
receivers and GET /v1/policies/{id}/deliveries/{profile}."""
import email
import email.policy
import json
import os
import shutil
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import PII_PATTERNS, ZHIDAD, Zhidad, enterprise, free_port
from test_dispatch import daemon, wait_status

PLUGINS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(ZHIDAD))), "tests",
                       "plugins")
FAST = {"max_attempts": 2, "retry_base_ms": 100, "retry_max_ms": 200}
SMS_FAST = dict(FAST, timeout_ms=2000)
SUMMARY = '您可能符合"稳岗补贴"申领条件\n请登录 a&b=c 查看\\详情'


def add(z, prefix, contacts, tag):
    """One profile per contacts dict, tagged `tag`; returns their ids in order."""
    ids, lines = [], []
    for i, c in enumerate(contacts):
        p = enterprise(tags=(tag,))
        p["id"] = "%s%03d" % (prefix, i)
        p["contacts"] = c
        ids.append(p["id"])
        lines.append(json.dumps(p, ensure_ascii=False))
    st, res = z.call("POST", "/v1/profiles:import", raw=("\n".join(lines) + "\n").encode(),
                     key="app", headers={"Content-Type": "application/x-ndjson"})
    assert st == 200, res
    return ids


def publish(z, pid, tag, routes, title="稳岗补贴", summary=SUMMARY):
    body = {"id": pid, "title": title, "summary": summary,
            "url": "https://example.gov.cn/p/" + pid, "category": "employment",
            "issuer": "杭州市人力社保局", "rule": 'tags has "%s"' % tag, "routes": routes}
    st, res = z.call("POST", "/v1/policies", body)
    assert st in (200, 201, 202), (st, res)


def outcomes(z, pid, profile):
    st, res = z.call("GET", "/v1/policies/%s/deliveries/%s" % (pid, profile))
    assert st == 200, res
    r = res["routes"][0]
    return r["status"], [a["outcome"] for a in r["attempts"]]


def no_pii_in_log(z):
    log = z.read_log()
    for pat in PII_PATTERNS:
        assert not pat.search(log), pat.pattern


# ---- plugins -------------------------------------------------------------------------------

def plugin_dir(tmp, *names):
    d = os.path.join(tmp, "plugins-" + "-".join(names))
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for n in names:
        # Copies, not links: the same file under two names would be one dlopen handle.
        src, _, dst = n.partition("=")
        shutil.copy(os.path.join(PLUGINS, src + ".so"), os.path.join(d, (dst or src) + ".so"))
    return d


def test_plugin_delivers_asynchronously(tmpdir_mod, redis):
    d = plugin_dir(tmpdir_mod, "zdtest_gw")
    z = daemon(tmpdir_mod, redis, "plug", {"plug": dict({"type": "testgw"}, **FAST)},
               delivery={"claim_idle_ms": 20000}, plugin_dir=d)
    try:
        assert "gateway types testgw" in z.read_log()
        ids = add(z, "pl", [{"plug": "ok-1"}, {"plug": "permanent-2"}, {"plug": "transient-3"}],
                  "plugtag")
        publish(z, "plug-1", "plugtag", ["plug"])
        meta, routes = wait_status(redis, "plug-1", 1, ("done",))
        assert routes[0]["delivered"] == 1 and routes[0]["dead"] == 2, routes
        assert outcomes(z, "plug-1", ids[0]) == ("delivered", ["delivered"])
        assert outcomes(z, "plug-1", ids[1]) == ("dead", ["permanent"])
        assert outcomes(z, "plug-1", ids[2]) == ("dead", ["transient", "transient"])
    finally:
        z.stop()


def refused(tmpdir_mod, redis, name, d, gateways=None):
    """Starts zhidad with plugin_dir d; it must exit 78. Returns its output."""
    z = Zhidad(tmpdir_mod, redis.port, name=name, wait_ready=False,
               extra_config={"plugin_dir": d, "gateways": gateways or {"inbox": {"type": "inbox"}}})
    status = z.proc.wait(timeout=60)
    z.log.close()
    assert status == 78, z.read_log()
    return z.read_log()


def test_plugin_abi_mismatch_refused(tmpdir_mod, redis):
    d = plugin_dir(tmpdir_mod, "zdtest_gw_wrongabi")
    log = refused(tmpdir_mod, redis, "wrongabi", d)
    path = os.path.join(d, "zdtest_gw_wrongabi.so")
    assert path in log and "built for gateway ABI version" in log, log
    d = plugin_dir(tmpdir_mod, "zdtest_gw_refuse")
    log = refused(tmpdir_mod, redis, "refuse", d)
    assert os.path.join(d, "zdtest_gw_refuse.so") in log and "refuses" in log, log


def test_plugin_name_clashes_refused(tmpdir_mod, redis):
    d = plugin_dir(tmpdir_mod, "zdtest_gw_clash")
    log = refused(tmpdir_mod, redis, "clash-builtin", d)
    assert os.path.join(d, "zdtest_gw_clash.so") in log and "built-in" in log, log
    d = plugin_dir(tmpdir_mod, "zdtest_gw=a_first", "zdtest_gw=b_second")
    log = refused(tmpdir_mod, redis, "clash-plugins", d)
    assert os.path.join(d, "b_second.so") in log and os.path.join(d, "a_first.so") in log, log


def test_plugin_type_unknown_without_dir_and_options_checked(tmpdir_mod, redis):
    log = refused(tmpdir_mod, redis, "nodir", plugin_dir(tmpdir_mod),
                  {"plug": {"type": "testgw"}})
    assert 'unknown gateway type "testgw"' in log, log
    log = refused(tmpdir_mod, redis, "badopt", plugin_dir(tmpdir_mod, "zdtest_gw"),
                  {"plug": {"type": "testgw", "colour": 1}})
    assert "gateways.plug." in log, log


# ---- sms_http ------------------------------------------------------------------------------

class HttpRx:
    """Records every request (path, headers, raw body) and answers with answer(body)."""

    def __init__(self, answer):
        self.requests = []
        self.lock = threading.Lock()
        rx = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with rx.lock:
                    rx.requests.append((self.command, self.path, dict(self.headers), body))
                status, out = answer(body)
                out = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.srv.server_port, path)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def sms_answer(body):
    text = body.decode()
    if "13800000002" in text:
        return 200, {"code": 4001, "msg": "blacklisted"}
    if "13800000003" in text:
        return 200, {"code": 1, "msg": "busy"}
    if "13800000004" in text:
        return 503, {"msg": "down"}
    if "13800000005" in text:
        return 400, {"msg": "bad"}
    return 200, {"code": 0}


def test_sms_http_body_auth_and_outcomes(tmpdir_mod, redis):
    rx = HttpRx(sms_answer)
    token = "tok-0123456789abcdef"
    gws = {
        "sms": dict({"type": "sms_http", "url": rx.url("/send"),
                     "auth_header": "Authorization: Bearer " + token,
                     "body": '{"mobile": "{{to}}", "content": "{{body}}", "ref": "{{id}}"}',
                     "answer": {"field": "code", "delivered": ["0"], "permanent": [4001]}},
                    **SMS_FAST),
        "smsform": dict({"type": "sms_http", "url": rx.url("/form"), "format": "form",
                         "body": "to={{to}}&text={{body}}&id={{id}}"}, **SMS_FAST),
    }
    z = daemon(tmpdir_mod, redis, "sms", gws)
    try:
        phones = ["1380000000%d" % i for i in range(1, 6)]
        ids = add(z, "sm", [{"sms": p, "smsform": p} for p in phones], "smstag")
        publish(z, "sms-1", "smstag", ["sms"])
        wait_status(redis, "sms-1", 1, ("done",))
        with rx.lock:
            reqs = [q for q in rx.requests if q[1] == "/send"]
        first = [q for q in reqs if b"13800000001" in q[3]]
        assert len(first) == 1, ([q[3][:30] for q in reqs], [outcomes(z, "sms-1", i) for i in ids], ids)
        method, path, headers, body = first[0]
        nid = "sms-1:%s:sms" % ids[0]
        assert method == "POST"
        assert body.decode() == '{"mobile": "13800000001", "content": %s, "ref": "%s"}' % (
            json.dumps(SUMMARY, ensure_ascii=False), nid)
        assert headers["Authorization"] == "Bearer " + token
        assert headers["Content-Type"].startswith("application/json")
        assert headers["Idempotency-Key"] == nid
        got = [outcomes(z, "sms-1", i) for i in ids]
        assert got == [("delivered", ["delivered"]), ("dead", ["permanent"]),
                       ("dead", ["transient", "transient"]), ("dead", ["transient", "transient"]),
                       ("dead", ["permanent"])], got

        publish(z, "sms-2", "smstag", ["smsform"])
        wait_status(redis, "sms-2", 1, ("done",))
        with rx.lock:
            form = [q for q in rx.requests if q[1] == "/form" and b"13800000001" in q[3]]
        assert form[0][2]["Content-Type"] == "application/x-www-form-urlencoded"
        assert form[0][3].decode() == "to=13800000001&text=%s&id=%s" % (
            urllib.parse.quote_plus(SUMMARY), urllib.parse.quote_plus("sms-2:%s:smsform" % ids[0]))
        # Without an "answer" mapping the HTTP status alone decides (SPEC §5).
        assert outcomes(z, "sms-2", ids[1])[0] == "delivered"
        assert outcomes(z, "sms-2", ids[3]) == ("dead", ["transient", "transient"])
        assert outcomes(z, "sms-2", ids[4]) == ("dead", ["permanent"])
        log = z.read_log()
        assert token not in log
    finally:
        z.stop()
        rx.close()
    no_pii_in_log(z)


def test_sms_http_bad_options_name_the_key(tmpdir_mod, redis):
    for opts, want in [({"url": "ftp://x/", "body": "{{to}}", "format": "form"},
                        '"gateways.sms.url"'),
                       ({"url": "http://127.0.0.1:9/", "body": "{{to}} {{phone}}",
                         "format": "form"}, "{{phone}}"),
                       ({"url": "http://127.0.0.1:9/", "body": '{"to": {{to}}}'},
                        '"gateways.sms.body" is not JSON'),
                       ({"url": "http://127.0.0.1:9/", "body": "x", "format": "form",
                         "auth_header": "Bearer secret-value"}, '"gateways.sms.auth_header"')]:
        z = Zhidad(tmpdir_mod, redis.port, name="smsbad", wait_ready=False,
                   extra_config={"gateways": {"sms": dict({"type": "sms_http"}, **opts)}})
        assert z.proc.wait(timeout=60) == 78
        z.log.close()
        log = z.read_log()
        assert want in log, log
        assert "secret-value" not in log


# ---- smtp ----------------------------------------------------------------------------------

SMTP_RX = r'''
import json, sys, time
from aiosmtpd.controller import Controller

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps({"rcpt": address}) + "\n")
        if address.startswith("reject"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                                "data": envelope.original_content.decode("utf-8")}) + "\n")
        return "250 OK queued"

c = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
'''


@pytest.fixture
def smtp_rx(tmpdir_mod):
    port = free_port()
    store = os.path.join(tmpdir_mod, "smtp-%d.jsonl" % port)
    script = os.path.join(tmpdir_mod, "smtp_rx.py")
    with open(script, "w") as f:
        f.write(SMTP_RX)
    proc = subprocess.Popen(["/usr/bin/python3", script, str(port), store],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"

    def records():
        if not os.path.exists(store):
            return []
        with open(store) as f:
            return [json.loads(line) for line in f if line.strip()]
    yield port, records
    proc.kill()
    proc.wait()


def test_smtp_mime_and_reply_codes(tmpdir_mod, redis, smtp_rx):
    port, records = smtp_rx
    gws = {"email": dict({"type": "smtp", "url": "smtp://127.0.0.1:%d" % port,
                          "from": "noreply@example.gov.cn", "from_name": "政策通知",
                          "starttls": "off", "timeout_ms": 2000}, **FAST)}
    z = daemon(tmpdir_mod, redis, "smtp", gws)
    try:
        addrs = ["alice@example.cn", "reject-bob@example.cn", "later-carol@example.cn",
                 "not an address"]
        ids = add(z, "em", [{"email": a} for a in addrs], "mailtag")
        title = "杭州市小微企业稳岗补贴 <2026> & a long subject that must be folded over lines"
        publish(z, "mail-1", "mailtag", ["email"], title=title)
        wait_status(redis, "mail-1", 1, ("done",))
        recs = records()
        msgs = [r for r in recs if "data" in r]
        assert len(msgs) == 1, recs
        assert msgs[0]["from"] == "noreply@example.gov.cn" and msgs[0]["to"] == [addrs[0]]
        m = email.message_from_string(msgs[0]["data"], policy=email.policy.default)
        assert str(m["Subject"]) == title
        assert "=?UTF-8?B?" in msgs[0]["data"]
        assert m["To"].addresses[0].addr_spec == addrs[0]
        assert "\r\nTo: <alice@example.cn>\r\n" in msgs[0]["data"].replace("\n", "\r\n").replace("\r\r", "\r")
        assert m["From"].addresses[0].display_name == "政策通知"
        assert m["Message-ID"].startswith("<mail-1=3A" + ids[0])
        assert m["Date"] is not None and m.get_content_type() == "multipart/alternative"
        parts = {p.get_content_type(): p for p in m.iter_parts()}
        assert set(parts) == {"text/plain", "text/html"}
        assert parts["text/plain"].get_content().startswith(SUMMARY)
        assert "https://example.gov.cn/p/mail-1" in parts["text/plain"].get_content()
        html = parts["text/html"].get_content()
        assert "&quot;稳岗补贴&quot;" in html and "a&amp;b=c" in html and "<br>" in html
        assert outcomes(z, "mail-1", ids[0]) == ("delivered", ["delivered"])
        assert outcomes(z, "mail-1", ids[1]) == ("dead", ["permanent"])
        assert outcomes(z, "mail-1", ids[2]) == ("dead", ["transient", "transient"])
        assert outcomes(z, "mail-1", ids[3]) == ("dead", ["permanent"])
        rcpts = [r["rcpt"] for r in recs if "rcpt" in r]
        assert rcpts.count(addrs[1]) == 1 and rcpts.count(addrs[2]) == 2, rcpts
        assert not any(" " in r for r in rcpts)
    finally:
        z.stop()
    no_pii_in_log(z)


def test_smtp_connection_refused_is_transient(tmpdir_mod, redis):
    gws = {"email": dict({"type": "smtp", "url": "smtp://127.0.0.1:%d" % free_port(),
                          "from": "noreply@example.gov.cn", "starttls": "off", "timeout_ms": 2000}, **FAST)}
    z = daemon(tmpdir_mod, redis, "smtpdown", gws)
    try:
        ids = add(z, "ed", [{"email": "dora@example.cn"}], "downtag")
        publish(z, "mail-2", "downtag", ["email"])
        wait_status(redis, "mail-2", 1, ("done",))
        assert outcomes(z, "mail-2", ids[0]) == ("dead", ["transient", "transient"])
    finally:
        z.stop()
    no_pii_in_log(z)
