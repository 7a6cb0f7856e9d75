"""Mood rules: pure, clock-free evaluation of snapshot streams into fire/end decisions.

A rule watches one metric of a room's snapshots (negative share, one emotion's share, message rate or
spike score). It *fires* once the metric has stayed at or above ``threshold`` for ``for_seconds``, and
*ends* once the metric has stayed at or below ``exit_threshold`` (hysteresis) for ``calm_seconds``; after
an end it rests for ``cooldown_seconds``. Time is the snapshots' own ``ts``, so a replay fed as fast as
possible (``moodcast simulate``) decides exactly as the live stream would. Nothing here talks to OBS:
decisions go to whoever consumes them (overlay/obs, the simulator).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.config import ConfigError, ObsActionConfig, ObsRuleConfig
from engine.emotions import EMOTIONS, INDEX
from engine.types import MoodSnapshot, TriggerEvent

Phase = Literal["fire", "end"]

EDITABLE = ("enabled", "threshold", "exit_threshold", "for_seconds", "calm_seconds", "cooldown_seconds")
"""Rule fields the dashboard may change at runtime."""

_NEEDS: dict[str, tuple[str, ...]] = {
    "switch_scene": ("scene",),
    "source_visibility": ("scene", "source"),
    "set_text": ("source",),
    "advss_message": ("message",),
    "advss_set_variable": ("variable",),
    "advss_run_macro": ("macro",),
    "vendor_request": ("vendor", "request"),
    "broadcast_event": (),
}


@dataclass(slots=True)
class Rule:
    """A rule as it runs: the config's values, some of which the dashboard may change (``EDITABLE``)."""

    name: str
    room: str
    enabled: bool
    metric: str
    emotion: str
    window: int
    threshold: float
    exit_threshold: float
    for_seconds: float
    calm_seconds: float
    cooldown_seconds: float
    min_messages: int
    actions: tuple[ObsActionConfig, ...]
    priority: int
    """Position in the config: with two rules active, the earlier one's scene wins."""

    @property
    def switches_scene(self) -> bool:
        return any(a.type == "switch_scene" and a.when == "fire" for a in self.actions)

    @property
    def metric_label(self) -> str:
        if self.metric == "spike_score":
            return "spike_score"
        what = f"{self.emotion}_share" if self.metric == "emotion_share" else self.metric
        return f"{what}({self.window}s)"

    def applies_to(self, room: str) -> bool:
        return not self.room or self.room == room

    def value(self, snap: MoodSnapshot) -> tuple[float, dict[str, float]]:
        """The metric's value in ``snap`` and the readings that explain it (for logs and the dashboard)."""
        w = snap.window(self.window)
        values = {
            "negative_share": w.negative_share,
            "rate": w.rate,
            "messages": float(w.messages),
            "spike_score": snap.spike_score,
        }
        if self.metric == "spike_score":
            v = snap.spike_score
        elif self.metric == "rate":
            v = w.rate
        else:
            if self.metric == "emotion_share":
                share = w.shares[INDEX[self.emotion]]
                values[f"{self.emotion}_share"] = share
            else:
                share = w.negative_share
            # Three angry messages out of four are not a room turning: shares need enough messages.
            v = share if w.messages >= self.min_messages else 0.0
        if not math.isfinite(v):
            v = 0.0
        return v, values

    def describe(self) -> dict[str, Any]:
        """The rule as plain data (dashboard, status endpoint)."""
        return {
            "name": self.name,
            "room": self.room,
            "enabled": self.enabled,
            "metric": self.metric,
            "metric_label": self.metric_label,
            "emotion": self.emotion,
            "window": self.window,
            "threshold": self.threshold,
            "exit_threshold": self.exit_threshold,
            "for_seconds": self.for_seconds,
            "calm_seconds": self.calm_seconds,
            "cooldown_seconds": self.cooldown_seconds,
            "min_messages": self.min_messages,
            "actions": [action_summary(a) for a in self.actions],
        }


