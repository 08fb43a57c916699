"""The policy calculator (issue #7): GET /v1/profiles/{id}/policies answers the live policies
(active or dispatching, deadline not passed) the stored profile is eligible for now, each with
its reasons (the publisher's reason_texts honoured) — not the withdrawn, past-deadline, done or
ineligible ones; a publisher sees only its scope's policies and profiles; roles; bad input."""
import pytest

from conftest import enterprise, wait_until
from test_dispatch import SECRET, daemon, hook, publish, wait_status
from webhook_receiver import Receiver


@pytest.fixture(scope="module")
def rx():
    r = Receiver(secrets=[SECRET])
    yield r
    r.close()


def calc(z, pid, key="app"):
    return z.call("GET", "/v1/profiles/%s/policies" % pid, key=key)


def ids(res):
    return [p["id"] for p in res["policies"]]


def test_calculator(tmpdir_mod, redis, rx):
    z = daemon(tmpdir_mod, redis, "calc", {"zlb": hook(rx, "/ok/calc")})
    try:
        st, res = z.call("PUT", "/v1/profiles/calc-e",
                         dict(enterprise(tags=("calc_a",)), contacts={"zlb": "c"}), key="app")
        assert st in (200, 201), res
        live = dict(match_new_profiles=True, deadline="2999-12-31")
        publish(z, redis, "calc-A", "unused", ["zlb"], rule='tags has "calc_a" and employees < 300',
                reason_texts={"employees < 300": "贵单位员工不满300人"}, **live)
        publish(z, redis, "calc-B", "calc_zz", ["zlb"], **live)  # not eligible
        publish(z, redis, "calc-C", "calc_a", ["zlb"], **live)  # withdrawn below
        publish(z, redis, "calc-D", "calc_a", ["zlb"], match_new_profiles=True,
                deadline="2001-01-01")  # past its deadline
        publish(z, redis, "calc-E", "calc_a", ["zlb"])  # done: no match_new_profiles
        st, res = z.call("POST", "/v1/policies", {
            "id": "calc-H", "title": "杭州专项", "summary": "s", "url": "https://e.gov.cn/h",
            "category": "tax", "issuer": "杭州市税务局", "rule": 'tags has "calc_a"',
            "routes": ["zlb"], "match_new_profiles": True}, key="hz")
        assert st in (200, 201, 202), res
        for pid in ("calc-A", "calc-B", "calc-C", "calc-H"):
            wait_status(redis, pid, 1, ("active",))
        wait_status(redis, "calc-E", 1, ("done",))
        wait_status(redis, "calc-D", 1, ("active", "done"))
        st, res = z.call("POST", "/v1/policies/calc-C:withdraw", {})
        assert st == 200, res

        st, res = calc(z, "calc-e")
        assert st == 200, res
        assert sorted(ids(res)) == ["calc-A", "calc-H"] and res["count"] == 2, res
        assert res["profile_id"] == "calc-e"
        a = next(p for p in res["policies"] if p["id"] == "calc-A")
        assert a["title"] == "稳岗补贴 calc-A" and a["summary"] == "您可能符合申领条件"
        assert a["url"] == "https://example.gov.cn/p/calc-A" and a["issuer"] == "杭州市人力社保局"
        assert a["category"] == "employment" and a["deadline"] == "2999-12-31"
        assert a["status"] == "active"
        # The reasons: the tag clause in the citizen's wording, the override verbatim.
        assert "贵单位员工不满300人" in a["reasons"] and len(a["reasons"]) == 2, a
        assert all("employees" not in r for r in a["reasons"]), a
        h = next(p for p in res["policies"] if p["id"] == "calc-H")
        assert h["deadline"] is None and any("杭州" in r for r in h["reasons"]), h
        # Every reader role gets the same answer.
        for key in ("viewer", None):
            st, res2 = calc(z, "calc-e", key=key) if key else z.call(
                "GET", "/v1/profiles/calc-e/policies")
            assert st == 200 and sorted(ids(res2)) == ["calc-A", "calc-H"], res2
        # A publisher: only its scope's policies; another scope's profile does not exist.
        st, res = calc(z, "calc-e", key="hz")
        assert st == 200 and ids(res) == ["calc-H"], res
        st, res = calc(z, "calc-e", key="nb")
        assert st == 404 and res["error"]["code"] == "not_found", res

        # A policy published later is found; one withdrawn since is not.
        publish(z, redis, "calc-G", "calc_a", ["zlb"], **live)
        wait_status(redis, "calc-G", 1, ("active",))
        st, res = z.call("POST", "/v1/policies/calc-A:withdraw", {})
        assert st == 200, res
        st, res = calc(z, "calc-e")
        assert st == 200 and sorted(ids(res)) == ["calc-G", "calc-H"], res
        # The profile changes: it is no longer eligible for anything.
        st, res = z.call("PUT", "/v1/profiles/calc-e",
                         dict(enterprise(tags=("other",)), contacts={"zlb": "c"}), key="app")
        assert st == 200, res
        st, res = calc(z, "calc-e")
        assert st == 200 and res["policies"] == [] and res["count"] == 0, res

        # Bad input, unknown profile, no key.
        st, res = calc(z, "nobody")
        assert st == 404 and res["error"]["code"] == "not_found", res
        st, res = calc(z, "x" * 200)
        assert st == 400 and res["error"]["code"] == "invalid_id", res
        st, res = calc(z, "a%20b")
        assert st == 400 and res["error"]["code"] == "invalid_id", res
        st, res = z.call("GET", "/v1/profiles/calc-e/policies", key="nokey-at-all")
        assert st == 401, res
    finally:
        z.stop()
