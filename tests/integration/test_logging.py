"""Logs for journald and log shippers (issue #9): sd-daemon priority prefixes when stderr is
the journal, JSON lines on request, personal data masked in every format."""
import json
import os

from conftest import Zhidad, citizen


def lines(z):
    return [l for l in z.read_log().splitlines() if l.strip()]


def test_json_lines_parse_and_mask(tmpdir_mod, redis):
    z = Zhidad(tmpdir_mod, redis.port, name="logjson", extra_config={"log_format": "json"})
    try:
        # An id that looks like a phone number reaches the access log (debug level) masked.
        z.call("PUT", "/v1/profiles/13912345678", citizen(), key="app")
        z.call("GET", "/v1/profiles/13912345678", key="app")
    finally:
        z.stop()
    recs = [json.loads(l) for l in lines(z)]
    # Lines written while serving a request name it (docs/API.md, request ids).
    assert recs and all(set(r) - {"request_id"} == {"ts", "level", "msg"} for r in recs)
    assert all(r.get("request_id") for r in recs if r["msg"].startswith("http: "))
    assert {r["level"] for r in recs} >= {"info", "debug"}
    assert not any("13912345678" in r["msg"] for r in recs)
    assert any("139******78" in r["msg"] for r in recs)


def test_journal_priorities_when_stderr_is_the_journal(tmpdir_mod, redis):
    """systemd names the journal socket in $JOURNAL_STREAM (device:inode of stderr). The
    harness points it at the log file zhidad writes, which is what "stderr is the journal"
    means to zhidad."""
    name = "logjournal"
    path = os.path.join(tmpdir_mod, name + ".log")
    open(path, "ab").close()
    st = os.stat(path)
    z = Zhidad(tmpdir_mod, redis.port, name=name,
               env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
    try:
        z.call("GET", "/v1/profiles/nobody", key="app")
    finally:
        z.stop()
    ls = lines(z)
    assert ls and all(l[0] == "<" and l[2] == ">" and l[1] in "3467" for l in ls), ls[:5]
    assert any(l.startswith("<6>") for l in ls) and any(l.startswith("<7>") for l in ls)


def test_text_when_journal_stream_names_another_file(tmpdir_mod, redis):
    z = Zhidad(tmpdir_mod, redis.port, name="logtext", env={"JOURNAL_STREAM": "1:1"})
    z.stop()
    ls = lines(z)
    levels = (" DEBUG ", " INFO ", " WARN ", " ERROR ")
    assert ls and all(l.startswith("20") and any(v in l for v in levels) for l in ls), ls[:5]
