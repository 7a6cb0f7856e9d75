"""The bot's moderator panel in a real headless Chromium: approve a hostile line, kill, restart, restored."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.build import build_bot
from bot.core import Bot
from bot.web import setup_bot
from engine.config import BotConfig, Config
from overlay.app import create_app
from tests.fakes import FakeFeed
from tests.servers import run_app
from tests.test_bot_units import RecordingSender
from tests.waiting import until

TOKEN = "admin-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">限时秒杀"


def _config(tmp_path: Path) -> Config:
    bot = BotConfig(
        approval=True,
        state_file=str(tmp_path / "bot-state.json"),
        streamer_token_file=str(tmp_path / "streamer-token"),
        retry_base_seconds=0.01,
    )
    return replace(Config(), base_dir=str(tmp_path), bot=bot)


def _app(cfg: Config, feed: FakeFeed, sender: RecordingSender) -> tuple[Any, Bot]:
    bot = build_bot(cfg, feed, sender=sender)

    def add_bot(app: web.Application) -> None:
        setup_bot(app, cfg, feed, bot=bot)

    return create_app(feed, cfg, admin_token=TOKEN, extra_setup=[add_bot]), bot


@pytest.mark.browser
async def test_panel_approves_escaped_text_kills_and_shows_the_restored_state(
    tmp_path: Path, browser: Any
) -> None:
    cfg = _config(tmp_path)
    feed, sender = FakeFeed(), RecordingSender()
    app, bot = _app(cfg, feed, sender)
    async with run_app(app) as base:
        context = await browser.new_context(extra_http_headers=AUTH)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        draft = bot.propose("demo", "push", HOSTILE)
        assert draft is not None and draft.status == "pending"
        await page.goto(f"{base}/bot/panel")
        item = page.locator(f"#pending li[data-id='{draft.id}']")
        await item.wait_for()
        # The line is text in a textarea, never markup: no <img> was created, no handler ran.
        assert await item.locator("textarea").input_value() == draft.text
        assert await page.locator("#pending img").count() == 0
        assert await page.title() != "pwned"
        await item.get_by_role("button", name="Approve").click()
        await until(lambda: bool(sender.sent), "the approved line to be sent")
        assert sender.sent == [("demo", draft.text)]

        await page.locator("#kill-state", has_text="live").wait_for()
        assert await page.locator("#restored").is_hidden()
        await page.click("#kill")
        await page.locator("#kill-state", has_text="KILLED").wait_for()
        assert bot.moderation.killed
        assert errors == []
        await context.close()

    # A restart: the kill switch holds and the panel says the switches came from the last run.
    app2, bot2 = _app(cfg, FakeFeed(), RecordingSender())
    assert bot2.moderation.killed
    async with run_app(app2) as base:
        context = await browser.new_context(extra_http_headers=AUTH)
        page = await context.new_page()
        await page.goto(f"{base}/bot/panel")
        await page.locator("#kill-state", has_text="KILLED").wait_for()
        await page.locator("#restored").wait_for(state="visible")
        await context.close()
