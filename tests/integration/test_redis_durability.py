"""zhidad checks that the Redis it stores profiles in keeps them (issue #9): AOF on and a
maxmemory-policy that never evicts, read with CONFIG GET or, where the operator renamed or
denied CONFIG, from INFO. "redis_durability": "require" (the default) refuses to start on a
Redis that loses data and makes a running instance unready when Redis is reconfigured under
it; "warn" logs one loud warning per connection; "off" checks nothing."""
import re
import subprocess

import pytest

from conftest import DEFAULT, ZHIDAD, RedisServer, Zhidad, wait_until

FOLLOWER = "zhidad-follower"  # the connection that runs the check (CLIENT SETNAME)


def start_expecting_exit(z_tmp, redis, extra=None, name="refused"):
    """Starts zhidad without waiting for readiness; returns (exit status, log) once it exits
    by itself, or fails the test if it is still running after 30 s."""
    cfg = {"redis_durability": DEFAULT}
    cfg.update(extra or {})
    z = Zhidad(z_tmp, redis.port, name=name, extra_config=cfg, wait_ready=False)
    try:
        rc = z.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        z.proc.kill()
        z.proc.wait()
        z.log.close()
        raise AssertionError("zhidad kept running on a Redis that does not keep its data:\n" +
                             z.read_log()[-3000:])
    z.log.close()
    return rc, z.read_log()


def info_calls(redis, cmd):
    """How many times Redis ran cmd (INFO commandstats), e.g. "config|get"."""
    c = redis.client()
    try:
        stats = c("INFO", "commandstats")
    finally:
        c.close()
    m = re.search(r"^cmdstat_%s:calls=(\d+)" % re.escape(cmd), stats, re.M)
    return int(m.group(1)) if m else 0


