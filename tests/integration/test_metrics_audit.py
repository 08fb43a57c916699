"""What the unauthenticated /metrics tells about API keys: names only when configured."""
import pytest

from conftest import RedisServer, Zhidad

NAMES = ("ops", "app1", "watch", "hz-hrss", "nb-hrss")


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
