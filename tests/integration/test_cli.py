"""The zhida command-line client against a real zhidad + redis-server: options anywhere on the
line, exit codes per outcome (usage, 4xx, 5xx, transport), --output json|table, the API key
from the environment or a file and never from argv, the server's limits, name tables and bash
completion. Every test runs the real binary ($ZHIDA)."""
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile

import pytest

from conftest import KEYS, ROOT, ZHIDA, RedisServer, Zhidad, citizen, enterprise, free_port

COMPLETION = os.path.join(ROOT, "client", "zhida.bash-completion")

POP = {
    "cli-e1": enterprise(region="330106", employees=40, tags=["hightech"], industry="C1311"),
    "cli-e2": enterprise(region="330106", employees=60, tags=["hightech"], industry="C3670"),
    "cli-e3": enterprise(region="330212", employees=80, tags=["hightech"], industry="I6513"),
    "cli-c1": citizen(region="331002001", birth="1960-01-01", tags=["retired"]),
}

# Exit statuses documented in zhida --help and docs/CLI.md.
EXIT_USAGE, EXIT_4XX, EXIT_5XX, EXIT_TRANSPORT = 2, 3, 4, 5


@pytest.fixture(scope="module", autouse=True)
def population(zd):
    lines = "\n".join(json.dumps(dict(doc, id=i), ensure_ascii=False) for i, doc in POP.items())
    st, res = zd.call("POST", "/v1/profiles:import", raw=lines.encode(), key="app")
    assert st == 200 and res["failed"] == 0, res


def base_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIDA_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.update(extra)
    return env


def zhida(zd, *args, key="admin", env=None, stdin=None, url=True):
    """Runs zhida with args; the key comes from ZHIDA_KEY unless key is None."""
    e = base_env()
    if url:
        e["ZHIDA_URL"] = "http://127.0.0.1:%d" % zd.port
    if key is not None:
        e["ZHIDA_KEY"] = KEYS.get(key, key)
    if env:
        e.update(env)
    return subprocess.run([ZHIDA] + list(args), env=e, input=stdin, capture_output=True,
                          timeout=120)


def out(p):
    return p.stdout.decode("utf-8", "replace")


def err(p):
    return p.stderr.decode("utf-8", "replace")


def test_version():
    p = subprocess.run([ZHIDA, "--version"], capture_output=True, env=base_env(), timeout=30)
    assert p.returncode == 0, err(p)
    assert out(p).startswith("zhida "), out(p)
    assert out(p).split()[1][0].isdigit(), out(p)


def test_help_documents_exit_codes():
    p = subprocess.run([ZHIDA, "--help"], capture_output=True, env=base_env(), timeout=30)
    assert p.returncode == 0
    text = out(p)
    for needle in ("exit status", "--output", "--key-file", "ZHIDA_KEY"):
        assert needle in text, needle


def test_options_anywhere_on_the_line(zd):
    rule = 'tags has "hightech" and region within "3301"'
    # Global and command options after the positional arguments, in any order.
    url = "http://127.0.0.1:%d" % zd.port
    p = zhida(zd, "preview", rule, "--sample", "5", "--url", url, "--output", "json", url=False)
    assert p.returncode == 0, err(p)
    assert json.loads(out(p))["count"] == 2
    p = zhida(zd, "--output=json", "preview", "--sample=3", rule)
    assert p.returncode == 0, err(p)
    assert sorted(json.loads(out(p))["sample"]) == ["cli-e1", "cli-e2"]
    p = zhida(zd, "explain", "cli-e1", "-o", "json", "--", 'tags has "hightech"')
    assert p.returncode == EXIT_4XX  # RULE comes first: "cli-e1" is no rule
    p = zhida(zd, "explain", "-o", "json", "--", 'tags has "hightech"', "cli-e1")
    assert p.returncode == 0, err(p)
    assert json.loads(out(p))["match"] is True


def test_usage_errors_exit_2(zd):
    for args in (["preview"], ["frobnicate"], ["preview", 'kind = "citizen"', "--bogus"],
                 ["explain", 'kind = "citizen"', "--sample", "3", "x"], ["--output", "yaml",
                 "preview", 'kind = "citizen"'], []):
        p = zhida(zd, *args)
        assert p.returncode == EXIT_USAGE, (args, p.returncode, err(p))
        assert err(p).startswith("zhida"), err(p)


