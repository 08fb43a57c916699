"""Fault tests of the delivery pipeline (issue #6, SPEC §4 "at-least-once"): real redis-server
(AOF on), real zhidad processes, a real webhook receiver, and a nemesis that kills or cuts one
of them in the middle of a dispatch. After each fault the checker (delivery_check.py)
compares who was matched with who the receiver saw:
lost = 0, unexpected recipients = 0, duplicates counted and reported, pending drained, funnel
arithmetic holds and funnel delivered == distinct notices received.

Every wait is a bounded poll with a generous bound: the bounds are there so that a hang fails
the test, not to measure speed. Only processes the test started are signalled, by their own
Popen handle."""
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import RedisServer, Zhidad, wait_until, free_port
from delivery_check import (FunnelWatcher, assert_ok, check, get_policy, wait_drained,
                            xpending)
from webhook_receiver import Receiver

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "receivers")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LEASE = "zd:{pol}:lease"

# A large dispatch: 20,000 matched enterprises (and 2,000 that must not hear of it), sent 50 a
# request, 4 requests at once, each answered after SLOW_MS: several seconds of dispatch, so
# the nemesis strikes in its middle.
N_MATCH = 20000
N_OTHER = 2000
SLOW_MS = 100
BATCH = 50
CONCURRENCY = 4


def gateway(rx, name, batch=BATCH, concurrency=CONCURRENCY, timeout_ms=2000, **kw):
    """The webhook gateway "zlb" to the receiver; each instance sends its own name in a static
    header so the receiver can tell which instance delivered what."""
    g = {"type": "webhook", "url": rx.url("/ok"), "secret": SECRET, "batch": batch,
         "concurrency": concurrency, "timeout_ms": timeout_ms, "retry_base_ms": 100,
         "retry_max_ms": 1000, "max_attempts": 1000, "headers": {"X-Zd-Instance": name}}
    g.update(kw)
    return g


def start_zd(tmp, redis, rx, name="zd-a", gw=None, delivery=None):
    cfg = {
        "gateways": {"zlb": gw or gateway(rx, name), "inbox": {"type": "inbox"}},
        # claim_idle_ms above the gateway's timeout: a slow request is not a dead consumer.
        "delivery": dict({"consumer": name, "claim_idle_ms": 3000, "lease_ms": 1500},
                         **(delivery or {})),
        "redis_client": {"reconnect_max_ms": 300, "deadline_ms": 3000},
    }
    return Zhidad(tmp, redis.port, name=name, extra_config=cfg)


def import_population(z, tag="fault", n_match=N_MATCH, n_other=N_OTHER, prefix="f"):
    """n_match enterprises tagged `tag` (the audience) and n_other tagged "other"; ids known."""
    audience = ["%s%06d" % (prefix, i) for i in range(n_match)]
    others = ["%so%05d" % (prefix, i) for i in range(n_other)]
    lines = []
    for pid, t in [(p, tag) for p in audience] + [(p, "other") for p in others]:
        lines.append(json.dumps({
            "id": pid, "kind": "enterprise", "region": "330106",
            "attrs": {"industry": "C1311", "employees": 10, "founded": "2019-05-01",
                      "scale": "small"},
            "tags": [t], "contacts": {"zlb": "ent-" + pid}}))
    for off in range(0, len(lines), 10000):
        chunk = ("\n".join(lines[off:off + 10000]) + "\n").encode()
        st, res = z.call("POST", "/v1/profiles:import", raw=chunk, key="app", timeout=300)
        assert st == 200 and res["failed"] == 0, (st, res)
    rule = 'tags has "%s"' % tag
    # The audience is what zhidad itself says the rule matches.
    wait_until(lambda: z.call("POST", "/v1/rules:preview", {"rule": rule})[1]["count"]
               == n_match, timeout=60, what="the index to hold the population")
    return rule, audience


def publish(z, pid, rule, **extra):
    body = {"id": pid, "title": "杭州市小微企业稳岗补贴", "summary": "稳岗补贴申领",
            "url": "https://example.gov.cn/p/1", "issuer": "杭州市人力社保局",
            "category": "employment", "rule": rule, "routes": ["zlb"]}
    body.update(extra)
    st, res = z.call("POST", "/v1/policies", body)
    assert st in (200, 201, 202), (st, res)
    return res


def received(rx, pid):
    p = pid + ":"
    return sum(1 for a in list(rx.accepted) if isinstance(a[0], str) and a[0].startswith(p))


