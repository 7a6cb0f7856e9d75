"""The scene director: switch and return, dwell, per-minute cap, manual override, pause, other actions."""

from __future__ import annotations

from engine.config import ObsActionConfig, ObsRuleConfig
from engine.rules import Rule, RuleDecision, compile_rules
from overlay.obs.director import ADVSS_RUN_MACRO, ADVSS_VENDOR, Director, ObsCommand


def _rules() -> list[Rule]:
    return compile_rules(
        [
            ObsRuleConfig(
                name="anger",
                actions=(
                    ObsActionConfig(type="switch_scene", scene="Calm"),
                    ObsActionConfig(type="source_visibility", scene="Main", source="We hear you"),
                    ObsActionConfig(type="set_text", source="Prompt", text="{percent} upset in {room}"),
                    ObsActionConfig(type="advss_run_macro", macro="Soothe", variable="mood", value="{value}"),
                    ObsActionConfig(type="broadcast_event", when="end", data='{"cue": "relax"}'),
                ),
            ),
            ObsRuleConfig(name="alarm", actions=(ObsActionConfig(type="switch_scene", scene="Alarm"),)),
        ]
    )


def _d(rule: str, phase: str, ts: float, room: str = "r") -> RuleDecision:
    return RuleDecision(rule, room, ts, phase, 0.62, f"{rule} {phase}", {"negative_share": 0.62}, 0)  # type: ignore[arg-type]


def _switches(cmds: list[ObsCommand]) -> list[str]:
    return [c.scene for c in cmds if c.kind == "switch_scene"]


def test_fire_switches_and_runs_actions_end_reverts_and_returns() -> None:
    anger, _ = _rules()
    d = Director(min_dwell=0, max_per_minute=10)
    d.connected("Main", 0)
    fired = d.decide(_d("anger", "fire", 1), anger, 1)
    assert _switches(fired) == ["Calm"]
    kinds = [c.kind for c in fired]
    assert kinds == ["source_visibility", "set_text", "vendor_request", "switch_scene"]
    assert fired[1].text == "62% upset in r"
    assert (fired[2].vendor, fired[2].request) == (ADVSS_VENDOR, ADVSS_RUN_MACRO)
    assert fired[2].data == {"name": "Soothe", "variables": [{"name": "mood", "value": "0.62"}]}
    assert d.observe_scene("Calm", 1.1) == []  # our own switch, not the producer's
    ended = d.decide(_d("anger", "end", 30), anger, 30)
    assert [c.kind for c in ended] == ["source_visibility", "restore_text", "broadcast_event", "switch_scene"]
    assert ended[0].visible is False and _switches(ended) == ["Main"]
    assert ended[2].data["cue"] == "relax" and ended[2].data["phase"] == "end"


def test_dwell_and_cap_hold_switches_and_a_held_switch_happens_later() -> None:
    anger, _ = _rules()
    d = Director(min_dwell=10, max_per_minute=2)
    d.connected("Main", 0)
    assert _switches(d.decide(_d("anger", "fire", 100), anger, 100)) == ["Calm"]
    held = d.decide(_d("anger", "end", 105), anger, 105)
    assert _switches(held) == [] and "minimum dwell" in held[-1].reason
    assert d.reconcile(106) == []  # said once, not on every tick
    assert _switches(d.reconcile(110)) == ["Main"]
    capped = d.decide(_d("anger", "fire", 120), anger, 120)  # 2 switches in the last minute already
    assert _switches(capped) == [] and "cap of 2 switches per minute" in capped[-1].reason
    assert d.reconcile(121) == []
    assert _switches(d.reconcile(160.5)) == ["Calm"]


def test_a_manual_switch_wins_until_the_rule_ends() -> None:
    anger, _ = _rules()
    d = Director(min_dwell=0, max_per_minute=10)
    d.connected("Main", 0)
    d.decide(_d("anger", "fire", 1), anger, 1)
    note = d.observe_scene("Producer", 2)
    assert note[0].kind == "note" and "rules holding off: anger" in note[0].reason
    assert d.reconcile(50) == []  # still angry: no cut back to Calm
    assert _switches(d.decide(_d("anger", "end", 60), anger, 60)) == []  # and no return to Main
    assert d.current == "Producer"
    assert _switches(d.decide(_d("anger", "fire", 200), anger, 200)) == ["Calm"]  # a new episode may cut


def test_priority_pause_and_reconnect() -> None:
    anger, alarm = _rules()
    d = Director(min_dwell=0, max_per_minute=10)
    d.connected("Main", 0)
    assert _switches(d.decide(_d("alarm", "fire", 1), alarm, 1)) == ["Alarm"]
    assert _switches(d.decide(_d("anger", "fire", 2), anger, 2)) == ["Calm"]  # earlier rule wins
    assert _switches(d.decide(_d("anger", "end", 3), anger, 3)) == ["Alarm"]
    d.paused = True
    paused = d.decide(_d("alarm", "end", 4), alarm, 4)
    assert _switches(paused) == [] and all(c.kind == "note" for c in paused)
    d.paused = False
    assert _switches(d.reconcile(5)) == ["Main"]  # the way back the rules started from
    d.decide(_d("alarm", "fire", 6), alarm, 6)
    d.disconnected()
    assert d.reconcile(7) == []  # nothing to do without knowing the scene
    assert _switches(d.connected("Scene", 8)) == ["Alarm"]  # OBS restarted elsewhere: re-applied
