"""The bot's core: components, isolated dispatch, the moderation gate and the outbox.

Components (bot/components.py) listen to the pipeline (classified messages, snapshots, events), to chat
read by the sender's own connection, and to a one-second tick; they *propose* lines. Every line becomes
a ``Draft`` that passes one gate, ``Bot.blocked_reason``, both when it is proposed and again right before
each send attempt: the kill switch, a paused room, a template type switched off, a stale line. So a
moderator's "off" wins even over a line already approved or waiting for a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bot.content import TEMPLATE_TYPES, Catalogue, FaqBook, TemplateBook
from bot.irc import RateLimiter
from bot.products import TrendTracker
from bot.render import finish_line
from bot.senders import IncomingChat, Sender, SendError
from engine.config import BotConfig
from engine.feed import MoodFeed
from engine.statefile import read_json_object, write_json_atomic
from engine.types import ChatMessage, ClassifiedMessage, MoodSnapshot, TriggerEvent

log = logging.getLogger(__name__)

Mode = Literal["queue", "auto", "off"]
MODES: tuple[Mode, ...] = ("queue", "auto", "off")
COMMAND_TYPE = "command"
"""Answers to moderators' chat commands: never queued, blocked only by the kill switch."""

Clock = Callable[[], float]
ErrorHook = Callable[[str, BaseException], None]

MAX_TEXT_CHARS = 300


@dataclass
class Draft:
    """One line the bot wants to post, and what became of it."""

    id: int
    room: str
    type: str
    template_id: str
    text: str
    created: float
    status: str = "pending"  # pending, queued (to send), sent, rejected, failed, expired, blocked
    reason: str = ""
    attempts: int = 0
    by: str = ""
    updated: float = 0.0


@dataclass
class Prompt:
    """A note for the streamer: a periodic tip or an urgent alert."""

    id: int
    room: str
    kind: Literal["tip", "alert"]
    text: str
    ts: float
    keywords: tuple[str, ...] = ()
    mood: str = ""


@dataclass
class Moderation:
    """What moderators have switched: kill switch, paused rooms, each template type's mode."""

    killed: bool = False
    paused: set[str] = field(default_factory=set)
    modes: dict[str, Mode] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: BotConfig) -> Moderation:
        modes: dict[str, Mode] = {t: ("queue" if cfg.approval else "auto") for t in TEMPLATE_TYPES}
        for t in cfg.auto_send:
            modes[t] = "auto"
        for t in cfg.off:
            modes[t] = "off"
        return cls(killed=not cfg.enabled, modes=modes)

    def mode(self, kind: str) -> Mode:
        return "auto" if kind == COMMAND_TYPE else self.modes.get(kind, "queue")

    def to_json(self) -> dict[str, Any]:
        """What a moderator switched, for the state file."""
        return {"killed": self.killed, "paused": sorted(self.paused), "modes": dict(self.modes)}

    def restore(self, saved: dict[str, Any]) -> list[str]:
        """Apply a saved state over the config's; returns what was ignored (unknown types or values)."""
        ignored: list[str] = []
        killed = saved.get("killed")
        if isinstance(killed, bool):
            self.killed = killed
        paused = saved.get("paused", [])
        if isinstance(paused, list):
            self.paused = {str(r) for r in paused}
        modes = saved.get("modes", {})
        for kind, mode in modes.items() if isinstance(modes, dict) else ():
            # Template types can be renamed between versions; a stale entry must not stop the bot.
            if kind in TEMPLATE_TYPES and mode in MODES:
                self.modes[kind] = mode
            else:
                ignored.append(f"{kind}={mode}")
        return ignored


