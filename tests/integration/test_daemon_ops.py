"""Operating zhidad (issue #9): --check-config, exit statuses, SIGHUP reload, sd_notify."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

from conftest import ZHIDAD, Zhidad, wait_until


def write(path, cfg):
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def run(*args, env=None):
    return subprocess.run([ZHIDAD, *args], capture_output=True, text=True, timeout=60, env=env)


def test_check_config(tmpdir_mod):
    good = write(os.path.join(tmpdir_mod, "good.json"), {"partitions": 8})
    r = run("-c", good, "--check-config")
    assert r.returncode == 0, r.stderr
    assert "is valid" in r.stdout and "8 partitions" in r.stdout
    bad = write(os.path.join(tmpdir_mod, "bad.json"), {"partitions": 99})
    r = run("-c", bad, "-t")
    assert r.returncode == 78
    assert "\"partitions\"" in r.stderr and bad in r.stderr
    # A bad override is a configuration error too; nothing is started either way.
    r = run("-c", good, "--check-config", "--redis", "not-an-address")
    assert r.returncode == 78 and "--redis" in r.stderr


def test_exit_statuses(tmpdir_mod):
    assert run("--no-such-option").returncode == 64
    assert run().returncode == 64  # no config
    assert run("-c", os.path.join(tmpdir_mod, "missing.json")).returncode == 78
    placeholder = write(os.path.join(tmpdir_mod, "placeholder.json"), {
        "api_keys": [{"name": "ops", "role": "admin", "key": "CHANGE-ME-admin-0123456789abcdef"}]})
    r = run("-c", placeholder)
    assert r.returncode == 78 and "placeholder" in r.stderr
    assert "CHANGE-ME-admin" not in r.stderr  # the secret itself is never printed


def test_sighup_reloads_and_survives(tmpdir_mod, redis):
    # The harness starts zhidad with --log-level debug; the file says info. Overrides are for
    # start-up only, so a reload brings the file's level.
    z = Zhidad(tmpdir_mod, redis.port, name="hup", extra_config={"log_level": "info"})
    try:
        z.call("GET", "/v1/profiles/before-hup", key="app")
        assert "DEBUG http: GET /v1/profiles/before-hup" in z.read_log()
        z.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP: reloaded" in z.read_log(), what="the reload to be logged")
        z.call("GET", "/v1/profiles/after-hup", key="app")
        z.call("GET", "/healthz", key=None)
        assert "after-hup" not in z.read_log()  # info level now: no access lines
        # A broken file changes nothing and keeps zhidad alive.
        with open(z.config_path, "w") as f:
            f.write("{ not json")
        z.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "nothing changed" in z.read_log(), what="the failed reload logged")
        assert z.proc.poll() is None
        st, _ = z.call("GET", "/healthz", key=None)
        assert st == 200
    finally:
        z.stop()


def test_sd_notify_ready_and_stopping(tmpdir_mod, redis):
    path = os.path.join(tmpdir_mod, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    try:
        z = Zhidad(tmpdir_mod, redis.port, name="notify", env={"NOTIFY_SOCKET": path},
                   extra_config={})
        msg = sock.recv(4096).decode()
        assert "READY=1" in msg
        st, _ = z.call("GET", "/readyz", key=None)
        assert st == 200  # READY=1 came no earlier than readiness
        z.stop()
        assert "STOPPING=1" in sock.recv(4096).decode()
    finally:
        sock.close()


def read_config(path):
    with open(path) as f:
        return json.loads("".join(l for l in f if not l.lstrip().startswith("//")))


def metric_line(z, needle):
    st, text = z.call("GET", "/metrics", key=None)
    return [l for l in text.splitlines() if needle in l]


def test_sighup_swaps_api_keys(tmpdir_mod, redis):
    """SIGHUP applies the file's api_keys at once: a new key works, a removed one gets 401, a
    publisher's changed scope applies to its next preview; requests in flight keep the key they
    started with; counters carry over by name; the log names the keys, never a secret."""
    from conftest import KEYS, enterprise
    new_key = "app2-key-reloaded-0123456789"
    z = Zhidad(tmpdir_mod, redis.port, name="hupkeys",
               extra_config={"metrics_key_names": True, "key_audit_interval_s": 3600})
    try:
        for i, region in enumerate(("330106", "330106", "330203")):
            st, _ = z.call("PUT", "/v1/profiles/hk-%d" % i, enterprise(region=region,
                                                                    tags=["hupkeys"]), key="app")
            assert st == 200
        rule = {"rule": 'tags has "hupkeys"'}
        st, body = z.call("POST", "/v1/rules:preview", rule, key="hz")
        assert st == 200 and body["count"] == 2
        assert z.call("GET", "/v1/profiles/hk-0", key=new_key)[0] == 401
        for _ in range(3):
            assert z.call("POST", "/v1/rules:preview", rule, key="viewer")[0] == 200

        cfg = read_config(z.config_path)
        keys = [k for k in cfg["api_keys"] if k["name"] != "watch"]
        keys.append({"name": "app2", "role": "app", "key": new_key})
        for k in keys:
            if k["name"] == "hz-hrss":
                k["scope"] = "3302"
        cfg["api_keys"] = keys
        with open(z.config_path, "w") as f:
            json.dump(cfg, f)

        # A request of the key about to go stays in flight across the reload: Redis is
        # stopped, so its segment read waits.
        redis.proc.send_signal(signal.SIGSTOP)
        result = {}

        def in_flight():
            result["st"] = z.call("POST", "/v1/rules:preview", {"rule": 'segment "hk-none"'},
                                  key="viewer")[0]
        t = threading.Thread(target=in_flight)
        try:
            t.start()
            time.sleep(0.5)
            z.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "SIGHUP: reloaded" in z.read_log(), what="the reload")
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        t.join()
        assert result["st"] == 400  # unknown segment: it ran to its end with its old key

        assert z.call("GET", "/v1/profiles/hk-0", key=new_key)[0] == 200
        st, err = z.call("POST", "/v1/rules:preview", rule, key="viewer")
        assert st == 401 and err["error"]["code"] == "unauthorized"
        st, body = z.call("POST", "/v1/rules:preview", rule, key="hz")
        assert st == 200 and body["count"] == 1  # now 3302
        assert z.call("GET", "/v1/profiles/hk-0", key="app")[0] == 200

        log = z.read_log()
        line = [l for l in log.splitlines() if "SIGHUP: API keys:" in l]
        assert line, log[-2000:]
        assert re.search(r"added[^;]*\bapp2\b", line[-1]), line
        assert re.search(r"removed[^;]*\bwatch\b", line[-1]), line
        assert re.search(r"changed[^;]*\bhz-hrss\b", line[-1]), line
        assert new_key not in log and KEYS["viewer"] not in log and KEYS["hz"] not in log

        # Counters went on by name: the removed key's uses still show, the kept ones grow.
        used = metric_line(z, 'key="watch",role="viewer",outcome="used"')
        assert used and used[0].endswith(" 4"), used
        used = metric_line(z, 'key="hz-hrss",role="publisher",outcome="used"')
        assert used and used[0].endswith(" 2"), used
        assert metric_line(z, 'key="app2",role="app",outcome="used"')[0].endswith(" 1")
    finally:
        z.stop()
    # The stop's key.use records cover the removed key's requests.
    r = redis.client()
    try:
        recs = [e[1] for e in r("XRANGE", "zd:{audit}:audit", "-", "+")]
    finally:
        r.close()
    watch = [x for x in recs if x[x.index("action") + 1] == "key.use"
             and x[x.index("key") + 1] == "watch"]
    assert watch and watch[-1][watch[-1].index("target") + 1] == "used=4 denied=0", watch
