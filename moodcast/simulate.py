"""``moodcast simulate --replay FILE``: recorded chat through the real pipeline and the OBS rules, no OBS.

Time is virtual: the replay's own offsets drive the pipeline's clock, snapshots are taken at the
configured rate, and the same rule engine and scene director as the live controller decide. A six-minute
recording simulates in seconds and prints when each rule would fire and end and which scene would be live.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.classify.base import EmotionModel
from engine.config import Config
from engine.pipeline import Pipeline
from engine.rules import RuleEngine, compile_rules
from engine.sources.replay import ReplayReader, ReplayRecord
from overlay.obs.director import Director

ModelLoader = Callable[[str], EmotionModel]
T0 = 1_700_000_000.0
"""Virtual start time: fixed, so two runs of one file print the same timeline."""


@dataclass
class SimulationResult:
    """What a simulation saw: the printed timeline, firings per rule, seconds each scene was live."""

    lines: list[str] = field(default_factory=list)
    fired: dict[str, int] = field(default_factory=dict)
    ended: dict[str, int] = field(default_factory=dict)
    switches: list[tuple[float, str]] = field(default_factory=list)
    """(seconds from start, scene) for every program scene switch."""
    scene_seconds: dict[str, float] = field(default_factory=dict)
    messages: int = 0


def _clock_label(seconds: float) -> str:
    m, s = divmod(round(max(0.0, seconds), 1), 60)
    return f"{int(m):02d}:{s:04.1f}"


async def simulate(
    config: Config,
    replay: Path,
    *,
    load_model: ModelLoader,
    room: str = "demo",
    start_scene: str = "(program scene)",
    tail_seconds: float = 60.0,
    out: Callable[[str], None] = print,
) -> SimulationResult:
    """Replay ``replay`` into ``room`` through the pipeline and the ``[[obs.rules]]``; print the timeline."""
    now = T0
    pipe = Pipeline(config, load_model, clock=lambda: now)
    snaps = pipe.snapshots.subscribe("simulate", maxsize=1_000_000)
    alerts = pipe.events.subscribe("simulate", maxsize=1_000_000)
    rules = compile_rules(config.obs.rules)
    engine = RuleEngine(rules)
    obs = config.obs
    director = Director(min_dwell=obs.min_dwell_seconds, max_per_minute=obs.max_switches_per_minute)
    director.current = start_scene
    result = SimulationResult()
    live_since = 0.0

    def say(t: float, tag: str, text: str) -> None:
        line = f"{_clock_label(t)}  {tag:<5} {text}"
        result.lines.append(line)
        out(line)

    header = (
        f"moodcast simulate: {replay.name} -> room {room!r}; {len(rules)} rule(s); "
        f"start scene {start_scene!r}; model {config.classifier.model}"
        + ("; OBS dry-run" if obs.dry_run else "")
    )
    result.lines.append(header)
    out(header)
    if not rules:
        out("  (no [[obs.rules]] in the config: only the pipeline's own spike alerts are shown)")

    records = [r for r in ReplayReader(replay, room=room) if isinstance(r, ReplayRecord)]
    step = 1.0 / max(0.1, config.aggregate.snapshot_hz)
    end = (records[-1].offset if records else 0.0) + tail_seconds
    i = 0
    t = 0.0
    while t <= end + 1e-9:
        now = T0 + t
        batch = []
        while i < len(records) and records[i].offset <= t:
            m = records[i].message
            batch.append(dataclasses.replace(m, room=room, ts=T0 + records[i].offset))
            i += 1
        if batch:
            await pipe.process_messages(batch)
            result.messages += len(batch)
        pipe.publish_snapshots(now)
        for alert in alerts.drain_nowait(1_000_000):
            say(t, "ALERT", alert.message)
        cmds = []
        for snap in snaps.drain_nowait(1_000_000):
            for d in engine.feed(snap):
                tag = "FIRE" if d.phase == "fire" else "END"
                counter = result.fired if d.phase == "fire" else result.ended
                counter[d.rule] = counter.get(d.rule, 0) + 1
                say(t, tag, d.reason)
                cmds += director.decide(d, engine.rule(d.rule), now)
        cmds += director.reconcile(now)
        for c in cmds:
            if c.kind == "note":
                say(t, "HOLD", c.reason)
            elif c.kind == "switch_scene":
                prev = result.switches[-1][1] if result.switches else start_scene
                result.scene_seconds[prev] = result.scene_seconds.get(prev, 0.0) + t - live_since
                live_since = t
                result.switches.append((t, c.scene))
                say(t, "SCENE", f"{c.reason}  [live: {c.scene}]")
            else:
                say(t, "OBS", f"{c.describe()}  ({c.reason})")
        t = round(t + step, 6)
    last = result.switches[-1][1] if result.switches else start_scene
    result.scene_seconds[last] = result.scene_seconds.get(last, 0.0) + end - live_since
    fired = ", ".join(f"{name} x{n}" for name, n in result.fired.items()) or "none"
    scenes = ", ".join(f"{s} {_clock_label(sec)}" for s, sec in result.scene_seconds.items())
    summary = (
        f"done: {result.messages} messages over {_clock_label(end)}; rules fired: {fired}; "
        f"{len(result.switches)} scene switch(es); time live: {scenes}"
    )
    result.lines.append(summary)
    out(summary)
    return result