def test_bad_rule_is_4xx_exit_3_with_code_on_stderr(zd):
    p = zhida(zd, "preview", 'kind = "enterprise" and employes < 300', "--output", "table")
    assert p.returncode == EXIT_4XX, err(p)
    assert out(p) == ""
    assert "unknown_field" in err(p) and "employes" in err(p), err(p)
    assert "line 1" in err(p) and "column" in err(p), err(p)
    p = zhida(zd, "preview", 'kind = "enterprise" and employes < 300', "--output", "json")
    assert p.returncode == EXIT_4XX
    assert json.loads(err(p))["error"]["code"] == "unknown_field"
    p = zhida(zd, "profile", "get", "no-such-profile", key="app")
    assert p.returncode == EXIT_4XX and "not_found" in err(p), err(p)
    p = zhida(zd, "preview", 'kind = "citizen"', key="wrong-key")
    assert p.returncode == EXIT_4XX and "unauthorized" in err(p), err(p)


def test_transport_error_exit_5(zd):
    port = free_port()  # nothing listens there
    p = zhida(zd, "preview", 'kind = "citizen"', "--url", "http://127.0.0.1:%d" % port)
    assert p.returncode == EXIT_TRANSPORT, (p.returncode, err(p))
    assert str(port) in err(p)


def test_server_error_exit_4():
    # A zhidad of its own whose Redis goes away: the API answers 503.
    tmp = tempfile.mkdtemp(prefix="zhida-cli-")
    r = RedisServer(tmp)
    z = None
    try:
        z = Zhidad(tmp, r.port, extra_config={"redis_client": {"deadline_ms": 300,
                                                               "reconnect_min_ms": 50}})
        r.stop()
        p = subprocess.run([ZHIDA, "profile", "get", "anyone"], capture_output=True, timeout=60,
                           env=base_env(ZHIDA_URL="http://127.0.0.1:%d" % z.port,
                                        ZHIDA_KEY=KEYS["app"]))
        assert p.returncode == EXIT_5XX, (p.returncode, err(p))
        e = json.loads(err(p))["error"]
        assert json.loads(err(p)) == {"status": 503, "error": {
            "code": "store_unavailable", "message": e["message"], "request_id": e["request_id"]}}
        p = subprocess.run([ZHIDA, "profile", "get", "anyone", "-o", "table"], capture_output=True,
                           timeout=60, env=base_env(ZHIDA_URL="http://127.0.0.1:%d" % z.port,
                                                    ZHIDA_KEY=KEYS["app"]))
        assert p.returncode == EXIT_5XX and "HTTP 503 store_unavailable" in err(p), err(p)
    finally:
        if z:
            z.stop()
        r.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_json_output_is_the_api_answer(zd):
    rule = 'kind = "enterprise" or tags has "retired"'
    p = zhida(zd, "preview", rule, "--sample", "10", "--breakdown", "region,kind",
              "--breakdown", "industry", "--breakdown-limit", "1", "--output", "json")
    assert p.returncode == 0, err(p)
    got = json.loads(out(p))
    st, want = zd.call("POST", "/v1/rules:preview",
                       {"rule": rule, "sample": 10, "breakdown": ["region", "kind", "industry"],
                        "breakdown_limit": 1})
    assert st == 200
    got.pop("took_ms")
    want.pop("took_ms")
    assert got == want
    p = zhida(zd, "explain", 'tags has "hightech"', "cli-e3", "--output", "json")
    assert p.returncode == 0, err(p)
    st, want = zd.call("POST", "/v1/rules:explain", {"rule": 'tags has "hightech"',
                                                     "profile": "cli-e3"})
    assert json.loads(out(p)) == want


def test_json_is_the_default_when_stdout_is_no_terminal(zd):
    p = zhida(zd, "preview", 'tags has "hightech"', "--sample", "0")
    assert p.returncode == 0, err(p)
    assert json.loads(out(p))["count"] >= 3


