"""Regenerate the bundled demo replay, byte for byte: ``python -m engine.samples.make_demo [--check]``.

``ecommerce_demo.jsonl`` is six minutes of a simulated e-commerce live room (the simulator's ``demo``
script): warm-up chatter, excitement at a product reveal, hesitation at the price, anger when a
promised gift is missing, then recovery. Each line has ``t`` (seconds from the start), ``room``,
``user``, ``text``, sometimes ``is_moderator`` and ``gift_value``, and ``emotion``: the feeling the
simulator meant to express (ignored by the replay; handy for eyeballing a model against the demo).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from engine.sources.simulator import Simulator, load_script

OUTPUT = Path(__file__).resolve().parent / "ecommerce_demo.jsonl"
SEED = 20240618
ROOM = "demo"


def demo_lines() -> Iterator[str]:
    """The demo file's lines, without newlines."""
    sim = Simulator(load_script("demo"), seed=SEED, room=ROOM)
    for ev in sim.events():
        row: dict[str, object] = {"t": round(ev.offset, 3), "room": ROOM, "user": ev.user, "text": ev.text}
        if ev.is_moderator:
            row["is_moderator"] = True
        if ev.gift_value:
            row["gift_value"] = ev.gift_value
        row["emotion"] = ev.emotion
        yield json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def render() -> bytes:
    """The whole file as bytes (UTF-8, one object per line, trailing newline)."""
    return "".join(line + "\n" for line in demo_lines()).encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    """Write the demo file, or with ``--check`` fail if the committed one differs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare with the committed file, write nothing")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    data = render()
    if args.check:
        current = args.output.read_bytes() if args.output.exists() else b""
        if current != data:
            print(f"{args.output} is out of date; run python -m engine.samples.make_demo", file=sys.stderr)
            return 1
        return 0
    args.output.write_bytes(data)
    lines = data.count(b"\n")
    print(f"wrote {args.output} ({len(data)} bytes, {lines} messages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
