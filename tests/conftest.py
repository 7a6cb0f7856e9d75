"""Shared fixtures: real components where users have them, with honest skips off CI."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MOODCAST_DATA", ROOT.parent / "shared" / "data"))
ON_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]


def require_real(component: str, available: bool, how_to_install: str) -> None:
    """Skip when a real component is missing on a developer machine; under CI that is a failure."""
    if available:
        return
    msg = f"{component} is not available: {how_to_install}"
    if ON_CI:
        pytest.fail(f"CI must provide {msg}")
    pytest.skip(msg)


def chromium_path() -> str | None:
    """Debian's chromium binary, or an override from MOODCAST_CHROMIUM."""
    override = os.environ.get("MOODCAST_CHROMIUM")
    if override:
        return override
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A real headless Chromium (Debian's), driven by Playwright, kept off the network."""
    path = chromium_path()
    require_real("Chromium", path is not None, "install it with `sudo apt-get install chromium`")
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - part of the test extra
        require_real("Playwright", False, "run `make test` (installs the test extra)")
        raise
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests save screenshots for people to look at."""
    d = ROOT / "test-artifacts"
    d.mkdir(exist_ok=True)
    return d
