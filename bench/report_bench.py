"""Benchmark of ``moodcast report`` on a long synthetic session (default: 6 hours, ~2.9 M messages).

    python -m bench.report_bench [--minutes 360] [--per-minute 8000] [--db PATH] [--write]

Writes the session through the real Store (kept at --db for re-runs), then times the whole report:
SQL minute aggregates, one streamed pass over every message (product matcher, jieba on the baseline
sample and the peak windows), statistics with orders, HTML/CSV/JSON. ``--write`` appends the result to
docs/benchmarks.md between this benchmark's markers.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import sys
import time
from datetime import date
from pathlib import Path

from bot.content import DEFAULTS_DIR, load_catalogue
from report import synthetic
from report.analysis import ReportOptions, build_report
from report.data import ReportDB
from report.orders import read_orders
from report.render import write_report

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- report_bench:start -->", "<!-- report_bench:end -->"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, default=360)
    ap.add_argument("--per-minute", type=int, default=8000)
    ap.add_argument("--db", default="var/bench/report_bench.db")
    ap.add_argument("--out", default="var/bench/report_bench_out")
    ap.add_argument("--write", action="store_true", help="record the result in docs/benchmarks.md")
    args = ap.parse_args(argv)
    # Peaks at the same relative places as the test session; the 8,000/min mix scales the per-100 one.
    plan = synthetic.Plan(
        minutes=args.minutes,
        per_minute=args.per_minute,
        excited_peak=(args.minutes // 4, args.minutes // 4 + 3),
        angry_peak=(args.minutes * 2 // 3, args.minutes * 2 // 3 + 2),
    )
    db = Path(args.db)
    expected = plan.minutes * plan.per_minute
    if db.is_file():
        with ReportDB(db) as rdb:
            have = rdb.count_messages("shop", synthetic.T0, synthetic.T0 + 60 * plan.minutes)
        if have != expected:
            db.unlink()
    if not db.is_file():
        db.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        n = synthetic.write(plan, db, batch=50_000)
        print(f"wrote {n:,} messages in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    orders = read_orders(synthetic.orders_csv(plan, out / "orders.csv"))
    last = [0.0]

    def progress(what: str, frac: float) -> None:
        now = time.perf_counter()
        if now - last[0] > 5 or frac >= 1:
            last[0] = now
            print(f"  {frac:4.0%} {what}", file=sys.stderr)

    t0 = time.perf_counter()
    with ReportDB(db) as rdb:
        r = build_report(
            rdb,
            "shop",
            synthetic.T0,
            synthetic.T0 + 60 * plan.minutes,
            catalogue=load_catalogue(DEFAULTS_DIR / "products.toml"),
            orders=orders,
            options=ReportOptions(),
            progress=progress,
        )
    t_build = time.perf_counter() - t0
    t1 = time.perf_counter()
    write_report(r, out)
    t_write = time.perf_counter() - t1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = (out / "report.html").stat().st_size / 1e6
    found = sorted((e["emotion"], e["kind"], e["start_index"]) for e in r["episodes"])
    line = (
        f"| {plan.minutes / 60:g} h | {expected:,} | {t_build:.1f} s | {t_write:.1f} s | "
        f"{expected / t_build:,.0f} | {rss:.0f} MB | {size:.1f} MB |"
    )
    print(line)
    print(f"episodes: {found}; lag {r['sales']['lag']['best_lag']} min (p {r['sales']['lag']['p']})")
    if args.write:
        cmd = "python -m bench.report_bench" + (f" --minutes {plan.minutes} --per-minute {plan.per_minute}")
        section = "\n".join(
            [
                START,
                "## Post-stream report on a long session (bench/report_bench.py)",
                "",
                f"`{cmd} --write` on {_cpu()}, {os.cpu_count()} cores visible, Python "
                f"{platform.python_version()}, {platform.system()}, {date.today().isoformat()}. A synthetic "
                "session (report/synthetic.py) written through the real Store; timed: minute aggregates in "
                "SQL, one streamed pass over every message (product matcher, jieba on a 200,000-message "
                "baseline sample and the peak windows), statistics with an orders file (999 circular "
                "shifts, 2,000 bootstrap resamples), then HTML + CSV + JSON. Single process, one core.",
                "",
                "| session | messages | analysis | writing files | messages/s | peak RSS | report.html |",
                "|---|---|---|---|---|---|---|",
                line,
                "",
                f"Planted answers recovered: {found}, lag {r['sales']['lag']['best_lag']} min. Caveat: the "
                "synthetic chat repeats a few thousand distinct lines, so the product matcher's per-text "
                "cache hits; on chat where every line differs the matcher adds about 4.6 µs a message "
                "(~13 s more at 2.9 M), measured with bot.products.ProductMatcher on the default catalogue.",
                END,
            ]
        )
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text(encoding="utf-8")
        if START in text:
            text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _m: section, text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        doc.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
