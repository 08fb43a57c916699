#!/usr/bin/env python3
"""Watches one run of the dispatch benchmark (bench/dispatch.sh) and writes its figures.

  dispatch_probe.py watch --receiver URL --expect N (--t0-ns NS | --start CMD) --out FILE.json
        [--policy URL --key KEY] [--pid PID ...] [--redis-port P] [--interval 0.2]
        [--stall-s 120]
  dispatch_probe.py report DIR      # the table of every *.json in DIR, markdown, on stdout

watch polls the receiver's /stats until it counted N notices (and, with --policy, until the
policy's status is final), sampling meanwhile the RSS of the given processes and Redis's
used_memory and RSS, and writes what it saw: when the first and the last notice arrived
(relative to --t0-ns, the CLOCK_REALTIME of the workers' start, or to the moment --start CMD,
the publish, was run), peaks, CPU
seconds of each process, of Redis and of the receiver over the run, the load average.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

CLK = os.sysconf("SC_CLK_TCK")


def http_json(url, key=None):
    req = urllib.request.Request(url)
    if key:
        req.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def redis_info(port):
    """INFO memory + cpu of a Redis on 127.0.0.1, as a dict (RESP by hand: no client needed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n")
        buf = b""
        while b"\r\n" not in buf:
            buf += s.recv(65536)
        head, _, rest = buf.partition(b"\r\n")
        n = int(head[1:])
        while len(rest) < n:
            rest += s.recv(65536)
    out = {}
    for line in rest[:n].decode().splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            out[k] = v
    return out


def redis_cmd(port, *args):
    """One command to a Redis on 127.0.0.1; its answer is read and dropped."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        msg = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(x), x.encode()) for x in args)
        s.sendall(msg)
        s.recv(65536)


def commandstats(info):
    """cmdstat_* of INFO all: command -> (calls, usec)."""
    out = {}
    for k, v in info.items():
        if k.startswith("cmdstat_"):
            f = dict(x.split("=") for x in v.split(","))
            out[k[8:]] = (int(f["calls"]), int(f["usec"]))
    return out


def proc_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except OSError:
        return None


def proc_rss(pid):
    """(VmRSS, VmHWM) in bytes."""
    rss = hwm = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def watch(a):
    stats_url = a.receiver.rstrip("/") + "/stats"
    pids = [int(p) for p in a.pid]
    res = {"name": a.name, "expect": a.expect, "load_before": loadavg(), "t0_ns": a.t0_ns}
    s0 = http_json(stats_url)
    cpu0 = {p: proc_cpu(p) for p in pids}
    rss_peak = {p: 0 for p in pids}
    if a.redis_port:
        # Per-command times of this run only (INFO commandstats): where Redis spends its CPU.
        redis_cmd(a.redis_port, "CONFIG", "RESETSTAT")
    r0 = redis_info(a.redis_port) if a.redis_port else None
    if r0:
        res["redis_used_memory_before"] = int(r0["used_memory"])
        res["redis_rss_before"] = int(r0["used_memory_rss"])
    rpeak = {"used_memory": 0, "used_memory_rss": 0}
    if a.start:
        # The baselines above are taken before the work starts: the publish is timed here.
        a.t0_ns = res["t0_ns"] = time.time_ns()
        subprocess.run(a.start, shell=True, check=True, stdout=subprocess.DEVNULL)
    status = None
    policy = None
    last_n, last_change = -1, time.time()
    last_print = 0
    samples = 0
    while True:
        st = http_json(stats_url)
        for p in pids:
            rss_peak[p] = max(rss_peak[p], proc_rss(p)[0])
        if a.redis_port:
            info = redis_info(a.redis_port)
            for k in rpeak:
                rpeak[k] = max(rpeak[k], int(info[k]))
        samples += 1
        if a.policy:
            try:
                policy = http_json(a.policy, a.key)
                status = policy.get("status")
            except Exception as e:  # a slow answer under load is not fatal to the run
                print("probe: GET policy: %s" % e, file=sys.stderr)
        n = st["notices"]
        now = time.time()
        if n != last_n:
            last_n, last_change = n, now
        if now - last_print >= 5:
            last_print = now
            print("probe: %s %d/%d notices, status %s, load %s" %
                  (a.name, n, a.expect, status, loadavg()), file=sys.stderr)
        final = status in ("done", "active", "withdrawn") or not a.policy
        if n >= a.expect and final:
            res["done_ns"] = time.time_ns()
            break
        if now - last_change > a.stall_s:
            print("probe: %s stalled at %d/%d notices (status %s)" %
                  (a.name, n, a.expect, status), file=sys.stderr)
            res["stalled"] = True
            res["done_ns"] = time.time_ns()
            break
        time.sleep(a.interval)
    # A last look a moment later: duplicates still arriving would show here.
    time.sleep(1.0)
    st = http_json(stats_url)
    res["load_after"] = loadavg()
    res["received"] = st["notices"]
    res["requests"] = st["requests"]  # the receiver was reset before the start
    res["receiver_cpu_s"] = round(st["cpu_s"] - s0["cpu_s"], 3)
    res["receiver_procs"] = st["procs"]
    if st["first_ns"]:
        res["first_s"] = (st["first_ns"] - a.t0_ns) / 1e9
        res["last_s"] = (st["last_ns"] - a.t0_ns) / 1e9
    res["done_s"] = (res["done_ns"] - a.t0_ns) / 1e9
    res["samples"] = samples
    res["procs"] = {}
    for p in pids:
        c1 = proc_cpu(p)
        res["procs"][str(p)] = {
            "rss_peak": rss_peak[p], "hwm": proc_rss(p)[1],
            "cpu_s": round(c1 - cpu0[p], 3) if c1 is not None and cpu0[p] is not None else None,
        }
    if a.redis_port:
        r1 = redis_info(a.redis_port)
        res["redis_used_memory_peak"] = rpeak["used_memory"]
        res["redis_rss_peak"] = rpeak["used_memory_rss"]
        cs = commandstats(r1)
        res["redis_commands"] = {k: {"calls": c, "usec": u, "usec_per_call": round(u / c, 2)}
                                 for k, (c, u) in sorted(cs.items(), key=lambda x: -x[1][1])
                                 if c}
        res["redis_cpu_s"] = round(
            float(r1["used_cpu_user"]) + float(r1["used_cpu_sys"]) -
            float(r0["used_cpu_user"]) - float(r0["used_cpu_sys"]), 3)
    if policy is not None:
        res["policy"] = policy
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print("probe: %s received %d in %.2f s (first after %.3f s), load %s" %
          (a.name, res["received"], res.get("last_s", 0), res.get("first_s", 0),
           res["load_after"]), file=sys.stderr)


def mib(b):
    return "%.0f MiB" % (b / 1048576)


def report(a):
    runs = {}
    for fn in sorted(os.listdir(a.dir)):
        if fn.endswith(".json"):
            with open(os.path.join(a.dir, fn)) as f:
                runs[fn[:-5]] = json.load(f)
    wrk = {}
    for fn in sorted(os.listdir(a.dir)):
        if fn.startswith("wrk-") and fn.endswith(".txt"):
            with open(os.path.join(a.dir, fn)) as f:
                for line in f:
                    if line.startswith("Requests/sec:"):
                        wrk[fn[4:-4]] = float(line.split()[1])
    print("| run | notices received | publish/start → first | → last notice | notices/s |"
          " requests | receiver CPU | sender CPU | Redis CPU | load before → after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rates = {}
    for name, r in runs.items():
        if "last_s" not in r:
            continue
        rate = r["received"] / r["last_s"] if r["last_s"] > 0 else 0
        rates[name] = rate
        sender = sum((p["cpu_s"] or 0) for p in r["procs"].values())
        print("| %s | %d of %d | %.3f s | %.2f s | **%.0f** | %d | %.2f s | %.2f s | %s | %s → %s |" %
              (name, r["received"], r["expect"], r["first_s"], r["last_s"], rate, r["requests"],
               r["receiver_cpu_s"], sender,
               "%.2f s" % r["redis_cpu_s"] if "redis_cpu_s" in r else "—",
               r["load_before"], r["load_after"]))
    for k, v in wrk.items():
        print("| wrk %s (ceiling) | — | — | — | **%.0f** req/s | — | — | — | — | — |" % (k, v))
    print()
    print("| memory during the run | peak RSS (sender) | Redis used_memory before → peak | Redis RSS peak |")
    print("|---|---|---|---|")
    for name, r in runs.items():
        if "redis_used_memory_peak" not in r:
            continue
        rss = sum(p["rss_peak"] for p in r["procs"].values())
        print("| %s | %s | %s → %s | %s |" % (name, mib(rss), mib(r["redis_used_memory_before"]),
                                             mib(r["redis_used_memory_peak"]),
                                             mib(r["redis_rss_peak"])))
    print()
    for name, r in runs.items():
        cs = r.get("redis_commands")
        if not cs or not name.startswith(("zhida", "bullmq")) or not r.get("received"):
            continue
        total = sum(c["usec"] for c in cs.values())
        top = sorted(cs.items(), key=lambda x: -x[1]["usec"])[:6]
        print("- Redis command time in %s: %.2f s, %.1f µs per notice; top: %s" % (
            name, total / 1e6, total / r["received"],
            ", ".join("%s %d calls %.1f s" % (k, c["calls"], c["usec"] / 1e6) for k, c in top)))
    print()
    b1 = rates.get("zhida-batch1")
    peer = rates.get("bullmq")
    w1 = max([v for k, v in wrk.items() if k.startswith("batch1")] or [0])
    if b1 and peer:
        print("- zhida batch 1 / BullMQ: **%.2f×** (target ≥ 3×)" % (b1 / peer))
    if b1 and w1:
        print("- zhida batch 1 / wrk ceiling: %.2f" % (b1 / w1))
    if b1:
        print("- zhida batch 1: %.0f notices/s = %.2f of the 20,000/s target" % (b1, b1 / 20000))
    r100 = runs.get("zhida-batch100")
    if r100 and "last_s" in r100:
        print("- zhida batch 100: %d notices in %.2f s = %.2f of the 30 s budget" %
              (r100["received"], r100["last_s"], r100["last_s"] / 30))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--name", required=True)
    w.add_argument("--receiver", required=True)
    w.add_argument("--expect", type=int, required=True)
    w.add_argument("--t0-ns", type=int, default=0,
                   help="CLOCK_REALTIME ns the times count from (default: --start's)")
    w.add_argument("--start", help="shell command that starts the work, run after the baselines")
    w.add_argument("--out", required=True)
    w.add_argument("--policy")
    w.add_argument("--key")
    w.add_argument("--pid", action="append", default=[])
    w.add_argument("--redis-port", type=int)
    w.add_argument("--interval", type=float, default=0.2)
    w.add_argument("--stall-s", type=float, default=120)
    r = sub.add_parser("report")
    r.add_argument("dir")
    a = ap.parse_args()
    watch(a) if a.cmd == "watch" else report(a)


if __name__ == "__main__":
    main()
