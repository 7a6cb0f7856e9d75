"""Mood rules: thresholds held for a time, hysteresis, calm time, cooldown, runtime edits, config checks."""

from __future__ import annotations

import pytest

from engine.config import ConfigError, ObsActionConfig, ObsRuleConfig, parse_config
from engine.rules import RuleEngine, compile_rules
from tests.fakes import make_snapshot


def _rule(**kw: object) -> ObsRuleConfig:
    base: dict[str, object] = dict(
        name="anger",
        threshold=0.5,
        exit_threshold=0.3,
        for_seconds=5.0,
        calm_seconds=10.0,
        cooldown_seconds=30.0,
        min_messages=10,
    )
    base.update(kw)
    return ObsRuleConfig(**base)  # type: ignore[arg-type]


def _feed(engine: RuleEngine, t: float, neg: float, *, messages: int = 50, room: str = "r") -> list[str]:
    snap = make_snapshot(room, {"angry": neg, "neutral": 1 - neg}, messages=messages, ts=t)
    return [d.phase for d in engine.feed(snap)]


def test_fires_only_after_the_threshold_holds_for_the_set_time() -> None:
    e = RuleEngine(compile_rules([_rule()]))
    assert _feed(e, 0, 0.6) == []
    assert _feed(e, 3, 0.6) == []
    assert _feed(e, 4, 0.4) == []  # dipped: the clock restarts
    assert _feed(e, 5, 0.6) == []
    assert _feed(e, 9.9, 0.6) == []
    assert _feed(e, 10, 0.6) == ["fire"]
    assert _feed(e, 11, 0.9) == []  # fires once per episode


def test_hysteresis_and_calm_time_before_it_ends_then_cooldown() -> None:
    e = RuleEngine(compile_rules([_rule(for_seconds=0)]))
    assert _feed(e, 0, 0.7) == ["fire"]
    assert _feed(e, 1, 0.4) == []  # below the threshold but above exit: still active
    assert _feed(e, 20, 0.4) == []
    assert _feed(e, 21, 0.2) == []  # calm starts
    assert _feed(e, 25, 0.35) == []  # not calm any more
    assert _feed(e, 26, 0.1) == []
    assert _feed(e, 36, 0.1) == ["end"]
    assert _feed(e, 40, 0.9) == []  # cooldown: 30 s after the end
    assert _feed(e, 66, 0.9) == ["fire"]


def test_too_few_messages_never_fire_a_share_rule_and_rooms_are_separate() -> None:
    e = RuleEngine(compile_rules([_rule(for_seconds=0, room="a")]))
    assert _feed(e, 0, 1.0, messages=3, room="a") == []
    assert _feed(e, 1, 1.0, room="b") == []  # not this rule's room
    assert _feed(e, 2, 1.0, room="a") == ["fire"]


def test_other_metrics_and_the_reason_carries_the_values() -> None:
    e = RuleEngine(
        compile_rules(
            [
                _rule(name="hype", metric="emotion_share", emotion="excited", threshold=0.4, for_seconds=0),
                _rule(name="busy", metric="rate", threshold=20, exit_threshold=5, for_seconds=0),
            ]
        )
    )
    snap = make_snapshot("r", {"excited": 0.5, "neutral": 0.5}, messages=100, rate=25.0, ts=1.0)
    ds = e.feed(snap)
    assert [(d.rule, d.phase) for d in ds] == [("hype", "fire"), ("busy", "fire")]
    assert "excited_share(10s) = 0.50 >= 0.40" in ds[0].reason
    assert ds[1].values["rate"] == 25.0 and ds[1].to_event().kind == "rule_fired"


def test_disabling_an_active_rule_ends_it_and_edits_are_validated() -> None:
    e = RuleEngine(compile_rules([_rule(for_seconds=0)]))
    assert _feed(e, 0, 0.9) == ["fire"]
    e.update("anger", {"enabled": False})
    assert _feed(e, 1, 0.9) == ["end"]
    with pytest.raises(ValueError, match="exit_threshold"):
        e.update("anger", {"exit_threshold": 0.8})
    with pytest.raises(ValueError, match="not editable"):
        e.update("anger", {"metric": "rate"})
    with pytest.raises(ValueError, match="non-negative"):
        e.update("anger", {"threshold": -1})
    with pytest.raises(KeyError):
        e.update("nope", {"enabled": True})
    assert e.update("anger", {"threshold": 0.6, "enabled": True}).threshold == 0.6


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([_rule(), _rule()], "another rule is already called 'anger'"),
        ([_rule(exit_threshold=0.9)], "'obs.rules[0].exit_threshold' (0.9) must not be above"),
        ([_rule(metric="emotion_share", emotion="bored")], "'obs.rules[0].emotion' must be one of"),
        (
            [_rule(actions=(ObsActionConfig(type="switch_scene"),))],
            "'obs.rules[0].actions[0].scene' is required",
        ),
        ([_rule(actions=(ObsActionConfig(type="broadcast_event", data="[1]"),))], "must be a JSON object"),
    ],
)
def test_bad_rules_are_config_errors_naming_the_key(rules: list[ObsRuleConfig], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        compile_rules(rules)
    assert message in str(err.value)


def test_rules_and_actions_parse_from_toml() -> None:
    cfg = parse_config(
        """
[obs]
[[obs.rules]]
name = "anger"
threshold = 0.6
[[obs.rules.actions]]
type = "switch_scene"
scene = "Calm"
[[obs.rules.actions]]
type = "advss_run_macro"
macro = "Calm down"
when = "end"
"""
    )
    (rule,) = compile_rules(cfg.obs.rules)
    assert rule.threshold == 0.6 and [a.type for a in rule.actions] == ["switch_scene", "advss_run_macro"]
    with pytest.raises(ConfigError, match=r"config>:5: 'obs.rules\[0\].metric'"):
        parse_config('[obs]\n[[obs.rules]]\nname = "x"\n\nmetric = "mood"\n')
