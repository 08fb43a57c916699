"""A Jepsen-style checker for a policy's delivery (SPEC §4 "at-least-once", issue #6): it
compares who was matched with who the receiver saw, and with what Redis and the funnel say.

Inputs:
  - the expected audience: the profile ids the policy's rule matches (the tests create the
    population, so they know them; `preview_count` cross-checks the count with zhidad's own
    POST /v1/rules:preview),
  - the receiver's log of accepted notices: (notice id "policy:profile:gateway", signature
    verified, ...) tuples, as webhook_receiver.Receiver.accepted or the Node receiver's lines,
  - Redis: XPENDING of zd:{d:<policy>}:work group zd, and the retry zset zd:{d:<policy>}:retry,
  - the funnel: GET /v1/policies/{id}.

It reports
  lost        matched, not accounted for as dead / withdrawn / suppressed, never seen by the
              receiver (the per-notice state comes from GET .../deliveries/{profile});
  unexpected  seen by the receiver, not matched (other policies' notices are ignored);
  duplicates  notices accepted more than once (allowed: at-least-once; counted and reported);
  unverified  accepted notices whose Standard Webhooks signature did not verify;
  pending     XPENDING count + retry zset size + the funnel's pending buckets;
and `assert_ok` demands lost == 0, unexpected == 0, unverified == 0, pending drained, funnel
arithmetic (suppressed + pending + delivered + dead + withdrawn = matched, per route, and
matched x routes in total) and funnel delivered == distinct notices received.
"""
import collections
import json
import time

SUPPRESSED = ("muted", "no_contact", "capped", "duplicate", "holdout")
PENDING = ("queued", "deferred", "retrying")
FINAL_STATUSES = ("done", "active", "withdrawn")
# Per-notice states that account for a notice the receiver never saw.
ACCOUNTED = {"dead", "withdrawn"} | set(SUPPRESSED)
PER_NOTICE_MAX = 400


def work_key(policy):
    return "zd:{d:%s}:work" % policy


def retry_key(policy):
    return "zd:{d:%s}:retry" % policy


def buckets(obj):
    """The flat bucket counts of a funnel object (the total "funnel" or one "routes" entry,
    whose buckets are either at its top level or under "funnel")."""
    f = obj.get("funnel", obj) if isinstance(obj.get("funnel"), dict) else obj
    sup = f.get("suppressed") or {}
    pen = f.get("pending") or {}
    out = {k: int(sup.get(k, 0)) for k in SUPPRESSED}
    out.update({k: int(pen.get(k, 0)) for k in PENDING})
    for k in ("delivered", "dead", "withdrawn"):
        out[k] = int(f.get(k, 0))
    return out


def bucket_sum(b):
    return sum(b[k] for k in SUPPRESSED + PENDING + ("delivered", "dead", "withdrawn"))


def pending_of(b):
    return sum(b[k] for k in PENDING)


def funnel_problems(doc):
    """Every way the funnel's arithmetic fails (empty when it holds)."""
    problems = []
    matched = int(doc.get("matched", 0))
    routes = doc.get("routes") or []
    total = buckets(doc["funnel"]) if isinstance(doc.get("funnel"), dict) else None
    if total is None:
        return ["no funnel object in %s" % json.dumps(doc)[:300]]
    if bucket_sum(total) != matched * max(len(routes), 1):
        problems.append("total buckets %d != matched %d x routes %d: %s"
                        % (bucket_sum(total), matched, len(routes), total))
    if "notices" in doc and int(doc["notices"]) != matched * len(routes):
        problems.append("notices %s != matched %d x routes %d" % (doc["notices"], matched,
                                                                  len(routes)))
    sums = collections.Counter()
    for i, r in enumerate(routes):
        b = buckets(r)
        sums.update(b)
        if bucket_sum(b) != matched:
            problems.append("route %d (%s): buckets %d != matched %d: %s"
                            % (i, json.dumps(r.get("route")), bucket_sum(b), matched, b))
    if routes and any(sums[k] != total[k] for k in total):
        problems.append("totals %s are not the sum of the routes %s" % (total, dict(sums)))
    return problems


