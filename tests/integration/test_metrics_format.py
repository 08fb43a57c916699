"""GET /metrics is valid Prometheus text exposition (issue #9): Debian's `promtool check metrics`
accepts it without errors or lint warnings, every family has one HELP and one TYPE and all its
samples together, request latency is a real histogram per method, route pattern and status
class, and the conventional zhida_build_info and process_* families are there."""
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import ZHIDAD, RedisServer, Zhidad, enterprise

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

# Every family /metrics had before this format fix, by its (unchanged) name. The one sample
# without a family, zhida_http_request_seconds_sum, became the histogram
# zhida_http_request_duration_seconds (docs/API.md).
OLD_FAMILIES = [
    "zhida_api_key_requests_total", "zhida_http_requests_total", "zhida_match_seconds",
    "zhida_index_profiles", "zhida_index_bitmaps", "zhida_index_bytes", "zhida_index_ready",
    "zhida_index_load_seconds", "zhida_changes_read_total", "zhida_changes_skipped_total",
    "zhida_index_rebuilds_total", "zhida_changes_bad_total", "zhida_index_stale",
    "zhida_index_apply_failures_total", "zhida_changes_gaps_total",
    "zhida_redis_dataset_changes_total", "zhida_redis_incompatible",
    "zhida_audience_failures_total", "zhida_redis_inflight", "zhida_redis_queued",
    "zhida_redis_reconnects_total", "zhida_redis_timeouts_total", "zhida_redis_errors_total",
]
PROCESS_FAMILIES = {
    "process_cpu_seconds_total": "counter", "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge", "process_open_fds": "gauge",
    "process_max_fds": "gauge", "process_start_time_seconds": "gauge",
}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}