def wait_received(rx, pid, n, timeout=180, procs=()):
    def enough():
        for pr in procs:
            assert pr.proc is None or pr.proc.poll() is None, "%s exited: %s" % (
                pr.name, pr.read_log()[-3000:])
        return received(rx, pid) >= n
    wait_until(enough, timeout=timeout, step=0.02, what="%d notices of %s" % (n, pid))


def kill9(z):
    """SIGKILL of a zhidad this test started (its own Popen handle)."""
    z.proc.send_signal(signal.SIGKILL)
    z.proc.wait(timeout=30)
    z.proc = None
    z.log.close()


def rc_of(redis):
    return lambda: redis.client()


@pytest.fixture
def env(tmp_path):
    """A redis-server with AOF (appendfsync always: an acknowledged write is on disk) and a
    receiver; zhidads are the test's own. Everything started is stopped at the end."""
    tmp = str(tmp_path)
    redis = RedisServer(tmp, appendonly=True, args=["--appendfsync", "always"])
    rx = Receiver(secrets=[SECRET], keep_requests=False)
    zds = []
    yield tmp, redis, rx, zds
    for z in zds:
        if z.proc is not None:
            z.stop()
    rx.close()
    redis.stop()


def finish(z, redis, rx, pid, audience, name, timeout=300, watcher=None):
    doc = wait_drained(z, rc_of(redis), pid, timeout=timeout)
    if watcher:
        assert watcher.stop() > 0
    r = check(z, rc_of(redis), pid, audience, ["zlb"], list(rx.accepted), doc=doc, name=name)
    assert_ok(r)
    return r


def test_end_to_end_standardwebhooks_receiver_sees_every_matched_profile_once(tmp_path):
    """No fault: every matched profile's notice reaches a receiver that checks each request's
    signature with the Standard Webhooks reference library (npm standardwebhooks)."""
    if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        pytest.fail("node and tests/integration/receivers/node_modules are needed: "
                    "run deploy/install-deps.sh")
    tmp = str(tmp_path)
    redis = RedisServer(tmp, appendonly=True)
    port = free_port()
    node = subprocess.Popen(["node", os.path.join(NODE_DIR, "verify_receiver.mjs"), str(port),
                             SECRET], stdout=subprocess.PIPE, text=True)
    lines = []
    z = None
    try:
        assert node.stdout.readline().strip() == "listening"
        reader = threading.Thread(target=lambda: [lines.append(json.loads(x))
                                                  for x in node.stdout], daemon=True)
        reader.start()

        class Url:
            def url(self, path):
                return "http://127.0.0.1:%d%s" % (port, path)
        z = start_zd(tmp, redis, None, gw=gateway(Url(), "zd-a", batch=7))
        rule, audience = import_population(z, n_match=700, n_other=100, prefix="e")
        publish(z, "e2e-node", rule)
        doc = wait_drained(z, rc_of(redis), "e2e-node", timeout=180)
        accepted = [(nid, all(x["verified"]) and not x["errors"]) for x in list(lines)
                    for nid in x["ids"]]
        assert all(all(x["verified"]) for x in lines), lines[:3]
        r = check(z, rc_of(redis), "e2e-node", audience, ["zlb"], accepted, doc=doc,
                  name="e2e_standardwebhooks")
        assert_ok(r)
        assert r.duplicates == 0, r
    finally:
        if z is not None and z.proc is not None:
            z.stop()
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=20)
        redis.stop()


