"""What the unauthenticated /metrics tells about API keys (names only when configured), and
the key.use audit records written at shutdown actually reaching Redis."""
import re
import signal

import pytest

from conftest import RedisServer, Zhidad

NAMES = ("ops", "app1", "watch", "hz-hrss", "nb-hrss")
AUDIT = "zd:{audit}:audit"  # ZD_KEY_AUDIT in redis/keys.h


@pytest.fixture()
def redis_own(tmp_path):
    r = RedisServer(str(tmp_path))
    yield r
    r.stop()


def use_keys(z):
    """3 requests let through and 1 refused for viewer "watch", 2 through for publisher "hz"."""
    for _ in range(3):
        st, _ = z.call("POST", "/v1/rules:preview", {"rule": "exists region"}, key="viewer")
        assert st == 200
    st, _ = z.call("GET", "/v1/profiles/x", key="viewer")
    assert st == 403
    for _ in range(2):
        st, _ = z.call("POST", "/v1/rules:preview", {"rule": "exists region"}, key="hz")
        assert st == 200


def key_series(text):
    return [l for l in text.splitlines() if l.startswith("zhida_api_key_requests_total")]


def test_metrics_do_not_name_keys_by_default(tmp_path, redis_own):
    z = Zhidad(str(tmp_path), redis_own.port, name="plain")
    try:
        use_keys(z)
        st, text = z.call("GET", "/metrics", key=None)
        assert st == 200
        for name in NAMES:
            assert '"%s"' % name not in text, (name, text)
        assert "key=" not in text
        series = key_series(text)
        # Counts summed per role, every role always present.
        assert 'zhida_api_key_requests_total{role="viewer",outcome="used"} 3' in series, series
        assert 'zhida_api_key_requests_total{role="viewer",outcome="denied"} 1' in series
        assert 'zhida_api_key_requests_total{role="publisher",outcome="used"} 2' in series
        assert 'zhida_api_key_requests_total{role="admin",outcome="used"} 0' in series
        assert len(series) == 8, series
    finally:
        z.stop()


def test_metrics_name_keys_when_configured(tmp_path, redis_own):
    z = Zhidad(str(tmp_path), redis_own.port, name="named",
               extra_config={"metrics_key_names": True})
    try:
        use_keys(z)
        st, text = z.call("GET", "/metrics", key=None)
        assert st == 200
        series = key_series(text)
        assert 'zhida_api_key_requests_total{key="watch",role="viewer",outcome="used"} 3' in series
        assert 'zhida_api_key_requests_total{key="watch",role="viewer",outcome="denied"} 1' in series
        assert 'zhida_api_key_requests_total{key="hz-hrss",role="publisher",outcome="used"} 2' \
            in series
        # Keys without requests have no series.
        assert not any('key="ops"' in l for l in series), series
    finally:
        z.stop()


def test_metrics_key_names_must_be_boolean(tmp_path, redis_own):
    import subprocess
    from conftest import ZHIDAD
    path = tmp_path / "bad.json"
    path.write_text('{"metrics_key_names": "yes"}')
    p = subprocess.run([ZHIDAD, "-c", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 78  # EX_CONFIG
    assert '"metrics_key_names" must be true or false' in p.stderr, p.stderr


def audit_records(redis):
    r = redis.client()
    try:
        out = []
        for _, flat in r("XRANGE", AUDIT, "-", "+"):
            out.append(dict(zip(flat[::2], flat[1::2])))
        return out
    finally:
        r.close()


def test_sigterm_delivers_the_last_key_use_records(tmp_path, redis_own):
    # An interval far beyond the test: the only key.use records are the ones written at stop.
    z = Zhidad(str(tmp_path), redis_own.port, name="stopping",
               extra_config={"key_audit_interval_s": 3600})
    try:
        use_keys(z)
        assert not [a for a in audit_records(redis_own) if a["action"] == "key.use"]
    finally:
        rc = z.stop(sig=signal.SIGTERM)
    assert rc == 0
    uses = {a["key"]: a for a in audit_records(redis_own) if a["action"] == "key.use"}
    assert set(uses) == {"watch", "hz-hrss"}, uses
    assert uses["watch"]["role"] == "viewer"
    assert uses["watch"]["target"] == "used=3 denied=1"
    assert uses["hz-hrss"]["role"] == "publisher"
    assert uses["hz-hrss"]["target"] == "used=2 denied=0"
    log = z.read_log()
    assert "could not append" not in log and "could not queue" not in log, log[-3000:]


def test_sigterm_with_redis_gone_stops_within_the_deadline(tmp_path, redis_own):
    # Redis is away at stop: the final records cannot be delivered; zhidad says so and still
    # stops (bounded by redis_client.deadline_ms) with exit status 0.
    z = Zhidad(str(tmp_path), redis_own.port, name="orphan",
               extra_config={"key_audit_interval_s": 3600,
                             "redis_client": {"deadline_ms": 500}})
    try:
        use_keys(z)
    finally:
        redis_own.stop()
        rc = z.stop(sig=signal.SIGTERM)
    assert rc == 0
    log = z.read_log()
    # Each lost record is reported by its action (never its target), as failed by the deadline.
    lost = re.findall(r"audit: could not append a (\S+) record \(([^)]*)\)", log)
    assert lost == [("key.use", "Connection timed out")] * 2, log[-3000:]
