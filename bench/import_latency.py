#!/usr/bin/env python3
"""How an import affects everyone else: GET latency while POST /v1/profiles:import runs.

    bench/import_latency.py [--zhidad build/zhidad/zhidad] [--zhida build/client/zhida]
                            [--mib 60] [--imports 1] [--get-pause-ms 2] [--runs 1]

Starts its own redis-server and zhidad (both on free 127.0.0.1 ports, in a temp dir), generates
synthetic NDJSON with `zhida demo-population` (--mib MiB per import; each import gets its own id
prefix, so every line is a new profile), and then, per run:

1. measures GET /v1/profiles/{id} latency on an idle daemon (the baseline);
2. sends --imports concurrent imports, each one request of --mib MiB, while one client issues
   GETs of an existing profile back to back (pausing --get-pause-ms between them) on a
   keep-alive connection, from the moment the first import starts sending until the last
   import has answered;
3. prints the GET latency distribution (p50, p90, p99, max), the HTTP statuses seen, each
   import's counts and duration, and zhidad's peak RSS (VmHWM) against the bodies' size.

Redis is flushed between runs (and zhidad restarted) so every run imports new profiles.
Only the Python standard library is used. This is a benchmark, not a test: nothing is asserted;
the exit status is 0 unless the set-up fails.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "bench-admin-key-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def vm_field(pid, name):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


class Daemons:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.redis_port = free_port()
        self.port = free_port()
        self.redis = subprocess.Popen(
            [args.redis_server, "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", tmp, "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.zhidad = None
        cfg = {"listen": "127.0.0.1:%d" % self.port,
               "redis": "127.0.0.1:%d" % self.redis_port,
               "api_keys": [{"name": "bench", "role": "admin", "key": KEY}],
               # A throwaway redis-server without AOF: zhidad's durability check is off.
               "redis_durability": "off",
               "gateways": {"zlb": {"type": "webhook"}, "inbox": {"type": "inbox"},
                            "sms": {"type": "sms_http", "url": "http://127.0.0.1:9/sms", "format": "form", "body": "to={{to}}&text={{body}}"}, "email": {"type": "smtp", "url": "smtp://127.0.0.1:9", "from": "noreply@example.gov.cn"}}}
        cfg.update(json.loads(args.extra_config))
        self.config = os.path.join(tmp, "zhida.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f)

    def start_zhidad(self):
        log = open(os.path.join(self.tmp, "zhidad.log"), "ab")
        env = dict(os.environ, ZHIDA_TODAY="2026-07-01")
        self.zhidad = subprocess.Popen([self.args.zhidad, "-c", self.config], stdout=log,
                                       stderr=log, env=env)
        wait_until(lambda: self.get("/readyz")[0] == 200, what="zhidad /readyz")

    def stop_zhidad(self):
        if self.zhidad and self.zhidad.poll() is None:
            self.zhidad.send_signal(signal.SIGTERM)
            self.zhidad.wait(timeout=60)
        self.zhidad = None

    def stop(self):
        self.stop_zhidad()
        if self.redis.poll() is None:
            self.redis.send_signal(signal.SIGTERM)
            self.redis.wait(timeout=60)

    def flushall(self):
        with socket.create_connection(("127.0.0.1", self.redis_port)) as s:
            s.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
            s.recv(100)

    def conn(self, timeout=600):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path):
        c = self.conn(10)
        try:
            c.request("GET", path, headers={"Authorization": "Bearer " + KEY})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()


def make_body(args, prefix, nbytes):
    """demo-population lines with ids prefixed, cut at a line boundary near nbytes."""
    n = int(nbytes / 240) + 1000
    out = subprocess.run([args.zhida, "demo-population", "--n", str(n), "--seed", "7"],
                         check=True, stdout=subprocess.PIPE).stdout
    out = out.replace(b'{"id":"', b'{"id":"' + prefix.encode() + b"-")
    cut = out.rfind(b"\n", 0, nbytes)
    return out[:cut + 1]


def get_loop(d, stop, pause, lat, statuses):
    c = d.conn(60)
    hdr = {"Authorization": "Bearer " + KEY}
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            c.request("GET", "/v1/profiles/probe-1", headers=hdr)
            r = c.getresponse()
            r.read()
            st = r.status
        except (OSError, http.client.HTTPException):
            st = "error"
            c.close()
            c = d.conn(60)
        lat.append((time.perf_counter() - t0) * 1000.0)
        statuses[st] = statuses.get(st, 0) + 1
        if pause:
            time.sleep(pause)
    c.close()


def do_import(d, body, result):
    c = d.conn(3600)
    t0 = time.perf_counter()
    try:
        c.request("POST", "/v1/profiles:import", body=body,
                  headers={"Authorization": "Bearer " + KEY,
                           "Content-Type": "application/x-ndjson"})
        r = c.getresponse()
        payload = r.read()
        result["status"] = r.status
        try:
            j = json.loads(payload)
            result.update({k: j.get(k) for k in ("lines", "imported", "unchanged", "failed")})
            codes = {}
            for e in j.get("errors") or []:
                code = (e.get("error") or {}).get("code")
                codes[code] = codes.get(code, 0) + 1
            result["error_codes"] = codes
        except ValueError:
            result["body"] = payload[:200].decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        result["status"] = "error: %s" % e
    result["seconds"] = time.perf_counter() - t0
    c.close()


def summary(lat):
    s = sorted(lat)
    return {"n": len(s), "p50_ms": round(pct(s, 50), 2), "p90_ms": round(pct(s, 90), 2),
            "p99_ms": round(pct(s, 99), 2), "max_ms": round(s[-1], 2) if s else None}


def one_run(args, d, bodies, run):
    d.flushall()
    d.start_zhidad()
    pid = d.zhidad.pid
    probe = {"kind": "citizen", "region": "330106", "attrs": {"birth_date": "1970-01-01"}}
    c = d.conn(10)
    c.request("PUT", "/v1/profiles/probe-1", body=json.dumps(probe),
              headers={"Authorization": "Bearer " + KEY})
    assert c.getresponse().read() is not None
    c.close()
    idle, idle_st = [], {}
    stop = threading.Event()
    t = threading.Thread(target=get_loop, args=(d, stop, args.get_pause_ms / 1000.0, idle,
                                                 idle_st))
    t.start()
    time.sleep(2)
    stop.set()
    t.join()
    rss0 = vm_field(pid, "VmRSS")

    lat, statuses = [], {}
    stop = threading.Event()
    results = [dict() for _ in bodies]
    imps = [threading.Thread(target=do_import, args=(d, b, res)) for b, res in zip(bodies, results)]
    getter = threading.Thread(target=get_loop, args=(d, stop, args.get_pause_ms / 1000.0, lat,
                                                     statuses))
    load0 = os.getloadavg()[0]
    cpu0 = (cpu_seconds(pid), cpu_seconds(d.redis.pid))
    t0 = time.perf_counter()
    getter.start()
    for th in imps:
        th.start()
    for th in imps:
        th.join()
    stop.set()
    getter.join()
    took = time.perf_counter() - t0
    cpu1 = (cpu_seconds(pid), cpu_seconds(d.redis.pid))
    hwm = vm_field(pid, "VmHWM")
    rss1 = vm_field(pid, "VmRSS")
    total = sum(len(b) for b in bodies)
    lines = sum(r.get("lines") or 0 for r in results)
    out = {"run": run, "imports": len(bodies), "body_mib": round(total / 2**20, 1),
           "seconds": round(took, 2), "lines_per_s": round(lines / took) if took else None,
           "load_avg_1m_before": round(load0, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2),
           "idle_get": summary(idle), "get_during_import": summary(lat),
           "zhidad_cpu_s": round(cpu1[0] - cpu0[0], 2),
           "redis_cpu_s": round(cpu1[1] - cpu0[1], 2),
           "get_statuses": statuses, "import_results": results,
           "zhidad_rss_before_mib": round(rss0 / 2**20, 1),
           "zhidad_rss_after_mib": round(rss1 / 2**20, 1),
           "zhidad_vmhwm_mib": round(hwm / 2**20, 1),
           "vmhwm_over_bodies": round(hwm / total, 2)}
    d.stop_zhidad()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zhidad", default=os.path.join(ROOT, "build", "zhidad", "zhidad"))
    ap.add_argument("--zhida", default=os.path.join(ROOT, "build", "client", "zhida"))
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    ap.add_argument("--mib", type=float, default=60.0, help="body size per import (MiB)")
    ap.add_argument("--imports", type=int, default=1, help="concurrent imports")
    ap.add_argument("--get-pause-ms", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--extra-config", default="{}", help="JSON merged into zhidad's config")
    ap.add_argument("--zhidad-log", help="copy zhidad's log here at the end")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="zhida-bench-import-")
    d = Daemons(args, tmp)
    try:
        wait_until(lambda: socket.create_connection(("127.0.0.1", d.redis_port)).close() or True,
                   what="redis-server")
        bodies = [make_body(args, "i%d" % i, int(args.mib * 2**20)) for i in range(args.imports)]
        print("# nproc=%d load=%s zhidad=%s" % (os.cpu_count(), os.getloadavg(), args.zhidad),
              file=sys.stderr)
        for run in range(1, args.runs + 1):
            res = one_run(args, d, bodies, run)
            g = res["get_during_import"]
            print("run %d: %d import(s) of %.1f MiB in %.1f s; GET during import n=%d p50=%.1f "
                  "p90=%.1f p99=%.1f max=%.1f ms statuses=%s; idle p99=%.1f ms; VmHWM %.0f MiB "
                  "(%.2f x bodies); CPU zhidad %.1f s, redis %.1f s; load %.1f"
                  % (run, res["imports"], res["body_mib"] / res["imports"], res["seconds"], g["n"],
                     g["p50_ms"], g["p90_ms"], g["p99_ms"], g["max_ms"], res["get_statuses"],
                     res["idle_get"]["p99_ms"], res["zhidad_vmhwm_mib"],
                     res["vmhwm_over_bodies"], res["zhidad_cpu_s"], res["redis_cpu_s"],
                     res["load_avg_1m_before"]), file=sys.stderr)
            print(json.dumps(res), flush=True)
    finally:
        d.stop()
        if args.zhidad_log:
            shutil.copy(os.path.join(tmp, "zhidad.log"), args.zhidad_log)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
