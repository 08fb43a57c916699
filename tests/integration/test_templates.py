"""Personalized notices (issue #7): templates with fallbacks and reasons rendered per profile
and per gateway by the real delivery engine, seen by the real webhook receiver; publish refuses
an unknown template path with its position, and reason_texts that are not clauses of the rule;
POST /v1/policies:render shows the notice of one profile per gateway of the routes."""
import datetime
import json

import pytest

from conftest import Zhidad, enterprise, citizen
from webhook_receiver import Receiver
from test_dispatch import SECRET, hook, wait_status

RULE = ('kind = "enterprise" and (region within "3301" or region within "3302") '
        'and employees < 300 and age(founded) < 3 and not tags has "dishonest"')
BODY = "{{fields.company|贵单位}}：您可能符合{{policy.title}}申领条件（{{reasons}}），请于{{policy.deadline}}前申请。"


@pytest.fixture(scope="module")
def rx():
    r = Receiver(secrets=[SECRET])
    yield r
    r.close()


@pytest.fixture(scope="module")
def z(tmpdir_mod, redis, rx):
    cfg = {"gateways": {"zlb": hook(rx, "/tpl/zlb"), "zlb2": hook(rx, "/tpl/zlb2"),
                        "inbox": {"type": "inbox"},
                        "sms": {"type": "sms_http", "url": rx.url("/sms"), "timeout_ms": 2000,
                                "body": '{"mobile": "{{to}}", "content": "{{body}}"}'},
                        "email": {"type": "smtp", "url": "smtp://127.0.0.1:1", "timeout_ms": 2000,
                                  "from": "noreply@example.gov.cn", "starttls": "off"}},
           # A frequency cap: non-urgent notices are placed when their reservation answers,
           # after the profile's document is gone (they are rendered before).
           "delivery": {"poll_ms": 50, "lease_ms": 600, "claim_idle_ms": 4000,
                        "cap": {"count": 100, "days": 7}}}
    d = Zhidad(tmpdir_mod, redis.port, name="tpl", extra_config=cfg)
    yield d
    d.stop()


def recent():
    return (datetime.date.today() - datetime.timedelta(days=400)).isoformat()


def put(z, pid, doc):
    st, res = z.call("PUT", "/v1/profiles/" + pid, doc, key="app")
    assert st in (200, 201), res


def notices(rx, pid):
    out = {}
    with rx.lock:
        reqs = list(rx.requests)
    for q in reqs:
        for n in (q["json"] or {}).get("notices", []):
            if n["policy"] == pid:
                out[(n["profile"], n["gateway"])] = n
    return out


def policy(pid, **extra):
    body = {"id": pid, "title": "稳岗补贴", "summary": "摘要", "deadline": "2031-07-01",
            "url": "https://example.gov.cn/p/" + pid, "category": "employment",
            "issuer": "杭州市人力社保局", "rule": RULE + ' and tags has "%s"' % pid,
            "routes": ["zlb", "zlb2"],
            "templates": {"default": {"title": "{{policy.title}}", "body": BODY},
                          "zlb2": {"title": "【{{policy.issuer}}】{{attrs.employees}}人 {{profile.id}}"}}}
    body.update(extra)
    return body


