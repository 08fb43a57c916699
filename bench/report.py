#!/usr/bin/python3
"""Turns the raw "info"/"result" lines of a bench/run.sh output directory into the markdown
report of docs/BENCHMARKS.md: one row per rule with zhida, PostgreSQL and Redis side by side,
the ratios, a check that the three audiences agree, and the targets of SPEC §8. Given several
output directories (repeated runs on a shared machine), every figure is the median across the
runs, and each ratio the median of the runs' own ratios (both engines of a ratio from one run)."""
import argparse
import os
import statistics
import sys

ENGINES = ["zhida", "pg", "redis", "http"]


def parse_kv(line):
    kind, _, rest = line.partition(" ")
    kv = {}
    for tok in rest.split():
        k, _, v = tok.partition("=")
        kv[k] = v
    return kind, kv


def load_rules(path):
    rules, cur = [], None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            rest = rest.strip()
            if word == "rule":
                cur = {"name": rest, "shape": "", "zhida": ""}
                rules.append(cur)
            elif cur is not None and word in ("shape", "zhida"):
                cur[word] = rest
    return rules


def median_result(lines):
    """One result line standing for several runs: the median of each timing, all counts."""
    out = dict(lines[-1])
    for key in ("median_ms", "p95_ms", "server_median_ms"):
        vals = [float(l[key]) for l in lines if key in l]
        if vals:
            out[key] = "%.6f" % statistics.median(vals)
    out["counts"] = [int(l["count"]) for l in lines if "count" in l]
    out["runs"] = lines
    return out


def run_ratio(slow, fast):
    """The median over runs of slow/fast, each ratio from one run's two engines."""
    by_run = {l["run"]: float(l["median_ms"]) for l in fast.get("runs", []) if "median_ms" in l}
    ratios = [float(l["median_ms"]) / by_run[l["run"]] for l in slow.get("runs", [])
              if "median_ms" in l and by_run.get(l["run"])]
    return statistics.median(ratios) if ratios else None


def fmt_ms(v):
    if v is None:
        return "—"
    if v < 0.1:
        return "%.3f" % v
    if v < 10:
        return "%.2f" % v
    return "%.0f" % v


def fmt_ratio(r):
    return ("%.0f×" if r >= 10 else "%.1f×" if r >= 0.1 else "%.2f×") % r


