"""The index equals what Redis holds: across instances, concurrent writes, deletes, restarts,
Redis restarts and change-stream trims."""
import json
import random
import signal
import threading
import time

import pytest

from conftest import RedisServer, Zhidad, citizen, enterprise, wait_until

RULES = ['tags has "t0"', 'tags has "t1" and employees < 500', 'region within "3302"',
         'kind = "citizen" or tags has "t2"', 'not tags has "t0"', 'employees >= 100',
         'exists employees and not region within ["3301", "3303"]']


def random_profile(rng):
    tags = [t for t in ("t0", "t1", "t2") if rng.random() < 0.4]
    region = rng.choice(["330106", "330203", "330302", "330108001"])
    if rng.random() < 0.5:
        return enterprise(region=region, employees=rng.randrange(1, 1000), tags=tags)
    return citizen(region=region, tags=tags, birth="19%02d-01-01" % rng.randrange(30, 99))


def redis_truth(redis, nparts):
    """Evaluates RULES by brute force over the documents in Redis (Python, independent)."""
    r = redis.client()
    docs = {}
    try:
        for p in range(nparts):
            flat = r("HGETALL", "zd:{p%d}:profiles" % p)
            for i in range(0, len(flat), 2):
                # "<dense>,<version>|<indexed JSON>\n<private JSON>" (docs/DESIGN.md)
                indexed = flat[i + 1].split("|", 1)[1].split("\n", 1)[0]
                docs[flat[i]] = json.loads(indexed)
    finally:
        r.close()

    def ev(rule, d):
        tags = set(d.get("tags", []))
        emp = d.get("attrs", {}).get("employees")
        reg = d.get("region", "")
        return {
            RULES[0]: "t0" in tags,
            RULES[1]: "t1" in tags and emp is not None and emp < 500,
            RULES[2]: reg.startswith("3302"),
            RULES[3]: d["kind"] == "citizen" or "t2" in tags,
            RULES[4]: "t0" not in tags,
            RULES[5]: emp is not None and emp >= 100,
            RULES[6]: emp is not None and not (reg.startswith("3301") or reg.startswith("3303")),
        }[rule]

    return {rule: sum(1 for d in docs.values() if ev(rule, d)) for rule in RULES}


def counts(z):
    """The instance's count per rule, or None while it answers 503 (its index is rebuilding)."""
    out = {}
    for rule in RULES:
        st, body = z.call("POST", "/v1/rules:preview", {"rule": rule, "sample": 0})
        if st == 503 and body["error"]["code"] == "index_rebuilding":
            return None
        assert st == 200, body
        out[rule] = body["count"]
    return out


def assert_converges(redis, instances, nparts=4, timeout=30):
    truth = redis_truth(redis, nparts)
    deadline = time.monotonic() + timeout
    while True:
        got = [counts(z) for z in instances]
        if all(g == truth for g in got):
            return truth
        if time.monotonic() > deadline:
            raise AssertionError("index differs from Redis:\ntruth %s\ngot %s" % (truth, got))
        time.sleep(0.2)


@pytest.fixture()
def cluster(tmp_path):
    redis = RedisServer(str(tmp_path), appendonly=True)
    started = []
    try:
        for name in ("a", "b"):
            started.append(Zhidad(str(tmp_path), redis.port, name=name))
        yield (redis, *started)
    finally:
        for z in started:
            if z.proc:
                z.stop()
        redis.stop()


def writer(z, ids, seed, n):
    rng = random.Random(seed)
    for _ in range(n):
        pid = rng.choice(ids)
        if rng.random() < 0.15:
            z.call("DELETE", "/v1/profiles/" + pid, key="app")
        elif rng.random() < 0.3:
            z.call("PATCH", "/v1/profiles/" + pid, {"tags": rng.sample(["t0", "t1", "t2"], 1)},
                   key="app")
        else:
            z.call("PUT", "/v1/profiles/" + pid, random_profile(rng), key="app")


