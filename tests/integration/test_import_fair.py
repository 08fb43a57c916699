"""Large imports share zhidad fairly (issue #5 item 11): concurrent imports of large bodies all
succeed line by line, zhidad's memory stays proportional to the bodies, and other requests keep
being answered (never a 503) while the imports run. No wall-clock limit is asserted: latency
is measured by bench/import_latency.py (docs/BENCHMARKS.md)."""
import http.client
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import ZHIDA, KEYS, RedisServer, Zhidad, wait_until

IMPORTS = 4
LINES = 100_000
# zhidad's peak RSS growth (VmHWM) while the imports run, relative to the bodies' total size.
# The bodies are held by the HTTP layer until each import answers (1x, plus one transient copy
# when a body is made contiguous), the index grows with the profiles (0.4x here; about 1.7x
# under ASan), and the rest is the bounded window of batches in flight. Measured: 2.1x (release),
# 3.2x (ASan); before imports were paced: 7.7x (release), ~9x with larger bodies.
RSS_FACTOR_MAX = 4.0


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


@pytest.fixture(scope="module")
def population():
    out = subprocess.run([ZHIDA, "demo-population", "--n", str(LINES), "--seed", "11"],
                         check=True, stdout=subprocess.PIPE).stdout
    assert out.count(b"\n") == LINES
    return out


@pytest.fixture(scope="module")
def fair(tmpdir_mod):
    redis = RedisServer(tmpdir_mod)
    # A small ASan quarantine, so that freed memory does not count as zhidad's own.
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    z = Zhidad(tmpdir_mod, redis.port, name="fair",
               extra_config={"partitions": 16},
               env={"ASAN_OPTIONS": asan + ":quarantine_size_mb=16"})
    st, _ = z.call("PUT", "/v1/profiles/probe-1", {"kind": "citizen", "region": "330106"},
                   key="app")
    assert st == 200
    yield z, redis
    z.stop()
    redis.stop()


def post_import(port, body, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    try:
        c.request("POST", "/v1/profiles:import", body=body,
                  headers={"Authorization": "Bearer " + KEYS["app"],
                           "Content-Type": "application/x-ndjson"})
        r = c.getresponse()
        out["status"] = r.status
        out["body"] = r.read()
    finally:
        c.close()


def get_loop(port, stop, statuses):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        while not stop.is_set():
            c.request("GET", "/v1/profiles/probe-1",
                      headers={"Authorization": "Bearer " + KEYS["app"]})
            r = c.getresponse()
            r.read()
            statuses.append(r.status)
            time.sleep(0.01)
    finally:
        c.close()


def test_concurrent_large_imports_all_lines_bounded_memory_api_answers(fair, population):
    z, redis = fair
    bodies = [population.replace(b'{"id":"', b'{"id":"i%d-' % i) for i in range(IMPORTS)]
    total = sum(len(b) for b in bodies)
    rss0 = vm_kib(z.proc.pid, "VmRSS") * 1024

    stop = threading.Event()
    statuses = []
    getter = threading.Thread(target=get_loop, args=(z.port, stop, statuses))
    results = [dict() for _ in bodies]
    imports = [threading.Thread(target=post_import, args=(z.port, b, r))
               for b, r in zip(bodies, results)]
    getter.start()
    for t in imports:
        t.start()
    for t in imports:
        t.join()
    stop.set()
    getter.join()
    hwm = vm_kib(z.proc.pid, "VmHWM") * 1024

    for r in results:
        assert r.get("status") == 200, r
        res = json.loads(r["body"])
        assert res["lines"] == LINES, {k: res[k] for k in ("lines", "imported", "failed")}
        assert res["failed"] == 0, res["errors"][:5]
        assert res["imported"] == LINES and res["errors"] == []
    assert statuses, "no GET was answered while the imports ran"
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    grew = hwm - rss0
    assert grew < RSS_FACTOR_MAX * total, (
        "zhidad grew by %.0f MiB (VmHWM %.0f MiB) for %.0f MiB of bodies"
        % (grew / 2**20, hwm / 2**20, total / 2**20))

    # Every line is in Redis and in this instance's index.
    rc = redis.client()
    try:
        stored = sum(rc("HLEN", "zd:{p%d}:profiles" % p) for p in range(16))
    finally:
        rc.close()
    assert stored == IMPORTS * LINES + 1
    st, res = z.call("POST", "/v1/rules:preview", {"rule": 'kind = "enterprise" or '
                                                            'kind = "citizen"'})
    assert st == 200 and res["count"] == IMPORTS * LINES + 1, res


def test_client_leaving_mid_import_stops_it_cleanly(fair, population):
    """An import continues over many loop turns; a client that leaves in the middle abandons
    it, and zhidad must not go on reading a freed body (ASan would say so at the clean
    stop)."""
    z, redis = fair
    body = population.replace(b'{"id":"', b'{"id":"gone-')
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", z.port))
        s.sendall(b"POST /v1/profiles:import HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + KEYS["app"].encode() + b"\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(0.2)
        s.close()
    # zhidad keeps answering, and the lines the abandoned imports did write are whole profiles.
    wait_until(lambda: z.call("GET", "/v1/profiles/probe-1", key="app")[0] == 200,
               what="zhidad to answer after the abandoned imports")
    # They stop at the next slice instead of validating the rest of a body nobody waits for.
    wait_until(lambda: z.read_log().count("abandoned: client_gone") == 3,
               what="the abandoned imports to stop")
    st, res = z.call("POST", "/v1/profiles:import", raw=body, key="app", timeout=900)
    assert st == 200 and res["failed"] == 0, res
    assert res["imported"] + res["unchanged"] == LINES
    st, got = z.call("GET", "/v1/profiles/gone-c0000001", key="app")
    assert st == 200 and got["kind"] == "citizen"


def test_sigterm_mid_import_answers_503_and_stops_cleanly(tmp_path, population):
    """Imports still running when the drain time (2 s) is over are answered 503
    shutting_down with their counts; their batches in flight are cancelled, and zhidad still
    exits 0 without leaks (checked by stop())."""
    # A Redis of its own: loading the other tests' 500k profiles would take a while.
    redis = RedisServer(str(tmp_path))
    z = None
    try:
        z = Zhidad(str(tmp_path), redis.port, name="stopper", extra_config={"partitions": 16})
        bodies = [population.replace(b'{"id":"', b'{"id":"stop%d-' % i) for i in range(2)]
        results = [dict() for _ in bodies]
        threads = [threading.Thread(target=post_import, args=(z.port, b, r))
                   for b, r in zip(bodies, results)]
        for t in threads:
            t.start()

        def importing():
            st, text = z.call("GET", "/metrics", key=None)
            return st == 200 and "zhida_imports_active 2" in text
        wait_until(importing, timeout=60, step=0.01, what="both imports to start")
    finally:
        if z:
            z.stop()
        redis.stop()
    for t in threads:
        t.join()
    stopped = 0
    for r in results:
        res = json.loads(r["body"])
        if r["status"] == 503:
            assert res["error"]["code"] == "shutting_down", res
            assert "lines read" in res["error"]["message"]
            stopped += 1
        else:
            assert r["status"] == 200 and res["failed"] == 0, res
    assert stopped >= 1, "both imports finished within the drain time; use larger bodies"