def fmt_int(v):
    return "{:,}".format(int(v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", required=True)
    ap.add_argument("outdir", nargs="+")
    args = ap.parse_args()

    info = {}
    # runs[e][rule] = one result line per run (in the order of the directories)
    runs = {e: {} for e in ENGINES}
    for run, outdir in enumerate(args.outdir):
        for name in sorted(os.listdir(outdir)):
            if not name.endswith(".txt") or name == "machine.txt":
                continue
            with open(os.path.join(outdir, name), encoding="utf-8") as f:
                for line in f:
                    kind, kv = parse_kv(line.strip())
                    eng = kv.get("engine")
                    if kind == "info" and eng:
                        info.setdefault(eng, {}).update(kv)
                    elif kind == "result" and eng in runs:
                        kv["run"] = run
                        runs[eng].setdefault(kv["rule"], []).append(kv)
    results = {e: {r: median_result(v) for r, v in runs[e].items()} for e in ENGINES}
    machine = ""
    mpath = os.path.join(args.outdir[0], "machine.txt")
    if os.path.exists(mpath):
        with open(mpath, encoding="utf-8") as f:
            machine = f.read()
    if len(args.outdir) > 1:
        machine += "runs: %d (every figure the median across the runs)\n" % len(args.outdir)

    rules = load_rules(args.rules)
    present = [e for e in ENGINES if results[e]]
    out = []
    w = out.append
    w("## Machine and command\n")
    w("```\n" + machine.rstrip() + "\n```\n")

    w("## Audience latency per rule (ms, client-side, median / p95)\n")
    head = ["rule", "shape", "audience"]
    titles = {"zhida": "zhida", "pg": "PostgreSQL 15", "redis": "Redis sets",
              "http": "zhidad HTTP preview"}
    for e in present:
        head.append(titles[e])
    if "zhida" in present and "pg" in present:
        head.append("PG / zhida")
    if "zhida" in present and "redis" in present:
        head.append("Redis / zhida")
    w("| " + " | ".join(head) + " |")
    w("|" + "---|" * len(head))
    warnings = []
    pg_ratios, redis_ratios, zmed = [], [], []
    for r in rules:
        name = r["name"]
        counts = {}
        distinct = set()
        for e in present:
            res = results[e].get(name)
            if res and res.get("counts"):
                counts[e] = res["counts"][-1]
                distinct.update(res["counts"])
        if len(distinct) == 1:
            cnt = fmt_int(distinct.pop())
        elif not distinct:
            cnt = "—"
        else:
            cnt = " / ".join("%s %s" % (e, fmt_int(c)) for e, c in counts.items()) + " ⚠"
            warnings.append("rule %s: the audiences differ: %s" % (
                name, ", ".join("%s=%d" % kv for kv in counts.items())))
        row = ["`%s`" % name, r["shape"], cnt]
        for e in present:
            res = results[e].get(name)
            if not res or "median_ms" not in res:
                row.append("error" if res else "—")
                continue
            cell = "%s / %s" % (fmt_ms(float(res["median_ms"])), fmt_ms(float(res["p95_ms"])))
            if e == "http" and "server_median_ms" in res and float(res["server_median_ms"]) >= 0:
                cell += " (server %s)" % fmt_ms(float(res["server_median_ms"]))
            row.append(cell)
        z = results["zhida"].get(name, {})
        zm = float(z["median_ms"]) if "median_ms" in z else None
        if zm is not None:
            zmed.append(zm)
        for e, acc in (("pg", pg_ratios), ("redis", redis_ratios)):
            if "zhida" in present and e in present:
                o = results[e].get(name, {})
                ratio = run_ratio(o, z) if zm and "median_ms" in o else None
                if ratio:
                    acc.append(ratio)
                    row.append(fmt_ratio(ratio))
                else:
                    row.append("—")
        w("| " + " | ".join(row) + " |")
    w("")
    w("Rule texts (zhida language; SQL and Redis equivalents in `bench/rules.txt`):\n")
    for r in rules:
        w("- `%s`: `%s`" % (r["name"], r["zhida"]))
    w("")
    for msg in warnings:
        w("**WARNING:** " + msg + "\n")
        print("report.py: WARNING: " + msg, file=sys.stderr)

    w("## Load, memory, start-up\n")
    w("| measure | value |")
    w("|---|---|")
    z, pg, rd, http, gen = (info.get(k, {}) for k in ("zhida", "pg", "redis", "http", "generator"))
    if gen:
        w("| `zhida demo-population` | %s profiles in %s s |" % (fmt_int(gen["profiles"]), gen["gen_s"]))
    if z:
        w("| zhida index build (parse + validate + index), in process | %s profiles in %s s = %s profiles/s |"
          % (fmt_int(z["profiles"]), z["build_s"], fmt_int(float(z["build_rate"]))))
        w("| zhida index size (zd_index_get_stats) | %s bytes = **%s bytes/profile** (%s bitmaps) |"
          % (fmt_int(z["index_bytes"]), z["bytes_per_profile"], fmt_int(z["bitmaps"])))
        w("| zhida process RSS growth while building | %s bytes/profile |" % z["rss_per_profile"])
        if int(z.get("failed", "0")):
            w("| profiles rejected by validation | %s |" % z["failed"])
    if pg:
        w("| PostgreSQL COPY | %s rows in %s s |" % (fmt_int(pg["rows"]), pg["copy_s"]))
        w("| PostgreSQL index build (GIN + 9 btree + VACUUM ANALYZE) | %s s |" % pg["index_s"])
        w("| PostgreSQL table / indexes | %s / %s bytes |" % (fmt_int(pg["table_bytes"]), fmt_int(pg["index_bytes"])))
    if rd:
        w("| Redis set model load (pipelined SADD/ZADD) | %s rows in %s s |" % (fmt_int(rd["rows"]), rd["load_s"]))
        w("| Redis set model memory | %s keys, %s bytes/profile |" % (fmt_int(rd["keys"]), rd["bytes_per_profile"]))
    if http:
        w("| zhidad HTTP import (`zhida import`) | %s profiles/s |" % fmt_int(http["import_rate"]))
        w("| zhidad Redis memory (used_memory delta / N) | %s bytes/profile |" % http["redis_bytes_per_profile"])
        w("| zhidad RSS growth / N | %s bytes/profile |" % http["rss_per_profile"])
        w("| zhidad start-up: ready / all profiles indexed | %s s / %s s |" % (http["startup_ready_s"], http["startup_indexed_s"]))
    w("")

    w("## Targets (SPEC §8)\n")
    w("| target | measured | |")
    w("|---|---|---|")

    def verdict(ok):
        return "met" if ok else "**not met**"

    n = int(z.get("profiles", gen.get("profiles", "0")) or 0)
    if zmed:
        worst = max(zmed)
        limit = 1.0 if n <= 1500000 else 20.0
        w("| audience median ≤ %g ms over %s profiles | worst rule %s ms, median of rules %s ms | %s |"
          % (limit, fmt_int(n), fmt_ms(worst), fmt_ms(statistics.median(zmed)), verdict(worst <= limit)))
    if pg_ratios:
        w("| ≥ 50× faster than PostgreSQL 15 | smallest ratio %s, geometric mean %s | %s |"
          % (fmt_ratio(min(pg_ratios)), fmt_ratio(statistics.geometric_mean(pg_ratios)), verdict(min(pg_ratios) >= 50)))
    if redis_ratios:
        w("| (for reference) vs Redis set algebra | smallest ratio %s, geometric mean %s | |"
          % (fmt_ratio(min(redis_ratios)), fmt_ratio(statistics.geometric_mean(redis_ratios))))
    if z:
        bpp = float(z["bytes_per_profile"])
        w("| zhidad memory ≤ 100 bytes per indexed profile | index %.1f bytes/profile | %s |" % (bpp, verdict(bpp <= 100)))
    if http:
        rate = float(http["import_rate"] or 0)
        w("| bulk import ≥ 50,000 profiles/s | %s profiles/s over HTTP | %s |" % (fmt_int(rate), verdict(rate >= 50000)))
        rb = float(http["redis_bytes_per_profile"])
        w("| Redis memory per typical profile ≤ 400 bytes | %.0f bytes | %s |" % (rb, verdict(rb <= 400)))
        rss = float(http["rss_per_profile"])
        w("| zhidad RSS per profile ≤ 100 bytes | %.0f bytes | %s |" % (rss, verdict(rss <= 100)))
    else:
        w("| bulk import, Redis memory per profile, zhidad RSS | pending: needs `--zhidad` | |")
    print("\n".join(out))
    return 1 if warnings else 0


if __name__ == "__main__":
    sys.exit(main())