def xpending(rc, policy):
    """Entries of the policy's work stream delivered to a consumer and not acknowledged."""
    try:
        r = rc("XPENDING", work_key(policy), "zd")
    except RuntimeError as e:  # NOGROUP: no stream (nothing fanned out) or no group yet
        if "NOGROUP" in str(e) or "no such key" in str(e):
            return 0
        raise
    return int(r[0]) if r else 0


def retry_count(rc, policy):
    return int(rc("ZCARD", retry_key(policy)))


def get_policy(zd, policy, key="admin"):
    st, doc = zd.call("GET", "/v1/policies/" + policy, key=key, timeout=10)
    return st, doc


def wait_drained(zd, rc_factory, policy, timeout=240.0, key="admin"):
    """Polls until the policy is final (done/active/withdrawn), its funnel has nothing
    pending, its work stream nothing pending and its retry zset is empty. Tolerates a
    restarting zhidad or Redis. Returns the last GET document; raises AssertionError with
    the last state seen when the bound passes (a generous bound: not a timing assertion)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            st, doc = get_policy(zd, policy, key)
            if st == 200 and isinstance(doc, dict):
                last = doc
                rc = rc_factory()
                try:
                    pend = xpending(rc, policy)
                    retry = retry_count(rc, policy)
                finally:
                    rc.close()
                if doc.get("status") in FINAL_STATUSES and pend == 0 and retry == 0 and \
                        pending_of(buckets(doc["funnel"])) == 0:
                    return doc
                last = dict(doc, _xpending=pend, _retry=retry)
        except (OSError, RuntimeError, ValueError, KeyError):
            pass
        time.sleep(0.25)
    raise AssertionError("policy %s did not drain within %.0f s; last: %s"
                         % (policy, timeout, json.dumps(last, ensure_ascii=False)[:2000]))


def notice_state(zd, policy, profile, key="admin"):
    """The per-notice states GET /v1/policies/{id}/deliveries/{profile} reports, as a set of
    strings (whatever of "state", "status", "bucket", "outcome" its routes carry)."""
    try:
        st, doc = zd.call("GET", "/v1/policies/%s/deliveries/%s" % (policy, profile), key=key,
                          timeout=10)
    except OSError:
        return None, None
    if st != 200 or not isinstance(doc, dict):
        return None, doc
    states = set()

    def walk(o):
        if isinstance(o, dict):
            for k in ("state", "status", "bucket"):
                if isinstance(o.get(k), str):
                    states.add(o[k])
            for v in o.values():
                if isinstance(v, (dict, list)):
                    walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(doc.get("routes", doc))
    return states, doc


class Report:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def summary(self):
        return {k: v for k, v in self.__dict__.items()
                if k not in ("doc", "lost_ids", "unexpected_ids", "dup_ids", "lost_docs")}

    def __str__(self):
        s = dict(self.summary())
        s["lost_ids"] = sorted(self.lost_ids)[:10]
        s["unexpected_ids"] = sorted(self.unexpected_ids)[:10]
        s["lost_docs"] = self.lost_docs[:3]
        return json.dumps(s, ensure_ascii=False, default=str)


def check(zd, rc_factory, policy, audience, gateways, accepted, key="admin", doc=None,
          name=""):
    """Compares the expected notices (audience x gateways of the policy's webhook routes)
    with the receiver's accepted log. `accepted` holds (notice id, verified, ...) tuples.
    Call after wait_drained (or pass its document as doc). Returns a Report."""
    if doc is None:
        st, doc = get_policy(zd, policy, key)
        assert st == 200, (st, doc)
    expected = {"%s:%s:%s" % (policy, p, g) for p in audience for g in gateways}
    prefix = policy + ":"
    counts = collections.Counter()
    unverified = 0
    for rec in accepted:
        nid, verified = rec[0], rec[1]
        if not isinstance(nid, str) or not nid.startswith(prefix):
            continue
        counts[nid] += 1
        if not verified:
            unverified += 1
    received = set(counts)
    unexpected = received - expected
    missing = expected - received
    lost, accounted, lost_docs = set(), collections.Counter(), []
    total = buckets(doc["funnel"]) if isinstance(doc.get("funnel"), dict) else {}
    if len(missing) <= PER_NOTICE_MAX:
        # Each missing notice's own state: dead / withdrawn / suppressed ones are accounted.
        for nid in sorted(missing):
            profile = nid[len(prefix):].rsplit(":", 1)[0]
            states, pdoc = notice_state(zd, policy, profile, key)
            hit = (states or set()) & ACCOUNTED
            if hit:
                accounted[sorted(hit)[0]] += 1
            else:
                lost.add(nid)
                if len(lost_docs) < 3:
                    lost_docs.append(pdoc)
    else:
        # Too many to ask one by one (a withdrawn policy): the funnel's final non-delivered
        # buckets must account for every missing notice.
        for k in ACCOUNTED:
            if total.get(k):
                accounted[k] = total[k]
        short = len(missing) - sum(accounted.values())
        if short > 0:
            lost = set(sorted(missing)[:short])
    rc = rc_factory()
    try:
        pend = xpending(rc, policy)
        retry = retry_count(rc, policy)
    finally:
        rc.close()
    dups = {k: v for k, v in counts.items() if v > 1}
    return Report(
        name=name, policy=policy, status=doc.get("status"), matched=doc.get("matched"),
        audience=len(audience), expected=len(expected), received_distinct=len(received),
        accepted_total=sum(counts.values()), duplicates=sum(v - 1 for v in dups.values()),
        duplicated_notices=len(dups), lost=len(lost), unexpected=len(unexpected),
        unverified=unverified, accounted=dict(accounted), xpending=pend, retry=retry,
        funnel_pending=pending_of(total) if total else None,
        funnel_delivered=total.get("delivered"), funnel=total,
        funnel_problems=funnel_problems(doc), lost_ids=lost, unexpected_ids=unexpected,
        dup_ids=dups, lost_docs=lost_docs, doc=doc)


def assert_ok(r, matched=True):
    """The checker's verdict. matched=False skips "matched == len(audience)" (a withdrawn
    policy may have been withdrawn before its audience was frozen)."""
    print("delivery_check: " + json.dumps(r.summary(), ensure_ascii=False, default=str))
    assert r.lost == 0, "lost notices: %s" % r
    assert r.unexpected == 0, "unexpected recipients: %s" % r
    assert r.unverified == 0, "notices whose signature did not verify: %s" % r
    assert r.xpending == 0 and r.retry == 0 and r.funnel_pending == 0, \
        "pending not drained: %s" % r
    assert not r.funnel_problems, "funnel arithmetic: %s" % r
    assert r.funnel_delivered == r.received_distinct, \
        "funnel delivered %s != distinct notices received %s: %s" % (
            r.funnel_delivered, r.received_distinct, r)
    if matched:
        assert r.matched == r.audience, "matched %s != expected audience %s: %s" % (
            r.matched, r.audience, r)


class FunnelWatcher:
    """Samples GET /v1/policies/{id} in a thread while a test runs its faults and records
    every sample whose funnel does not add up (SPEC §4: "at every moment"). `zds` is a
    callable returning the zhidads to ask (whichever are up); failed requests (an instance
    being killed or restarted) are skipped."""

    def __init__(self, zds, policy, key="admin", interval=0.1):
        import threading
        self.zds, self.policy, self.key, self.interval = zds, policy, key, interval
        self.samples = 0
        self.bad = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            for z in list(self.zds()):
                try:
                    if z.proc is None or z.proc.poll() is not None:
                        continue
                    st, doc = get_policy(z, self.policy, self.key)
                except (OSError, ValueError):
                    continue
                if st != 200 or not isinstance(doc, dict):
                    continue
                self.samples += 1
                p = funnel_problems(doc)
                if p and len(self.bad) < 20:
                    self.bad.append((z.name, doc.get("status"), p))
            self.stopping.wait(self.interval)

    def stop(self):
        """Stops sampling; asserts every sample added up and returns the number taken."""
        self.stopping.set()
        self.thread.join(timeout=30)
        print("funnel samples: %d, not adding up: %d" % (self.samples, len(self.bad)))
        assert not self.bad, "the funnel did not add up: %s" % self.bad
        return self.samples
