"""The review opens in a real headless Chromium, offline, without errors, and its charts render; the
dashboard's Reports panel lists sessions and serves each finished one's review (admin only)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.content import DEFAULTS_DIR, load_catalogue
from engine.config import Config, ReportConfig
from overlay import keys
from overlay.app import create_app
from report import synthetic
from report.analysis import ReportOptions, build_report
from report.data import ReportDB
from report.orders import read_orders
from report.render import csp_of, write_report
from report.web import reports_setup
from tests.fakes import FakeFeed
from tests.servers import run_app

PLAN = synthetic.Plan()
TOKEN = "admin-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rb") / "moodcast.db"
    synthetic.write(PLAN, path)
    return path


@pytest.fixture(scope="module")
def report_dir(db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rb-out")
    orders = read_orders(synthetic.orders_csv(PLAN, out / "orders.csv"))
    with ReportDB(db) as rdb:
        r = build_report(
            rdb,
            "shop",
            synthetic.T0,
            synthetic.T0 + 60 * PLAN.minutes,
            catalogue=load_catalogue(DEFAULTS_DIR / "products.toml"),
            orders=orders,
            options=ReportOptions(bootstrap=200, tz=UTC),
        )
    write_report(r, out)
    return out


async def _check_page(page: Any, *, sales: bool) -> None:
    counts = page.locator('#timeline g.mode[data-mode="counts"] path.series')
    assert await counts.count() == 6
    for i in range(6):
        d = await counts.nth(i).get_attribute("d")
        assert d and len(d) > 200
        box = await counts.nth(i).bounding_box()
        assert box and box["width"] > 500 and box["height"] > 0
    assert await page.locator("#timeline g.event").count() == 4
    assert (await page.locator("#timeline .sales-bar").count() > 100) is sales
    # Every minute has chat: 6 rows x 120 cells in the heatmap.
    assert await page.locator("#heatmap rect").count() == 6 * PLAN.minutes
    assert await page.locator("#lag-chart rect.lag-bar").count() == (16 if sales else 0)
    assert await page.locator("#lag-chart rect.lag-bar.best").count() == (1 if sales else 0)
    assert await page.locator(".episode").count() == 4


async def test_report_renders_offline_without_errors(
    browser: Any, report_dir: Path, artifacts_dir: Path
) -> None:
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: dialogs.append(d.message))
    await page.goto((report_dir / "report.html").as_uri())
    await _check_page(page, sales=True)
    # The hostile chat line is on the page as text and ran nothing.
    examples = await page.locator(".episode[data-emotion=angry] .examples").text_content()
    assert synthetic.HOSTILE in (examples or "")
    assert dialogs == []
    # Switch to shares, then hover the planted excitement: the tooltip names the minute and its mix.
    await page.click('.toggle button[data-mode="shares"]')
    assert await page.locator('#timeline g.mode[data-mode="shares"]').get_attribute("visibility") == "visible"
    hit = await page.locator("#timeline-hit").bounding_box()
    assert hit
    pos = {"x": hit["width"] * 31.5 / PLAN.minutes, "y": hit["height"] / 2}
    await page.locator("#timeline-hit").hover(position=pos)
    tip = page.locator("#tip")
    assert await tip.is_visible()
    text = await tip.text_content() or ""
    assert "08:31 · 100 msgs" in text and "excited60 %" in text.replace(" ", " ")
    await page.click('.toggle button[data-mode="counts"]')
    await page.screenshot(path=str(artifacts_dir / "report.png"), full_page=True)
    assert problems == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    await page.close()


async def test_reports_panel_lists_sessions_and_serves_reviews(
    browser: Any, db: Path, tmp_path: Path
) -> None:
    cfg = replace(
        Config(),
        report=replace(ReportConfig(), output_dir=str(tmp_path / "reports"), bootstrap=100),
        base_dir=".",
    )
    app = create_app(FakeFeed(), cfg, extra_setup=[reports_setup(cfg, db)], admin_token=TOKEN)
    assert [p.id for p in app[keys.DASHBOARD_PANELS]] == ["reports"]
    async with run_app(app) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/reports/panel", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login")
        url = f"{base}/reports/shop/20251121-0800/"
        async with http.get(url + "report.json") as resp:
            assert resp.status == 401
        async with http.get(f"{base}/reports/panel", headers=AUTH) as resp:
            body = await resp.text()
            assert resp.status == 200 and "20251121-0800" in body and "Make review" in body
        async with http.get(url, headers=AUTH) as resp:
            assert resp.status == 200 and "<progress" in await resp.text()
        for _ in range(400):
            async with http.get(url, headers=AUTH) as resp:
                html = await resp.text()
                if "<progress" not in html:
                    break
            await asyncio.sleep(0.05)
        assert 'id="timeline"' in html
        assert resp.headers["Content-Security-Policy"] == csp_of(html)
        assert "sha256-" in resp.headers["Content-Security-Policy"]
        async with http.get(url + "minutes.csv", headers=AUTH) as resp:
            assert resp.status == 200 and (await resp.text()).startswith("minute_unix,time,messages")
        async with http.get(url + "../../../etc/passwd", headers=AUTH) as resp:
            assert resp.status == 404
        async with http.get(f"{base}/reports/panel", headers=AUTH) as resp:
            assert "Open review" in await resp.text()
        # The served page, in a browser: the header policy lets its own script and style run, no errors.
        ctx = await browser.new_context(extra_http_headers=AUTH, viewport={"width": 1300, "height": 900})
        page = await ctx.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.goto(url)
        await _check_page(page, sales=False)
        await page.click('.toggle button[data-mode="shares"]')
        assert (
            await page.locator('#timeline g.mode[data-mode="shares"]').get_attribute("visibility")
            == "visible"
        )
        assert problems == []
        await ctx.close()