def parse(text):
    """Checks the layout promtool does not (it takes samples of a family that come back after
    another family's as the same family) and returns {family: {"type", "help", "samples":
    [(name, {label: value}, float)]}}."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    families, current, closed = {}, None, set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name = line[2:6], line.split(" ")[2]
            if name != current:
                assert name not in families, "%s: family %s started twice" % (where, name)
                if current:
                    closed.add(current)
                current = name
                families[name] = {"type": None, "help": None, "samples": []}
            fam = families[name]
            assert not fam["samples"], "%s: HELP/TYPE after the family's samples" % where
            key = "help" if kind == "HELP" else "type"
            assert fam[key] is None, "%s: second %s for %s" % (where, kind, name)
            fam[key] = line.split(" ", 3)[3] if line.count(" ") >= 3 else ""
            continue
        assert line and not line.startswith("#"), "%s: unexpected line" % where
        m = SAMPLE.match(line)
        assert m, "%s: not a sample" % where
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        fam = families.get(current)
        assert fam, "%s: sample before any HELP/TYPE" % where
        suffixes = SUFFIXES.get(fam["type"], ("",))
        assert any(name == current + s for s in suffixes), \
            "%s: sample of another family inside %s" % (where, current)
        assert name not in closed
        fam["samples"].append((name, dict(LABEL.findall(labels)), float(value)))
    for name, fam in families.items():
        assert fam["help"], "family %s has no HELP" % name
        assert fam["type"] in ("counter", "gauge", "histogram", "summary", "untyped"), name
    return families


def check_histogram(name, fam):
    """Per label set: buckets cumulative with ascending le, +Inf equal to _count."""
    series = {}
    for sname, labels, value in fam["samples"]:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            s["buckets"].append((float(labels["le"]), value))
        elif sname.endswith("_sum"):
            s["sum"] = value
        else:
            s["count"] = value
    assert series, "histogram %s has no series" % name
    for key, s in series.items():
        les = [le for le, _ in s["buckets"]]
        assert les == sorted(les) and les[-1] == float("inf"), (name, key, les)
        counts = [c for _, c in s["buckets"]]
        assert counts == sorted(counts), (name, key, counts)
        assert s["count"] == counts[-1] and s["sum"] is not None, (name, key, s)
    return series


def traffic(z):
    st, _ = z.call("PUT", "/v1/profiles/e-1", enterprise())
    assert st == 200
    for _ in range(3):
        assert z.call("GET", "/v1/profiles/e-1", key="app")[0] == 200
    assert z.call("GET", "/v1/profiles/e-404", key="app")[0] == 404
    assert z.call("POST", "/v1/rules:preview", {"rule": "kind = \"enterprise\""})[0] == 200
    assert z.call("POST", "/v1/rules:preview", {"rule": "kind ="})[0] == 400
    assert z.call("GET", "/v1/profiles/e-1", key=None)[0] == 401
    assert z.call("GET", "/no/such/path", key=None)[0] == 404


@pytest.fixture()
def zd_metrics(tmp_path):
    r = RedisServer(str(tmp_path))
    z = Zhidad(str(tmp_path), r.port, name="metrics")
    try:
        yield z
    finally:
        z.stop()
        r.stop()


def test_metrics_pass_promtool(zd_metrics, tmp_path):
    traffic(zd_metrics)
    st, text = zd_metrics.call("GET", "/metrics", key=None)
    assert st == 200
    path = tmp_path / "metrics.txt"
    path.write_text(text)
    assert os.path.exists(PROMTOOL), "promtool missing: deploy/install-deps.sh installs prometheus"
    p = subprocess.run([PROMTOOL, "check", "metrics"], stdin=open(path), capture_output=True,
                       text=True, timeout=60)
    # Exit status 1 is an error, 3 a lint problem: both fail, with promtool's own words.
    assert p.returncode == 0, "promtool check metrics (%d):\n%s%s" % (
        p.returncode, p.stdout, p.stderr)
    families = parse(text)
    for name in OLD_FAMILIES:
        assert name in families, "family %s is gone" % name


def test_http_latency_is_a_histogram_by_route_pattern(zd_metrics):
    traffic(zd_metrics)
    st, text = zd_metrics.call("GET", "/metrics", key=None)
    assert st == 200
    families = parse(text)
    assert "zhida_http_request_seconds_sum" not in families
    fam = families.get("zhida_http_request_duration_seconds")
    assert fam and fam["type"] == "histogram", sorted(families)
    series = check_histogram("zhida_http_request_duration_seconds", fam)
    by = {dict(k)["route"] + " " + dict(k)["method"] + " " + dict(k)["status_class"]: s
          for k, s in series.items()}
    for key in series:
        assert set(dict(key)) == {"method", "route", "status_class"}, key
    # Route patterns, never paths: the ids of the requests appear nowhere.
    assert "e-1" not in text and "e-404" not in text and "/no/such" not in text
    assert by["/v1/profiles/{id} GET 2xx"]["count"] == 3, sorted(by)
    # The 404 of a missing profile, and the 401 refused from the request head.
    assert by["/v1/profiles/{id} GET 4xx"]["count"] == 2, sorted(by)
    assert by["/v1/rules:preview POST 2xx"]["count"] == 1
    assert by["/v1/rules:preview POST 4xx"]["count"] == 1
    assert by["(unmatched) * 4xx"]["count"] >= 1
    # The request counter keeps its exact statuses.
    totals = {(l["route"], l["status"]): v for _, l, v in
              families["zhida_http_requests_total"]["samples"]}
    assert totals[("/v1/profiles/{id}", "200")] == 3
    assert totals[("/v1/profiles/{id}", "404")] == 1
    assert totals[("/v1/profiles/{id}", "401")] == 1
    check_histogram("zhida_match_seconds", families["zhida_match_seconds"])


def test_build_info_and_process_metrics(zd_metrics):
    before = time.time()
    st, text = zd_metrics.call("GET", "/metrics", key=None)
    assert st == 200
    families = parse(text)
    version = subprocess.run([ZHIDAD, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.split()[-1]
    bi = families.get("zhida_build_info")
    assert bi and bi["type"] == "gauge", sorted(families)
    assert [(l.get("version"), v) for _, l, v in bi["samples"]] == [(version, 1.0)]
    for name, kind in PROCESS_FAMILIES.items():
        fam = families.get(name)
        assert fam and fam["type"] == kind, (name, fam)
        assert len(fam["samples"]) == 1 and not fam["samples"][0][1], fam
    v = {name: families[name]["samples"][0][2] for name in PROCESS_FAMILIES}
    pid = zd_metrics.proc.pid
    assert v["process_open_fds"] == len(os.listdir("/proc/%d/fd" % pid)) or \
        abs(v["process_open_fds"] - len(os.listdir("/proc/%d/fd" % pid))) <= 2, v
    with open("/proc/%d/limits" % pid) as f:
        soft = [l.split()[3] for l in f if l.startswith("Max open files")][0]
    assert v["process_max_fds"] == float(soft), v
    assert 0 < v["process_resident_memory_bytes"] <= v["process_virtual_memory_bytes"], v
    assert v["process_cpu_seconds_total"] > 0, v
    # The process started within this test's fixture, before this request.
    assert before - 600 < v["process_start_time_seconds"] <= before + 1, (before, v)