def test_concurrent_writers_two_instances_converge(cluster):
    redis, a, b = cluster
    ids = ["s%03d" % i for i in range(60)]
    threads = [threading.Thread(target=writer, args=(z, ids, seed, 300))
               for seed, z in enumerate([a, b, a, b, a, b])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_converges(redis, [a, b])


def test_restart_rebuilds_from_redis(cluster):
    redis, a, b = cluster
    rng = random.Random(7)
    for i in range(200):
        a.call("PUT", "/v1/profiles/k%03d" % i, random_profile(rng), key="app")
    truth = assert_converges(redis, [a, b])
    b.stop(sig=signal.SIGKILL, expect_clean=False)
    for i in range(0, 200, 3):
        a.call("DELETE", "/v1/profiles/k%03d" % i, key="app")
    b.start()
    assert_converges(redis, [a, b])
    assert truth != redis_truth(redis, 4)


def test_redis_restart_with_aof(cluster):
    redis, a, b = cluster
    rng = random.Random(11)
    for i in range(100):
        a.call("PUT", "/v1/profiles/q%03d" % i, random_profile(rng), key="app")
    assert_converges(redis, [a, b])
    redis.stop(sig=signal.SIGKILL)
    redis.start()  # AOF (everysec) brings the data back, minus at most ~1 s of writes
    wait_until(lambda: a.call("GET", "/readyz", key=None)[0] == 200, what="a ready again")
    for i in range(100, 150):
        wait_until(lambda: a.call("PUT", "/v1/profiles/q%03d" % i, random_profile(rng),
                                  key="app")[0] == 200, what="write after redis restart")
    assert_converges(redis, [a, b])


def test_trimmed_stream_forces_rebuild(tmp_path):
    redis = RedisServer(str(tmp_path))
    cfg = {"change_stream_maxlen": 1000}
    a = b = None
    try:
        a = Zhidad(str(tmp_path), redis.port, name="a", extra_config=cfg)
        b = Zhidad(str(tmp_path), redis.port, name="b", extra_config=cfg)
        rng = random.Random(3)
        b.proc.send_signal(signal.SIGSTOP)  # b misses everything while a writes
        lines = [json.dumps(dict(random_profile(rng), id="g%05d" % i), ensure_ascii=False)
                 for i in range(12000)]
        st, res = a.call("POST", "/v1/profiles:import", raw="\n".join(lines).encode(), key="app")
        assert st == 200 and res["imported"] == 12000, res
        r = redis.client()
        assert r("XLEN", "zd:{p0}:changes") < 2000  # the streams were trimmed
        r.close()
        b.proc.send_signal(signal.SIGCONT)
        assert_converges(redis, [a, b], timeout=40)
        assert "rebuilding" in b.read_log()
    finally:
        if b and b.proc:
            b.proc.send_signal(signal.SIGCONT)  # never leave a stopped process behind
        for z in (a, b):
            if z:
                z.stop()
        redis.stop()


def rule_count(z, rule):
    st, body = z.call("POST", "/v1/rules:preview", {"rule": rule, "sample": 0})
    assert st == 200, body
    return body["count"]


def metric(z, name):
    st, text = z.call("GET", "/metrics", key=None)
    assert st == 200
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric %s" % name)


def test_trimmed_stream_while_stopped_after_tag_changes(tmp_path):
    """Issue #5 item 1, the exact trigger: A is stopped while B imports 6,000 tag changes into
    streams trimmed at ~1,000 entries. A's blocked XREAD was answered with the first batch
    before the trim, so A reads some entries, then skips the trimmed ones: counting entries
    read (not their ordinals) hid the gap and A's count stayed wrong forever."""
    redis = RedisServer(str(tmp_path))
    cfg = {"change_stream_maxlen": 1000}
    a = b = None
    try:
        a = Zhidad(str(tmp_path), redis.port, name="a", extra_config=cfg)
        b = Zhidad(str(tmp_path), redis.port, name="b", extra_config=cfg)
        ids = ["t%05d" % i for i in range(6000)]
        # The population arrives in steps A keeps up with, so that A starts in sync.
        for k in range(0, 6000, 500):
            base = [json.dumps(dict(enterprise(tags=["old"]), id=i), ensure_ascii=False)
                    for i in ids[k:k + 500]]
            st, res = b.call("POST", "/v1/profiles:import", raw="\n".join(base).encode(),
                             key="app")
            assert st == 200 and res["imported"] == 500, res
            wait_until(lambda: rule_count(a, 'tags has "old"') == k + 500, what="a caught up")
        rebuilds_before = metric(a, "zhida_index_rebuilds_total")
        a.proc.send_signal(signal.SIGSTOP)
        changed = [json.dumps(dict(enterprise(tags=["new"]), id=i), ensure_ascii=False)
                   for i in ids]
        st, res = b.call("POST", "/v1/profiles:import", raw="\n".join(changed).encode(),
                         key="app")
        assert st == 200 and res["imported"] == 6000, res
        r = redis.client()
        assert r("XLEN", "zd:{p0}:changes") < 2000  # the streams were trimmed under A
        r.close()
        a.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: rule_count(a, 'tags has "new"') == 6000, timeout=60,
                   what="a's count to reach B's 6,000")
        assert rule_count(b, 'tags has "new"') == 6000
        assert rule_count(a, 'tags has "old"') == 0
        assert metric(a, "zhida_index_rebuilds_total") > rebuilds_before
        assert_converges(redis, [a, b])
    finally:
        if a and a.proc:
            a.proc.send_signal(signal.SIGCONT)  # never leave a stopped process behind
        for z in (a, b):
            if z:
                z.stop()
        redis.stop()


