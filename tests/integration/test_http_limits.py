"""HTTP limits against a real zhidad over raw sockets (issue #5, items 9 and 10): requests are
refused from their headers before any body is read (unknown route, no or wrong key, a body over
the route's own limit, chunked or not), slow clients are cut at a whole-request deadline,
connections count against max_connections from accept, and running out of descriptors pauses
accept() with a bounded number of log lines instead of a busy loop."""
import json
import os
import re
import resource
import select
import socket
import threading
import time

import pytest

from conftest import KEYS, Zhidad, wait_until

MiB = 1 << 20
REQUEST_TIMEOUT_S = 2
LIMITS = {"request_timeout_s": REQUEST_TIMEOUT_S, "http_timeout_s": 5, "max_connections": 64}


def head(method, path, key=None, length=None, chunked=False):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    if key:
        lines.append("Authorization: Bearer " + KEYS.get(key, key))
    if length is not None:
        lines.append("Content-Length: %d" % length)
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_response(data):
    """(status, headers, body) of the complete response at the start of data, else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    body = data[end + 4:]
    if len(body) < n:
        return None
    return status, headers, body[:n]


class Client:
    """One raw connection that sends a body at a chosen pace while watching for the answer."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.buf = b""
        self.eof = False
        self.sent = 0

    def close(self):
        self.sock.close()

    def _read(self):
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk

    def send_all(self, data, limit_s=10):
        deadline = time.monotonic() + limit_s
        while data and time.monotonic() < deadline:
            _, w, _ = select.select([], [self.sock], [], 0.5)
            if w:
                n = self.sock.send(data)
                data = data[n:]
        assert not data, "could not send the request head"

    def feed(self, total, chunk=1, interval=0.05, limit_s=15):
        """Sends up to total body bytes, chunk bytes at a time, at most one chunk per interval
        (0 = as fast as the socket takes them), until a response has arrived, the server
        closed, or limit_s passed. Returns the response or None."""
        data = b"x" * chunk
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and not self.eof:
            want_write = self.sent < total
            r, w, _ = select.select([self.sock], [self.sock] if want_write else [], [],
                                    interval if interval else 0.5)
            if r:
                self._read()
                resp = parse_response(self.buf)
                if resp:
                    return resp
            if w and want_write:
                try:
                    self.sent += self.sock.send(data[:total - self.sent])
                except (BrokenPipeError, ConnectionResetError):
                    break
                except BlockingIOError:
                    pass
                if interval:
                    time.sleep(interval)
        self._read()
        return parse_response(self.buf)

    def wait_eof(self, limit_s=10):
        deadline = time.monotonic() + limit_s
        while not self.eof and time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if r:
                self._read()
        return self.eof


def check_error(resp, status, code):
    assert resp is not None, "no answer"
    st, headers, body = resp
    assert st == status, (st, body)
    assert headers["content-type"].startswith("application/json"), headers
    err = json.loads(body)["error"]
    assert err["code"] == code and err["message"], err
    assert headers.get("connection", "").lower() == "close", headers
    return headers, err


