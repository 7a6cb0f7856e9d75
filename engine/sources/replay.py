"""Replay a recorded chat file as if it were live.

Three formats, chosen by suffix (``.jsonl``/``.ndjson``, ``.csv``, anything else sniffed; ``.gz`` is
read transparently):

* JSONL: one object per line with the fields of ``ChatMessage.from_mapping`` plus an optional ``t``,
  the offset in seconds from the start of the recording.
* CSV with a header row: ``text`` is required; ``ts`` (Unix seconds, milliseconds or ISO 8601), ``t``,
  ``user``, ``room``, ``platform``, ``is_moderator`` and ``gift_value`` are optional.
* Plain text: one message per line.

Pacing follows ``t`` (or ``ts`` relative to the first timestamp), divided by ``speed``; lines with
neither are spaced evenly at ``rate`` messages per second. ``speed == 0`` replays as fast as possible.
Files are streamed in batches read off the event loop; a bad line is skipped, counted and logged with
its number, and never stops the replay.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import gzip
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal, cast

from engine.config import SourceConfig
from engine.sources.base import YIELD_EVERY, Emit, SourceError, SourceState, StateTracker
from engine.types import ChatMessage, MessageError

log = logging.getLogger(__name__)

Format = Literal["auto", "jsonl", "csv", "text"]

BUNDLED_DEMO = Path(__file__).resolve().parent.parent / "samples" / "ecommerce_demo.jsonl"
"""The bundled e-commerce demo room, replayed when a replay source names no file."""

MAX_LINE_BYTES = 1 << 20
"""Longer lines are skipped without being held in memory: no chat message comes near this."""

BATCH_LINES = 512
LOGGED_BAD_LINES = 20
"""Bad lines logged one by one per pass; the rest are only counted, so a broken file cannot flood the log."""

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"", "0", "false", "no", "n", "f"}


class BadLine(ValueError):
    """A line that cannot be replayed; ``line`` is its 1-based number in the file."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """A replayable message, its offset in seconds from the file's start, and whether it had a ``ts``."""

    line: int
    offset: float
    message: ChatMessage
    has_ts: bool


def detect_format(path: Path) -> Literal["jsonl", "csv", "text"]:
    """The file's format from its suffix (ignoring ``.gz``), else from its first non-blank line."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    last = suffixes[-1] if suffixes else ""
    if last in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if last == ".csv":
        return "csv"
    with _open(path) as f:
        for _ in range(1000):
            raw = f.readline(4096)
            if not raw:
                break
            if raw.strip():
                return "jsonl" if raw.lstrip(b"\xef\xbb\xbf \t").startswith(b"{") else "text"
    return "text"


def _open(path: Path) -> IO[bytes]:
    if path.suffix.lower() == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _raw_lines(f: IO[bytes], max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes without the newline), or None for a line over ``max_bytes``."""
    n = 0
    while True:
        raw = f.readline(max_bytes + 1)
        if not raw:
            return
        n += 1
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            # Skip the rest of the oversize line in small reads instead of holding it in memory.
            while True:
                rest = f.readline(65536)
                if not rest or rest.endswith(b"\n"):
                    break
            yield n, None
            continue
        yield n, raw.rstrip(b"\r\n")


