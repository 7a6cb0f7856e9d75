"""``moodcast simulate``: recorded chat through the pipeline and the rules on a virtual clock, no OBS."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.config import ClassifierConfig, Config, ObsActionConfig, ObsConfig, ObsRuleConfig
from moodcast.cli import main as cli_main
from moodcast.simulate import simulate
from tests.fake_model import FakeRegistry

ROOT = Path(__file__).resolve().parent.parent


def _replay(path: Path) -> Path:
    """60 s of calm chat, 20 s of anger, 60 s of calm; 5 messages a second."""
    lines = []
    for i in range(140 * 5):
        t = i / 5
        text = f"退钱 {i}" if 60 <= t < 80 else f"包邮吗 {i}"
        lines.append(json.dumps({"t": t, "user": f"u{i}", "text": text}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _config() -> Config:
    rule = ObsRuleConfig(
        name="anger",
        threshold=0.5,
        exit_threshold=0.3,
        for_seconds=3,
        calm_seconds=5,
        actions=(ObsActionConfig(type="switch_scene", scene="Calm"),),
    )
    return replace(
        Config(), classifier=ClassifierConfig(model="kw"), obs=ObsConfig(min_dwell_seconds=10, rules=(rule,))
    )


async def test_the_timeline_shows_when_the_rule_fires_and_which_scene_is_live(tmp_path: Path) -> None:
    out: list[str] = []
    res = await simulate(
        _config(),
        _replay(tmp_path / "chat.jsonl"),
        load_model=FakeRegistry().get,
        start_scene="Main",
        tail_seconds=10,
        out=out.append,
    )
    assert res.messages == 700 and res.fired == {"anger": 1} and res.ended == {"anger": 1}
    (t_calm, calm), (t_back, back) = res.switches
    assert (calm, back) == ("Calm", "Main")
    # Anger starts at 60 s: the 10 s window passes 50 % about 5 s in, then the rule holds for 3 s.
    assert 64 <= t_calm <= 70
    # It ends at 80 s: below 30 % a few seconds later, then 5 s of calm.
    assert 82 <= t_back <= 95
    assert any(line.startswith("01:") and "SCENE" in line and "[live: Calm]" in line for line in out)
    assert out[-1].startswith("done: 700 messages") and "rules fired: anger x1" in out[-1]
    again: list[str] = []
    await simulate(
        _config(),
        tmp_path / "chat.jsonl",
        load_model=FakeRegistry().get,
        start_scene="Main",
        tail_seconds=10,
        out=again.append,
    )
    assert again == out  # virtual time: the same file prints the same timeline


def test_cli_simulates_the_bundled_demo_with_the_real_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "rules.toml"
    cfg.write_text(
        """
[[obs.rules]]
name = "anger"
threshold = 0.45
exit_threshold = 0.25
[[obs.rules.actions]]
type = "switch_scene"
scene = "Calm"
""",
        encoding="utf-8",
    )
    demo = ROOT / "engine" / "samples" / "ecommerce_demo.jsonl"
    assert cli_main(["simulate", "--replay", str(demo), "--config", str(cfg), "--scene", "Main"]) == 0
    out = capsys.readouterr().out
    assert "FIRE  rule 'anger' fired in room 'demo'" in out
    assert "[live: Calm]" in out and "[live: Main]" in out  # the missing-gift anger, and back


def test_cli_reports_a_bad_rule_and_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[[obs.rules]]\nthreshold = 0.2\nexit_threshold = 0.5\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        cli_main(["simulate", "--replay", "x.jsonl", "--config", str(cfg)])
    assert exit_.value.code == 2
    assert "'obs.rules[0].exit_threshold' (0.5) must not be above threshold" in capsys.readouterr().err
    assert cli_main(["simulate", "--replay", str(tmp_path / "none.jsonl")]) == 2
    assert "replay file not found" in capsys.readouterr().err
