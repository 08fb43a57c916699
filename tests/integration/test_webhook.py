"""The webhook gateway (issue #6, SPEC §5) against real receivers on 127.0.0.1: a threaded
Python receiver (webhook_receiver.py) for every answer the SPEC classifies, and a Node
receiver that checks signatures with the Standard Webhooks reference library
(receivers/verify_receiver.mjs). The gateway runs in zd_webhook_send (the ASan build when
ZHIDAD points there), on a real libevent loop, through the gateway host."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import ZHIDAD, free_port
from webhook_receiver import Receiver, signature

HERE = os.path.dirname(os.path.abspath(__file__))
SEND = os.environ.get("ZD_WEBHOOK_SEND") or os.path.join(
    os.path.dirname(os.path.dirname(ZHIDAD)), "tests", "zd_webhook_send")
NODE_DIR = os.path.join(HERE, "receivers")

A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
B = "whsec_emhpZGEtdGVzdC1zZWNyZXQtbnVtYmVyLXR3by0zMmI="
C = "whsec_" + base64.b64encode(b"a third secret nobody signs with!").decode()


def notice(i, policy="hz-2021-wengang", gateway="zlb", attempt=1):
    return {"id": "%s:c%07d:%s" % (policy, i, gateway), "policy": policy,
            "profile": "c%07d" % i, "gateway": gateway, "to": "user-%d" % i,
            "title": "杭州市小微企业稳岗补贴", "body": "您可能符合\"稳岗补贴\"申领条件",
            "url": "https://example.gov.cn/p/1", "category": "employment",
            "urgent": i % 2 == 0, "attempt": attempt}


def opts(url, **kw):
    o = {"type": "webhook", "url": url, "secret": A, "timeout_ms": 5000}
    o.update(kw)
    return o


def run(options, batches, test=False, cancel_after_ms=0, free_in_callback=False, timeout=120):
    """Runs zd_webhook_send; returns ({batch index: line}, final line)."""
    scenario = {"name": "zlb", "options": options, "batches": batches, "test": test,
                "cancel_after_ms": cancel_after_ms, "free_in_callback": free_in_callback}
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    t0 = time.monotonic()
    p = subprocess.run([SEND], input=json.dumps(scenario), capture_output=True, text=True,
                       timeout=timeout, env=env)
    elapsed = time.monotonic() - t0
    # A non-zero status is a refusal (2) or a sanitizer finding (leaks included).
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    final = lines[-1]
    final["elapsed_s"] = elapsed
    assert final["unfinished"] == 0
    return {x["batch"]: x for x in lines[:-1]}, final


def outcomes(line):
    return [r["outcome"] for r in line["results"]]


@pytest.fixture
def rx():
    r = Receiver(secrets=[A])
    yield r
    r.close()


def test_200_delivers_every_notice_with_the_wire_format(rx):
    batch = [notice(i) for i in range(3)]
    before = int(time.time())
    res, final = run(opts(rx.url("/ok")), [batch])
    assert outcomes(res[0]) == ["delivered"] * 3
    assert all(r["http"] == 200 and r["detail"] == "HTTP 200" for r in res[0]["results"])
    assert final["stats"]["delivered"] == 3 and final["stats"]["requests"] == 1
    (req,) = rx.requests
    h = req["headers"]
    assert h["content-type"] == "application/json"
    # The body is exactly the SPEC's shape, strings as given.
    assert req["json"] == {"notices": batch}
    # Several notices: webhook-id is the stable batch id, no Idempotency-Key.
    ids = "".join(n["id"] + "\n" for n in batch).encode()
    assert h["webhook-id"] == "batch_" + hashlib.sha256(ids).hexdigest()[:32]
    assert "idempotency-key" not in h
    assert before - 1 <= int(h["webhook-timestamp"]) <= int(time.time()) + 1
    assert h["webhook-signature"] == signature(A, h["webhook-id"], h["webhook-timestamp"],
                                               req["body"])
    assert req["verified"] == [True]
    assert "expect" not in h  # no 100-continue round trip


def test_batch_of_one_carries_the_notice_id(rx):
    n = notice(7)
    res, _ = run(opts(rx.url("/ok"), batch=1), [[n]])
    assert outcomes(res[0]) == ["delivered"]
    h = rx.requests[0]["headers"]
    assert h["webhook-id"] == n["id"] and h["idempotency-key"] == n["id"]
    assert rx.requests[0]["verified"] == [True]


def test_same_batch_same_id_on_every_attempt(rx):
    batch = [notice(i) for i in range(4)]
    retry = [dict(n, attempt=2) for n in batch]
    run(opts(rx.url("/ok")), [batch, retry, batch[:3]])
    ids = [r["headers"]["webhook-id"] for r in rx.requests]
    by_count = {len(r["json"]["notices"]): r["headers"]["webhook-id"] for r in rx.requests}
    assert ids.count(by_count[4]) == 2 and by_count[3] != by_count[4]


@pytest.mark.parametrize("status,outcome", [(500, "transient"), (503, "transient"),
                                            (408, "transient"), (400, "permanent"),
                                            (404, "permanent"), (301, "permanent")])
def test_status_classes(rx, status, outcome):
    res, final = run(opts(rx.url("/status/%d" % status)), [[notice(1), notice(2)]])
    assert outcomes(res[0]) == [outcome] * 2
    assert res[0]["results"][0]["http"] == status
    assert res[0]["results"][0]["retry_after_ms"] == 0
    assert final["stats"][outcome] == 2


def test_429_honors_retry_after_seconds_and_dates(rx):
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    res, _ = run(opts(rx.url("/retry-after/7")), [[notice(1)]])
    r = res[0]["results"][0]
    assert (r["outcome"], r["http"], r["retry_after_ms"]) == ("transient", 429, 7000)
    res, _ = run(opts(rx.url("/retry-after/" + date.replace(" ", "%20"))), [[notice(1)]])
    r = res[0]["results"][0]
    assert r["outcome"] == "transient" and 100000 <= r["retry_after_ms"] <= 121000


def test_2xx_with_a_failed_list_gives_per_notice_results(rx):
    batch = [notice(i) for i in range(5)]
    rx.failed = {batch[1]["id"]: True, batch[3]["id"]: False, "not:in:batch": True}
    res, final = run(opts(rx.url("/failed")), [batch])
    assert outcomes(res[0]) == ["delivered", "permanent", "delivered", "transient", "delivered"]
    assert all(r["http"] == 200 for r in res[0]["results"])
    s = final["stats"]
    assert (s["delivered"], s["permanent"], s["transient"]) == (3, 1, 1)


def test_slow_receiver_past_the_timeout_is_transient(rx):
    res, _ = run(opts(rx.url("/slow/3000"), timeout_ms=300), [[notice(1)], [notice(2)]])
    for i in (0, 1):
        r = res[i]["results"][0]
        assert r["outcome"] == "transient" and r["http"] == 0
        assert "timeout_ms (300 ms)" in r["detail"]


def test_close_without_answer_is_transient(rx):
    res, _ = run(opts(rx.url("/close")), [[notice(1), notice(2)]])
    assert outcomes(res[0]) == ["transient"] * 2
    assert res[0]["results"][0]["detail"] == "connection closed without an answer"


def test_connection_refused_is_transient():
    res, _ = run(opts("http://127.0.0.1:%d/x" % free_port()), [[notice(1)]])
    r = res[0]["results"][0]
    assert r["outcome"] == "transient" and r["http"] == 0


def test_concurrency_limit_is_respected(rx):
    batches = [[notice(i)] for i in range(24)]
    res, final = run(opts(rx.url("/ok?delay_ms=100"), batch=1, concurrency=3), batches)
    assert all(outcomes(res[i]) == ["delivered"] for i in range(24))
    assert len(rx.requests) == 24
    # Never more than 3 at once at the receiver; and the limit was actually reached.
    assert rx.max_active <= 3
    assert rx.max_active >= 2


def test_slow_first_answer_does_not_hold_back_the_others(rx):
    # Plain http never multiplexes: requests must not wait for the first answer to learn that
    # (CURLOPT_PIPEWAIT did, so a slow receiver saw one request at a time and the others'
    # timeouts ran while they waited inside libcurl).
    batches = [[notice(i)] for i in range(3)]
    res, final = run(opts(rx.url("/ok?delay_ms=1500"), batch=1, concurrency=3), batches)
    assert all(outcomes(res[i]) == ["delivered"] for i in range(3))
    assert rx.max_active == 3


def test_rate_limit_is_respected(rx):
    # 20 requests per second with a bucket of 2: 30 requests need at least (30 - 2) / 20 s.
    batches = [[notice(i)] for i in range(30)]
    res, final = run(opts(rx.url("/ok"), batch=1, concurrency=8, rate=20), batches)
    assert all(outcomes(res[i]) == ["delivered"] for i in range(30))
    assert final["elapsed_s"] >= 0.9 * 28 / 20
    # Counting at the receiver: no one-second window holds much more than 20 + 2.
    times = sorted(r["time"] for r in rx.requests)
    most = max(sum(1 for t in times if t0 <= t < t0 + 1.0) for t0 in times)
    assert most <= 26


def test_keep_alive_reuses_connections(rx):
    batches = [[notice(i)] for i in range(60)]
    res, final = run(opts(rx.url("/ok"), batch=1, concurrency=2), batches)
    assert all(outcomes(res[i]) == ["delivered"] for i in range(60))
    assert len(rx.requests) == 60
    # Two slots: a handful of connections for sixty requests.
    assert rx.connections <= 4
    assert final["stats"]["connects"] <= 4


def test_destroy_cancels_queued_and_inflight_batches(rx):
    batches = [[notice(i)] for i in range(6)]
    res, final = run(opts(rx.url("/slow/5000"), batch=1, concurrency=2), batches,
                     cancel_after_ms=300)
    assert sorted(res) == list(range(6))
    for i in range(6):
        assert res[i]["status"] == -125  # -ECANCELED
        assert outcomes(res[i]) == ["transient"]
        assert "cancelled" in res[i]["results"][0]["detail"]


def test_free_from_inside_a_callback_is_deferred(rx):
    # The first batch's callback frees the gateway; the others, queued behind a concurrency
    # of 1, are cancelled right after that callback returns, each exactly once.
    batches = [[notice(i)] for i in range(5)]
    res, _ = run(opts(rx.url("/ok"), batch=1, concurrency=1), batches, free_in_callback=True)
    assert sorted(res) == list(range(5))
    assert res[0]["status"] == 0 and outcomes(res[0]) == ["delivered"]
    # Batch 1 may have finished before the callback ran (it is then delivered); the last ones
    # cannot have been sent.
    for i in range(1, 5):
        want = ["delivered"] if res[i]["status"] == 0 else ["transient"]
        assert res[i]["status"] in (0, -125) and outcomes(res[i]) == want
    assert res[4]["status"] == -125


def test_test_send_reports_the_answer_with_personal_data_masked(rx):
    n = dict(notice(3), to="+8613800001234")
    res, _ = run(opts(rx.url("/echo")), [[n]], test=True)
    r = res[0]
    assert r["results"][0]["outcome"] == "permanent" and r["results"][0]["http"] == 401
    assert "bad signature" in r["answer"]
    assert "13800001234" not in r["answer"] and "+861********34" in r["answer"]
    res, _ = run(opts(rx.url("/ok")), [[notice(4)]], test=True)
    assert res[0]["results"][0]["outcome"] == "delivered" and res[0]["answer"] == "{}"


def test_bad_options_are_refused_naming_the_key(rx):
    scenario = {"name": "zlb", "options": opts(rx.url("/ok"), batch=0), "batches": []}
    p = subprocess.run([SEND], input=json.dumps(scenario), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "\"gateways.zlb.batch\"" in p.stderr


def test_zhidad_refuses_bad_webhook_options_at_start_up(tmp_path):
    def check(gateways):
        path = tmp_path / "zhida.json"
        path.write_text(json.dumps({"gateways": gateways}))
        return subprocess.run([ZHIDAD, "-c", str(path), "--check-config"], capture_output=True,
                              text=True, timeout=60)
    ok = check({"zlb": opts("http://127.0.0.1:9/x")})
    assert ok.returncode == 0, ok.stderr
    for gw, key in [({"type": "webhook", "secret": A}, "\"gateways.zlb.url\" is required"),
                    (opts("http://127.0.0.1:9/x", secret="whsec_short"), "gateways.zlb.secret"),
                    (opts("http://127.0.0.1:9/x", concurrency=0), "\"gateways.zlb.concurrency\""),
                    (opts("http://127.0.0.1:9/x", retries=3), "unknown key \"gateways.zlb.retries\""),
                    ({"type": "telegraph"}, "unknown gateway type \"telegraph\"")]:
        r = check({"zlb": gw})
        assert r.returncode == 78 and key in r.stderr, (gw, r.stderr)
        assert "MfKQ9r8G" not in r.stderr  # never the secret


# ---- the Node receiver: signatures checked by the Standard Webhooks library ---------------

class NodeReceiver:
    def __init__(self, secrets, tls=None):
        if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
            pytest.fail("node and tests/integration/receivers/node_modules are needed: "
                        "run deploy/install-deps.sh")
        self.port = free_port()
        args = ["node", os.path.join(NODE_DIR, "verify_receiver.mjs"), str(self.port), *secrets]
        if tls:
            args += ["--tls", *tls]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "listening"
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def url(self, scheme="http"):
        return "%s://127.0.0.1:%d/hook" % (scheme, self.port)

    def wait(self, n):
        deadline = time.monotonic() + 20
        while len(self.lines) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.lines

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def test_standardwebhooks_library_verifies_single_and_batch_requests():
    node = NodeReceiver([A])
    try:
        res, _ = run(opts(node.url()), [[notice(1)], [notice(i) for i in range(2, 12)]])
        assert outcomes(res[0]) == ["delivered"]
        assert outcomes(res[1]) == ["delivered"] * 10
        lines = node.wait(2)
        assert all(x["verified"] == [True] and not x["errors"] for x in lines)
        assert sorted(x["notices"] for x in lines) == [1, 10]
    finally:
        node.close()


def test_key_rotation_sends_one_signature_per_secret():
    # zhida signs with A and B; receivers that know only A, only B, or both all accept.
    for secrets in ([A], [B], [A, B]):
        node = NodeReceiver(secrets)
        try:
            res, _ = run(opts(node.url(), secret=[A, B]), [[notice(1)]])
            assert outcomes(res[0]) == ["delivered"], (secrets, res)
            (line,) = node.wait(1)
            assert line["verified"] == [True] * len(secrets)
        finally:
            node.close()
    # A receiver that knows neither refuses: 401, a permanent failure.
    node = NodeReceiver([C])
    try:
        res, _ = run(opts(node.url(), secret=[A, B]), [[notice(1)]])
        assert outcomes(res[0]) == ["permanent"] and res[0]["results"][0]["http"] == 401
        assert node.wait(1)[0]["errors"] == ["No matching signature found"]
    finally:
        node.close()
    # The header itself: "v1,<sig> v1,<sig>" — checked with the Python receiver too.
    rx = Receiver(secrets=[A, B])
    try:
        run(opts(rx.url("/ok"), secret=[A, B]), [[notice(1)]])
        sig = rx.requests[0]["headers"]["webhook-signature"]
        assert len(sig.split(" ")) == 2 and all(s.startswith("v1,") for s in sig.split(" "))
        assert rx.requests[0]["verified"] == [True, True]
    finally:
        rx.close()


def test_http2_over_tls_multiplexes_on_one_connection(tmp_path):
    # A self-signed certificate for 127.0.0.1, trusted through the gateway's ca_file.
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    node = NodeReceiver([A], tls=[cert, key])
    try:
        batches = [[notice(i)] for i in range(30)]
        res, final = run(opts(node.url("https"), batch=1, concurrency=8, ca_file=cert), batches)
        assert all(outcomes(res[i]) == ["delivered"] for i in range(30)), res
        lines = node.wait(30)
        assert len(lines) == 30
        assert {x["http"] for x in lines} == {"2.0"}  # the receiver offered h2 through ALPN
        assert all(x["verified"] == [True] for x in lines)
        # Streams share connections (PIPEWAIT): far fewer than 30.
        assert len({x["session"] for x in lines}) <= 2
        assert final["stats"]["connects"] <= 2
    finally:
        node.close()
    # Without ca_file the self-signed receiver is not trusted: a transient TLS failure.
    node = NodeReceiver([A], tls=[cert, key])
    try:
        res, _ = run(opts(node.url("https")), [[notice(1)]])
        assert outcomes(res[0]) == ["transient"] and res[0]["results"][0]["http"] == 0
    finally:
        node.close()