def _decode(n: int, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadLine(n, f"invalid UTF-8 at byte {e.start}") from None
    return text[1:] if n == 1 and text.startswith("\ufeff") else text


class ReplayReader:
    """Parses a chat file into ReplayRecords (and BadLines) lazily; synchronous, so run it off the loop."""

    def __init__(
        self,
        path: Path,
        *,
        fmt: Format = "auto",
        room: str = "default",
        platform: str = "replay",
        rate: float = 20.0,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.path = path
        self.fmt = detect_format(path) if fmt == "auto" else fmt
        self.room = room
        self.platform = platform
        self.rate = rate
        self.max_line_bytes = max_line_bytes

    def __iter__(self) -> Iterator[ReplayRecord | BadLine]:
        clock = _Clock(self.rate)
        with _open(self.path) as f:
            lines = _raw_lines(f, self.max_line_bytes)
            if self.fmt == "csv":
                yield from self._csv(lines, clock)
            else:
                parse = self._jsonl if self.fmt == "jsonl" else self._text
                for n, raw in lines:
                    if raw is None:
                        yield BadLine(n, f"line longer than {self.max_line_bytes} bytes")
                        continue
                    if not raw.strip():
                        continue
                    try:
                        yield parse(n, _decode(n, raw), clock)
                    except BadLine as e:
                        yield e

    def _jsonl(self, n: int, text: str, clock: _Clock) -> ReplayRecord:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadLine(n, f"invalid JSON: {e.msg} at column {e.colno}") from None
        except RecursionError:
            raise BadLine(n, "invalid JSON: nested too deeply") from None
        if not isinstance(obj, dict):
            raise BadLine(n, "not a JSON object")
        t = obj.get("t")
        if t is not None and (
            isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0
        ):
            raise BadLine(n, "field 't' must be a non-negative number of seconds")
        msg = self._message(n, obj)
        has_ts = obj.get("ts") is not None
        return ReplayRecord(n, clock.offset(t, msg.ts if has_ts else None), msg, has_ts)

    def _text(self, n: int, text: str, clock: _Clock) -> ReplayRecord:
        msg = self._message(n, {"text": text})
        return ReplayRecord(n, clock.offset(None, None), msg, False)

    def _csv(
        self, lines: Iterator[tuple[int, bytes | None]], clock: _Clock
    ) -> Iterator[ReplayRecord | BadLine]:
        columns: dict[str, int] | None = None
        for n, row in _csv_rows(lines, self.max_line_bytes):
            if isinstance(row, BadLine):
                yield row
                continue
            if columns is None:
                columns = {name.strip().lower(): i for i, name in enumerate(row)}
                if "text" not in columns:
                    raise SourceError(f"{self.path}: CSV header (line {n}) has no 'text' column")
                continue
            try:
                yield self._csv_record(n, row, columns, clock)
            except BadLine as e:
                yield e

    def _csv_record(self, n: int, row: list[str], columns: dict[str, int], clock: _Clock) -> ReplayRecord:
        def cell(name: str) -> str:
            i = columns.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        data: dict[str, Any] = {"text": row[columns["text"]] if columns["text"] < len(row) else ""}
        for name in ("user", "room", "platform"):
            if cell(name):
                data[name] = cell(name)
        ts = _csv_number(n, "ts", cell("ts"), allow_iso=True)
        t = _csv_number(n, "t", cell("t"), allow_iso=False)
        if t is not None and t < 0:
            raise BadLine(n, "column 't' must be a non-negative number of seconds")
        if ts is not None:
            data["ts"] = ts
        gift = _csv_number(n, "gift_value", cell("gift_value"), allow_iso=False)
        if gift is not None:
            data["gift_value"] = gift
        mod = cell("is_moderator").lower()
        if mod not in _TRUE and mod not in _FALSE:
            raise BadLine(n, f"column 'is_moderator' must be true or false, got {mod[:20]!r}")
        data["is_moderator"] = mod in _TRUE
        msg = self._message(n, data)
        return ReplayRecord(n, clock.offset(t, msg.ts if ts is not None else None), msg, ts is not None)

    def _message(self, n: int, data: dict[str, Any]) -> ChatMessage:
        try:
            return ChatMessage.from_mapping(data, default_room=self.room, platform=self.platform)
        except MessageError as e:
            raise BadLine(n, str(e)) from None


def _csv_rows(
    lines: Iterator[tuple[int, bytes | None]], max_bytes: int
) -> Iterator[tuple[int, list[str] | BadLine]]:
    """CSV rows with the number of the line each starts on; a quoted field may span lines."""
    pending: list[str] = []
    start = 0
    size = 0
    for n, raw in lines:
        if raw is None:
            pending = []
            yield n, BadLine(n, f"line longer than {max_bytes} bytes")
            continue
        try:
            text = _decode(n, raw)
        except BadLine as e:
            pending = []
            yield n, e
            continue
        if not pending:
            if not text.strip():
                continue
            start, size = n, 0
        pending.append(text)
        size += len(raw)
        joined = "\n".join(pending)
        # An odd number of quotes means a quoted field runs on to the next line (RFC 4180 doubles quotes).
        if joined.count('"') % 2 == 1:
            if size > max_bytes:
                pending = []
                yield start, BadLine(start, "unterminated quoted field")
            continue
        pending = []
        try:
            row = next(csv.reader([joined], strict=True))
        except (csv.Error, StopIteration) as e:
            yield start, BadLine(start, f"invalid CSV: {e}")
            continue
        yield start, row
    if pending:
        yield start, BadLine(start, "unterminated quoted field at end of file")


def _csv_number(n: int, name: str, value: str, *, allow_iso: bool) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        if allow_iso:
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                pass
        raise BadLine(n, f"column {name!r} must be a number, got {value[:20]!r}") from None
    if not math.isfinite(number):
        raise BadLine(n, f"column {name!r} must be finite")
    return number


class _Clock:
    """Turns ``t`` / ``ts`` / nothing into an offset from the start of the file."""

    def __init__(self, rate: float) -> None:
        self._step = 1.0 / rate if rate > 0 else 0.0
        self._first_ts: float | None = None
        self._last: float | None = None

    def offset(self, t: float | None, ts: float | None) -> float:
        if t is not None:
            off = float(t)
        elif ts is not None:
            if self._first_ts is None:
                self._first_ts = ts
            off = ts - self._first_ts
        else:
            off = 0.0 if self._last is None else self._last + self._step
        self._last = off
        return off


def _take(it: Iterator[ReplayRecord | BadLine], n: int) -> list[ReplayRecord | BadLine]:
    out: list[ReplayRecord | BadLine] = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    return out


class ReplaySource:
    """Replays a chat file into one room, paced by its timestamps, optionally looping forever."""

    def __init__(
        self,
        path: Path,
        *,
        room: str = "demo",
        speed: float = 1.0,
        loop: bool = False,
        rate: float = 20.0,
        fmt: Format = "auto",
        keep_timestamps: bool = False,
        keep_rooms: bool = False,
        name: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not path.is_file():
            raise SourceError(f"replay file not found: {path}")
        if speed < 0 or not math.isfinite(speed):
            raise SourceError(f"replay speed must be a non-negative number, got {speed}")
        self.path = path
        self.room = room
        self.name = name or f"replay:{room}:{path.name}"
        self.speed = speed
        self.loop = loop
        self.rate = rate
        self.fmt: Format = fmt
        self.keep_timestamps = keep_timestamps
        self.keep_rooms = keep_rooms
        self._clock = clock
        self._state = StateTracker()

    @classmethod
    def from_config(cls, cfg: SourceConfig, base_dir: Path) -> ReplaySource:
        """Build from a ``[[sources]]`` table; an empty ``path`` replays the bundled demo."""
        if cfg.path:
            p = Path(cfg.path).expanduser()
            path = p if p.is_absolute() else base_dir / p
        else:
            path = BUNDLED_DEMO
        return cls(path, room=cfg.room, speed=cfg.speed, loop=cfg.loop, rate=cfg.rate)

    @property
    def state(self) -> SourceState:
        """Status and counters for the dashboard."""
        return self._state.snapshot()

    async def run(self, emit: Emit) -> None:
        """Replay the file (forever when looping); returns when done, stops cleanly when cancelled."""
        st = self._state
        passes = 0
        try:
            while True:
                passes += 1
                st.set("running", f"replaying {self.path.name}" + (f" (pass {passes})" if passes > 1 else ""))
                sent = await self._one_pass(emit)
                if not self.loop:
                    break
                if sent == 0:
                    # Looping a file with nothing replayable would spin the CPU forever.
                    st.set("error", f"{self.path.name} has no valid messages to loop")
                    return
        except (OSError, EOFError, SourceError) as e:
            log.error("replay of %s stopped: %s", self.path, e)
            st.set("error", str(e))
            return
        except asyncio.CancelledError:
            st.set("finished", "stopped")
            raise
        st.set("finished", f"replayed {st.messages} messages, skipped {st.errors} bad lines")

    async def _one_pass(self, emit: Emit) -> int:
        reader = iter(ReplayReader(self.path, fmt=self.fmt, room=self.room, rate=self.rate))
        loop = asyncio.get_running_loop()
        start_mono = loop.time()
        start_wall = self._clock()
        sent = 0
        bad = 0
        since_yield = 0
        batch_fut: asyncio.Future[list[ReplayRecord | BadLine]] | None = None
        try:
            while True:
                batch_fut = loop.run_in_executor(None, _take, reader, BATCH_LINES)
                # Shielded so a cancel never abandons the generator mid-step in the worker thread.
                batch = await asyncio.shield(batch_fut)
                batch_fut = None
                if not batch:
                    return sent
                for item in batch:
                    if isinstance(item, BadLine):
                        bad += 1
                        self._state.errors += 1
                        if bad <= LOGGED_BAD_LINES:
                            log.warning("%s: skipped %s", self.path.name, item)
                        elif bad == LOGGED_BAD_LINES + 1:
                            log.warning("%s: more bad lines; counting them without logging", self.path.name)
                        continue
                    if self.speed > 0:
                        delay = start_mono + item.offset / self.speed - loop.time()
                        if delay > 0:
                            await asyncio.sleep(delay)
                            since_yield = 0
                    since_yield += 1
                    if since_yield >= YIELD_EVERY:
                        await asyncio.sleep(0)
                        since_yield = 0
                    emit(self._retime(item, start_wall))
                    sent += 1
                    self._state.messages += 1
        finally:
            if batch_fut is not None and not batch_fut.done():
                batch_fut.add_done_callback(lambda _f: _close(reader))
            else:
                _close(reader)

    def _retime(self, rec: ReplayRecord, start_wall: float) -> ChatMessage:
        msg = rec.message
        room = msg.room if self.keep_rooms else self.room
        if not self.keep_timestamps:
            return dataclasses.replace(msg, room=room, ts=self._clock())
        ts = msg.ts if rec.has_ts else start_wall + rec.offset
        return dataclasses.replace(msg, room=room, ts=ts)


def _close(it: Iterator[Any]) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        close()