def test_sigkill_zhidad_mid_dispatch_then_restart(env):
    tmp, redis, rx, zds = env
    z = start_zd(tmp, redis, rx)
    zds.append(z)
    rule, audience = import_population(z)
    rx.set_mode("slow", SLOW_MS)
    publish(z, "kill-zhidad", rule)
    w = FunnelWatcher(lambda: [z], "kill-zhidad")
    wait_received(rx, "kill-zhidad", N_MATCH * 3 // 10, procs=[z])
    kill9(z)
    at_kill = received(rx, "kill-zhidad")
    rc = redis.client()
    pending_at_kill = xpending(rc, "kill-zhidad")
    rc.close()
    z.start()
    r = finish(z, redis, rx, "kill-zhidad", audience, "sigkill_zhidad", watcher=w)
    print("sigkill_zhidad: received %d before the kill, %d entries pending then"
          % (at_kill, pending_at_kill))
    assert at_kill < N_MATCH, "the kill came after the dispatch: nothing was tested"


def test_redis_killed_and_restarted_from_its_aof_mid_dispatch(env):
    tmp, redis, rx, zds = env
    z = start_zd(tmp, redis, rx)
    zds.append(z)
    rule, audience = import_population(z)
    rx.set_mode("slow", SLOW_MS)
    publish(z, "kill-redis", rule)
    w = FunnelWatcher(lambda: [z], "kill-redis")
    wait_received(rx, "kill-redis", N_MATCH * 3 // 10, procs=[z])
    redis.stop(signal.SIGKILL)
    at_kill = received(rx, "kill-redis")
    time.sleep(1.0)  # zhidad's sends and settles now fail against a dead Redis
    redis.start()  # same port, same dir: loads the AOF
    finish(z, redis, rx, "kill-redis", audience, "sigkill_redis", watcher=w)
    assert at_kill < N_MATCH, "the kill came after the dispatch: nothing was tested"
    assert z.proc.poll() is None


def test_receiver_down_then_500s_then_lost_answers_then_back(env):
    """Connection refused for a while, then 500s, then requests taken but never answered (a
    lost 200: the sender must retry, the receiver gets duplicates), then 200 again: retries
    with back-off deliver everything; nothing goes dead (max_attempts is high); duplicates
    are counted and reported."""
    tmp, redis, rx, zds = env
    z = start_zd(tmp, redis, rx)
    zds.append(z)
    rule, audience = import_population(z, n_match=5000, n_other=500)
    rx.set_mode("slow", 20)
    publish(z, "rx-down", rule)
    w = FunnelWatcher(lambda: [z], "rx-down")
    wait_received(rx, "rx-down", 1000, procs=[z])
    rx.down()

    # While down the funnel shows notices retrying (the sends failed and were rescheduled).
    def retrying():
        st, doc = get_policy(z, "rx-down")
        return st == 200 and doc["funnel"]["pending"]["retrying"] > 0
    wait_until(retrying, timeout=60, step=0.1,
               what="notices retrying while the receiver is down")
    time.sleep(2)
    rx.up()
    rx.set_mode("status", 500)
    seen = len(rx.arrivals)
    wait_until(lambda: len(rx.arrivals) > seen + 3 * BATCH, timeout=60,
               what="zhidad to retry against the 500s")
    rx.set_mode("drop")
    n = len(rx.accepted)
    wait_until(lambda: len(rx.accepted) > n + 3 * BATCH, timeout=60,
               what="requests whose answer is lost")
    rx.set_mode(None)
    r = finish(z, redis, rx, "rx-down", audience, "receiver_down", watcher=w)
    assert r.funnel["dead"] == 0, r
    # The lost answers' notices came again: counted, not hidden.
    assert r.duplicates > 0, r


def test_two_instances_share_a_dispatch_and_one_is_killed(env):
    tmp, redis, rx, zds = env
    a = start_zd(tmp, redis, rx, name="zd-a")
    b = start_zd(tmp, redis, rx, name="zd-b")
    zds += [a, b]
    rule, audience = import_population(a)
    wait_until(lambda: b.call("POST", "/v1/rules:preview", {"rule": rule})[1]["count"]
               == N_MATCH, timeout=60, what="the second instance's index")
    rx.set_mode("slow", SLOW_MS)
    publish(a, "two-inst", rule)
    w = FunnelWatcher(lambda: [a, b], "two-inst")

    def by_instance():
        c = {}
        for nid, _, _, h in list(rx.accepted):
            if nid.startswith("two-inst:"):
                c[h.get("x-zd-instance")] = c.get(h.get("x-zd-instance"), 0) + 1
        return c
    # Both instances take part before the kill.
    wait_until(lambda: len(by_instance()) == 2 and min(by_instance().values()) >= 500,
               timeout=180, what="both instances to deliver")
    wait_received(rx, "two-inst", N_MATCH * 4 // 10, procs=[a, b])
    # The victim is the instance holding work entries now (pending, not acknowledged), so
    # that its death leaves work for the survivor to reclaim.
    rc = redis.client()
    held = {}

    def someone_holds_work():
        pend = rc("XPENDING", "zd:{d:two-inst}:work", "zd")
        held.clear()
        held.update((c, int(n)) for c, n in (pend[3] or []))
        return any(held.values())
    wait_until(someone_holds_work, timeout=60, step=0.01, what="pending work entries")
    victim_name = max(held, key=held.get)
    victim, survivor = (a, b) if victim_name == "zd-a" else (b, a)
    kill9(victim)
    victim_pending = dict((c, int(n)) for c, n in
                          (rc("XPENDING", "zd:{d:two-inst}:work", "zd")[3] or [])).get(
                              victim_name, 0)
    rc.close()
    before = by_instance()
    r = finish(survivor, redis, rx, "two-inst", audience, "two_instances", watcher=w)
    after = by_instance()
    print("two_instances: killed %s holding %d work entries; delivered per instance before "
          "the kill %s, after %s" % (victim_name, victim_pending, before, after))
    assert victim_pending > 0
    assert after[survivor.name] > before.get(survivor.name, 0)
    # Nothing is left on the dead consumer: its entries were reclaimed by the survivor.
    rc = redis.client()
    pend = rc("XPENDING", "zd:{d:two-inst}:work", "zd")
    rc.close()
    assert int(pend[0]) == 0, pend


def test_scheduler_leader_killed_the_other_starts_the_policy(env):
    tmp, redis, rx, zds = env
    a = start_zd(tmp, redis, rx, name="zd-a")
    b = start_zd(tmp, redis, rx, name="zd-b")
    zds += [a, b]
    by_name = {"zd-a": a, "zd-b": b}
    rule, audience = import_population(a, n_match=1000, n_other=100, prefix="s")
    wait_until(lambda: b.call("POST", "/v1/rules:preview", {"rule": rule})[1]["count"]
               == 1000, timeout=60, what="the second instance's index")
    rc = redis.client()
    wait_until(lambda: rc("GET", LEASE) is not None, timeout=30, what="a scheduler lease")
    holder, fence = rc("GET", LEASE).rsplit("/", 1)
    assert holder in by_name, holder
    leader, other = by_name[holder], by_name["zd-b" if holder == "zd-a" else "zd-a"]
    publish_at_ms = int(time.time() * 1000) + 6000
    publish_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(publish_at_ms // 1000)) + \
        ".%03dZ" % (publish_at_ms % 1000)
    res = publish(other, "sched", rule, publish_at=publish_at)
    assert res["status"] == "scheduled", res
    w = FunnelWatcher(lambda: [a, b], "sched")
    kill9(leader)
    # The survivor takes the lease with a higher fence and starts the policy when due.
    wait_until(lambda: (rc("GET", LEASE) or "").startswith(other.name + "/"), timeout=60,
               what="the other instance to take the lease")
    new_fence = int(rc("GET", LEASE).rsplit("/", 1)[1])
    assert new_fence > int(fence)
    r = finish(other, redis, rx, "sched", audience, "scheduler_leader_killed", watcher=w)
    meta_pub = rc("HGET", "zd:{d:sched}:meta", "publish_at_ms")
    started = rc("HGET", "zd:{d:sched}:meta", "started_ms")
    rc.close()
    if meta_pub and started:
        assert int(started) >= int(meta_pub), (started, meta_pub)
    assert r.matched == 1000


def test_withdraw_mid_dispatch_stops_new_sends(env):
    tmp, redis, rx, zds = env
    z = start_zd(tmp, redis, rx)
    zds.append(z)
    rule, audience = import_population(z)
    rx.set_mode("slow", SLOW_MS)
    publish(z, "withdraw-mid", rule)
    w = FunnelWatcher(lambda: [z], "withdraw-mid")
    wait_received(rx, "withdraw-mid", N_MATCH // 5, procs=[z])
    st, res = z.call("POST", "/v1/policies/withdraw-mid:withdraw")
    assert st in (200, 202), (st, res)
    t_withdraw = time.monotonic()
    at_withdraw = received(rx, "withdraw-mid")
    seen_at_withdraw = len(rx.arrivals)

    # The arrivals stop: bounded wait for 3 s without any new request.
    def quiet():
        last = max([s[2] for s in list(rx.arrivals)] or [0])
        return time.monotonic() - last > 3
    wait_until(quiet, timeout=120, step=0.2, what="the receiver's arrivals to stop")
    doc = wait_drained(z, rc_of(redis), "withdraw-mid", timeout=120)
    assert w.stop() > 0
    assert doc["status"] == "withdrawn", doc
    late = [s for s in list(rx.arrivals)[seen_at_withdraw:] if s[0].startswith("withdraw-mid:")
            and s[2] > t_withdraw]
    print("withdraw: %d notices received before the withdraw answer, %d arrived after it "
          "(in flight), funnel %s" % (at_withdraw, len(late), doc["funnel"]))
    # In flight at the withdraw: the batches the engine had already handed to the gateway, at
    # most 2 x its concurrency (one being sent and one ready behind it per slot); nothing
    # taken from Redis after the withdraw is sent.
    assert len(late) <= 2 * CONCURRENCY * BATCH, len(late)
    r = check(z, rc_of(redis), "withdraw-mid", audience, ["zlb"], list(rx.accepted), doc=doc,
              name="withdraw")
    assert_ok(r)
    assert r.funnel["withdrawn"] > 0 and r.funnel["withdrawn"] + r.funnel["delivered"] == \
        N_MATCH, r


def test_sigkill_zhidad_during_fan_out_and_twice_more_while_sending(env):
    """Small fan-out chunks make the fan-out itself long enough to be hit: the first kill
    lands while chunks are still being written (0 < fanned < chunks), the restarted instance
    resumes the fan-out from meta.fanned; two more kills land while sending."""
    tmp, redis, rx, zds = env
    z = start_zd(tmp, redis, rx, delivery={"chunk": 50})
    zds.append(z)
    rule, audience = import_population(z)
    rx.set_mode("slow", SLOW_MS)
    publish(z, "kill-fanout", rule)
    w = FunnelWatcher(lambda: [z], "kill-fanout")
    rc = redis.client()
    meta = "zd:{d:kill-fanout}:meta"

    def fanning():
        f, c = rc("HMGET", meta, "fanned", "chunks")
        return c is not None and f is not None and 0 < int(f) < int(c)
    wait_until(fanning, timeout=120, step=0.005, what="the fan-out to be under way")
    kill9(z)
    fanned, chunks = rc("HMGET", meta, "fanned", "chunks")
    z.start()
    kills = ["fan-out %s/%s chunks" % (fanned, chunks)]
    for frac in (4, 7):
        wait_received(rx, "kill-fanout", N_MATCH * frac // 10, procs=[z])
        kill9(z)
        kills.append("%d received" % received(rx, "kill-fanout"))
        z.start()
    rc.close()
    r = finish(z, redis, rx, "kill-fanout", audience, "sigkill_fanout_and_sends", watcher=w)
    print("sigkill x3: kills at %s; duplicates %d" % (kills, r.duplicates))
    assert int(fanned) < int(chunks)


def test_redis_killed_while_notices_wait_for_retry_and_zhidad_killed_too(env):
    """The receiver answers 500 so notices pile up in the retry zset; Redis is SIGKILLed and
    restarted from its AOF, then zhidad is SIGKILLed and restarted, then the receiver heals:
    the retries survive both (they live in Redis, written with appendfsync always)."""
    tmp, redis, rx, zds = env
    z = start_zd(tmp, redis, rx)
    zds.append(z)
    rule, audience = import_population(z, n_match=5000, n_other=500, prefix="r")
    rx.set_mode("slow", 20)
    publish(z, "retry-kill", rule)
    w = FunnelWatcher(lambda: [z], "retry-kill")
    wait_received(rx, "retry-kill", 1500, procs=[z])
    rx.set_mode("status", 500)
    rc = redis.client()
    wait_until(lambda: int(rc("ZCARD", "zd:{d:retry-kill}:retry")) >= 2 * BATCH, timeout=60,
               what="notices waiting in the retry zset")
    rc.close()
    redis.stop(signal.SIGKILL)
    time.sleep(0.5)
    redis.start()
    rc = redis.client()
    in_retry = int(rc("ZCARD", "zd:{d:retry-kill}:retry"))
    rc.close()
    kill9(z)
    z.start()
    rx.set_mode(None)
    r = finish(z, redis, rx, "retry-kill", audience, "retry_zset_across_kills", watcher=w)
    print("retry across kills: %d retries in the zset after the Redis restart" % in_retry)
    assert r.funnel["dead"] == 0, r


def test_redis_stalled_past_the_command_deadline_mid_dispatch(env):
    """SIGSTOP of redis-server for longer than redis_client.deadline_ms: zhidad's commands
    time out (their outcome unknown), the connections are closed and reopened; after SIGCONT
    the dispatch finishes with nothing lost."""
    tmp, redis, rx, zds = env
    z = start_zd(tmp, redis, rx)
    zds.append(z)
    rule, audience = import_population(z, n_match=10000, n_other=1000, prefix="t")
    rx.set_mode("slow", SLOW_MS)
    publish(z, "stall", rule)
    w = FunnelWatcher(lambda: [z], "stall")
    wait_received(rx, "stall", 3000, procs=[z])
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(5)  # past deadline_ms (3000)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    r = finish(z, redis, rx, "stall", audience, "redis_stalled", watcher=w)
    assert r.received_distinct == 10000
    # Settles whose answer the stall swallowed are sent again (they are idempotent), so only
    # notices in the gateway's hands when Redis stopped can arrive twice — not whole entries
    # reclaimed and re-sent (4,050 of 10,000 before settles were retried).
    assert r.duplicates <= 2 * CONCURRENCY * BATCH, r