class Component:
    """A group of listeners and commands with load/teardown hooks (twitchio components, discord cogs).

    Override any of: ``on_classified``, ``on_snapshot``, ``on_event``, ``on_chat``, ``on_tick``.
    Each call runs isolated: an exception goes to the bot's error hook and the others carry on.
    """

    name = "component"

    def __init__(self) -> None:
        self.bot: Bot | None = None

    async def load(self, bot: Bot) -> None:
        """Called once when the bot starts."""
        self.bot = bot

    async def teardown(self) -> None:
        """Called once when the bot stops."""

    @property
    def b(self) -> Bot:
        assert self.bot is not None, f"component {self.name} used before load"
        return self.bot

    @property
    def ready(self) -> bool:
        """False while the component is still warming up after ``load`` (the bot's status reports it)."""
        return True


LISTENERS = ("on_classified", "on_snapshot", "on_event", "on_chat", "on_tick")


class Bot:
    """Owns components, moderation state, the draft history and the outbox."""

    def __init__(
        self,
        config: BotConfig,
        feed: MoodFeed,
        sender: Sender,
        *,
        book: TemplateBook,
        catalogue: Catalogue,
        faq: FaqBook,
        submit: Callable[[ChatMessage], None] | None = None,
        record: Callable[[TriggerEvent], None] | None = None,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        error_hook: ErrorHook | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.config = config
        self.feed = feed
        self.sender = sender
        self.book = book
        self.catalogue = catalogue
        self.faq = faq
        self.submit = submit
        # Posts and failed sends become events (SQLite, dashboard, post-stream report timeline).
        self.record = record
        self.clock = clock
        self.rng = rng or random.Random()
        self.moderation = Moderation.from_config(config)
        self.state_file = state_file
        self.restored = self._restore_moderation()
        self.tracker = TrendTracker(catalogue, config.trend_half_life_seconds)
        """Product mentions and their trend, per room (fed by the Trending component)."""
        self.components: list[Component] = []
        self.drafts: deque[Draft] = deque(maxlen=500)
        self.prompts: deque[Prompt] = deque(maxlen=200)
        self.errors: deque[tuple[float, str, str]] = deque(maxlen=50)
        self._ids = itertools.count(1)
        self._prompt_ids = itertools.count(1)
        self._outbox: asyncio.Queue[Draft] = asyncio.Queue()
        self._limiter = RateLimiter(config.max_posts_per_minute, 60.0, clock=time.monotonic)
        self._posted: dict[str, deque[str]] = {}
        self._error_hook = error_hook
        self.counters: dict[str, int] = {"sent": 0, "failed": 0, "blocked": 0, "expired": 0, "retries": 0}
        self._tasks: list[asyncio.Task[Any]] = []
        self.started = asyncio.Event()
        self.changed = asyncio.Event()
        """Set whenever drafts or prompts change (the web panel long-polls on it)."""
        self._moderators = {m.lower() for m in config.moderators}

    # -- components and dispatch --------------------------------------------------------------------
    def add_component(self, component: Component) -> None:
        self.components.append(component)

    def on_error(self, where: str, exc: BaseException) -> None:
        """The error hook: log, remember for the dashboard, tell the injected hook; never raise."""
        log.error("bot: %s failed: %s", where, exc, exc_info=exc)
        self.errors.append((self.clock(), where, f"{type(exc).__name__}: {exc}"))
        if self._error_hook is not None:
            with contextlib.suppress(Exception):
                self._error_hook(where, exc)

    async def dispatch(self, listener: str, *args: object) -> None:
        """Call ``listener`` on every component that has it, each isolated from the others."""
        for c in self.components:
            fn = getattr(c, listener, None)
            if fn is None:
                continue
            try:
                result = fn(*args)
                if asyncio.iscoroutine(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one broken listener must not silence the others
                self.on_error(f"{c.name}.{listener}", e)

    def in_scope(self, room: str) -> bool:
        """Whether the bot speaks in ``room`` (config ``rooms``; empty = every room)."""
        return not self.config.rooms or room in self.config.rooms

    def is_moderator(self, user: str, badge: bool) -> bool:
        """Moderator by the platform's badge, or by the configured list."""
        return badge or user.lower() in self._moderators

    # -- drafts, the gate and the outbox ------------------------------------------------------------
    def recently_posted(self, room: str) -> deque[str]:
        """The room's last ``no_repeat`` posted (or waiting) lines."""
        n = max(1, self.book.no_repeat)
        q = self._posted.get(room)
        if q is None or q.maxlen != n:
            q = self._posted[room] = deque(q or (), maxlen=n)
        return q

    def blocked_reason(self, draft: Draft) -> str:
        """Why ``draft`` must not be posted now ("" = it may)."""
        m = self.moderation
        if m.killed:
            return "kill switch is on"
        if m.mode(draft.type) == "off":
            return f"type {draft.type!r} is switched off"
        if draft.room in m.paused and draft.type != COMMAND_TYPE:
            return f"bot is paused in {draft.room}"
        if self.clock() - draft.created > self.config.max_delay_seconds and draft.type != COMMAND_TYPE:
            return "stale: not posted in time"
        return ""

    def propose(
        self, room: str, kind: str, text: str, *, template_id: str = "", by: str = "", force: bool = False
    ) -> Draft | None:
        """Turn a line into a draft: queued for approval, sent, or recorded as blocked.

        ``force`` (a moderator's ``!say``) skips the approval queue, never the gate.
        """
        line = finish_line(text)[:MAX_TEXT_CHARS]
        if not line:
            return None
        now = self.clock()
        d = Draft(next(self._ids), room, kind, template_id, line, now, by=by, updated=now)
        reason = self.blocked_reason(d)
        self.drafts.append(d)
        if reason:
            self._finish(d, "blocked", reason)
            return d
        if kind != COMMAND_TYPE:
            self.recently_posted(room).append(line)
        if self.moderation.mode(kind) == "queue" and not force:
            d.status = "pending"
            self.changed.set()
        else:
            self._enqueue(d)
        return d

    def _enqueue(self, d: Draft) -> None:
        d.status = "queued"
        d.updated = self.clock()
        self._outbox.put_nowait(d)
        self.changed.set()

    def _finish(self, d: Draft, status: str, reason: str = "") -> None:
        d.status = status
        d.reason = reason
        d.updated = self.clock()
        if status in self.counters:
            self.counters[status] += 1
        self.changed.set()

    def find(self, draft_id: int) -> Draft | None:
        return next((d for d in self.drafts if d.id == draft_id), None)

    def approve(self, draft_id: int, *, text: str | None = None, by: str = "moderator") -> Draft:
        """Approve a pending draft (optionally edited); it goes to the outbox. KeyError/ValueError."""
        d = self.find(draft_id)
        if d is None:
            raise KeyError(draft_id)
        if d.status != "pending":
            raise ValueError(f"draft {draft_id} is {d.status}, not pending")
        if text is not None:
            edited = finish_line(text)[:MAX_TEXT_CHARS]
            if not edited:
                raise ValueError("the edited text is empty")
            d.text = edited
        d.by = by
        # The moderator's approval restarts the staleness clock: they just read it.
        d.created = self.clock()
        reason = self.blocked_reason(d)
        if reason:
            self._finish(d, "blocked", reason)
            return d
        self._enqueue(d)
        return d

    def reject(self, draft_id: int, *, by: str = "moderator") -> Draft:
        d = self.find(draft_id)
        if d is None:
            raise KeyError(draft_id)
        if d.status != "pending":
            raise ValueError(f"draft {draft_id} is {d.status}, not pending")
        d.by = by
        self._finish(d, "rejected", f"rejected by {by}")
        return d

    def set_mode(self, kind: str, mode: Mode) -> None:
        if kind not in TEMPLATE_TYPES:
            raise ValueError(f"unknown template type {kind!r}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.moderation.modes[kind] = mode
        self._save_moderation()
        if mode == "off":
            # Switched off means gone: pending drafts of the type are dropped at once.
            for d in self.drafts:
                if d.status == "pending" and d.type == kind:
                    self._finish(d, "blocked", f"type {kind!r} switched off")
        self.changed.set()

    def set_killed(self, killed: bool) -> None:
        self.moderation.killed = killed
        self._save_moderation()
        self.changed.set()

    def set_paused(self, room: str, paused: bool) -> None:
        if paused:
            self.moderation.paused.add(room)
        else:
            self.moderation.paused.discard(room)
        self._save_moderation()
        self.changed.set()

    def _restore_moderation(self) -> bool:
        saved = read_json_object(self.state_file, "bot moderation state")
        if saved is None:
            return False
        ignored = self.moderation.restore(saved)
        if ignored:
            log.warning(
                "bot state %s: ignored unknown template modes %s", self.state_file, ", ".join(ignored)
            )
        m = self.moderation
        log.info(
            "bot moderation restored from %s: kill switch %s, paused rooms %s",
            self.state_file,
            "on" if m.killed else "off",
            ", ".join(sorted(m.paused)) or "none",
        )
        return True

    def _save_moderation(self) -> None:
        if self.state_file is None:
            return
        try:
            # A few hundred bytes, written whole and renamed: cheap enough for the event loop.
            write_json_atomic(self.state_file, self.moderation.to_json())
        except OSError as e:
            # The switch itself already holds in memory; only its survival of a restart is lost.
            self.on_error("save moderation state", e)

    def add_prompt(
        self,
        room: str,
        kind: Literal["tip", "alert"],
        text: str,
        *,
        keywords: tuple[str, ...] = (),
        mood: str = "",
    ) -> Prompt:
        p = Prompt(next(self._prompt_ids), room, kind, text, self.clock(), keywords, mood)
        self.prompts.append(p)
        self.changed.set()
        return p

    async def _outbox_loop(self) -> None:
        while True:
            d = await self._outbox.get()
            try:
                await self._deliver(d)
            except asyncio.CancelledError:
                if d.status == "queued":  # stopped mid-delivery (rate limit wait, retry pause): report it
                    self._finish(d, "failed", "bot stopped before it was sent")
                    log.warning("bot: line %d to %s not sent: the bot stopped", d.id, d.room)
                raise
            except Exception as e:  # pragma: no cover - _deliver reports its own failures
                self._finish(d, "failed", f"{type(e).__name__}: {e}")
                self.on_error("outbox", e)

    async def _deliver(self, d: Draft) -> None:
        retries = self.config.send_retries
        for attempt in range(retries + 1):
            reason = self.blocked_reason(d)
            if reason:
                self._finish(d, "expired" if reason.startswith("stale") else "blocked", reason)
                return
            if d.type != COMMAND_TYPE:
                wait = self._limiter.wait_time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    reason = self.blocked_reason(d)  # the world may have changed while we waited
                    if reason:
                        self._finish(d, "expired" if reason.startswith("stale") else "blocked", reason)
                        return
                self._limiter.try_acquire()
            d.attempts += 1
            try:
                await self.sender.send(d.room, d.text)
            except SendError as e:
                d.reason = str(e)
                if not e.retry or attempt == retries:
                    self._finish(d, "failed", str(e))
                    self._record(d, "bot_failed", f"bot line could not be sent: {e}")
                    log.warning(
                        "bot: line %d to %s failed after %d attempt(s): %s", d.id, d.room, d.attempts, e
                    )
                    self.on_error("send", e)
                    return
                self.counters["retries"] += 1
                delay = self.config.retry_base_seconds * 2**attempt
                await asyncio.sleep(delay * (0.5 + self.rng.random()))
                continue
            self._finish(d, "sent")
            self._record(d, "bot_post", d.text)
            return

    def _record(self, d: Draft, kind: str, message: str) -> None:
        if self.record is None:
            return
        try:
            self.record(TriggerEvent(d.room, self.clock(), kind, message, {"draft": float(d.id)}))
        except Exception as e:  # recording must never stop a post from counting as sent
            self.on_error("record", e)

    # -- lifecycle ----------------------------------------------------------------------------------
    def chat_listener(self, chat: IncomingChat) -> None:
        """The sender's read loop calls this: only enqueue (the dispatch task does the work)."""
        self._chat_queue.put_nowait(chat)
        is_command = chat.text.lstrip().startswith("!")
        if self.submit and self.config.irc.ingest_chat and self.in_scope(chat.room) and not is_command:
            self.submit(
                ChatMessage.create(
                    room=chat.room,
                    user=chat.user,
                    text=chat.text,
                    platform=chat.platform,
                    is_moderator=chat.is_moderator,
                )
            )

    _chat_queue: asyncio.Queue[IncomingChat]

    async def start(self) -> None:
        """Load components, subscribe to the feed and start the loops."""
        self._chat_queue = asyncio.Queue(maxsize=1000)
        for c in self.components:
            try:
                await c.load(self)
            except Exception as e:
                self.on_error(f"{c.name}.load", e)
        classified = self.feed.classified.subscribe("bot")
        snapshots = self.feed.snapshots.subscribe("bot")
        events = self.feed.events.subscribe("bot")

        async def pump(q: asyncio.Queue[Any], listener: str, room_of: Callable[[Any], str]) -> None:
            while True:
                item = await q.get()
                if self.in_scope(room_of(item)):
                    await self.dispatch(listener, item)

        def cm_room(cm: ClassifiedMessage) -> str:
            return cm.message.room

        def snap_room(s: MoodSnapshot) -> str:
            return s.room

        def ev_room(e: TriggerEvent) -> str:
            return e.room

        def chat_room(c: IncomingChat) -> str:
            return c.room

        loops: list[tuple[str, Awaitable[None]]] = [
            ("bot-classified", pump(classified, "on_classified", cm_room)),
            ("bot-snapshots", pump(snapshots, "on_snapshot", snap_room)),
            ("bot-events", pump(events, "on_event", ev_room)),
            ("bot-chat", pump(self._chat_queue, "on_chat", chat_room)),
            ("bot-tick", self._tick_loop()),
            ("bot-outbox", self._outbox_loop()),
            ("bot-sender", self._run_sender()),
        ]
        self._tasks = [asyncio.ensure_future(coro) for _, coro in loops]
        for (name, _), t in zip(loops, self._tasks, strict=True):
            if isinstance(t, asyncio.Task):
                t.set_name(name)
        self.started.set()

    async def _run_sender(self) -> None:
        try:
            await self.sender.run()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.on_error(f"sender {self.sender.name}", e)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.dispatch("on_tick", self.clock())

    async def stop(self) -> None:
        """Cancel the loops, unsubscribe, tear components down; undelivered lines are reported."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for hub in (self.feed.classified, self.feed.snapshots, self.feed.events):
            hub.unsubscribe("bot")
        while not self._outbox.empty():
            d = self._outbox.get_nowait()
            self._finish(d, "failed", "bot stopped before it was sent")
            log.warning("bot: line %d to %s not sent: the bot stopped", d.id, d.room)
        for c in reversed(self.components):
            try:
                await c.teardown()
            except Exception as e:
                self.on_error(f"{c.name}.teardown", e)

    def status(self) -> dict[str, object]:
        """Moderation state and counters, for the dashboard."""
        m = self.moderation
        return {
            "killed": m.killed,
            "paused": sorted(m.paused),
            "modes": dict(m.modes),
            "restored": self.restored,
            # Streamer alerts name keywords once jieba's dictionary is built (a second after start).
            "keywords_ready": all(c.ready for c in self.components),
            "types": list(TEMPLATE_TYPES),
            "counters": dict(self.counters),
            "pending": sum(1 for d in self.drafts if d.status == "pending"),
            "sender": self.sender.health(),
            "errors": [{"ts": ts, "where": w, "error": e} for ts, w, e in list(self.errors)[-10:]],
        }
