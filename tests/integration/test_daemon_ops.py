"""Operating zhidad (issue #9): --check-config, exit statuses, SIGHUP reload, sd_notify."""
import json
import os
import signal
import socket
import subprocess
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
