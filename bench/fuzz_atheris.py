"""Coverage-guided fuzzing (atheris) of moodcast's parsers of untrusted input, bounded in time.

    pip install -e '.[fuzz]'
    python -m bench.fuzz_atheris --target all --seconds 60        # each target for 60 s
    python -m bench.fuzz_atheris --target bilibili --runs 200000

Targets: ingest (JSON batches), replay (JSONL/CSV/text lines), bilibili (frames), irc (lines), douyu
(STT and packet streams), config (TOML), template (bot templates), normalise. A target fails when its
parser lets out anything but its own documented error; the crashing input is written to
``var/fuzz/crash-<target>-<sha1>`` and the run exits non-zero. Each target runs in its own process
(atheris owns the interpreter while fuzzing). tests/test_fuzz_parsers.py holds the hypothesis versions.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

TARGETS = ("ingest", "replay", "bilibili", "irc", "douyu", "config", "template", "normalise")


def _target(name: str) -> Callable[[bytes], None]:
    """The one-input function for ``name``: raises only when the property is broken."""
    if name == "ingest":
        from engine.sources.ingest import IngestError, parse_batch

        def ingest(data: bytes) -> None:
            with contextlib.suppress(IngestError):
                parse_batch(data.decode("utf-8", "replace"), default_room="r", max_batch=50)

        return ingest
    if name == "replay":
        from engine.sources.base import SourceError
        from engine.sources.replay import BadLine, ReplayReader, ReplayRecord

        tmp = Path(tempfile.mkdtemp(prefix="moodcast-fuzz-"))

        def replay(data: bytes) -> None:
            fmt = ("jsonl", "csv", "text")[data[0] % 3] if data else "text"
            path = tmp / f"chat.{fmt}"
            path.write_bytes(data[1:])
            try:
                for item in ReplayReader(path, fmt=fmt, max_line_bytes=4096):  # type: ignore[arg-type]
                    assert isinstance(item, (ReplayRecord, BadLine))
            except SourceError:
                assert fmt == "csv"

        return replay
    if name == "bilibili":
        from engine.sources import bilibili_proto as bp

        def bilibili(data: bytes) -> None:
            for item in bp.decode(data):
                if isinstance(item, bp.Packet) and item.op == bp.OP_COMMAND:
                    try:
                        obj = item.json()
                        bp.command_name(obj)
                    except bp.PacketError:
                        pass

        return bilibili
    if name == "irc":
        from engine.irc_proto import IrcMessage, IrcParseError

        def irc(data: bytes) -> None:
            try:
                m = IrcMessage.parse(data.decode("utf-8", "replace"))
            except IrcParseError:
                return
            m.nick, m.display_name, m.badges, m.is_moderator  # noqa: B018 - must not raise

        return irc
    if name == "douyu":
        from engine.sources.douyu import decode_packets, stt_loads

        def douyu(data: bytes) -> None:
            buf = bytearray(data)
            for item in decode_packets(buf):
                if isinstance(item, str):
                    with contextlib.suppress(ValueError):
                        stt_loads(item)

        return douyu
    if name == "config":
        from engine.config import ConfigError, parse_config

        def config(data: bytes) -> None:
            with contextlib.suppress(ConfigError):
                parse_config(data.decode("utf-8", "replace"))

        return config
    if name == "template":
        import random

        from bot.render import TemplateError, parse_template

        def template(data: bytes) -> None:
            try:
                t = parse_template(data.decode("utf-8", "replace"))
                line = t.render(dict.fromkeys(t.variables, "/ban x{y}"), random.Random(0))
            except TemplateError:
                return
            assert not line.startswith(("/", ".", "\\"))

        return template
    if name == "normalise":
        from engine.normalise import normalise

        def norm(data: bytes) -> None:
            normalise(data.decode("utf-8", "replace"), data[0] % 5 if data else 3)

        return norm
    raise SystemExit(f"unknown target {name!r}; one of {', '.join(TARGETS)}")


def _fuzz_one(name: str, runs: int, seconds: int) -> None:
    """Run inside the child process: atheris takes over until ``runs`` inputs or the time limit."""
    import atheris

    with atheris.instrument_imports():  # coverage feedback from moodcast's own modules
        fn = _target(name)
    out = Path("var/fuzz")

    def one_input(data: bytes) -> None:
        try:
            fn(data)
        except Exception:
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"crash-{name}-{hashlib.sha1(data).hexdigest()[:12]}"
            path.write_bytes(data)
            print(f"crashing input saved to {path}", file=sys.stderr)
            raise

    argv = [sys.argv[0], f"-runs={runs}", f"-max_total_time={seconds}", "-max_len=4096"]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="all", help=f"all or one of: {', '.join(TARGETS)}")
    p.add_argument("--seconds", type=int, default=30, help="time limit per target")
    p.add_argument("--runs", type=int, default=-1, help="inputs per target (-1: until the time limit)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _fuzz_one(args.child, args.runs, args.seconds)
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    names = TARGETS if args.target == "all" else (args.target,)
    failed = []
    for name in names:
        cmd = [sys.executable, "-m", "bench.fuzz_atheris", "--child", name, "--runs", str(args.runs)]
        cmd += ["--seconds", str(args.seconds)]
        try:
            rc = subprocess.run(cmd, timeout=args.seconds + 30, check=False, capture_output=True, text=True)
            tail = (rc.stderr or "").strip().splitlines()[-1:] or [""]
            ok = rc.returncode == 0
            print(f"{name:10s} {'ok' if ok else 'FAILED'}  {tail[0]}")
        except subprocess.TimeoutExpired:
            ok = True  # ran for the whole budget without a crash
            print(f"{name:10s} ok  (ran {args.seconds}s without a failure)")
        if not ok:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
