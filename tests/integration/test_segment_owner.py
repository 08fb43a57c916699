"""Segments belong to the scope that wrote them (issue #5 item 6): publishers change and delete
only their own scope's segments, admins all; nobody else's preview changes under them."""
from conftest import enterprise


def count(zd, rule, key="admin"):
    st, body = zd.call("POST", "/v1/rules:preview", {"rule": rule}, key=key)
    assert st == 200, body
    return body["count"]


def test_publisher_cannot_touch_admin_segment(zd):
    zd.call("PUT", "/v1/profiles/so-1", enterprise(region="330206", tags=["so"]), key="app")
    zd.call("PUT", "/v1/profiles/so-2", enterprise(region="330106", tags=["so"]), key="app")
    st, body = zd.call("PUT", "/v1/segments/so-shared", {"rule": 'tags has "so"'})
    assert st == 200
    assert zd.call("GET", "/v1/segments/so-shared")[1]["owner"] == "*"
    assert count(zd, 'segment "so-shared"') == 2

    # The scenario from the issue: a publisher scoped 3302 rewrites, then deletes it.
    st, err = zd.call("PUT", "/v1/segments/so-shared", {"rule": 'tags has "nothing"'}, key="nb")
    assert st == 403 and err["error"]["code"] == "forbidden"
    st, err = zd.call("DELETE", "/v1/segments/so-shared", key="nb")
    assert st == 403 and err["error"]["code"] == "forbidden"
    st, body = zd.call("GET", "/v1/segments/so-shared", key="viewer")
    assert st == 200 and body["rule"] == 'tags has "so"'
    assert count(zd, 'segment "so-shared"') == 2


def test_publisher_owns_its_segments(zd):
    st, _ = zd.call("PUT", "/v1/segments/so-nb", {"rule": 'tags has "so"'}, key="nb")
    assert st == 200
    assert zd.call("GET", "/v1/segments/so-nb")[1]["owner"] == "3302"
    # Another scope may use it (its preview stays scoped) but not change or delete it.
    assert count(zd, 'segment "so-nb"', key="hz") == 1
    st, _ = zd.call("PUT", "/v1/segments/so-nb", {"rule": "exists region"}, key="hz")
    assert st == 403
    st, _ = zd.call("DELETE", "/v1/segments/so-nb", key="hz")
    assert st == 403
    # Its owner may rewrite it; an admin rewrite keeps the owner; an admin may delete it.
    st, _ = zd.call("PUT", "/v1/segments/so-nb", {"rule": 'tags has "so" and exists region'},
                    key="nb")
    assert st == 200
    st, _ = zd.call("PUT", "/v1/segments/so-nb", {"rule": 'tags has "so"'})
    assert st == 200
    assert zd.call("GET", "/v1/segments/so-nb")[1]["owner"] == "3302"
    st, _ = zd.call("DELETE", "/v1/segments/so-nb", key="nb")
    assert st == 200
    st, _ = zd.call("DELETE", "/v1/segments/so-nb", key="nb")
    assert st == 404


def test_segment_writes_are_audited_with_the_writer(zd, redis):
    zd.call("PUT", "/v1/segments/so-audit", {"rule": 'tags has "so"'}, key="hz")
    r = redis.client()
    try:
        recs = [e[1] for e in r("XRANGE", "zd:{audit}:audit", "-", "+")]
    finally:
        r.close()
    assert any("segment.put" in rec and "hz-hrss" in rec and "so-audit" in rec for rec in recs)
