"""The scene director: turns rule decisions into OBS commands, with the safety rules. Pure: no I/O.

The program scene is reconciled, not toggled: the wanted scene is the one of the highest-priority active
rule that switches scenes; with none active, the scene that was live before automation took over. A
switch happens only when automation is not paused, the last switch (the producer's included) is at
least ``min_dwell`` old and fewer than ``max_per_minute`` automatic switches happened in the last minute;
a held switch is retried on the next tick. A switch the producer makes by hand wins: the rules active at
that moment never switch again, and nothing switches back over it. The live controller and
``moodcast simulate`` drive the same director, so a simulation shows what the stream would do.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.config import ObsActionConfig
from engine.rules import Rule, RuleDecision, json_object

ADVSS_VENDOR = "AdvancedSceneSwitcher"
"""Advanced Scene Switcher's obs-websocket vendor name and its request types."""
ADVSS_MESSAGE = "AdvancedSceneSwitcherMessage"
ADVSS_SET_VARIABLES = "AdvancedSceneSwitcherSetVariables"
ADVSS_RUN_MACRO = "AdvancedSceneSwitcherRunMacro"
OWN_SWITCH_SECONDS = 10.0
"""A program-scene event for a scene we asked for within this long is our own switch, not the producer's."""

CommandKind = Literal[
    "switch_scene",
    "source_visibility",
    "set_text",
    "restore_text",
    "vendor_request",
    "broadcast_event",
    "note",
]


@dataclass(frozen=True, slots=True)
class ObsCommand:
    """One thing to do in OBS (or, for ``note``, only to log), with the reason that caused it."""

    kind: CommandKind
    rule: str
    room: str
    reason: str
    values: Mapping[str, float] = field(default_factory=dict)
    scene: str = ""
    source: str = ""
    visible: bool = True
    text: str = ""
    vendor: str = ""
    request: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""
    """set_text/restore_text: where the controller keeps the text it replaced."""

    def describe(self) -> str:
        """What this command does, for people."""
        if self.kind == "switch_scene":
            return f"switch program scene to {self.scene!r}"
        if self.kind == "source_visibility":
            return f"{'show' if self.visible else 'hide'} {self.source!r} in {self.scene!r}"
        if self.kind == "set_text":
            return f"set text of {self.source!r} to {self.text!r}"
        if self.kind == "restore_text":
            return f"restore the text of {self.source!r}"
        if self.kind == "vendor_request":
            return f"vendor request {self.vendor}/{self.request} {dict(self.data)}"
        if self.kind == "broadcast_event":
            return f"broadcast custom event {dict(self.data)}"
        return self.reason


@dataclass(slots=True)
class _Episode:
    rule: Rule
    decision: RuleDecision
    overridden: bool = False


@dataclass(slots=True)
class _Owned:
    scene: str
    return_to: str
    rule: str
    room: str