def action_summary(a: ObsActionConfig) -> str:
    """One line saying what an action does, for people."""
    on_end = " (when the rule ends)" if a.when == "end" else ""
    if a.type == "switch_scene":
        back = ", back when calm" if a.revert and a.when == "fire" else ""
        return f"switch to scene {a.scene!r}{back}{on_end}"
    if a.type == "source_visibility":
        verb = "show" if a.visible else "hide"
        return f"{verb} {a.source!r} in {a.scene!r}{on_end}"
    if a.type == "set_text":
        return f"set text of {a.source!r} to {a.text!r}{on_end}"
    if a.type == "advss_message":
        return f"Advanced Scene Switcher message {a.message!r}{on_end}"
    if a.type == "advss_set_variable":
        return f"Advanced Scene Switcher variable {a.variable!r} = {a.value!r}{on_end}"
    if a.type == "advss_run_macro":
        return f"Advanced Scene Switcher macro {a.macro!r}{on_end}"
    if a.type == "vendor_request":
        return f"vendor request {a.vendor}/{a.request}{on_end}"
    return f"custom event{on_end}"


def json_object(text: str, key: str) -> dict[str, Any]:
    """Parse an action's ``data`` (a JSON object, "" = empty); ConfigError names the key."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"'{key}' must be a JSON object: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"'{key}' must be a JSON object, got {type(data).__name__}")
    return data


def compile_rules(configs: Iterable[ObsRuleConfig]) -> list[Rule]:
    """Validate the ``[[obs.rules]]`` tables and build runnable rules; ConfigError names the bad key."""
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, c in enumerate(configs):
        key = f"obs.rules[{i}]"
        name = c.name.strip() or f"rule-{i + 1}"
        if name in seen:
            raise ConfigError(f"'{key}.name': another rule is already called {name!r}")
        seen.add(name)
        if c.metric == "emotion_share" and c.emotion not in INDEX:
            raise ConfigError(f"'{key}.emotion' must be one of {', '.join(EMOTIONS)}, got {c.emotion!r}")
        if c.window <= 0:
            raise ConfigError(f"'{key}.window' must be at least 1 second")
        _check_thresholds(key, c.threshold, c.exit_threshold)
        for j, a in enumerate(c.actions):
            akey = f"{key}.actions[{j}]"
            for need in _NEEDS[a.type]:
                if not str(getattr(a, need)).strip():
                    raise ConfigError(f"'{akey}.{need}' is required for an action of type {a.type!r}")
            if a.type in {"vendor_request", "broadcast_event"}:
                json_object(a.data, f"{akey}.data")
        rules.append(
            Rule(
                name=name,
                room=c.room.strip(),
                enabled=c.enabled,
                metric=c.metric,
                emotion=c.emotion,
                window=c.window,
                threshold=c.threshold,
                exit_threshold=c.exit_threshold,
                for_seconds=c.for_seconds,
                calm_seconds=c.calm_seconds,
                cooldown_seconds=c.cooldown_seconds,
                min_messages=c.min_messages,
                actions=c.actions,
                priority=i,
            )
        )
    return rules


def _check_thresholds(key: str, threshold: float, exit_threshold: float) -> None:
    if exit_threshold > threshold:
        raise ConfigError(
            f"'{key}.exit_threshold' ({exit_threshold}) must not be above threshold ({threshold}): "
            "the room is calm again only below the level that fired the rule"
        )


@dataclass(frozen=True, slots=True)
class RuleDecision:
    """A rule fired or ended in one room at ``ts``, with the readings that decided it."""

    rule: str
    room: str
    ts: float
    phase: Phase
    value: float
    reason: str
    values: Mapping[str, float]
    priority: int
    metric: str = ""

    def to_event(self) -> TriggerEvent:
        """The decision as a TriggerEvent (stored in SQLite, shown on the dashboard)."""
        kind = "rule_fired" if self.phase == "fire" else "rule_ended"
        return TriggerEvent(self.room, self.ts, kind, self.reason, dict(self.values))


@dataclass(slots=True)
class _State:
    phase: Literal["idle", "arming", "active", "calming"] = "idle"
    since: float = 0.0
    ended_at: float = -math.inf


@dataclass(slots=True)
class RuleEngine:
    """Feeds snapshots through every rule; keeps each (rule, room)'s state. Not thread-safe."""

    rules: list[Rule]
    _states: dict[tuple[str, str], _State] = field(default_factory=dict)

    def rule(self, name: str) -> Rule:
        """The rule called ``name``; KeyError if there is none."""
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(name)

    def active(self) -> list[tuple[str, str]]:
        """(rule, room) pairs currently fired and not yet ended."""
        return [k for k, s in self._states.items() if s.phase in {"active", "calming"}]

    def phase_of(self, rule: str, room: str) -> str:
        st = self._states.get((rule, room))
        return st.phase if st else "idle"

    def update(self, name: str, changes: Mapping[str, object]) -> Rule:
        """Apply dashboard edits to one rule (only ``EDITABLE`` fields); ValueError says what is wrong."""
        rule = self.rule(name)
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {', '.join(sorted(unknown))} (editable: {', '.join(EDITABLE)})")
        new: dict[str, Any] = {}
        for k, v in changes.items():
            if k == "enabled":
                if not isinstance(v, bool):
                    raise ValueError("'enabled' must be true or false")
                new[k] = v
            else:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise ValueError(f"'{k}' must be a non-negative number")
                new[k] = float(v)
        threshold = new.get("threshold", rule.threshold)
        exit_threshold = new.get("exit_threshold", rule.exit_threshold)
        try:
            _check_thresholds(name, threshold, exit_threshold)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        for k, v in new.items():
            setattr(rule, k, v)
        return rule

    def feed(self, snap: MoodSnapshot) -> list[RuleDecision]:
        """Evaluate every rule that watches ``snap.room``; return what fired or ended at ``snap.ts``."""
        out: list[RuleDecision] = []
        for rule in self.rules:
            if not rule.applies_to(snap.room):
                continue
            d = self._step(rule, snap)
            if d is not None:
                out.append(d)
        return out

    def _step(self, rule: Rule, snap: MoodSnapshot) -> RuleDecision | None:
        key = (rule.name, snap.room)
        st = self._states.setdefault(key, _State())
        t = snap.ts
        value, values = rule.value(snap)
        values = {**values, rule.metric_label: value, "threshold": rule.threshold}
        if not rule.enabled:
            if st.phase in {"active", "calming"}:
                st.phase, st.ended_at = "idle", t
                return self._decision(rule, snap, "end", value, values, "rule disabled")
            st.phase = "idle"
            return None
        if st.phase == "idle":
            if value >= rule.threshold and t - st.ended_at >= rule.cooldown_seconds:
                st.phase, st.since = "arming", t
        elif st.phase == "arming" and value < rule.threshold:
            st.phase = "idle"
        if st.phase == "arming" and t - st.since >= rule.for_seconds:
            st.phase = "active"
            held = f" for {t - st.since:.0f}s" if rule.for_seconds > 0 else ""
            why = f"{rule.metric_label} = {_fmt(value)} >= {_fmt(rule.threshold)}{held}"
            return self._decision(rule, snap, "fire", value, values, why)
        if st.phase == "active" and value <= rule.exit_threshold:
            st.phase, st.since = "calming", t
        elif st.phase == "calming" and value > rule.exit_threshold:
            st.phase = "active"
        if st.phase == "calming" and t - st.since >= rule.calm_seconds:
            st.phase, st.ended_at = "idle", t
            calm = f"{rule.calm_seconds:.0f}s"
            why = f"{rule.metric_label} = {_fmt(value)} <= {_fmt(rule.exit_threshold)} for {calm}"
            return self._decision(rule, snap, "end", value, values, why)
        return None

    @staticmethod
    def _decision(
        rule: Rule, snap: MoodSnapshot, phase: Phase, value: float, values: dict[str, float], why: str
    ) -> RuleDecision:
        verb = "fired" if phase == "fire" else "ended"
        return RuleDecision(
            rule=rule.name,
            room=snap.room,
            ts=snap.ts,
            phase=phase,
            value=value,
            reason=f"rule {rule.name!r} {verb} in room {snap.room!r}: {why}",
            values=values,
            priority=rule.priority,
            metric=rule.metric_label,
        )


def _fmt(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 100 else f"{x:.0f}"
