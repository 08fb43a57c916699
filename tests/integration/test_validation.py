"""One validator for PUT, PATCH and import lines (issue #5, items 4 and 12): numbers that are
not finite (1e999), NULs (raw or written \\u0000, ids included), text after the JSON value,
nesting deeper than limits.json_depth_max and repeated keys are refused the same way on every
path, with an error naming what was wrong, and nothing is stored."""
import json

from conftest import enterprise


def count(zd, rule):
    st, body = zd.call("POST", "/v1/rules:preview", {"rule": rule, "sample": 0})
    assert st == 200, body
    return body["count"]


def put_raw(zd, pid, raw):
    return zd.call("PUT", "/v1/profiles/" + pid, raw=raw, key="app")


def import_raw(zd, lines):
    st, res = zd.call("POST", "/v1/profiles:import", raw=b"\n".join(lines) + b"\n", key="app")
    assert st == 200, res
    return res


# Bodies with a number that overflows a double; cJSON makes it inf and would print it as null.
NON_FINITE = [
    (b'{"kind": "enterprise", "attrs": {"employees": 1e999}}', "attrs.employees"),
    (b'{"kind": "enterprise", "attrs": {"employees": -1e999}}', "attrs.employees"),
    (b'{"kind": "enterprise", "attrs": {"revenue": 1E400}}', "attrs.revenue"),
    (b'{"kind": "citizen", "fields": {"n": 1e999}}', "fields.n"),
    (b'{"kind": "citizen", "fields": {"n": -1e999}}', "fields.n"),
    (b'{"kind": "citizen", "prefs": {"mute_categories": ["tax", 1e999]}}',
     "prefs.mute_categories[1]"),
    (b'{"kind": "citizen", "contacts": {"zlb": -1e999}}', "contacts.zlb"),
]


def test_put_refuses_non_finite_numbers(zd):
    for i, (raw, field) in enumerate(NON_FINITE):
        st, err = put_raw(zd, "nf-%d" % i, raw)
        assert st == 400, (raw, err)
        assert err["error"]["code"] == "out_of_range", (raw, err)
        assert err["error"]["field"] == field, (raw, err)
        assert field in err["error"]["message"], err
        st, _ = zd.call("GET", "/v1/profiles/nf-%d" % i, key="app")
        assert st == 404, raw


def test_replace_with_non_finite_keeps_the_previous_version(zd):
    st, before = zd.call("PUT", "/v1/profiles/nf-keep", enterprise(tags=["nf-old"]), key="app")
    assert st == 200, before
    raw = json.dumps(enterprise(tags=["nf-new"]), ensure_ascii=False).encode()
    raw = raw.replace(b'"employees": 40', b'"employees": 1e999')
    st, err = put_raw(zd, "nf-keep", raw)
    assert st == 400 and err["error"]["field"] == "attrs.employees", err
    st, now = zd.call("GET", "/v1/profiles/nf-keep", key="app")
    assert now == before
    assert count(zd, 'tags has "nf-old"') == 1
    assert count(zd, 'tags has "nf-new"') == 0


def test_patch_with_non_finite_changes_nothing(zd):
    st, before = zd.call("PUT", "/v1/profiles/nf-patch", enterprise(tags=["nf-p"]), key="app")
    assert st == 200, before
    for raw, field in ((b'{"fields": {"n": 1e999}}', "fields.n"),
                       (b'{"attrs": {"employees": -1e999}}', "attrs.employees"),
                       (b'{"tags": ["nf-q"], "fields": {"deep": {"x": [1e999]}}}',
                        "fields.deep.x[0]")):
        st, err = zd.call("PATCH", "/v1/profiles/nf-patch", raw=raw, key="app")
        assert st == 400, (raw, err)
        assert err["error"]["code"] == "out_of_range" and err["error"]["field"] == field, err
    st, now = zd.call("GET", "/v1/profiles/nf-patch", key="app")
    assert now == before
    assert count(zd, 'tags has "nf-q"') == 0
    # The profile stays writable: later PATCHes and explain work on it.
    st, body = zd.call("PATCH", "/v1/profiles/nf-patch", {"fields": {"n": 7}}, key="app")
    assert st == 200 and body["fields"]["n"] == 7, body
    st, body = zd.call("POST", "/v1/rules:explain", {"rule": "exists region",
                                                     "profile": "nf-patch"})
    assert st == 200 and body["match"] is True, body


