"""Messages per second and resident memory of each model tier, on one core.

    python -m bench.model_bench [--models fast accurate] [--data-dir ../shared/data] [--write]

Each model is measured in its own child process pinned to one CPU (``sched_setaffinity``; onnxruntime
already runs one intra-op thread), so one model's memory does not count against another. The clock
covers what serving does per batch: featurising the normalised texts, onnxruntime, and building the
``Prediction`` objects; normalisation is left out because the pipeline caches it (``normalise_cached``).
Texts are the 22,785 real danmu of ``danmu/pool.tsv`` (or the bundled demo replay when the shared data is
absent). Best of three runs.

``--write`` stores the numbers where users see them: ``engine/models/<id>.bench.json`` (merged into
``GET /models`` metrics), the model card's speed block, and a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "engine" / "models"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- model_bench:start -->", "<!-- model_bench:end -->"


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")  # pragma: no cover - Linux only


def _texts(data_dir: Path) -> tuple[list[str], str]:
    from engine.normalise import normalise

    pool = data_dir / "danmu" / "pool.tsv"
    if pool.is_file():
        raw = [ln.rstrip("\n").split("\t", 2)[-1] for ln in pool.open(encoding="utf-8")]
        src = "danmu/pool.tsv"
    else:
        from moodcast.resources import DEMO_REPLAY

        raw = [json.loads(ln).get("text", "") for ln in DEMO_REPLAY.open(encoding="utf-8") if ln.strip()]
        src = "bundled demo replay"
    texts = [t for t in (normalise(r) for r in raw) if t]
    return texts, src


def measure(model_id: str, data_dir: Path, cpu: int | None) -> dict[str, Any]:
    """Run in the child: pin, load, time batch 1 and 256, report memory."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    texts, src = _texts(data_dir)
    from engine.classify.registry import ModelRegistry

    rss0 = _rss_mb()
    model = ModelRegistry().get(model_id)
    model.predict(texts[:256])  # warm-up: first-call allocations, jieba-free but lazy caches
    rss1 = _rss_mb()
    out: dict[str, Any] = {"model_id": model_id, "texts": len(texts), "source": src}
    for bs in (1, 256):
        n = min(len(texts), 5000) if bs == 1 else len(texts) // bs * bs
        batches = [texts[i : i + bs] for i in range(0, n, bs)]
        best = 0.0
        for _ in range(3):
            t0 = time.perf_counter()
            for b in batches:
                model.predict(b)
            best = max(best, n / (time.perf_counter() - t0))
        out[f"msgs_per_s_batch{bs}"] = round(best)
    out["rss_mb"] = round(_rss_mb(), 1)
    out["model_rss_mb"] = round(rss1 - rss0, 1)
    out["size_mb"] = round(model.info.size_bytes / 1e6, 2)
    return out


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover
        pass
    return f"{cpu}, {os.cpu_count()} cores visible, Python {platform.python_version()}, {platform.system()}"


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | size | msgs/s, batch 1 | msgs/s, batch 256 | process RSS | model's share |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['model_id']}` | {r['size_mb']:.1f} MB | {r['msgs_per_s_batch1']:,} | "
            f"{r['msgs_per_s_batch256']:,} | {r['rss_mb']:.0f} MB | {r['model_rss_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def _replace_block(text: str, block: str) -> str:
    pat = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    new = f"{START}\n{block}\n{END}"
    return pat.sub(lambda _m: new, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + new + "\n"


def write(rows: list[dict[str, Any]], command: str) -> None:
    """Sidecars, card blocks and the docs section."""
    when = time.strftime("%Y-%m-%d")
    machine = _machine()
    src = rows[0]["source"] if rows else ""
    for r in rows:
        side = MODELS / f"{r['model_id']}.bench.json"
        keep = {k: r[k] for k in ("msgs_per_s_batch1", "msgs_per_s_batch256", "rss_mb", "model_rss_mb")}
        side.write_text(json.dumps(keep, indent=1) + "\n", encoding="utf-8")
        card = MODELS / f"{r['model_id']}.card.md"
        if card.is_file():
            block = (
                f"Measured {when} with `{command}` on {machine}; one core, {r['texts']:,} normalised lines "
                f"of {src}, best of 3:\n\n" + _table([r])
            )
            card.write_text(_replace_block(card.read_text(encoding="utf-8"), block), encoding="utf-8")
    section = (
        "## Model tiers: messages/s and memory (bench/model_bench.py)\n\n"
        f"`{command}` on {machine}, {when}. Each model in its own process pinned to one core "
        "(`sched_setaffinity`, onnxruntime with one intra-op thread); featurise + onnxruntime + building "
        f"predictions over {rows[0]['texts']:,} normalised lines of {src}, best of 3. RSS is the whole "
        "process (Python, numpy, onnxruntime and the model); the model's share is RSS after loading it "
        "minus before. The machine is shared with other jobs: treat the numbers as a floor.\n\n"
        + _table(rows)
        + "\n\nTargets (issue 3): `fast` at least 50,000 msgs/s at batch 256 and at most 5 MB; "
        "`accurate` at least 3,000 msgs/s and at most 30 MB."
    )
    DOC.parent.mkdir(exist_ok=True)
    old = DOC.read_text(encoding="utf-8") if DOC.is_file() else "# Benchmarks\n"
    DOC.write_text(_replace_block(old, section), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Measure every requested model in a pinned child process; print (and with --write, store) results."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["fast", "accurate"])
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    p.add_argument("--write", action="store_true", help="update sidecars, model cards, docs/benchmarks.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.data_dir, args.cpu)))
        return 0
    cpu = args.cpu if args.cpu is not None else (os.cpu_count() or 1) - 1
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for mid in args.models:
        cmd = [sys.executable, "-m", "bench.model_bench", "--child", mid, "--data-dir", str(args.data_dir)]
        res = subprocess.run(
            [*cmd, "--cpu", str(cpu)], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return 1
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{mid:>10}: batch 1 {row['msgs_per_s_batch1']:>8,} msgs/s  batch 256 "
            f"{row['msgs_per_s_batch256']:>8,} msgs/s  RSS {row['rss_mb']:.0f} MB "
            f"(model {row['model_rss_mb']:.0f} MB)  {row['size_mb']:.1f} MB",
            flush=True,
        )
    if args.write:
        write(rows, "python -m bench.model_bench " + " ".join(a for a in (argv or sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
