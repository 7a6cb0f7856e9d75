"""Replay of JSONL, CSV and text files: order, pacing, bad lines, looping, cancellation."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import logging
import time
from pathlib import Path

import pytest

from engine.config import SourceConfig
from engine.samples import make_demo
from engine.sources import SourceError, build_source
from engine.sources.replay import BUNDLED_DEMO, BadLine, ReplayReader, ReplaySource, detect_format
from engine.types import ChatMessage

CLOCK_SLACK = 0.005  # asyncio may wake a timer up to one clock tick early


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


async def replay(source: ReplaySource) -> tuple[list[ChatMessage], list[float]]:
    """Run the source to the end; the messages and the loop time each was emitted at."""
    loop = asyncio.get_running_loop()
    got: list[ChatMessage] = []
    times: list[float] = []

    def emit(msg: ChatMessage) -> None:
        got.append(msg)
        times.append(loop.time())

    await source.run(emit)
    return got, times


async def test_jsonl_in_order_with_fields_and_retimed_to_now(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"t": 0, "user": "阿杰", "text": "主播晚上好", "ts": 1_600_000_000},
            {"t": 0.5, "user": "小雨", "text": "冲冲冲", "is_moderator": True},
            {"t": 1.0, "user": 42, "text": "退钱", "gift_value": 9.9, "platform": "bilibili"},
        ],
    )
    before = time.time()
    got, _ = await replay(ReplaySource(path, room="shop", speed=0))
    assert [m.text for m in got] == ["主播晚上好", "冲冲冲", "退钱"]
    assert [m.user for m in got] == ["阿杰", "小雨", "42"]
    assert got[1].is_moderator and got[2].gift_value == 9.9
    assert got[2].platform == "bilibili" and got[0].platform == "replay"
    assert {m.room for m in got} == {"shop"}
    # Live replay: the file's timestamps are replaced by the time of emission.
    assert all(m.ts >= before for m in got)


async def test_keep_timestamps_and_rooms_for_import(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"text": "a", "ts": 1_600_000_000, "room": "r1"},
            {"text": "b", "ts": 1_600_000_002_500, "room": "r2"},  # milliseconds
            {"text": "c", "t": 7},
        ],
    )
    src = ReplaySource(
        path, room="dflt", speed=0, keep_timestamps=True, keep_rooms=True, clock=lambda: 1000.0
    )
    got, _ = await replay(src)
    assert [(m.room, m.ts) for m in got] == [("r1", 1_600_000_000), ("r2", 1_600_000_002.5), ("dflt", 1007.0)]


async def test_pacing_follows_t_divided_by_speed(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [{"t": t, "text": f"m{t}"} for t in (0.0, 0.5, 1.0, 2.0)]
    path = write_jsonl(tmp_path / "paced.jsonl", rows)
    got, times = await replay(ReplaySource(path, speed=20))
    assert [m.text for m in got] == ["m0.0", "m0.5", "m1.0", "m2.0"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, expected in zip(gaps, (0.5 / 20, 0.5 / 20, 1.0 / 20), strict=True):
        assert gap >= expected - CLOCK_SLACK


async def test_pacing_from_absolute_ts_when_no_t(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ts.jsonl", [{"text": "a", "ts": 1000.0}, {"text": "b", "ts": 1001.0}])
    reader = list(ReplayReader(path))
    assert [r.offset for r in reader if not isinstance(r, BadLine)] == [0.0, 1.0]
    _, times = await replay(ReplaySource(path, speed=25))
    assert times[1] - times[0] >= 1.0 / 25 - CLOCK_SLACK


async def test_csv_with_header_quotes_and_optional_columns(tmp_path: Path) -> None:
    path = tmp_path / "chat.csv"
    path.write_text(
        "\ufeffts,user,text,is_moderator,gift_value,room\n"
        '1700000000,阿珍,"还有货吗，L码",false,,\n'
        '1700000001.5,老王,"一行\n又一行",yes,6.6,\n'
        "2023-11-14T22:13:22+00:00,Lily,冲冲冲,0,0,other\n",
        encoding="utf-8",
    )
    got, _ = await replay(ReplaySource(path, room="shop", speed=0, keep_timestamps=True, keep_rooms=True))
    assert [m.text for m in got] == ["还有货吗，L码", "一行 又一行", "冲冲冲"]
    assert [m.user for m in got] == ["阿珍", "老王", "Lily"]
    assert [m.is_moderator for m in got] == [False, True, False]
    assert got[1].gift_value == 6.6
    assert [m.ts for m in got] == [1_700_000_000, 1_700_000_001.5, 1_700_000_002.0]
    assert [m.room for m in got] == ["shop", "shop", "other"]


async def test_csv_t_column_paces(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,t\na,0\nb,1\n", encoding="utf-8")
    got, times = await replay(ReplaySource(path, speed=25))
    assert [m.text for m in got] == ["a", "b"]
    assert times[1] - times[0] >= 1.0 / 25 - CLOCK_SLACK


async def test_csv_without_text_column_is_an_error_state(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("user,msg\na,b\n", encoding="utf-8")
    src = ReplaySource(path, speed=0)
    got, _ = await replay(src)
    assert got == []
    assert src.state.status == "error"
    assert "no 'text' column" in src.state.detail


async def test_text_lines_paced_evenly_at_rate(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text("主播好\n\n  \n冲冲冲\n还有货吗\n", encoding="utf-8")
    got, times = await replay(ReplaySource(path, speed=1, rate=50))
    assert [m.text for m in got] == ["主播好", "冲冲冲", "还有货吗"]
    assert times[2] - times[0] >= 2 / 50 - CLOCK_SLACK


async def test_bad_lines_are_skipped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "messy.jsonl"
    with path.open("wb") as f:
        f.write(b'{"text": "one"}\n')
        f.write(b"{not json\n")  # line 2
        f.write(b'{"text": "bad \xff\xfe bytes"}\n')  # line 3
        f.write(b'{"user": "no text"}\n')  # line 4
        f.write(b'{"text": "' + b"x" * (10 * 1024 * 1024) + b'"}\n')  # line 5: 10 MB
        f.write(b"[1, 2]\n")  # line 6
        f.write(b'{"text": "neg", "t": -1}\n')  # line 7
        f.write(b'{"text": 5}\n')  # line 8
        f.write(b'{"text": "two"}')  # no trailing newline
    src = ReplaySource(path, speed=0)
    with caplog.at_level(logging.WARNING, logger="engine.sources.replay"):
        got, _ = await replay(src)
    assert [m.text for m in got] == ["one", "two"]
    state = src.state
    assert (state.status, state.messages, state.errors) == ("finished", 2, 7)
    logged = caplog.text
    for n in range(2, 9):
        assert f"line {n}:" in logged
    assert "invalid UTF-8" in logged and "longer than" in logged and "'text'" in logged


def test_oversize_line_is_not_held_in_memory_and_next_line_survives(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    with path.open("wb") as f:
        f.write("前\n".encode())
        f.write(b"y" * (3 * 1024 * 1024) + b"\n")
        f.write("后\n".encode())
    items = list(ReplayReader(path, max_line_bytes=1024))
    assert [i.reason if isinstance(i, BadLine) else i.message.text for i in items] == [
        "前",
        "line longer than 1024 bytes",
        "后",
    ]


async def test_loop_repeats_forever_until_cancelled(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "loop.jsonl", [{"text": "a"}, {"text": "b"}, {"text": "c"}])
    src = ReplaySource(path, speed=0, loop=True)
    got: list[str] = []
    enough = asyncio.Event()

    def emit(msg: ChatMessage) -> None:
        got.append(msg.text)
        if len(got) >= 10:
            enough.set()

    task = asyncio.create_task(src.run(emit))
    await asyncio.wait_for(enough.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert got[:10] == ["a", "b", "c"] * 3 + ["a"]
    assert src.state.status == "finished"


async def test_loop_of_a_file_without_valid_messages_stops_with_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b"nope\n[]\n")
    src = ReplaySource(path, speed=0, loop=True)
    got, _ = await asyncio.wait_for(replay(src), timeout=10)
    assert got == []
    assert src.state.status == "error" and src.state.errors == 2


async def test_cancel_while_waiting_for_the_next_message(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "slow.jsonl", [{"t": 0, "text": "now"}, {"t": 3600, "text": "later"}])
    src = ReplaySource(path, speed=1)
    first = asyncio.Event()
    got: list[str] = []

    def emit(msg: ChatMessage) -> None:
        got.append(msg.text)
        first.set()

    task = asyncio.create_task(src.run(emit))
    await asyncio.wait_for(first.wait(), timeout=10)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert got == ["now"]
    assert src.state.status == "finished" and src.state.detail == "stopped"


async def test_speed_zero_yields_to_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "many.txt"
    path.write_text("".join(f"msg {i}\n" for i in range(3000)), encoding="utf-8")
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0)

    t = asyncio.create_task(ticker())
    got, _ = await replay(ReplaySource(path, speed=0))
    stop = True
    await t
    assert len(got) == 3000 and got[-1].text == "msg 2999"
    assert ticks > 5  # other tasks ran while the replay was going


async def test_gzip_and_format_detection(tmp_path: Path) -> None:
    gz = tmp_path / "chat.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write('{"text": "压缩的"}\n')
    sniffed = tmp_path / "chat.log"
    sniffed.write_text('\n{"text": "json without suffix"}\n', encoding="utf-8")
    plain = tmp_path / "chat.dat"
    plain.write_text("just text\n", encoding="utf-8")
    assert (detect_format(gz), detect_format(sniffed), detect_format(plain)) == ("jsonl", "jsonl", "text")
    got, _ = await replay(ReplaySource(gz, speed=0))
    assert [m.text for m in got] == ["压缩的"]
    got, _ = await replay(ReplaySource(sniffed, speed=0))
    assert [m.text for m in got] == ["json without suffix"]


def test_build_source_from_config(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text("hi\n", encoding="utf-8")
    src = build_source(SourceConfig(type="replay", room="r", path="c.txt", speed=2.0), tmp_path)
    assert isinstance(src, ReplaySource)
    assert (src.room, src.path, src.speed, src.state.status) == ("r", tmp_path / "c.txt", 2.0, "starting")
    demo = build_source(SourceConfig(type="replay", path=""), tmp_path)
    assert isinstance(demo, ReplaySource) and demo.path == BUNDLED_DEMO
    with pytest.raises(SourceError, match="not found"):
        build_source(SourceConfig(type="replay", path="missing.jsonl"), tmp_path)


async def test_bundled_demo_replays_cleanly_and_is_reproducible() -> None:
    assert BUNDLED_DEMO.stat().st_size < 1_000_000
    # make_demo regenerates the committed file byte for byte.
    assert make_demo.render() == BUNDLED_DEMO.read_bytes()
    src = ReplaySource(BUNDLED_DEMO, room="demo", speed=0)
    got, _ = await replay(src)
    assert src.state.errors == 0
    assert len(got) > 2000
    assert any(m.is_moderator for m in got) and any(m.gift_value > 0 for m in got)
    rows = [json.loads(line) for line in BUNDLED_DEMO.read_text(encoding="utf-8").splitlines()]
    assert 330 < rows[-1]["t"] <= 360

    # The story: excitement at the reveal, anger when the gift goes missing.
    def top(lo: float, hi: float) -> str:
        counts: dict[str, int] = {}
        for r in rows:
            if lo <= r["t"] < hi:
                counts[r["emotion"]] = counts.get(r["emotion"], 0) + 1
        return max(counts, key=lambda e: counts[e])

    assert top(0, 60) == "neutral"
    assert top(70, 130) == "excited"
    assert top(200, 270) == "angry"