def test_notices_are_rendered_per_profile_and_gateway(z, redis, rx):
    put(z, "tpl-a", enterprise(region="330106", founded=recent(), tags=("tpl1",),
                               contacts={"zlb": "a", "zlb2": "a2"}))
    b = enterprise(region="330206", founded=recent(), employees=120, tags=("tpl1",),
                   contacts={"zlb": "b", "zlb2": "b2"})
    del b["fields"]
    put(z, "tpl-b", b)
    # Not eligible: too old.
    put(z, "tpl-c", enterprise(founded="2001-01-01", tags=("tpl1",), contacts={"zlb": "c"}))
    st, res = z.call("POST", "/v1/policies", policy("tpl1"))
    assert st == 202, res
    wait_status(redis, "tpl1", 2, ("done",))
    got = notices(rx, "tpl1")
    assert set(got) == {("tpl-a", "zlb"), ("tpl-a", "zlb2"), ("tpl-b", "zlb"), ("tpl-b", "zlb2")}
    assert got[("tpl-a", "zlb")]["title"] == "稳岗补贴"
    assert got[("tpl-a", "zlb")]["body"] == (
        "杭州某某科技有限公司：您可能符合稳岗补贴申领条件（是企业，注册地在杭州市，员工少于300人，"
        "成立不满3年，无失信记录，具有「tpl1」标签），请于2031-07-01前申请。")
    # No company: the fallback; the `or` gives its satisfied branch only (宁波市).
    assert got[("tpl-b", "zlb")]["body"] == (
        "贵单位：您可能符合稳岗补贴申领条件（是企业，注册地在宁波市，员工少于300人，"
        "成立不满3年，无失信记录，具有「tpl1」标签），请于2031-07-01前申请。")
    # zlb2 has its own title and the default body.
    assert got[("tpl-b", "zlb2")]["title"] == "【杭州市人力社保局】120人 tpl-b"
    assert got[("tpl-b", "zlb2")]["body"] == got[("tpl-b", "zlb")]["body"]


def test_reason_texts_override_a_clause(z, redis, rx):
    put(z, "tpl-d", enterprise(region="330106", founded=recent(), tags=("tpl2",),
                               contacts={"zlb": "d"}))
    # urgent: placed at once, without the cap's reservation.
    body = policy("tpl2", routes=["zlb"], urgent=True,
                  reason_texts={"employees < 300": "属于中小微企业",
                                'not tags has "dishonest"': "信用良好"})
    st, res = z.call("POST", "/v1/policies", body)
    assert st == 202, res
    wait_status(redis, "tpl2", 1, ("done",))
    got = notices(rx, "tpl2")
    assert "（是企业，注册地在杭州市，属于中小微企业，成立不满3年，信用良好，" in got[("tpl-d", "zlb")]["body"]


def test_a_policy_without_templates_keeps_title_and_summary(z, redis, rx):
    put(z, "tpl-e", enterprise(founded=recent(), tags=("tpl3",), contacts={"zlb": "e"}))
    body = policy("tpl3", routes=["zlb"])
    del body["templates"]
    st, res = z.call("POST", "/v1/policies", body)
    assert st == 202, res
    wait_status(redis, "tpl3", 1, ("done",))
    n = notices(rx, "tpl3")[("tpl-e", "zlb")]
    assert (n["title"], n["body"]) == ("稳岗补贴", "摘要")


@pytest.mark.parametrize("templates,field,path,position", [
    ({"default": {"body": "您好{{fields.name}}，{{policy.titel}}"}}, "templates.default.body",
     "policy.titel", 26),
    ({"zlb": {"title": "{{attrs.employes}}"}}, "templates.zlb.title", "attrs.employes", 2),
    ({"follower": {"body": "x {{ reason }}"}}, "templates.follower.body", "reason", 5),
])
def test_unknown_path_is_400_with_its_position(z, templates, field, path, position):
    st, res = z.call("POST", "/v1/policies", policy("tplbad", templates=templates))
    assert st == 400, res
    e = res["error"]
    assert (e["code"], e["field"], e["path"], e["position"]) == (
        "invalid_template", field, path, position), e
    assert path in e["message"]


def test_template_structure_errors(z):
    st, res = z.call("POST", "/v1/policies", policy("tplbad", templates={"fax": {"body": "x"}}))
    assert st == 400 and res["error"]["code"] == "unknown_gateway", res
    st, res = z.call("POST", "/v1/policies", policy("tplbad", templates={"zlb": {"text": "x"}}))
    assert st == 400 and res["error"]["field"] == "templates.zlb.text", res
    st, res = z.call("POST", "/v1/policies",
                     policy("tplbad", reason_texts={"employees < 30": "x"}))
    assert st == 400, res
    assert res["error"]["field"] == "reason_texts" and res["error"]["key"] == "employees < 30"


def render(z, body, profile_id, key="admin"):
    return z.call("POST", "/v1/policies:render", {"policy": body, "profile_id": profile_id},
                  key=key)


