"""The operator console in a real browser: headless Chromium (Debian's `chromium`) driven by
puppeteer-core (tests/browser, locked in package-lock.json) against a real zhidad and Redis.
The node script runs once for this module and reports one result per check; each check is a
test here. ZHIDA_CONSOLE_SHOTS=1 also writes the screenshots kept in docs/console/."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import KEYS, ROOT, enterprise, citizen

BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHECKS = ["sign_in", "count_equals_api", "error_at_column_with_suggestion", "explain_table",
          "markup_is_text", "segments_save_list_use", "policies_list_and_funnel", "english_toggle", "phone_layout",
          "viewer_sees_no_write_button", "sign_out_ends_session", "csp_and_no_console_errors"]
MARKUP = '<img src=x onerror="window.__xss=1"><b>恶意</b>'


def population():
    docs = {}
    regions = ["330106", "330108", "330203", "330302", "330402"]
    scales = ["micro", "small", "medium", "large"]
    industries = ["C1311", "I6510", "C3990", "F5123", "M7320"]
    for i in range(40):
        d = enterprise(region=regions[i % 5], employees=[5, 40, 120, 280, 900][i % 5],
                       tags=("hightech",) if i % 2 else ("srdi",), industry=industries[i % 5])
        d["attrs"]["scale"] = scales[i % 4]
        d["fields"] = {"company": "测试企业%02d有限公司" % i}
        docs["bt-e%02d" % i] = d
    for i in range(20):
        d = citizen(region=regions[i % 5] + "001")
        d["fields"] = {"name": "居民%02d" % i}
        docs["bt-c%02d" % i] = d
    evil = enterprise(region="330106", tags=("markup",))
    evil["fields"] = {"company": MARKUP}
    docs["bt-markup"] = evil
    return docs


@pytest.fixture(scope="module")
def results(zd):
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run deploy/install-deps.sh")
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "puppeteer-core")):
        pytest.fail("puppeteer-core is not installed: run deploy/install-deps.sh")
    for pid, doc in population().items():
        st, body = zd.call("PUT", "/v1/profiles/" + pid, doc)
        assert st == 200, body
    env = dict(os.environ, ZHIDA_URL="http://127.0.0.1:%d" % zd.port,
               KEYS=json.dumps({"admin": KEYS["admin"], "viewer": KEYS["viewer"]}),
               CHROMIUM=CHROMIUM)
    if os.environ.get("ZHIDA_CONSOLE_SHOTS"):
        env["SHOTS"] = os.path.join(ROOT, "docs", "console")
        os.makedirs(env["SHOTS"], exist_ok=True)
    # ASan's options are for zhidad, not for the browser.
    env.pop("ASAN_OPTIONS", None)
    env.pop("UBSAN_OPTIONS", None)
    proc = subprocess.run(["node", "console.test.mjs"], cwd=BROWSER_DIR, env=env,
                          capture_output=True, text=True, timeout=300)
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            out[r["check"]] = r
    out["_stderr"] = proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", CHECKS)
def test_console_in_chromium(results, name):
    r = results.get(name)
    assert r is not None, "the browser script did not reach %s:\n%s" % (name, results["_stderr"])
    assert r["ok"], r["detail"]
    if isinstance(r["detail"], str) and r["detail"].startswith("skipped:"):
        pytest.skip(r["detail"])
