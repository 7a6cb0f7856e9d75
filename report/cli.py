"""``moodcast report``: list a room's sessions, or write one session's review (HTML, JSON, CSV)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from engine.config import Config
from report.data import ReportDB, ReportError, Session, parse_session_id

LoadConfig = Callable[[str | None], Config]


def add_parsers(sub: Any) -> None:
    """Add ``report`` to the moodcast command's subparsers."""
    p = sub.add_parser(
        "report",
        help="post-stream review of a session: HTML report plus CSV/JSON (or --list-sessions)",
        description="Write a self-contained HTML review of one session (with CSV and JSON exports).",
    )
    p.add_argument("--room", required=True, help="the room (live channel)")
    p.add_argument("--list-sessions", action="store_true", help="list the room's sessions and their ids")
    p.add_argument("--session", help="session id from --list-sessions (default: the latest)")
    p.add_argument("--since", help="start (ISO 8601 like '2026-11-21 20:00', or Unix seconds)")
    p.add_argument("--until", help="end, exclusive (default: the end of the room's data)")
    p.add_argument("--orders", help="orders CSV: timestamp, product, quantity, amount")
    p.add_argument("-o", "--out", help="output directory (default: [report] output_dir/ROOM/SESSION)")
    p.add_argument("--db", help="database file (default: [store] path)")
    p.add_argument("--config", help="config file")
    p.add_argument("--json", action="store_true", help="--list-sessions as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def zone(config: Config) -> tzinfo | None:
    """``[report] timezone`` as a tzinfo (None: this machine's zone)."""
    name = config.report.timezone.strip()
    if not name:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"[report] timezone: unknown zone {name!r} (e.g. 'Asia/Shanghai')") from None


def safe_dir_name(text: str) -> str:
    """A file-system-safe, collision-free directory name for a room."""
    import hashlib
    import re

    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:40].strip("_") or "room"
    return f"{slug}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


@dataclass(frozen=True, slots=True)
class Span:
    """What to report on: a session, or a free time range rounded out to whole minutes."""

    start: int
    end: int
    label: str