def test_render_shows_each_gateway_of_the_routes(z):
    put(z, "tpl-r", enterprise(region="330106", founded=recent(), tags=("tplr",)))
    body = policy("tplr", routes=["zlb", ["sms", "email"], "inbox"])
    body["templates"]["email"] = {"body": "<p>{{fields.company}}</p>"}
    body["templates"]["sms"] = {"body": "【杭州人社】{{fields.company|贵单位}}，{{policy.title}}：{{reasons}}"}
    st, res = render(z, body, "tpl-r")
    assert st == 200, res
    assert res["profile_id"] == "tpl-r" and res["match"] is True
    assert res["reasons"][:2] == ["是企业", "注册地在杭州市"]
    by = {n["gateway"]: n for n in res["notices"]}
    assert [n["gateway"] for n in res["notices"]] == ["zlb", "sms", "email", "inbox"]
    assert [n["route"] for n in res["notices"]] == [0, 1, 1, 2]
    assert by["zlb"]["body"].startswith("杭州某某科技有限公司：您可能符合稳岗补贴申领条件（是企业，")
    assert by["inbox"]["body"] == by["zlb"]["body"]
    assert by["email"]["type"] == "smtp" and by["email"]["body"] == "<p>杭州某某科技有限公司</p>"
    sms = by["sms"]
    assert sms["type"] == "sms_http"
    assert sms["body"].startswith("【杭州人社】杭州某某科技有限公司，稳岗补贴：是企业，注册地在杭州市，")
    assert sms["sms"]["characters"] == len(sms["body"])
    assert sms["sms"]["encoding"] == "ucs2"
    n = len(sms["body"])
    assert sms["sms"]["segments"] == (1 if n <= 70 else -(-n // 67))
    assert "sms" not in by["zlb"]


def test_render_gives_smtp_plain_text_the_gateway_escapes(z):
    # The smtp gateway HTML-escapes the whole body into its text/html part and sends it as it is
    # as text/plain (test_smtp_escapes_a_templated_value_once below): the notice is plain text.
    p = enterprise(founded=recent(), tags=("tple",))
    p["fields"] = {"company": "A&B <科技>"}
    put(z, "tpl-h", p)
    body = policy("tple", routes=["zlb", "email"],
                  templates={"default": {"title": "{{fields.company}}", "body": "致{{fields.company}}"}})
    st, res = render(z, body, "tpl-h")
    assert st == 200, res
    by = {n["gateway"]: n for n in res["notices"]}
    assert by["email"]["body"] == by["zlb"]["body"] == "致A&B <科技>"
    assert by["email"]["title"] == "A&B <科技>"


def test_render_errors_and_scope(z):
    put(z, "tpl-nb", enterprise(region="330206", founded=recent(), tags=("tpls",)))
    put(z, "tpl-hz", enterprise(region="330106", founded=recent(), tags=("tpls",)))
    body = policy("tpls", routes=["zlb"])
    # Errors exactly as a publish answers them.
    bad = dict(body, templates={"default": {"body": "{{policy.titel}}"}})
    st, res = render(z, bad, "tpl-hz")
    assert st == 400 and res["error"]["code"] == "invalid_template", res
    assert res["error"]["position"] == 2
    st, res = render(z, dict(body, rule="kind = "), "tpl-hz")
    assert st == 400 and res["error"]["field"] == "rule", res
    st, res = z.call("POST", "/v1/policies:render", {"policy": body}, key="admin")
    assert st == 400 and res["error"]["field"] == "profile_id", res
    st, res = z.call("POST", "/v1/policies:render", {"policy": body, "profile_id": "x", "y": 1})
    assert st == 400 and res["error"]["code"] == "unknown_field", res
    st, res = render(z, body, "nobody-here")
    assert st == 404, res
    # A publisher of 3301 renders for its own profiles; Ningbo's is as missing for it.
    st, res = render(z, body, "tpl-hz", key="hz")
    assert st == 200, res
    # Its reasons include the scope the publish would add.
    assert "注册地在杭州市" in res["reasons"]
    st, missing = render(z, body, "nobody-here", key="hz")
    st2, res = render(z, body, "tpl-nb", key="hz")
    assert (st, st2) == (404, 404)
    missing["error"].pop("request_id")
    res["error"].pop("request_id")
    assert res == missing
    for role in ("app", "viewer"):
        st, res = render(z, body, "tpl-hz", key=role)
        assert st == 403, (role, res)
    # Not eligible: rendered anyway, and says so.
    st, res = render(z, dict(body, rule='tags has "nothing-like-this"'), "tpl-hz")
    assert st == 200 and res["match"] is False and res["reasons"] == []
    assert res["notices"][0]["body"].startswith("杭州某某科技有限公司：您可能符合稳岗补贴申领条件（），")


def test_dry_run_reports_sms_length_for_a_sample(z):
    put(z, "tpl-s", enterprise(founded=recent(), tags=("tpld",)))
    body = policy("tpld", routes=["zlb", ["sms", "zlb2"]], dry_run=True)
    body["templates"]["sms"] = {"body": "{{policy.title}}：{{reasons}}"}
    st, res = z.call("POST", "/v1/policies", body)
    assert st == 200, res
    assert res["matched"] == 1
    s = res["sms_sample"]
    assert s["profile_id"] == "tpl-s"
    assert [(n["route"], n["gateway"]) for n in s["notices"]] == [(1, "sms")]
    n = s["notices"][0]
    assert n["body"].startswith("稳岗补贴：是企业，注册地在杭州市，")
    assert n["sms"]["characters"] == len(n["body"]) and n["sms"]["encoding"] == "ucs2"
    # Without an SMS gateway there is no sample.
    st, res = z.call("POST", "/v1/policies", dict(body, routes=["zlb"]))
    assert st == 200 and "sms_sample" not in res, res


def test_smtp_escapes_a_templated_value_once(tmpdir_mod, redis):
    """HTML escaping for e-mail, end to end: a value with & and < arrives escaped once in the
    text/html part and as it is in the text/plain part."""
    import email
    import email.policy
    from test_channels import SMTP_RX  # the aiosmtpd receiver of the smtp gateway's tests
    import os
    import subprocess
    from conftest import free_port, wait_until
    port = free_port()
    store = os.path.join(tmpdir_mod, "tpl-smtp-%d.jsonl" % port)
    script = os.path.join(tmpdir_mod, "tpl_smtp_rx.py")
    with open(script, "w") as f:
        f.write(SMTP_RX)
    proc = subprocess.Popen(["/usr/bin/python3", script, str(port), store],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    cfg = {"gateways": {"email": {"type": "smtp", "url": "smtp://127.0.0.1:%d" % port,
                                  "from": "noreply@example.gov.cn", "starttls": "off",
                                  "timeout_ms": 2000}},
           "delivery": {"poll_ms": 50, "lease_ms": 600, "claim_idle_ms": 4000}}
    d = Zhidad(tmpdir_mod, redis.port, name="tpl-smtp", extra_config=cfg)
    try:
        p = enterprise(founded=recent(), tags=("tplm",), contacts={"email": "hr@example.cn"})
        p["fields"] = {"company": "A&B <科技>"}
        put(d, "tpl-m", p)
        body = policy("tplm", routes=["email"],
                      templates={"default": {"title": "{{policy.title}}",
                                             "body": "致{{fields.company}}：{{reasons}}"}})
        st, res = d.call("POST", "/v1/policies", body)
        assert st == 202, res
        wait_status(redis, "tplm", 1, ("done",))

        def msgs():
            if not os.path.exists(store):
                return []
            with open(store) as f:
                return [json.loads(x) for x in f if x.strip() and "data" in json.loads(x)]
        wait_until(lambda: msgs(), what="the e-mail")
        m = email.message_from_string(msgs()[0]["data"], policy=email.policy.default)
        parts = {q.get_content_type(): q.get_content() for q in m.iter_parts()}
        assert parts["text/plain"].startswith("致A&B <科技>：是企业，注册地在杭州市，")
        assert "致A&amp;B &lt;科技&gt;：是企业，注册地在杭州市，" in parts["text/html"]
        assert "&amp;amp;" not in parts["text/html"]
    finally:
        d.stop()
        proc.kill()
        proc.wait()

