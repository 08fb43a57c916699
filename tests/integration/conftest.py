"""Integration harness: a real redis-server and real zhidad processes on 127.0.0.1.

Every test talks HTTP to zhidad and RESP to Redis; nothing is mocked. The daemon binary is
$ZHIDAD (default build/zhidad/zhidad); under ASan builds a clean SIGTERM stop must exit 0,
so leaks fail the test that stopped the daemon.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZHIDAD = os.environ.get("ZHIDAD", os.path.join(ROOT, "build", "zhidad", "zhidad"))
ZHIDA = os.environ.get("ZHIDA", os.path.join(ROOT, "build", "client", "zhida"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

KEYS = {
    "admin": "admin-key-0123456789abcdef",
    "app": "app-key-0123456789abcdef",
    "viewer": "viewer-key-0123456789abcdef",
    "hz": "hz-publisher-key-0123456789",
    "nb": "nb-publisher-key-0123456789",
}
PII_PATTERNS = [re.compile(r"1[3-9]\d{9}"), re.compile(r"[\w.+-]+@example\.cn")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=20.0, step=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


class Resp:
    """A minimal RESP2 client, enough to inspect and poke Redis from tests."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError("bad RESP type %r" % t)

    def __call__(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._read()


class RedisServer:
    def __init__(self, tmp, appendonly=False, args=()):
        self.port = free_port()
        self.dir = tmp
        self.appendonly = appendonly
        self.args = list(args)  # more redis-server options, e.g. ["--maxmemory-policy", "..."]
        self.proc = None
        self.start()

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--dir", self.dir, "--daemonize", "no",
                "--appendonly", "yes" if self.appendonly else "no",
                "--logfile", "redis.log"] + self.args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(self.ping, what="redis-server to answer")
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise

    def ping(self):
        c = Resp(self.port)
        try:
            return c("PING") == "PONG"
        except RuntimeError as e:  # restarted on a large AOF: not ready yet
            if str(e).startswith("LOADING"):
                return False
            raise
        finally:
            c.close()

    def client(self):
        return Resp(self.port)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None


# In Zhidad's extra_config: leave the key out of the config file (take zhidad's default).
DEFAULT = object()


class Zhidad:
    """One zhidad process with its own config file. The tests' redis-servers run without AOF
    (a restart that loses data is itself under test), so the harness sets "redis_durability":
    "warn"; tests of the check itself set it, or DEFAULT for zhidad's default ("require")."""

    def __init__(self, tmp, redis_port, name="zhidad", extra_config=None, env=None,
                 wait_ready=True):
        self.tmp = tmp
        self.port = free_port()
        self.redis_port = redis_port
        self.name = name
        self.log_path = os.path.join(tmp, name + ".log")
        self.config_path = os.path.join(tmp, name + ".json")
        cfg = {
            "listen": "127.0.0.1:%d" % self.port,
            "redis": "127.0.0.1:%d" % redis_port,
            "api_keys": [
                {"name": "ops", "role": "admin", "key": KEYS["admin"]},
                {"name": "app1", "role": "app", "key": KEYS["app"]},
                {"name": "watch", "role": "viewer", "key": KEYS["viewer"]},
                {"name": "hz-hrss", "role": "publisher", "scope": "3301", "key": KEYS["hz"]},
                {"name": "nb-hrss", "role": "publisher", "scope": "3302", "key": KEYS["nb"]},
            ],
            "partitions": 4,
            "gateways": {"zlb": {"type": "webhook", "url": "http://127.0.0.1:9/zhida-tests",
                                 "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
                         "inbox": {"type": "inbox"},
                         "sms": {"type": "sms_http", "url": "http://127.0.0.1:9/sms", "format": "form", "body": "to={{to}}&text={{body}}"}, "email": {"type": "smtp", "url": "smtp://127.0.0.1:9", "from": "noreply@example.gov.cn"}},
            "redis_durability": "warn",
        }
        if extra_config:
            cfg.update(extra_config)
        cfg = {k: v for k, v in cfg.items() if v is not DEFAULT}
        with open(self.config_path, "w") as f:
            f.write("// written by the integration harness\n")
            json.dump(cfg, f, ensure_ascii=False, indent=2)
        self.env = dict(os.environ)
        self.env.setdefault("ZHIDA_TODAY", "2026-06-01")
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        if env:
            self.env.update(env)
        self.proc = None
        self.start(wait_ready=wait_ready)

    def start(self, wait_ready=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([ZHIDAD, "-c", self.config_path, "--log-level", "debug"],
                                     stdout=self.log, stderr=self.log, env=self.env)
        if wait_ready:
            try:
                self.wait_ready()
            except BaseException:
                # A daemon that never became ready must not outlive the test.
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
                self.log.close()
                raise

    def wait_ready(self, timeout=60):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("zhidad exited with %s:\n%s" % (self.proc.returncode,
                                                                     self.read_log()[-3000:]))
            st, _ = self.call("GET", "/readyz", key=None)
            return st == 200
        wait_until(ready, timeout=timeout, what="zhidad /readyz")

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, expect_clean=True):
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("zhidad did not stop within 30 s of SIGTERM")
        rc = self.proc.returncode
        self.proc = None
        self.log.close()
        if expect_clean and sig == signal.SIGTERM:
            log = self.read_log()
            assert "AddressSanitizer" not in log and "LeakSanitizer" not in log, log[-5000:]
            assert "runtime error:" not in log, log[-5000:]
            assert rc == 0, "zhidad exit status %s\n%s" % (rc, log[-3000:])
        return rc

    def call(self, method, path, body=None, key="admin", raw=None, headers=None, timeout=60):
        url = "http://127.0.0.1:%d%s" % (self.port, path)
        data = raw
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method)
        if key is not None:
            req.add_header("Authorization", "Bearer " + KEYS.get(key, key))
        if data is not None:
            # A PATCH body is a JSON merge patch (RFC 7386); zhidad refuses other types (415).
            req.add_header("Content-Type", "application/merge-patch+json" if method == "PATCH"
                           else "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                payload = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            payload = e.read()
            status = e.code
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def tmpdir_mod():
    d = tempfile.mkdtemp(prefix="zhida-it-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def redis(tmpdir_mod):
    r = RedisServer(tmpdir_mod)
    yield r
    r.stop()


@pytest.fixture(scope="module")
def zd(tmpdir_mod, redis):
    z = Zhidad(tmpdir_mod, redis.port)
    yield z
    z.stop()
    log = z.read_log()
    for pat in PII_PATTERNS:
        m = pat.search(log)
        assert m is None, "personal data in the log: %r" % m.group(0)


def enterprise(region="330106", employees=40, tags=("hightech",), industry="C1311",
               founded="2019-05-01", **extra):
    p = {"kind": "enterprise", "region": region,
         "attrs": {"industry": industry, "employees": employees, "founded": founded,
                   "scale": "small" if employees < 100 else "medium"},
         "tags": list(tags),
         "fields": {"company": "杭州某某科技有限公司"},
         "contacts": {"zlb": "ent-1", "sms": "+8613800001234", "email": "hr@example.cn"}}
    p.update(extra)
    return p


def citizen(region="330106001", birth="1962-03-08", tags=("retired",)):
    return {"kind": "citizen", "region": region, "attrs": {"birth_date": birth},
            "tags": list(tags), "fields": {"name": "王小明"},
            "contacts": {"zlb": "user-1", "sms": "+8613900004321"}}
