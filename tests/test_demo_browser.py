"""Headless Chromium opens the overlay URL `moodcast run` prints and shows a replay's live numbers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.classify.registry import ModelRegistry
from engine.emotions import EMOTIONS
from engine.normalise import normalise

pytestmark = pytest.mark.browser

TEXTS = ["退钱！骗子", "客服态度太差了", "什么垃圾质量", "哈哈哈笑死我了", "包邮吗"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served_replay(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """`moodcast run` replaying 60 lines once; yields (overlay URL as printed, number of messages)."""
    n = 60
    chat = tmp_path / "chat.jsonl"
    lines = [f'{{"t": {i * 0.01}, "user": "v{i}", "text": "{TEXTS[i % len(TEXTS)]} {i}"}}' for i in range(n)]
    chat.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[server]\nport = {_free_port()}\n[store]\npath = "m.db"\n'
        f'[[sources]]\ntype = "replay"\nroom = "shop"\npath = "chat.jsonl"\nspeed = 0.0\n',
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "moodcast.cli", "run", "--config", str(cfg)],
        cwd=tmp_path,
        env={**os.environ, "MOODCAST_INGEST_TOKEN": "x", "MOODCAST_ADMIN_TOKEN": "y"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    url = ""
    for line in proc.stdout:
        m = re.search(r"overlay\s+(http://\S+/overlay/shop\S*)", line)
        if m:
            url = m.group(1)
        if "Press Ctrl+C" in line:
            break
    try:
        assert url, "moodcast run printed no overlay URL"
        yield url, n
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_overlay_shows_the_replays_live_numbers(browser: Any, served_replay: tuple[str, int]) -> None:
    url, n = served_replay
    page = await browser.new_page()
    await page.goto(url)
    # A function, not a string expression: the page's CSP forbids eval, which string predicates need.
    await page.wait_for_function(
        "(n) => document.querySelector('#overlay')?.dataset.totalMessages === n", arg=str(n), timeout=20000
    )
    # What the model reads in those lines decides what the page must show.
    preds = ModelRegistry().get("fast").predict([normalise(f"{TEXTS[i % len(TEXTS)]} {i}") for i in range(n)])
    counts = [sum(p.emotion == e for p in preds) for e in EMOTIONS]
    dominant = EMOTIONS[counts.index(max(counts))]
    assert await page.get_attribute("#dominant", "data-emotion") == dominant
    shown = float(await page.get_attribute(f"#share-{dominant}", "data-value") or "nan")
    assert abs(shown - max(counts) / n) < 0.01
    await page.close()