def test_import_refuses_non_finite_lines_only(zd):
    lines = [b'{"id": "nfi-ok", "kind": "citizen", "tags": ["nfi"]}']
    for i, (raw, _) in enumerate(NON_FINITE):
        lines.append(raw.replace(b"{", b'{"id": "nfi-%d", ' % i, 1))
    res = import_raw(zd, lines)
    assert res["imported"] == 1 and res["failed"] == len(NON_FINITE), res
    by_line = {e["line"]: e for e in res["errors"]}
    for i, (_, field) in enumerate(NON_FINITE):
        e = by_line[i + 2]
        assert e["error"]["code"] == "out_of_range" and e["error"]["field"] == field, e
        assert e["id"] == "nfi-%d" % i
        st, _ = zd.call("GET", "/v1/profiles/nfi-%d" % i, key="app")
        assert st == 404
    assert count(zd, 'tags has "nfi"') == 1


# Lines that the import used to accept (or read differently) while PUT refused them. Each is
# (line, the error code, the id the line is about).
DEEP = b'{"id": "dp-1", "kind": "citizen", "fields": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}"
LIKE_PUT = [
    (b'{"id": "nul\\u0000x", "kind": "citizen", "tags": ["lp"]}', "bad_json", "nul"),
    (b'{"id": "nv-1", "kind": "citizen", "fields": {"n": "a\\u0000b"}}', "bad_json", "nv-1"),
    (b'{"id": "tg-1", "kind": "citizen", "tags": ["lp"]} garbage', "bad_json", "tg-1"),
    (b'{"id": "tg-2", "kind": "citizen"}{"id": "tg-3", "kind": "citizen"}', "bad_json", "tg-2"),
    (b'{"id": "tg-4", "kind": "citizen"},', "bad_json", "tg-4"),
    (DEEP, "too_deep", "dp-1"),
    (b'{"id": "dk-1", "kind": "citizen", "kind": "robot"}', "bad_json", "dk-1"),
    (b'{"id": "dk-2", "kind": "citizen", "fields": {"n": 1, "n": 2}}', "bad_json", "dk-2"),
    (b'{"id": "dk-3", "id": "dk-4", "kind": "citizen"}', "bad_json", "dk-3"),
    (b'{"id": "raw-nul", "kind": "citizen"\x00}', "bad_json", "raw-nul"),
    (b'{"id": "utf-1", "kind": "citizen", "fields": {"n": "\xc3\x28"}}', "invalid_utf8", "utf-1"),
    (b'[{"id": "arr-1", "kind": "citizen"}]', "bad_json", "arr-1"),
]


def test_import_lines_are_refused_like_put(zd):
    lines = [b'{"id": "lp-ok-1", "kind": "citizen", "tags": ["lp"]}']
    lines += [line for line, _, _ in LIKE_PUT]
    lines.append(b'{"id": "lp-ok-2", "kind": "citizen", "tags": ["lp"]}')
    res = import_raw(zd, lines)
    assert res["imported"] == 2, res
    assert res["failed"] == len(LIKE_PUT), res
    by_line = {e["line"]: e for e in res["errors"]}
    for i, (line, code, pid) in enumerate(LIKE_PUT):
        e = by_line.get(i + 2)
        assert e is not None, (line, res)
        assert e["error"]["code"] == code, (line, e)
        # The same document through PUT gets the same answer.
        st, err = put_raw(zd, pid, line)
        assert st == 400, (line, err)
        assert err["error"]["code"] == code, (line, err, e)
        for other in (pid, "nul", "tg-3", "dk-4"):
            st, _ = zd.call("GET", "/v1/profiles/" + other, key="app")
            assert st == 404, (line, other)
    assert count(zd, 'tags has "lp"') == 2