def write_key_file(tmp, text, mode=0o600):
    path = os.path.join(tmp, "key")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def test_key_from_file_never_in_argv(zd, tmpdir_mod):
    path = write_key_file(tmpdir_mod, KEYS["app"] + "\n")
    p = zhida(zd, "profile", "get", "cli-e1", "--key-file", path, "-o", "json", key=None)
    assert p.returncode == 0, err(p)
    assert json.loads(out(p))["id"] == "cli-e1"
    p = zhida(zd, "profile", "get", "cli-e1", key=None, env={"ZHIDA_KEY_FILE": path})
    assert p.returncode == 0, err(p)
    # Without any key the server answers 401.
    p = zhida(zd, "profile", "get", "cli-e1", key=None)
    assert p.returncode == EXIT_4XX and "unauthorized" in err(p)

    # A running zhida (an import reading stdin) shows the key neither in its argv nor in its
    # environment: what `ps e` or /proc would reveal to other users.
    env = base_env(ZHIDA_URL="http://127.0.0.1:%d" % zd.port)
    proc = subprocess.Popen([ZHIDA, "import", "-", "--key-file", path, "-o", "json"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    try:
        with open("/proc/%d/cmdline" % proc.pid, "rb") as f:
            cmdline = f.read()
        with open("/proc/%d/environ" % proc.pid, "rb") as f:
            environ = f.read()
        assert KEYS["app"].encode() not in cmdline
        assert KEYS["app"].encode() not in environ
        line = json.dumps(dict(citizen(region="330102"), id="cli-from-key-file"))
        o, e = proc.communicate(line.encode() + b"\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, e
    assert json.loads(o)["imported"] == 1


def test_key_file_problems_are_usage_errors(zd, tmpdir_mod):
    p = zhida(zd, "preview", "kind = \"citizen\"", "--key-file",
              os.path.join(tmpdir_mod, "missing-key"), key=None)
    assert p.returncode == EXIT_USAGE and "missing-key" in err(p), err(p)
    empty = os.path.join(tmpdir_mod, "empty-key")
    open(empty, "w").close()
    p = zhida(zd, "preview", "kind = \"citizen\"", "--key-file", empty, key=None)
    assert p.returncode == EXIT_USAGE, err(p)
    # A key file others can read still works, with a warning.
    loose = write_key_file(tempfile.mkdtemp(dir=tmpdir_mod), KEYS["viewer"], mode=0o644)
    p = zhida(zd, "preview", "kind = \"citizen\"", "--key-file", loose, key=None)
    assert p.returncode == 0, err(p)
    assert "warning" in err(p) and "readable" in err(p), err(p)


def test_key_on_the_command_line_is_refused(zd):
    secret = "cmdline-key-0123456789"
    p = zhida(zd, "--key", secret, "preview", 'kind = "citizen"', key=None)
    assert p.returncode == EXIT_USAGE, err(p)
    assert "ps" in err(p) and "ZHIDA_KEY" in err(p), err(p)
    assert secret not in err(p)
    p = zhida(zd, "preview", 'kind = "citizen"', "--key=" + secret, key=None)
    assert p.returncode == EXIT_USAGE and secret not in err(p)


def test_sample_limit_matches_the_server(zd):
    for n in ("100001", "1001"):
        p = zhida(zd, "preview", 'kind = "citizen"', "--sample", n)
        assert p.returncode == EXIT_USAGE, (n, err(p))
        assert "1000" in err(p), err(p)
    p = zhida(zd, "preview", 'kind = "citizen"', "--sample", "1000", "-o", "json")
    assert p.returncode == 0, err(p)
    p = zhida(zd, "preview", 'kind = "citizen"', "--breakdown", "region,kind,scale,tags",
              "--breakdown", "industry")
    assert p.returncode == EXIT_USAGE and "4" in err(p), err(p)
    # The same field twice counts once, for the server and for the client.
    p = zhida(zd, "preview", 'kind = "citizen"', "--breakdown", "region,kind,scale,tags",
              "--breakdown", "region,kind", "-o", "json")
    assert p.returncode == 0, err(p)
    assert sorted(json.loads(out(p))["breakdown"]) == ["kind", "region", "scale", "tags"]
    p = zhida(zd, "preview", 'kind = "citizen"', "--breakdown-limit", "-1")
    assert p.returncode == EXIT_USAGE, err(p)


def test_table_shows_region_and_industry_names(zd):
    p = zhida(zd, "preview", 'tags has "hightech"', "--breakdown", "region,region:6,industry",
              "--output", "table")
    assert p.returncode == 0, err(p)
    text = out(p)
    assert "3301 杭州市" in text and "3302 宁波市" in text, text
    assert "330106 西湖区" in text and "330212 鄞州区" in text, text
    assert "C 制造业" in text and "I 信息传输、软件和信息技术服务业" in text, text
    # Groups beyond --breakdown-limit are summed up under the table.
    p = zhida(zd, "preview", 'tags has "hightech"', "--breakdown", "region:6",
              "--breakdown-limit", "1", "--output", "table")
    assert p.returncode == 0, err(p)
    assert "330106 西湖区" in out(p) and "330212" not in out(p), out(p)
    assert "1 smaller groups left out, 1 together" in out(p), out(p)
    p = zhida(zd, "explain", 'region within "3301" and industry within "C13"', "cli-e1",
              "--output", "table")
    assert p.returncode == 0, err(p)
    assert "330106 西湖区" in out(p) and "C1311 稻谷加工" in out(p), out(p)
    p = zhida(zd, "profile", "get", "cli-c1", "--output", "table", key="app")
    assert p.returncode == 0, err(p)
    assert "331002001 (椒江区)" in out(p), out(p)


def test_import_reports_unchanged_lines_without_warning(zd, tmpdir_mod):
    path = os.path.join(tmpdir_mod, "cli-import.ndjson")
    with open(path, "w") as f:
        f.write(json.dumps(dict(citizen(region="330105"), id="cli-imp-1")) + "\n\n")
        f.write("{not json\n")
        f.write(json.dumps(dict(citizen(region="330105"), id="cli-imp-2")) + "\n")
    p = zhida(zd, "import", path, "-o", "json", key="app")
    assert p.returncode == 1, err(p)  # some lines failed
    res = json.loads(out(p))
    assert (res["imported"], res["failed"]) == (2, 1), res
    assert res["errors"][0]["line"] == 3 and res["errors"][0]["error"]["code"] == "bad_json"
    p = zhida(zd, "import", path, "--output", "table", key="app")
    assert p.returncode == 1
    assert "imported 0, unchanged 2, failed 1" in out(p), out(p)
    assert "warning" not in err(p), err(p)
    # A key whose role may not import: the server's 403 stops the import with exit 3.
    p = zhida(zd, "import", path, "--output", "table", key="viewer")
    assert p.returncode == EXIT_4XX and "HTTP 403 forbidden" in err(p), err(p)
    p = zhida(zd, "import", path, "--url", "http://127.0.0.1:%d" % free_port(), key="app")
    assert p.returncode == EXIT_TRANSPORT, err(p)


def test_demo_population_output(zd):
    p = zhida(zd, "demo-population", "--n", "4", "--seed", "7", key=None)
    assert p.returncode == 0, err(p)
    lines = out(p).splitlines()
    assert len(lines) == 4 and all(json.loads(l)["id"] for l in lines)
    p = zhida(zd, "demo-population", "--n", "20", "--seed", "7", "--output", "table", key=None)
    assert p.returncode == 0, err(p)
    assert "市" in out(p) or "区" in out(p) or "县" in out(p), out(p)
    assert "c0000001" in out(p) and "e0000001" in out(p), out(p)


def complete(words, cword):
    """Runs the completion function as bash would for COMP_WORDS/COMP_CWORD."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=%d; '
              'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; _zhida; '
              'printf "%%s\\n" "${COMPREPLY[@]}"' % cword)
    p = subprocess.run(["bash", "-c", script, "bash", COMPLETION] + words,
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return sorted(filter(None, out(p).splitlines()))


def test_bash_completion():
    assert complete(["zhida", "pre"], 1) == ["preview"]
    assert complete(["zhida", "--url", "http://x", "ex"], 3) == ["explain"]
    assert complete(["zhida", "preview", "--sa"], 2) == ["--sample"]
    assert complete(["zhida", "preview", "--breakdown-limit", "3", "--br"], 4) == \
        ["--breakdown", "--breakdown-limit"]
    assert complete(["zhida", "--output", ""], 2) == ["json", "table"]
    assert complete(["zhida", "segment", ""], 2) == ["delete", "get", "put"]
    assert "--key-file" in complete(["zhida", "--k"], 1)
    assert "--key" not in complete(["zhida", "--k"], 1)
    assert complete(["zhida", "import", "--ch"], 2) == ["--chunk-bytes"]
