"""The moodcast command as a user runs it: classify, doctor, run with bad config, run and stop cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.store import Store
from moodcast.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_classify_prints_emotion_confidence_and_scores(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "--json", "哈哈哈笑死我了", "退钱骗子"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["哈哈哈笑死我了", "退钱骗子"]
    assert rows[0]["emotion"] == "happy" and rows[1]["emotion"] == "angry"
    for r in rows:
        assert set(r["scores"]) == {"happy", "excited", "angry", "sad", "anxious", "neutral"}
        assert abs(sum(r["scores"].values()) - 1) < 1e-3
        assert r["confidence"] == max(r["scores"].values())


def test_classify_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("主播好可爱\n\n包邮吗\n"))
    assert main(["classify"]) == 0
    out = capsys.readouterr().out
    assert "主播好可爱" in out and "包邮吗" in out


def test_classify_unknown_model_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "--model", "nope", "x"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_bad_config_stops_with_the_key_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[server]\nport = "eighty"\n', encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        main(["run", "--config", str(cfg)])
    assert e.value.code == 2
    assert "bad.toml:2: 'server.port' must be an integer" in capsys.readouterr().err


def test_doctor_reports_and_fails_on_a_missing_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[server]\nport = {_free_port()}\n[store]\npath = "m.db"\n'
        '[[sources]]\ntype = "replay"\npath = "gone.jsonl"\n',
        encoding="utf-8",
    )
    assert main(["doctor", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "[ok  ] model: fast" in out
    assert "[ok  ] storage" in out
    assert "replay file not found" in out and "fix sources[0].path" in out


def test_doctor_warns_about_switches_left_on_in_the_last_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "bot-state.json").write_text(
        json.dumps({"killed": True, "paused": ["shop"], "modes": {"push": "off", "faq": "auto"}})
    )
    (tmp_path / "var" / "obs-rules.json").write_text(json.dumps({"moodcast_obs_state": 2, "paused": True}))
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[server]\nport = {_free_port()}\n[store]\npath = "m.db"\n[obs]\nenabled = true\nport = 1\n'
        "connect_timeout_seconds = 0.5\n",
        encoding="utf-8",
    )
    main(["doctor", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert "[warn] bot: saved from the last run: the kill switch is on" in out
    bot_line = next(line for line in out.splitlines() if "[warn] bot" in line)
    assert "paused in shop" in bot_line and bot_line.endswith("types switched off: push")  # faq is auto
    assert "[warn] obs: automation was left paused" in out and "moodcast obs resume" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_replays_and_a_sigterm_loses_nothing(tmp_path: Path) -> None:
    chat = tmp_path / "chat.txt"
    chat.write_text("\n".join(f"哈哈哈 第{i}条" for i in range(300)) + "\n", encoding="utf-8")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[server]\nport = {_free_port()}\n[store]\npath = "m.db"\n'
        f'[[sources]]\ntype = "replay"\nroom = "t"\npath = "chat.txt"\nrate = 100.0\n',
        encoding="utf-8",
    )
    env = {**os.environ, "MOODCAST_INGEST_TOKEN": "x"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moodcast.cli", "run", "--config", str(cfg)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Press Ctrl+C" in line:
            break
    time.sleep(1.0)  # part-way through the replay: messages in flight when the signal lands
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=30)
    out = "".join(lines) + rest
    assert proc.returncode == 0, out
    assert "/overlay/t" in out
    classified = int(out.split("classified ")[1].split()[0])
    assert 0 < classified < 300
    with Store.open(tmp_path / "m.db") as store:
        assert store.count_messages("t") == classified