class Director:
    """Decides what to do in OBS; the caller performs the commands and reports the scenes it sees."""

    def __init__(self, *, min_dwell: float, max_per_minute: int) -> None:
        self.min_dwell = min_dwell
        self.max_per_minute = max_per_minute
        self.current: str | None = None
        """The program scene as last known (None: unknown, e.g. not connected)."""
        self.paused = False
        self._episodes: dict[tuple[str, str], _Episode] = {}
        self._owned: _Owned | None = None
        self._last_switch = -math.inf
        self._auto: deque[float] = deque()
        self._expected: dict[str, float] = {}
        self._held = ""

    # -- what the caller observes -------------------------------------------------------------------
    def connected(self, scene: str, now: float) -> list[ObsCommand]:
        """OBS (re)connected and shows ``scene``: not a producer's switch; re-apply what rules want."""
        self.current = scene
        self._expected.clear()
        return self.reconcile(now)

    def disconnected(self) -> None:
        """The program scene is unknown until the next connection."""
        self.current = None
        self._expected.clear()

    def switch_failed(self, scene: str, actual: str) -> None:
        """OBS refused to switch to ``scene`` (it may not exist): stop wanting it for the active rules."""
        self.current = actual
        self._expected.pop(scene, None)
        if self._owned is not None and self._owned.scene == scene:
            self._owned = (
                None
                if self._owned.return_to == actual
                else _Owned(actual, self._owned.return_to, self._owned.rule, self._owned.room)
            )
        for ep in self._episodes.values():
            if any(a.type == "switch_scene" and a.scene == scene for a in ep.rule.actions):
                ep.overridden = True

    def observe_scene(self, scene: str, now: float) -> list[ObsCommand]:
        """OBS reports a program scene change: ours if we asked for it, else the producer's."""
        asked = self._expected.pop(scene, None)
        if asked is not None and now - asked <= OWN_SWITCH_SECONDS:
            self.current = scene
            return []
        previous, self.current = self.current, scene
        if previous == scene:
            return []
        self._last_switch = now
        respected = [ep for ep in self._episodes.values() if ep.rule.switches_scene and not ep.overridden]
        for ep in respected:
            ep.overridden = True
        had_owned, self._owned = self._owned is not None, None
        why = f"producer switched to {scene!r}"
        if respected or had_owned:
            names = ", ".join(sorted({ep.rule.name for ep in respected})) or "none active"
            why += f": automation will not switch back over it (rules holding off: {names})"
        return [ObsCommand("note", "", "*", why, scene=scene)]

    # -- what the rules decide ----------------------------------------------------------------------
    def decide(self, d: RuleDecision, rule: Rule, now: float) -> list[ObsCommand]:
        """Commands for one rule decision (plus any scene change it makes due)."""
        key = (d.rule, d.room)
        out: list[ObsCommand] = []
        if d.phase == "fire":
            self._episodes[key] = _Episode(rule, d)
            actions = [a for a in rule.actions if a.when == "fire" and a.type != "switch_scene"]
        else:
            self._episodes.pop(key, None)
            actions = [a for a in rule.actions if a.when == "end"]
            # Undo what firing did (the scene goes back through reconcile, which respects the producer).
            out += [c for a in rule.actions if a.when == "fire" and a.revert for c in self._revert(a, d)]
        for a in actions:
            if a.type == "switch_scene":  # an end action: a one-off cut, not owned by anything
                out += self._try_switch(a.scene, d, now, own=False)
            else:
                out += self._command(a, d)
        if self.paused:
            out = [
                ObsCommand("note", d.rule, d.room, f"automation paused: skipped {c.describe()}", d.values)
                if c.kind != "note"
                else c
                for c in out
            ]
        return out + self.reconcile(now)

    def reconcile(self, now: float) -> list[ObsCommand]:
        """Switch the program scene towards what the active rules want, if the safety rules allow."""
        if self.current is None:
            return []
        wanted = self._wanted()
        if wanted is not None:
            ep, scene = wanted
            if scene == self.current:
                self._held = ""
                return []
            return self._try_switch(scene, ep.decision, now, own=True)
        owned = self._owned
        if owned is None:
            self._held = ""
            return []
        if owned.scene != self.current:
            self._owned = None  # something else changed the scene: nothing of ours to undo
            return []
        calm = RuleDecision(
            owned.rule,
            owned.room,
            now,
            "end",
            0.0,
            f"room {owned.room!r} is calm: back to {owned.return_to!r}",
            {},
            0,
        )
        return self._try_switch(owned.return_to, calm, now, own=False, returning=True)

    def _wanted(self) -> tuple[_Episode, str] | None:
        live = [ep for ep in self._episodes.values() if ep.rule.switches_scene and not ep.overridden]
        if not live:
            return None
        ep = min(live, key=lambda e: (e.rule.priority, e.decision.ts))
        scene = next(a.scene for a in ep.rule.actions if a.type == "switch_scene" and a.when == "fire")
        return ep, scene

    def _try_switch(
        self, scene: str, d: RuleDecision, now: float, *, own: bool, returning: bool = False
    ) -> list[ObsCommand]:
        held = self._hold_reason(now)
        if held:
            # Held switches are retried every tick: say so once per scene and reason, not four times a second.
            tag = f"{scene}|{held.split(' ')[0]}"
            if tag == self._held:
                return []
            self._held = tag
            note = f"holding the switch to {scene!r}: {held}"
            return [ObsCommand("note", d.rule, d.room, note, d.values, scene=scene)]
        self._held = ""
        previous = self.current or ""
        if own:
            return_to = self._owned.return_to if self._owned else previous
            self._owned = _Owned(scene, return_to, d.rule, d.room)
        elif returning:
            self._owned = None
        self.current = scene
        self._last_switch = now
        self._auto.append(now)
        self._expected[scene] = now
        reason = d.reason if not returning else f"{d.reason} (rule {d.rule!r} ended)"
        return [
            ObsCommand(
                "switch_scene", d.rule, d.room, f"{previous!r} -> {scene!r}: {reason}", d.values, scene=scene
            )
        ]

    def _hold_reason(self, now: float) -> str:
        if self.paused:
            return "automation paused"
        since = now - self._last_switch
        if since < self.min_dwell:
            return f"minimum dwell {self.min_dwell:.0f}s (last switch {since:.0f}s ago)"
        while self._auto and now - self._auto[0] >= 60.0:
            self._auto.popleft()
        if len(self._auto) >= self.max_per_minute:
            return f"cap of {self.max_per_minute} switches per minute reached"
        return ""

    # -- non-scene actions --------------------------------------------------------------------------
    def _command(self, a: ObsActionConfig, d: RuleDecision) -> list[ObsCommand]:
        def c(kind: CommandKind, **kw: Any) -> ObsCommand:
            return ObsCommand(kind, d.rule, d.room, d.reason, d.values, **kw)

        fill = _filler(d)
        key = f"{d.rule}|{d.room}|{a.source}"
        if a.type == "source_visibility":
            return [c("source_visibility", scene=a.scene, source=a.source, visible=a.visible)]
        if a.type == "set_text":
            return [c("set_text", source=a.source, text=fill(a.text), key=key if a.revert else "")]
        if a.type == "advss_message":
            return [
                c(
                    "vendor_request",
                    vendor=ADVSS_VENDOR,
                    request=ADVSS_MESSAGE,
                    data={"message": fill(a.message)},
                )
            ]
        variables = [{"name": a.variable, "value": fill(a.value)}] if a.variable else []
        if a.type == "advss_set_variable":
            return [
                c(
                    "vendor_request",
                    vendor=ADVSS_VENDOR,
                    request=ADVSS_SET_VARIABLES,
                    data={"variables": variables},
                )
            ]
        if a.type == "advss_run_macro":
            data: dict[str, Any] = {"name": a.macro}
            if variables:
                data["variables"] = variables
            return [c("vendor_request", vendor=ADVSS_VENDOR, request=ADVSS_RUN_MACRO, data=data)]
        if a.type == "vendor_request":
            return [c("vendor_request", vendor=a.vendor, request=a.request, data=json_object(a.data, "data"))]
        if a.type == "broadcast_event":
            payload = {
                "source": "moodcast",
                "rule": d.rule,
                "room": d.room,
                "phase": d.phase,
                "values": {k: round(v, 4) for k, v in d.values.items()},
                **json_object(a.data, "data"),
            }
            return [c("broadcast_event", data=payload)]
        return []

    def _revert(self, a: ObsActionConfig, d: RuleDecision) -> list[ObsCommand]:
        if a.type == "source_visibility":
            return [
                ObsCommand(
                    "source_visibility",
                    d.rule,
                    d.room,
                    d.reason,
                    d.values,
                    scene=a.scene,
                    source=a.source,
                    visible=not a.visible,
                )
            ]
        if a.type == "set_text":
            key = f"{d.rule}|{d.room}|{a.source}"
            return [ObsCommand("restore_text", d.rule, d.room, d.reason, d.values, source=a.source, key=key)]
        return []

    # -- state for the dashboard --------------------------------------------------------------------
    def state(self, now: float) -> dict[str, Any]:
        """What the panel shows: scene, ownership, active rules, safety counters."""
        while self._auto and now - self._auto[0] >= 60.0:
            self._auto.popleft()
        return {
            "current_scene": self.current,
            "paused": self.paused,
            "return_to": self._owned.return_to if self._owned else None,
            "automation_scene": self._owned.scene if self._owned else None,
            "active": [
                {"rule": r, "room": room, "since": ep.decision.ts, "overridden": ep.overridden}
                for (r, room), ep in self._episodes.items()
            ],
            "switches_last_minute": len(self._auto),
            "seconds_since_switch": None
            if math.isinf(self._last_switch)
            else round(now - self._last_switch, 1),
        }


def _filler(d: RuleDecision) -> Any:
    values = {
        "{room}": d.room,
        "{rule}": d.rule,
        "{value}": f"{d.value:.2f}",
        "{percent}": f"{d.value:.0%}",
        "{metric}": d.metric,
    }

    def fill(text: str) -> str:
        # Plain replacement, not str.format: a stray brace in a producer's text must not raise.
        for k, v in values.items():
            text = text.replace(k, v)
        return text

    return fill