def assert_samples_agree(z, rules=RULES, n=30):
    """Every sampled id of a preview exists in Redis and explain (which reads Redis) says it
    matches: the index hands out no id of a profile Redis does not hold under that gid."""
    for rule in rules:
        st, body = z.call("POST", "/v1/rules:preview", {"rule": rule, "sample": n})
        assert st == 200, body
        for pid in body["sample"]:
            st, ex = z.call("POST", "/v1/rules:explain", {"rule": rule, "profile": pid})
            assert st == 200, (rule, pid, ex)
            assert ex["match"] is True, (rule, pid, ex)


def test_redis_restarted_empty_with_racing_writes(tmp_path):
    """Issue #5 item 2: Redis restarts without its data (no AOF) while both instances hold
    2,000 profiles, and new profiles are written through B while A reconnects. Dense ids start
    again at 1, so old index entries must not be aliased by new profiles: both instances must
    notice the new data set, rebuild, and agree with Redis and with explain."""
    redis = RedisServer(str(tmp_path))  # no AOF: a restart comes back empty
    a = b = None
    try:
        a = Zhidad(str(tmp_path), redis.port, name="a")
        b = Zhidad(str(tmp_path), redis.port, name="b")
        rng = random.Random(5)
        lines = [json.dumps(dict(random_profile(rng), id="o%05d" % i), ensure_ascii=False)
                 for i in range(2500)]
        st, res = b.call("POST", "/v1/profiles:import", raw="\n".join(lines).encode(), key="app")
        assert st == 200 and res["imported"] == 2500, res
        assert_converges(redis, [a, b])
        redis.stop(sig=signal.SIGKILL)
        redis.start()  # same port, empty
        # Write as soon as B's API connection is back, while A is still reconnecting.
        written = 0
        while written < 300:
            st, _ = b.call("PUT", "/v1/profiles/n%04d" % written, random_profile(rng), key="app")
            if st == 200:
                written += 1
            else:
                time.sleep(0.01)
        truth = assert_converges(redis, [a, b], timeout=60)
        assert truth[RULES[4]] + truth[RULES[0]] == 300  # only the new data set
        for z in (a, b):
            assert_samples_agree(z)
            st, body = z.call("POST", "/v1/rules:preview", {"rule": RULES[4], "sample": 1000})
            assert st == 200 and all(pid.startswith("n") for pid in body["sample"]), body
    finally:
        for z in (a, b):
            if z:
                z.stop()
        redis.stop()


def kill_followers(redis):
    """Drops every zhidad follower connection, so each reconnects and probes its streams before
    it reads again (the probe is queued ahead of the next XREAD on the same connection)."""
    r = redis.client()
    try:
        for line in r("CLIENT", "LIST").splitlines():
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if f.get("name") == "zhidad-follower":
                r("CLIENT", "KILL", "ID", f["id"])
    finally:
        r.close()


def test_deleted_entries_rebuild_only_followers_behind_them(tmp_path):
    """Change-stream entries deleted by XDEL (the privacy eraser removes old entries of deleted
    profiles): a follower that already read them must not rebuild; one that had not read them
    yet must, since it will never see them."""
    redis = RedisServer(str(tmp_path))
    a = b = None
    try:
        a = Zhidad(str(tmp_path), redis.port, name="a")
        b = Zhidad(str(tmp_path), redis.port, name="b")
        rng = random.Random(9)
        for i in range(40):
            st, _ = b.call("PUT", "/v1/profiles/x%03d" % i, random_profile(rng), key="app")
            assert st == 200
        assert_converges(redis, [a, b])
        gaps = metric(a, "zhida_changes_gaps_total")
        r = redis.client()
        read = [e[0] for e in r("XRANGE", "zd:{p0}:changes", "-", "+", "COUNT", 5)]
        assert read and r("XDEL", "zd:{p0}:changes", *read) == len(read)
        r.close()
        kill_followers(redis)
        # A write A applies from its stream proves A's follower reconnected and probed.
        st, _ = b.call("PUT", "/v1/profiles/x999", enterprise(tags=["t0", "t2"]), key="app")
        assert st == 200
        assert_converges(redis, [a, b])
        assert metric(a, "zhida_changes_gaps_total") == gaps
        assert metric(a, "zhida_index_rebuilds_total") == 0

        a.proc.send_signal(signal.SIGSTOP)
        for i in range(40, 60):
            st, _ = b.call("PUT", "/v1/profiles/x%03d" % i, random_profile(rng), key="app")
            assert st == 200
        r = redis.client()
        last = r("XREVRANGE", "zd:{p0}:changes", "+", "-", "COUNT", 1)[0][0]
        assert r("XDEL", "zd:{p0}:changes", last) == 1  # an entry A has not read
        r.close()
        a.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: metric(a, "zhida_changes_gaps_total") > gaps, timeout=30,
                   what="a to notice the entry deleted before it read it")
        assert_converges(redis, [a, b])
    finally:
        if a and a.proc:
            a.proc.send_signal(signal.SIGCONT)
        for z in (a, b):
            if z:
                z.stop()
        redis.stop()
