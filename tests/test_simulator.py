"""The room simulator: script parsing, intended mixes, Poisson arrivals, disturbances, determinism."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from engine.config import SourceConfig
from engine.sources import build_source
from engine.sources.simulator import (
    PRESETS,
    ScriptError,
    Simulator,
    SimulatorSource,
    load_script,
    parse_duration,
    parse_rate,
    parse_script,
)
from engine.types import ChatMessage


def test_durations_and_rates() -> None:
    assert [parse_duration(t) for t in ("90s", "2m", "1m30s", "1.5m", "1h", "60", "4/s")] == [
        90,
        120,
        90,
        90,
        3600,
        None,
        None,
    ]
    assert [parse_rate(t) for t in ("4/s", "240/min", "30/m", "2m")] == [4, 4, 0.5, None]


def test_compact_script_with_settings_comments_and_defaults() -> None:
    script = parse_script(
        """
        users=50 moderators=2          # the audience
        warm-up 1m 3/s neutral=5 happy=3 excited
        reveal 30s 600/min excited=6 flood=3 gifts=0.05; 10s   # unnamed, default rate and mix
        """,
        default_rate=7,
    )
    assert (script.users, script.moderators) == (50, 2)
    warm, reveal, third = script.phases
    assert (warm.name, warm.duration, warm.rate) == ("warm-up", 60, 3)
    assert warm.mix == (("happy", 3.0), ("excited", 1.0), ("neutral", 5.0))
    assert (reveal.rate, reveal.flood, reveal.gifts, reveal.spam) == (10, 3, 0.05, 0)
    assert (third.name, third.duration, third.rate) == ("phase 3", 10, 7)
    assert {e for e, _ in third.mix} == {"happy", "excited", "angry", "sad", "anxious", "neutral"}
    assert script.duration == 100
    assert [(p.name, end) for p, end in map(script.phase_at, (0, 59.9, 60, 99, 100, 265))] == [
        ("warm-up", 60),
        ("warm-up", 60),
        ("reveal", 90),
        ("phase 3", 100),
        ("warm-up", 160),
        ("reveal", 290),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no phases"),
        ("warm 3/s happy", r"phase 1 \(warm\): needs a duration"),
        ("a 1m happy; b 1m joy=2", r"phase 2 \(b\): unknown key 'joy'"),
        ("a 1m 3/s banana", r"cannot read 'banana'"),
        ("a 1m happy=-1", "non-negative"),
        ("a 1m gifts=2", "gifts is a share"),
        ("a 1m happy=0", "add up to zero"),
        ("users=0; a 1m", "out of range"),
    ],
)
def test_script_errors_name_the_phase_and_token(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        parse_script(text)


def test_script_files_toml_and_json_and_presets(tmp_path: Path) -> None:
    (tmp_path / "room.toml").write_text(
        'users = 40\n[[phases]]\nname = "calm"\nduration = "1m"\nrate = "120/min"\n'
        "mix = { neutral = 2, happy = 1 }\nspam = 0.5\n",
        encoding="utf-8",
    )
    (tmp_path / "room.json").write_text(
        json.dumps({"phases": [{"name": "storm", "duration": 30, "rate": 9, "mix": {"angry": 1}}]}),
        encoding="utf-8",
    )
    toml = load_script("room.toml", base_dir=tmp_path)
    assert toml.users == 40
    assert toml.phases[0].rate == 2 and toml.phases[0].spam == 0.5 and toml.phases[0].duration == 60
    js = load_script("room.json", base_dir=tmp_path)
    assert js.phases[0].mix == (("angry", 1.0),)
    (tmp_path / "bad.toml").write_text("[[phases]]\nduration = 10\nmix = { joy = 1 }\n", encoding="utf-8")
    with pytest.raises(ScriptError, match=r"phases\[0\]\.mix"):
        load_script("bad.toml", base_dir=tmp_path)
    with pytest.raises(ScriptError, match="cannot read simulator script"):
        load_script("missing.toml", base_dir=tmp_path)
    assert load_script("", default_rate=12).phases[0].rate == 12  # empty = steady at the source's rate
    assert load_script("demo").duration == 360
    assert set(PRESETS) >= {"steady", "demo"}


def test_phases_produce_their_intended_mix() -> None:
    script = parse_script("moderators=0; calm 5m 20/s happy=3 angry=1; storm 5m 20/s angry=4 sad=1")
    events = list(Simulator(script, seed=7).events())
    calm = Counter(e.emotion for e in events if e.offset < 300)
    storm = Counter(e.emotion for e in events if e.offset >= 300)
    assert set(calm) == {"happy", "angry"} and set(storm) == {"angry", "sad"}
    assert calm["happy"] / calm.total() == pytest.approx(0.75, abs=0.03)
    assert storm["angry"] / storm.total() == pytest.approx(0.8, abs=0.03)
    # Poisson arrivals: the count matches the rate, gaps are exponential (coefficient of variation ~1).
    assert calm.total() == pytest.approx(6000, rel=0.05)
    offsets = [e.offset for e in events]
    assert offsets == sorted(offsets)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, abs=0.1)


def test_same_seed_same_room_other_seed_other_room() -> None:
    script = load_script("demo")
    a = [(m.user, m.text, m.ts, e) for m, e in Simulator(script, seed=3, room="x").iter_messages(500)]
    b = [(m.user, m.text, m.ts, e) for m, e in Simulator(script, seed=3, room="x").iter_messages(500)]
    c = [(m.user, m.text, m.ts, e) for m, e in Simulator(script, seed=4, room="x").iter_messages(500)]
    assert a == b
    assert a != c


def test_iter_messages_loops_to_reach_the_limit_and_stamps_ts() -> None:
    sim = Simulator(parse_script("tiny 2s 5/s happy"), seed=1, room="bench")
    pairs = list(sim.iter_messages(200, start_ts=1000.0))
    assert len(pairs) == 200
    msgs = [m for m, _ in pairs]
    assert all(isinstance(m, ChatMessage) and m.room == "bench" and m.platform == "simulator" for m in msgs)
    assert msgs[0].ts >= 1000.0 and msgs[-1].ts > 1000.0 + 2  # ran past one pass of the script
    assert {e for _, e in pairs} <= {"happy", "neutral"}  # neutral: moderators' housekeeping lines


def test_spammers_burst_one_line_and_floods_paste_one_line_from_many_users() -> None:
    spam = list(Simulator(parse_script("s 5m 2/s neutral spam=6"), seed=5).events())
    by_user_text = Counter((e.user, e.text) for e in spam)
    assert max(by_user_text.values()) >= 6
    flood = list(Simulator(parse_script("f 5m 2/s angry flood=4"), seed=5).events())
    users_by_text: dict[str, set[str]] = defaultdict(set)
    for e in flood:
        users_by_text[e.text].add(e.user)
    assert max(len(u) for u in users_by_text.values()) >= 8


def test_gifts_moderators_and_names() -> None:
    script = parse_script("users=200 moderators=3; g 10m 10/s happy=1 neutral=1 gifts=0.1")
    events = list(Simulator(script, seed=11).events())
    gifted = [e for e in events if e.gift_value > 0]
    assert len(gifted) / len(events) == pytest.approx(0.1, abs=0.02)
    mods = {e.user for e in events if e.is_moderator}
    assert 1 <= len(mods) <= 3
    assert len({e.user for e in events if not e.is_moderator}) > 150
    assert all(0 < len(e.user) <= 64 and e.text.strip() for e in events)


def test_phrases_are_varied() -> None:
    texts = [m.text for m, _ in Simulator(load_script("demo"), seed=1).iter_messages(2000)]
    assert len(set(texts)) > 300


async def test_source_runs_live_to_the_end_and_retimes() -> None:
    src = SimulatorSource(parse_script("a 20s 10/s excited; b 20s 10/s sad"), room="live", seed=2, speed=0)
    got: list[ChatMessage] = []
    await asyncio.wait_for(src.run(got.append), timeout=30)
    expected = [m.text for m, _ in Simulator(src.simulator.script, seed=2).iter_messages()]
    assert [m.text for m in got] == expected
    assert {m.room for m in got} == {"live"} and all(m.ts > 1e9 for m in got)
    assert src.state.status == "finished" and src.state.messages == len(got)


async def test_source_paces_by_speed_and_cancels() -> None:
    src = SimulatorSource(parse_script("slow 1h 1/s neutral"), speed=1, loop=True)
    got: list[ChatMessage] = []
    task = asyncio.create_task(src.run(got.append))
    await asyncio.sleep(0.05)
    assert (src.state.status, src.state.detail) == ("running", "phase slow")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(got) < 50  # paced, not dumped: about one a second
    assert src.state.status == "finished" and src.state.detail == "stopped"


def test_build_source_for_simulator(tmp_path: Path) -> None:
    cfg = SourceConfig(type="simulator", room="sim1", script="x 10s 3/s happy", seed=9, speed=0)
    src = build_source(cfg, tmp_path)
    assert isinstance(src, SimulatorSource)
    assert (src.room, src.simulator.seed, src.speed) == ("sim1", 9, 0)
    with pytest.raises(ScriptError):
        build_source(SourceConfig(type="simulator", script="x happy"), tmp_path)
