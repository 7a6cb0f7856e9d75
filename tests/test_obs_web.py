"""OBS automation's REST endpoints, CLI and dashboard panel, with a dry-run controller and no OBS."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.config import Config, ObsActionConfig, ObsConfig, ObsRuleConfig
from engine.rules import compile_rules
from moodcast.cli import main as cli_main
from overlay import keys
from overlay.app import create_app
from overlay.obs import obs_setup
from overlay.obs.controller import ObsController
from tests.fakes import FakeFeed, make_snapshot
from tests.servers import run_app

TOKEN = "admin-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _config(tmp_path: Path) -> Config:
    rule = ObsRuleConfig(
        name="anger",
        for_seconds=0,
        calm_seconds=0,
        cooldown_seconds=0,
        actions=(ObsActionConfig(type="switch_scene", scene="Calm"),),
    )
    obs = ObsConfig(
        enabled=True,
        port=1,
        dry_run=True,
        min_dwell_seconds=0,
        connect_timeout_seconds=0.5,
        rules_state_file=str(tmp_path / "obs-rules.json"),
        rules=(rule,),
    )
    return replace(Config(), obs=obs, base_dir=str(tmp_path))


async def _until(fn: Any, what: str) -> Any:
    for _ in range(200):
        got = await fn()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


async def test_endpoints_need_an_admin_dry_run_logs_and_edits_persist(tmp_path: Path) -> None:
    feed = FakeFeed()
    cfg = _config(tmp_path)
    events = feed.events.subscribe("test")
    app = create_app(feed, cfg, extra_setup=[obs_setup(cfg, feed.push_event)], admin_token=TOKEN)
    assert [p.id for p in app[keys.DASHBOARD_PANELS]] == ["obs"]
    async with run_app(app) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/obs") as r:
            assert r.status == 401
        async with http.post(f"{base}/api/obs/pause") as r:
            assert r.status == 401

        async def status() -> dict[str, Any]:
            async with http.get(f"{base}/api/obs", headers=AUTH) as r:
                assert r.status == 200
                return dict(await r.json())

        s = await _until(lambda: _state_is(status, "unreachable"), "the unreachable state")
        assert "cannot reach obs-websocket at 127.0.0.1:1" in s["detail"] and s["dry_run"]
        feed.push(make_snapshot("shop", {"angry": 0.8, "neutral": 0.2}))
        s = await _until(lambda: _kind_in(status, "obs_dry_run"), "the dry-run log")
        assert any("would switch program scene to 'Calm'" in e["message"] for e in s["recent"])
        kinds = []
        while not events.empty():
            kinds.append(events.get_nowait().kind)
        assert "rule_fired" in kinds and "obs_dry_run" in kinds  # published for the store and dashboard

        async with http.post(f"{base}/api/obs/pause", headers=AUTH) as r:
            assert (await r.json()) == {"paused": True}
        async with http.post(f"{base}/api/obs/rules/anger", headers=AUTH, json={"threshold": 0.7}) as r:
            assert r.status == 200 and (await r.json())["threshold"] == 0.7
        async with http.post(f"{base}/api/obs/rules/anger", headers=AUTH, json={"exit_threshold": 0.9}) as r:
            assert r.status == 400 and "exit_threshold" in (await r.json())["error"]
        async with http.post(f"{base}/api/obs/rules/nope", headers=AUTH, json={"enabled": False}) as r:
            assert r.status == 404
        saved = json.loads((tmp_path / "obs-rules.json").read_text())
        assert saved["rules"]["anger"]["threshold"] == 0.7 and saved["paused"] is True
        async with http.get(f"{base}/obs/panel", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].startswith("/login")
        async with http.get(f"{base}/obs/panel", headers=AUTH) as r:
            assert r.status == 200 and "js/obs.js" in await r.text()

    # A restart applies the saved edit over config.toml, and the producer's pause holds.
    app2 = create_app(feed, cfg, extra_setup=[obs_setup(cfg, feed.push_event)], admin_token=TOKEN)
    ctl = app2[keys.OBS_CONTROLLER]
    assert ctl is not None and ctl.engine.rule("anger").threshold == 0.7
    assert ctl.director.paused and ctl.status()["paused"] is True


def test_rule_edits_saved_by_the_first_format_still_apply(tmp_path: Path) -> None:
    # Format 1 was the rule edits alone, with no pause; a file from then must keep working.
    (tmp_path / "obs-rules.json").write_text(json.dumps({"anger": {"threshold": 0.65}}))
    cfg = _config(tmp_path)
    ctl = ObsController(
        cfg.obs,
        compile_rules(cfg.obs.rules),
        password="",
        publish=lambda e: None,
        state_file=tmp_path / "obs-rules.json",
    )
    assert ctl.engine.rule("anger").threshold == 0.65 and not ctl.director.paused
    # A damaged file costs the saved edits, never the start.
    (tmp_path / "obs-rules.json").write_text("{not json")
    ctl = ObsController(
        cfg.obs,
        compile_rules(cfg.obs.rules),
        password="",
        publish=lambda e: None,
        state_file=tmp_path / "obs-rules.json",
    )
    assert ctl.engine.rule("anger").threshold == cfg.obs.rules[0].threshold


async def _state_is(status: Any, state: str) -> dict[str, Any] | None:
    s = await status()
    return s if s["state"] == state else None


async def _kind_in(status: Any, kind: str) -> dict[str, Any] | None:
    s = await status()
    return s if any(e["kind"] == kind for e in s["recent"]) else None


async def test_cli_pauses_resumes_and_shows_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = FakeFeed()
    cfg = _config(tmp_path)
    app = create_app(feed, cfg, extra_setup=[obs_setup(cfg, feed.push_event)], admin_token=TOKEN)
    monkeypatch.setenv("MOODCAST_ADMIN_TOKEN", TOKEN)
    async with run_app(app) as base:
        assert await asyncio.to_thread(cli_main, ["obs", "pause", "--url", base]) == 0
        assert app[keys.OBS_CONTROLLER].director.paused  # type: ignore[union-attr]
        assert await asyncio.to_thread(cli_main, ["obs", "status", "--url", base]) == 0
        assert await asyncio.to_thread(cli_main, ["obs", "resume", "--url", base]) == 0
        out = capsys.readouterr().out
        assert "OBS automation paused" in out and "[on ] anger" in out and "OBS automation running" in out
        monkeypatch.setenv("MOODCAST_ADMIN_TOKEN", "wrong")
        assert await asyncio.to_thread(cli_main, ["obs", "pause", "--url", base]) == 1
        assert "answered 401" in capsys.readouterr().err


async def test_disabled_automation_says_so(tmp_path: Path) -> None:
    feed = FakeFeed()
    cfg = Config()
    app = create_app(feed, cfg, extra_setup=[obs_setup(cfg, feed.push_event)], admin_token=TOKEN)
    async with run_app(app) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/obs", headers=AUTH) as r:
            assert (await r.json())["state"] == "disabled"
        async with http.post(f"{base}/api/obs/pause", headers=AUTH) as r:
            assert r.status == 409


@pytest.mark.browser
async def test_the_panel_shows_state_and_pauses(tmp_path: Path, browser: Any) -> None:
    feed = FakeFeed()
    cfg = _config(tmp_path)
    app = create_app(feed, cfg, extra_setup=[obs_setup(cfg, feed.push_event)], admin_token=TOKEN)
    async with run_app(app) as base:
        context = await browser.new_context(extra_http_headers=AUTH)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{base}/obs/panel")
        await page.wait_for_selector("#obs-rules tr[data-rule='anger']")
        chip = page.locator("#obs-state")
        # Locator waits, not wait_for_function: the page's CSP forbids evaluating strings.
        await page.wait_for_selector("#obs-state[data-state='unreachable']")
        assert "unreachable" in await chip.text_content()
        assert "DRY RUN" in (await page.locator("#obs-mode").text_content() or "")
        await page.click("#obs-pause")
        await page.locator("#obs-mode", has_text="PAUSED").wait_for()
        assert app[keys.OBS_CONTROLLER].director.paused  # type: ignore[union-attr]
        await page.uncheck("#obs-rules tr[data-rule='anger'] input[type=checkbox]")
        await page.locator("#obs-recent li", has_text="rule 'anger' edited").first.wait_for()
        assert app[keys.OBS_CONTROLLER].engine.rule("anger").enabled is False  # type: ignore[union-attr]
        assert errors == []
        await context.close()