def test_other_bodies_refuse_non_finite_numbers(zd):
    st, err = zd.call("POST", "/v1/rules:preview",
                      raw=b'{"rule": "exists region", "sample": 1e999}')
    assert st == 400 and err["error"]["field"] == "sample", err
    st, err = zd.call("POST", "/v1/rules:preview",
                      raw=b'{"rule": "exists region", "sample": -1e999}')
    assert st == 400 and err["error"]["field"] == "sample", err
    st, err = zd.call("PUT", "/v1/segments/nf-seg", raw=b'{"rule": "exists region", "x": 1e999}')
    assert st == 400 and err["error"]["field"] == "x", err
    # A breakdown level is a small number, not whatever atoi makes of the text.
    for spec in ("region:4x", "region:99999999999999999999", "region:", "region:-4"):
        st, err = zd.call("POST", "/v1/rules:preview",
                          {"rule": "exists region", "breakdown": [spec]})
        assert st == 400 and err["error"]["code"] == "invalid_breakdown", (spec, err)
    st, body = zd.call("POST", "/v1/rules:preview", {"rule": "exists region",
                                                     "breakdown": ["region:6"]})
    assert st == 200, body


def partition_of(pid, n=4):
    h = 2166136261
    for c in pid.encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h % n


def test_stored_documents_that_do_not_validate(zd, redis):
    """A document already in Redis that does not parse or validate is refused loudly: explain
    answers 500 and logs it, a PATCH never merges onto nothing (which would have replaced the
    profile by the patch alone), and a PATCH that removes the bad member heals it."""
    for pid in ("sd-null", "sd-trunc"):
        st, _ = zd.call("PUT", "/v1/profiles/" + pid, enterprise(tags=["sd"]), key="app")
        assert st == 200
    r = redis.client()
    try:
        key = "zd:{p%d}:profiles"
        v = r("HGET", key % partition_of("sd-null"), "sd-null")
        head, doc = v.split("|", 1)
        indexed, private = doc.split("\n", 1)  # the stored form's two parts
        bad = json.loads(private)
        bad["fields"]["n"] = None  # what cJSON printed for 1e999
        r("HSET", key % partition_of("sd-null"), "sd-null",
          head + "|" + indexed + "\n" + json.dumps(bad, ensure_ascii=False, separators=(",", ":")))
        v = r("HGET", key % partition_of("sd-trunc"), "sd-trunc")
        r("HSET", key % partition_of("sd-trunc"), "sd-trunc", v[:-5])
    finally:
        r.close()

    st, err = zd.call("POST", "/v1/rules:explain", {"rule": "exists region", "profile": "sd-null"})
    assert st == 500 and err["error"]["field"] == "fields.n", err
    assert "stored profile sd-null does not validate" in zd.read_log()
    st, err = zd.call("PATCH", "/v1/profiles/sd-null", {"tags": ["sd2"]}, key="app")
    assert st == 400 and err["error"]["field"] == "fields.n", err
    st, body = zd.call("PATCH", "/v1/profiles/sd-null", {"fields": {"n": None}}, key="app")
    assert st == 200 and "n" not in body["fields"], body

    st, err = zd.call("PATCH", "/v1/profiles/sd-trunc", {"kind": "citizen"}, key="app")
    assert st == 500 and err["error"]["code"] == "invalid_stored_profile", err
    r = redis.client()
    try:
        v = r("HGET", "zd:{p%d}:profiles" % partition_of("sd-trunc"), "sd-trunc")
        assert '"enterprise"' in v  # not replaced by the patch
    finally:
        r.close()
    st, err = zd.call("POST", "/v1/rules:explain", {"rule": "exists region",
                                                     "profile": "sd-trunc"})
    assert st == 500, err