def kill_follower(redis):
    c = redis.client()
    try:
        return c("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    finally:
        c.close()


def readyz(z):
    return z.call("GET", "/readyz", key=None)


def metric(z, name):
    st, text = z.call("GET", "/metrics", key=None)
    assert st == 200
    m = re.search(r"^%s (\S+)$" % name, text, re.M)
    return float(m.group(1)) if m else None


@pytest.fixture()
def tmp(tmp_path):
    return str(tmp_path)


def test_default_refuses_redis_without_aof(tmp):
    r = RedisServer(tmp)  # appendonly no, as Debian's own redis-server.service
    try:
        rc, log = start_expecting_exit(tmp, r)
    finally:
        r.stop()
    assert rc == 1, log[-3000:]
    assert "appendonly" in log and "appendonly yes" in log, log[-3000:]
    assert '"redis_durability"' in log, log[-3000:]
    assert "127.0.0.1:%d" % r.port in log


def test_require_refuses_an_evicting_policy(tmp):
    r = RedisServer(tmp, appendonly=True, args=["--maxmemory-policy", "allkeys-lru"])
    try:
        rc, log = start_expecting_exit(tmp, r, {"redis_durability": "require"})
    finally:
        r.stop()
    assert rc == 1, log[-3000:]
    assert "maxmemory-policy" in log and "allkeys-lru" in log and "noeviction" in log, log[-3000:]
    assert "appendonly is" not in log, log[-3000:]  # AOF is on: only the policy is named


def test_durable_redis_starts_quietly(tmp):
    r = RedisServer(tmp, appendonly=True)
    z = Zhidad(tmp, r.port, name="durable", extra_config={"redis_durability": DEFAULT})
    try:
        assert readyz(z)[0] == 200
        assert metric(z, "zhida_redis_durable") == 1
        log = z.read_log()
        assert "appendonly" not in log and "maxmemory-policy" not in log, log[-3000:]
    finally:
        z.stop()
        r.stop()


def test_warn_runs_and_warns_once_per_connect(tmp):
    r = RedisServer(tmp, args=["--maxmemory-policy", "allkeys-lru"])
    z = Zhidad(tmp, r.port, name="warned", extra_config={"redis_durability": "warn"})
    try:
        assert readyz(z)[0] == 200
        assert metric(z, "zhida_redis_durable") == 0

        def warnings():
            return re.findall(r"WARN .*Redis at .* does not keep zhida's data.*", z.read_log())
        wait_until(lambda: len(warnings()) == 1, what="the first warning")
        w = warnings()[0]
        assert "appendonly is no" in w and "allkeys-lru" in w, w
        assert '"redis_durability"' in w, w
        # A new connection is checked (and warned about) again.
        kill_follower(r)
        wait_until(lambda: len(warnings()) == 2, what="a warning for the new connection")
        # Periodic checks of the same connection stay quiet: wait for two more checks.
        calls = info_calls(r, "config|get")
        wait_until(lambda: info_calls(r, "config|get") >= calls + 2, timeout=30,
                   what="two periodic checks")
        assert len(warnings()) == 2, warnings()
        assert readyz(z)[0] == 200
    finally:
        z.stop()
        r.stop()


def test_require_unready_when_redis_is_reconfigured(tmp):
    r = RedisServer(tmp, appendonly=True)
    z = Zhidad(tmp, r.port, name="reconf", extra_config={"redis_durability": "require"})
    c = r.client()
    try:
        assert readyz(z)[0] == 200
        assert c("CONFIG", "SET", "appendonly", "no") == "OK"
        wait_until(lambda: readyz(z)[0] == 503, timeout=30, what="/readyz 503")
        st, body = readyz(z)
        assert body["status"] == "not_ready" and body["redis"] is True, body
        assert "appendonly is no" in body["redis_durability"], body
        assert metric(z, "zhida_redis_durable") == 0
        log = z.read_log()
        assert re.search(r"ERROR .*Redis at .* does not keep zhida's data.*appendonly is no", log), \
            log[-3000:]
        assert z.proc.poll() is None  # running: only unready
        # Put back, the instance is ready again.
        assert c("CONFIG", "SET", "appendonly", "yes") == "OK"
        wait_until(lambda: readyz(z)[0] == 200, timeout=30, what="/readyz 200 again")
        assert metric(z, "zhida_redis_durable") == 1
    finally:
        c.close()
        z.stop()
        r.stop()


def test_config_renamed_falls_back_to_info(tmp):
    # Operators rename or disable CONFIG; INFO persistence/memory still tell.
    r = RedisServer(tmp, appendonly=True, args=["--rename-command", "CONFIG", ""])
    z = Zhidad(tmp, r.port, name="noconfig", extra_config={"redis_durability": "require"})
    try:
        assert readyz(z)[0] == 200
        assert metric(z, "zhida_redis_durable") == 1
        assert "read from INFO" in z.read_log()
    finally:
        z.stop()
        r.stop()
    r = RedisServer(tmp, args=["--rename-command", "CONFIG", ""])
    try:
        rc, log = start_expecting_exit(tmp, r, name="noconfig-noaof")
    finally:
        r.stop()
    assert rc == 1 and "appendonly is no" in log, log[-3000:]


def test_neither_config_nor_info_readable(tmp):
    r = RedisServer(tmp, appendonly=True)
    c = r.client()
    # INFO server (the version) still allowed; CONFIG and the other INFO sections denied.
    assert c("ACL", "SETUSER", "default", "-config", "-info", "+info|server") == "OK"
    c.close()
    try:
        rc, log = start_expecting_exit(tmp, r, name="unreadable")
    finally:
        r.stop()
    assert rc == 1, log[-3000:]
    assert "cannot tell whether" in log and "NOPERM" in log, log[-3000:]
    assert '"redis_durability": "warn"' in log, log[-3000:]


def test_off_checks_nothing(tmp):
    r = RedisServer(tmp)
    z = Zhidad(tmp, r.port, name="off", extra_config={"redis_durability": "off"})
    try:
        assert readyz(z)[0] == 200
        assert info_calls(r, "config|get") == 0
        assert "appendonly" not in z.read_log()
    finally:
        z.stop()
        r.stop()


def test_bad_value_is_a_config_error(tmp):
    path = "%s/bad.json" % tmp
    with open(path, "w") as f:
        f.write('{"redis_durability": "sometimes"}')
    p = subprocess.run([ZHIDAD, "-c", path], capture_output=True, text=True, timeout=30)
    assert p.returncode == 78, p.stderr
    assert '"redis_durability" must be one of require, warn, off' in p.stderr, p.stderr