def vm(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(field + " not found")


@pytest.fixture(scope="module")
def lz(tmpdir_mod, redis):
    z = Zhidad(tmpdir_mod, redis.port, name="limits", extra_config={"limits": LIMITS})
    yield z
    z.stop()


REFUSALS = [
    # method, path, key, Content-Length (None: chunked), status, code
    ("POST", "/v1/no-such-thing", None, 60 * MiB, 404, "not_found"),
    ("POST", "/v1/rules:preview", None, 60 * MiB, 401, "unauthorized"),
    ("POST", "/v1/rules:preview", "wrong-key-0123456789abcdef", 60 * MiB, 401, "unauthorized"),
    ("POST", "/v1/rules:preview", "app", 60 * MiB, 403, "forbidden"),
    ("POST", "/v1/rules:preview", "admin", 60 * MiB, 413, "body_too_large"),
    ("POST", "/v1/profiles:import", "app", 65 * MiB, 413, "body_too_large"),
    ("PUT", "/v1/profiles/p1", None, None, 401, "unauthorized"),
    ("PATCH", "/v1/rules:preview", "admin", 60 * MiB, 405, "method_not_allowed"),
]


@pytest.mark.parametrize("method,path,key,length,status,code", REFUSALS,
                         ids=["%s-%d" % (r[5], i) for i, r in enumerate(REFUSALS)])
def test_refused_from_headers_while_body_trickles(lz, method, path, key, length, status, code):
    c = Client(lz.port)
    try:
        c.send_all(head(method, path, key, length, chunked=length is None))
        if length is None:
            c.send_all(b"4000000\r\n")  # one 64 MiB chunk announced
        resp = c.feed(total=length or 64 * MiB, chunk=1, interval=0.05, limit_s=10)
        headers, err = check_error(resp, status, code)
        # The answer came long before the body: only a trickle was sent.
        assert c.sent < 4096, c.sent
        if status == 401:
            assert headers["www-authenticate"].startswith("Bearer")
        if status == 405:
            assert headers["allow"] == "POST, OPTIONS"
        for secret in KEYS.values():
            assert secret not in json.dumps(err)
        assert c.wait_eof(), "the connection stays open after the refusal"
    finally:
        c.close()


def test_chunked_body_over_the_limit(lz):
    c = Client(lz.port)
    try:
        c.send_all(head("POST", "/v1/rules:preview", "admin", chunked=True))
        c.send_all(b"80000\r\n" + b" " * 0x80000 + b"\r\n")  # 512 KiB: within 1 MiB
        c.send_all(b"80001\r\n")  # this one would pass it
        resp = c.feed(total=0, limit_s=10)
        check_error(resp, 413, "body_too_large")
        assert c.wait_eof()
    finally:
        c.close()


def test_bodies_within_limits_still_work(lz):
    st, res = lz.call("POST", "/v1/rules:preview", {"rule": "exists region"}, key="admin")
    assert st == 200, res
    # Chunked, and two requests pipelined on one connection.
    c = Client(lz.port)
    try:
        body = json.dumps({"rule": "exists region"}).encode()
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        c.send_all(head("POST", "/v1/rules:preview", "viewer", chunked=True) + chunked +
                   head("GET", "/healthz"))
        deadline = time.monotonic() + 10
        answers = []
        while len(answers) < 2 and time.monotonic() < deadline:
            resp = parse_response(c.buf)
            if resp:
                answers.append(resp)
                c.buf = c.buf[c.buf.find(b"\r\n\r\n") + 4 + len(resp[2]):]
                continue
            select.select([c.sock], [], [], 0.2)
            c._read()
        assert [a[0] for a in answers] == [200, 200], answers
        assert "count" in json.loads(answers[0][2])
    finally:
        c.close()


def test_unauthenticated_uploads_do_not_grow_memory(lz):
    """8 connections without a key each upload 60 MiB to an unknown path as fast as they can:
    each is answered 404 from its headers, and zhidad's peak RSS barely moves."""
    lz.call("GET", "/healthz", key=None)
    hwm0 = vm(lz.proc.pid, "VmHWM")
    results = [None] * 8

    def upload(i):
        c = Client(lz.port)
        try:
            c.send_all(head("POST", "/v1/nope-%d" % i, None, 60 * MiB))
            results[i] = (c.feed(total=60 * MiB, chunk=256 * 1024, interval=0, limit_s=60),
                          c.sent)
        finally:
            c.close()

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for resp, _ in results:
        check_error(resp, 404, "not_found")
    grew = vm(lz.proc.pid, "VmHWM") - hwm0
    assert grew < 64 * MiB, "peak RSS grew by %d MiB" % (grew // MiB)
    st, _ = lz.call("GET", "/healthz", key=None)
    assert st == 200


@pytest.mark.parametrize("part", ["head", "body"])
def test_slow_client_cut_at_request_deadline(lz, part):
    """One byte every 0.1 s keeps the connection from ever being idle for http_timeout_s (5 s);
    the whole-request deadline (2 s) still ends it with 408."""
    c = Client(lz.port)
    try:
        body = json.dumps({"rule": "exists region"}).encode()
        h = head("POST", "/v1/rules:preview", "admin", len(body))
        if part == "body":
            c.send_all(h)
            data = body
        else:
            data = h + body
        resp = None
        sent = 0
        for i in range(len(data)):
            try:
                c.sock.send(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            time.sleep(0.1)
            c._read()
            resp = parse_response(c.buf)
            if resp or c.eof:
                break
        if not resp:
            c.wait_eof(5)
            resp = parse_response(c.buf)
        check_error(resp, 408, "request_timeout")
        assert c.wait_eof()
        assert sent < len(data), "the whole request got through"
    finally:
        c.close()
    st, _ = lz.call("POST", "/v1/rules:preview", {"rule": "exists region"})
    assert st == 200


def test_connections_count_from_accept(tmp_path, redis):
    z = Zhidad(str(tmp_path), redis.port, name="conns",
               extra_config={"limits": {"max_connections": 4}})
    idle = []
    try:
        # Let the harness's own /readyz connections close first.
        wait_until(lambda: z.call("GET", "/healthz", key=None)[0] == 200, what="healthz")
        idle = [socket.create_connection(("127.0.0.1", z.port), timeout=10) for _ in range(4)]
        time.sleep(0.3)
        c = Client(z.port)
        try:
            c.send_all(head("GET", "/healthz"))
            resp = c.feed(total=0, limit_s=10)
            check_error(resp, 503, "too_many_connections")
            assert c.wait_eof()
        finally:
            c.close()
        # The idle ones were accepted and are still served.
        idle[0].sendall(head("GET", "/healthz"))
        idle[0].settimeout(10)
        assert idle[0].recv(4096).startswith(b"HTTP/1.1 200")
        # A freed slot is usable again.
        idle.pop().close()
        wait_until(lambda: z.call("GET", "/healthz", key=None)[0] == 200, timeout=10,
                   what="a free connection slot")
    finally:
        for s in idle:
            s.close()
        z.stop()


def test_descriptor_exhaustion_backs_off(tmp_path, redis):
    z = Zhidad(str(tmp_path), redis.port, name="fds")
    socks = []
    pid = z.proc.pid
    try:
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        nfds = len(os.listdir("/proc/%d/fd" % pid))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (nfds + 4, hard))
        log0 = len(z.read_log())
        # Connect far past the limit: the kernel's backlog takes them, zhidad cannot.
        for _ in range(40):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", z.port))
            socks.append(s)
        time.sleep(3)
        log = z.read_log()[log0:]
        lines = [l for l in log.splitlines() if re.search("accept", l, re.I)]
        assert 1 <= len(lines) <= 4, "%d accept log lines, e.g. %r" % (len(lines), lines[:3])
        assert z.proc.poll() is None
        for s in socks:
            s.close()
        socks = []
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        wait_until(lambda: z.call("GET", "/healthz", key=None, timeout=5)[0] == 200, timeout=20,
                   what="zhidad serving again")
    finally:
        for s in socks:
            s.close()
        if z.proc and z.proc.poll() is None:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        z.stop()
