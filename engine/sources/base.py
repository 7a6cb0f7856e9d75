"""What every chat source looks like to the pipeline, and the factory that builds one from config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from engine.config import SourceConfig
from engine.types import ChatMessage

Emit = Callable[[ChatMessage], None]
"""Hands one message to the pipeline. Synchronous and only enqueues, so a source never waits on it."""

Status = Literal[
    "starting",
    "running",
    "reconnecting",
    "finished",
    "error",
    # Live platform connectors (engine/sources/connector.py) add these:
    "connecting",
    "connected",
    "auth_failed",
    "rate_limited",
]

YIELD_EVERY = 256
"""Unpaced sources give the event loop a turn after this many messages, so a fast replay starves nobody."""


class SourceError(ValueError):
    """A source that cannot be built or started; the message names the file, script or setting to fix."""


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source's health for the dashboard and doctor."""

    status: Status = "starting"
    detail: str = ""
    messages: int = 0
    errors: int = 0
    platform: str = ""
    reconnects: int = 0
    names_masked: bool = False
    """The platform hides viewers' names (Bilibili without a login cookie): per-user flood rules weaken."""
    last_message_ts: float = 0.0
    signals: tuple[tuple[str, float], ...] = ()
    """Platform extras for the dashboard, e.g. (("entries", 12), ("popularity", 3456))."""

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view for /healthz, the dashboard and doctor."""
        return {
            "status": self.status,
            "detail": self.detail,
            "messages": self.messages,
            "errors": self.errors,
            "platform": self.platform,
            "reconnects": self.reconnects,
            "names_masked": self.names_masked,
            "last_message_ts": self.last_message_ts,
            "signals": dict(self.signals),
        }


class Source(Protocol):
    """A chat source feeding one room. ``run`` returns when finished and is cancellable at any await."""

    name: str
    room: str

    @property
    def state(self) -> SourceState: ...

    async def run(self, emit: Emit) -> None:
        """Emit messages until the source is exhausted (or forever when it loops)."""
        ...


class StateTracker:
    """Mutable counters behind ``Source.state``; a frozen snapshot is built only when someone asks."""

    __slots__ = (
        "detail",
        "errors",
        "last_message_ts",
        "messages",
        "names_masked",
        "platform",
        "reconnects",
        "signals",
        "status",
    )

    def __init__(self, platform: str = "") -> None:
        self.status: Status = "starting"
        self.detail = ""
        self.messages = 0
        self.errors = 0
        self.platform = platform
        self.reconnects = 0
        self.names_masked = False
        self.last_message_ts = 0.0
        self.signals: dict[str, float] = {}

    def set(self, status: Status, detail: str) -> None:
        """Move to ``status`` with a human-readable detail."""
        self.status = status
        self.detail = detail

    def snapshot(self) -> SourceState:
        """The current state as an immutable value."""
        return SourceState(
            self.status,
            self.detail,
            self.messages,
            self.errors,
            self.platform,
            self.reconnects,
            self.names_masked,
            self.last_message_ts,
            tuple(self.signals.items()),
        )


def build_source(cfg: SourceConfig, base_dir: Path) -> Source:
    """Build the source a ``[[sources]]`` table describes; SourceError on a missing file or bad script."""
    # Imported here because the concrete sources import this module for Emit and SourceState.
    if cfg.type == "replay":
        from engine.sources.replay import ReplaySource

        return ReplaySource.from_config(cfg, base_dir)
    if cfg.type == "simulator":
        from engine.sources.simulator import SimulatorSource

        return SimulatorSource.from_config(cfg, base_dir)
    from engine.sources.platforms import build_platform_source

    platform_source = build_platform_source(cfg)
    if platform_source is not None:
        return platform_source
    raise SourceError(
        f"unknown source type {cfg.type!r}; expected 'replay', 'simulator', 'bilibili', 'twitch', "
        "'douyu', 'youtube' or 'tiktok'"
    )