def resolve_span(
    db: ReportDB, config: Config, room: str, *, session: str | None, since: str | None, until: str | None
) -> Span:
    """The session or time range the arguments name; ReportError with the fix when there is none."""
    from report.orders import parse_time

    sessions = db.sessions(room, config.report.session_gap_minutes, config.report.min_session_messages)
    if session and (since or until):
        raise ReportError("give either --session or --since/--until, not both")
    if since or until:
        tz = zone(config)
        try:
            lo = parse_time(since, tz) if since else float(sessions[0].start if sessions else 0)
            hi = parse_time(until, tz) if until else float(sessions[-1].end if sessions else time.time())
        except ValueError as e:
            raise ReportError(str(e)) from None
        start, end = int(lo // 60) * 60, int(-(-hi // 60)) * 60
        if end <= start:
            raise ReportError("--until must be after --since")
        from report.data import session_id

        return Span(start, end, f"{session_id(start)}_to_{session_id(end)}")
    if not sessions:
        rooms = db.rooms()
        hint = f"rooms with data: {', '.join(rooms)}" if rooms else "the database has no chat yet"
        raise ReportError(f"no sessions in room {room!r} ({hint})")
    if session in (None, "", "latest"):
        s = sessions[-1]
    else:
        want = parse_session_id(session)
        found = [s for s in sessions if s.start == want]
        if not found:
            raise ReportError(
                f"room {room!r} has no session {session!r}; see moodcast report --list-sessions --room ..."
            )
        s = found[0]
    return Span(s.start, s.end, s.id)


def generate(
    config: Config,
    room: str,
    span: Span,
    out: Path,
    *,
    db_path: Path | None = None,
    orders_path: Path | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> list[Path]:
    """Build and write one review; returns the files written."""
    from bot.content import DEFAULTS_DIR, ContentError, load_catalogue
    from report.analysis import ReportOptions, build_report
    from report.orders import read_orders
    from report.render import DEFAULT_COLORS, write_report

    rc = config.report
    tz = zone(config)
    orders = read_orders(orders_path, tz) if orders_path is not None else None
    cat_path = config.resolve(config.bot.products) if config.bot.products else DEFAULTS_DIR / "products.toml"
    try:
        catalogue = load_catalogue(cat_path)
    except (ContentError, OSError) as e:
        raise ReportError(f"product catalogue: {e}") from e
    options = ReportOptions(
        peak_z=rc.peak_z,
        peak_min_lift=rc.peak_min_lift,
        keyword_sample=max(1, rc.keyword_sample),
        max_lag_minutes=rc.max_lag_minutes,
        permutations=rc.permutations,
        bootstrap=rc.bootstrap,
        tz=tz,
    )
    colors = {e: str(getattr(config.overlay, f"color_{e}", c)) for e, c in DEFAULT_COLORS.items()}
    with ReportDB(db_path or config.resolve(config.store.path)) as db:
        data = build_report(
            db,
            room,
            span.start,
            span.end,
            catalogue=catalogue,
            orders=orders,
            options=options,
            progress=progress,
        )
    return write_report(data, out, colors)


def _print_sessions(sessions: list[Session], room: str, as_json: bool, tz: tzinfo | None) -> None:
    import json
    from datetime import datetime

    if as_json:
        print(json.dumps([s.as_dict() for s in sessions], ensure_ascii=False, indent=1))
        return
    if not sessions:
        print(f"no sessions in room {room!r}")
        return
    print(f"{'session':<15} {'start':<17} {'length':>9} {'messages':>10}  state")
    for s in sessions:
        when = datetime.fromtimestamp(s.start, tz).strftime("%Y-%m-%d %H:%M")
        length = f"{s.minutes // 60} h {s.minutes % 60:02d}" if s.minutes >= 60 else f"{s.minutes} min"
        print(f"{s.id:<15} {when:<17} {length:>9} {s.messages:>10,}  {'finished' if s.finished else 'live'}")


class _Progress:
    """Progress on stderr: one updating line on a terminal, a line per step otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = -1.0
        self.t0 = time.perf_counter()

    def __call__(self, what: str, frac: float) -> None:
        now = time.perf_counter()
        if frac < 1.0 and now - self.last < (0.2 if self.tty else 2.0):
            return
        self.last = now
        line = f"moodcast report: {frac:4.0%} {what} ({now - self.t0:.1f} s)"
        if self.tty:
            print("\r" + line.ljust(78), end="\n" if frac >= 1.0 else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def main(args: argparse.Namespace, load: LoadConfig) -> int:
    """Run ``moodcast report``."""
    config = load(args.config)
    db_path = Path(args.db).expanduser() if args.db else config.resolve(config.store.path)
    try:
        with ReportDB(db_path) as db:
            if args.list_sessions:
                rc = config.report
                _print_sessions(
                    db.sessions(args.room, rc.session_gap_minutes, rc.min_session_messages),
                    args.room,
                    args.json,
                    zone(config),
                )
                return 0
            span = resolve_span(
                db, config, args.room, session=args.session, since=args.since, until=args.until
            )
        out = (
            Path(args.out)
            if args.out
            else config.resolve(config.report.output_dir) / safe_dir_name(args.room) / span.label
        )
        written = generate(
            config,
            args.room,
            span,
            out,
            db_path=db_path,
            orders_path=Path(args.orders) if args.orders else None,
            progress=None if args.quiet else _Progress(),
        )
    except ReportError as e:
        print(f"moodcast report: {e}", file=sys.stderr)
        return 2
    html = next(p for p in written if p.name == "report.html")
    print(f"report: {html}")
    print(f"exports: {', '.join(p.name for p in written if p.name != 'report.html')} in {out}")
    return 0
