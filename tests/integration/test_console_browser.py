"""The operator console in a real browser: headless Chromium (Debian's `chromium`) driven by
puppeteer-core (tests/browser, locked in package-lock.json) against a real zhidad and Redis.
The node script runs once for this module and reports one result per check; each check is a
test here. ZHIDA_CONSOLE_SHOTS=1 also writes the screenshots kept in docs/console/.

The policy checks publish to real webhook receivers (webhook_receiver.py) configured as this
zhidad's gateways: "zlb" and "app" answer 200, "gov" answers 400 (its notices die) until the
script asks on stdout for {"control": "gov_ok"}; this side then switches the receiver to 200
and answers "ok" on the script's stdin, and the script replays the dead letters."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import KEYS, ROOT, Zhidad, enterprise, citizen
from webhook_receiver import Receiver

BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHECKS = ["sign_in", "count_equals_api", "error_at_column_with_suggestion", "explain_table",
          "markup_is_text", "segments_save_list_use", "policies_list_and_funnel",
          "policy_form_publish_to_webhook", "policy_form_error_at_field",
          "policy_form_template_preview", "withdraw_scheduled_policy",
          "deadletters_list_and_replay", "english_toggle", "phone_layout",
          "viewer_sees_no_write_button", "sign_out_ends_session", "csp_and_no_console_errors"]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
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
    for pid, d in docs.items():
        # This zhidad's gateways (no "app" contact: a chain ["app", "zlb"] falls back to zlb).
        d["contacts"] = {"zlb": d["contacts"]["zlb"], "gov": "gov-" + pid}
    return docs


@pytest.fixture(scope="module")
def receivers():
    ok, gov = Receiver(secrets=[SECRET]), Receiver(secrets=[SECRET])
    gov.set_mode("status", 400)
    yield {"ok": ok, "gov": gov}
    ok.close()
    gov.close()


@pytest.fixture(scope="module")
def zd(tmpdir_mod, redis, receivers):
    hook = lambda r: {"type": "webhook", "url": r.url("/ok"), "secret": SECRET,
                      "max_attempts": 2, "retry_base_ms": 100, "retry_max_ms": 200}
    z = Zhidad(tmpdir_mod, redis.port, extra_config={"gateways": {
        "inbox": {"type": "inbox"}, "zlb": hook(receivers["ok"]), "app": hook(receivers["ok"]),
        "gov": hook(receivers["gov"])}})
    yield z
    z.stop()


@pytest.fixture(scope="module")
def results(zd, receivers):
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run deploy/install-deps.sh")
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "puppeteer-core")):
        pytest.fail("puppeteer-core is not installed: run deploy/install-deps.sh")
    for pid, doc in population().items():
        st, body = zd.call("PUT", "/v1/profiles/" + pid, doc)
        assert st == 200, body
    env = dict(os.environ, ZHIDA_URL="http://127.0.0.1:%d" % zd.port,
               KEYS=json.dumps({"admin": KEYS["admin"], "viewer": KEYS["viewer"],
                                "app": KEYS["app"]}),
               CHROMIUM=CHROMIUM)
    if os.environ.get("ZHIDA_CONSOLE_SHOTS"):
        env["SHOTS"] = os.path.join(ROOT, "docs", "console")
        os.makedirs(env["SHOTS"], exist_ok=True)
    # ASan's options are for zhidad, not for the browser.
    env.pop("ASAN_OPTIONS", None)
    env.pop("UBSAN_OPTIONS", None)
    out = {}
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(["node", "console.test.mjs"], cwd=BROWSER_DIR, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                text=True)
        try:
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                if r.get("control") == "gov_ok":
                    receivers["gov"].set_mode(None)
                    proc.stdin.write("ok\n")
                    proc.stdin.flush()
                elif "check" in r:
                    out[r["check"]] = r
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        out["_stderr"] = err.read()[-3000:]
    return out


@pytest.mark.parametrize("name", CHECKS)
def test_console_in_chromium(results, name):
    r = results.get(name)
    assert r is not None, "the browser script did not reach %s:\n%s" % (name, results["_stderr"])
    assert r["ok"], r["detail"]
    if isinstance(r["detail"], str) and r["detail"].startswith("skipped:"):
        pytest.skip(r["detail"])


def test_form_policy_reached_the_webhook(results, receivers):
    """What the funnel said was delivered through zlb arrived, signed, at its receiver."""
    r = results.get("policy_form_publish_to_webhook")
    if not r or not r["ok"]:
        pytest.skip("the browser check failed (reported by its own test)")
    ids = {a[0] for a in receivers["ok"].accepted if a[0] and a[0].startswith("bt-form:")}
    assert len(ids) == r["detail"]["matched"]
    assert all(a[1] for a in receivers["ok"].accepted), "a notice whose signature did not verify"
    assert all(i.endswith(":zlb") for i in ids)
