"""Redis addressed by host name (issue #9): the name is resolved asynchronously (libevent's
evdns, /etc/hosts and the system's name servers) before every connect, never by hiredis inside
the event loop."""
from conftest import RedisServer, Zhidad, wait_until


def test_redis_by_name(tmpdir_mod):
    r = RedisServer(tmpdir_mod)
    try:
        z = Zhidad(tmpdir_mod, r.port, name="byname",
                   extra_config={"redis": "localhost:%d" % r.port})
        try:
            st, _ = z.call("PUT", "/v1/profiles/n-1", {"kind": "citizen", "region": "330106"},
                           key="app")
            assert st == 200
            assert "connected to localhost:%d" % r.port in z.read_log()
            # After a Redis restart the name is looked up again and the client reconnects.
            r.stop()
            r.start()
            wait_until(lambda: z.call("GET", "/readyz", key=None)[0] == 200, timeout=30,
                       what="readiness after the restart")
        finally:
            z.stop()
    finally:
        r.stop()


def test_unresolvable_name_is_retried_not_fatal(tmpdir_mod):
    z = Zhidad(tmpdir_mod, 1, name="noname",
               extra_config={"redis": "no-such-host.invalid:6379"}, wait_ready=False)
    try:
        wait_until(lambda: "cannot resolve no-such-host.invalid" in z.read_log(), timeout=60,
                   what="the failed lookup to be logged")
        assert z.proc.poll() is None
        st, body = z.call("GET", "/readyz", key=None)
        assert st == 503 and body["redis"] is False
    finally:
        z.stop()
