"""The OBS controller: mood snapshots in, rule decisions through the director, commands out to OBS.

Runs on the event loop but never blocks it: every obsws-python call goes to one dedicated worker thread
(the library is synchronous and its request client is not thread-safe). OBS's own events arrive on the
library's thread and are only enqueued. The connection is a reconnect loop with an injectable backoff
``(retry, total) -> seconds`` (jittered; the retry count resets once connected), and its state
(connecting, connected, reconnecting, auth_failed, unreachable) is visible in ``status()``. Every
decision and action is published as a TriggerEvent (SQLite store, dashboard) with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from engine.config import ObsConfig
from engine.queues import DropOldestQueue
from engine.rules import EDITABLE, Rule, RuleEngine
from engine.statefile import read_json_object, write_json_atomic
from engine.types import MoodSnapshot, TriggerEvent
from overlay.obs.director import Director, ObsCommand
from overlay.obs.link import ObsConnectError, ObsConnectionLost, ObsLink, ObsRequestFailed

log = logging.getLogger(__name__)

T = TypeVar("T")
Backoff = Callable[[int, float], float]
Opener = Callable[..., ObsLink]

OBS_ROOM = "*"
"""The room of events that concern OBS as a whole (connection state, the producer's own switches)."""
RECENT_ACTIONS = 200
STATE_FORMAT_KEY = "moodcast_obs_state"
STATE_FORMAT = 2
"""Format 2 holds the pause and the rule edits; format 1 (no key) was the rule edits alone."""


def jittered_backoff(max_seconds: float) -> Backoff:
    """0.5 s doubling per retry up to ``max_seconds``, each scaled by a random 0.5-1.0 (no herd)."""

    def backoff(retry: int, total: float) -> float:
        del total
        return float(min(max_seconds, 0.5 * 2.0 ** min(retry, 16)) * random.uniform(0.5, 1.0))

    return backoff


class ObsController:
    """Evaluates the rules on every snapshot and drives OBS; survives OBS restarts and wrong passwords."""

    def __init__(
        self,
        config: ObsConfig,
        rules: list[Rule],
        *,
        password: str,
        publish: Callable[[TriggerEvent], None],
        state_file: Path | None = None,
        opener: Opener = ObsLink.open,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.engine = RuleEngine(rules)
        self.director = Director(
            min_dwell=config.min_dwell_seconds, max_per_minute=config.max_switches_per_minute
        )
        self.dry_run = config.dry_run
        self._password = password
        self._publish = publish
        self._state_file = state_file
        self._opener = opener
        self._backoff = backoff or jittered_backoff(config.reconnect_max_seconds)
        self._clock = clock
        self.state = "connecting"
        self.detail = ""
        self.obs_version = ""
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_ACTIONS)
        self.counters = {"decisions": 0, "actions": 0, "dry_run": 0, "errors": 0, "notes": 0, "connects": 0}
        self._executor: ThreadPoolExecutor | None = None
        self._link: ObsLink | None = None
        self._link_closed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._obs_events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._saved_text: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        if self.dry_run:
            # With no OBS to ask, pretend a scene is live so the log still shows switches and returns.
            self.director.current = "(program scene)"
        self._apply_saved_state()

    # -- running ------------------------------------------------------------------------------------
    async def run(self, snapshots: DropOldestQueue[MoodSnapshot]) -> None:
        """Until cancelled: keep OBS connected, evaluate snapshots, act on OBS's events."""
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodcast-obs")
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._connection_loop(), name="obs-connection")
                tg.create_task(self._snapshot_loop(snapshots), name="obs-snapshots")
                tg.create_task(self._obs_event_loop(), name="obs-events")
        finally:
            link, self._link = self._link, None
            if link is not None:
                # Closing sends a close frame: quick, but blocking, so not on the loop.
                await asyncio.get_running_loop().run_in_executor(self._executor, link.close)
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def _snapshot_loop(self, snapshots: DropOldestQueue[MoodSnapshot]) -> None:
        while True:
            snap = await snapshots.get()
            try:
                await self.feed(snap)
            except Exception:  # one bad snapshot or command must not end automation for the stream
                log.exception("OBS rules failed on a snapshot of %r", snap.room)

    async def feed(self, snap: MoodSnapshot) -> None:
        """Evaluate the rules on one snapshot and perform what they decide."""
        async with self._lock:
            cmds: list[ObsCommand] = []
            for d in self.engine.feed(snap):
                self.counters["decisions"] += 1
                self._event(d.to_event())
                cmds += self.director.decide(d, self.engine.rule(d.rule), snap.ts)
            cmds += self.director.reconcile(snap.ts)
            await self._perform(cmds)

    async def _obs_event_loop(self) -> None:
        while True:
            kind, value = await self._obs_events.get()
            if kind == "scene":
                async with self._lock:
                    await self._perform(self.director.observe_scene(value, self._clock()))

    def _enqueue(self, kind: str, value: str) -> None:
        # Called on obsws-python's thread: only hand over to the loop.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._obs_events.put_nowait, (kind, value))

    def _closed_cb(self, generation: int) -> Callable[[], None]:
        def closed() -> None:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._link_gone, generation)

        return closed

    def _link_gone(self, generation: int) -> None:
        # The watcher of a link we already replaced reports late: only the current link's close counts.
        if generation == self._generation:
            self._link_closed.set()

    async def _connection_loop(self) -> None:
        cfg = self.config
        retry, total, ever = 0, 0.0, False
        while True:
            self._link_closed.clear()
            self._generation += 1
            try:
                link = await self._call(
                    self._opener,
                    cfg.host,
                    cfg.port,
                    self._password,
                    cfg.connect_timeout_seconds,
                    password_env=cfg.password_env,
                    on_scene=lambda scene: self._enqueue("scene", scene),
                    on_close=self._closed_cb(self._generation),
                )
                try:
                    version = await self._call(link.version)
                    scene = await self._call(link.current_scene)
                except (ObsConnectionLost, ObsRequestFailed) as e:
                    await self._call(link.close)
                    raise ObsConnectError("unreachable", f"OBS dropped the connection at once: {e}") from None
            except ObsConnectError as e:
                state = e.kind if e.kind == "auth_failed" or not ever else "reconnecting"
                delay = self._backoff(retry, total)
                retry, total = retry + 1, total + delay
                self._set_state(state, f"{e} (retry {retry} in {delay:.1f}s)", str(e))
                await asyncio.sleep(delay)
                continue
            retry, total, ever = 0, 0.0, True
            self._link = link
            self.counters["connects"] += 1
            obs_v, ws_v = version.get("obsVersion", "?"), version.get("obsWebSocketVersion", "?")
            self.obs_version = f"OBS {obs_v}, obs-websocket {ws_v}"
            self._set_state(
                "connected", f"{self.obs_version} at {cfg.host}:{cfg.port}; program scene {scene!r}"
            )
            async with self._lock:
                if not self.dry_run or self.director.current in (None, "(program scene)"):
                    await self._perform(self.director.connected(scene, self._clock()))
                else:
                    self.director.current = scene
            await self._link_closed.wait()
            async with self._lock:
                self._link = None
                if not self.dry_run:
                    self.director.disconnected()
            await self._call(link.close)
            self._set_state("reconnecting", "OBS closed the connection (quit, crashed or restarted)")
            delay = self._backoff(retry, total)
            retry, total = retry + 1, total + delay
            await asyncio.sleep(delay)

    def _set_state(self, state: str, detail: str, summary: str | None = None) -> None:
        changed = state != self.state
        self.state, self.detail = state, detail
        if changed:
            msg = f"OBS {state.replace('_', ' ')}: {summary or detail}"
            (log.info if state == "connected" else log.warning)("%s", msg)
            self._event(TriggerEvent(OBS_ROOM, self._clock(), "obs_state", msg, {}))

    # -- doing --------------------------------------------------------------------------------------
    async def _perform(self, cmds: Sequence[ObsCommand]) -> None:
        for cmd in cmds:
            if cmd.kind == "note":
                self.counters["notes"] += 1
                self._event(TriggerEvent(cmd.room, self._clock(), "obs_note", cmd.reason, dict(cmd.values)))
                continue
            what = cmd.describe()
            if self.dry_run:
                self.counters["dry_run"] += 1
                self._event(
                    TriggerEvent(
                        cmd.room,
                        self._clock(),
                        "obs_dry_run",
                        f"dry run: would {what} ({cmd.reason})",
                        dict(cmd.values),
                    )
                )
                continue
            link = self._link
            if link is None:
                self._error(cmd, f"not connected to OBS: could not {what}")
                continue
            try:
                await self._call(link.execute, cmd, self._saved_text)
            except ObsRequestFailed as e:
                self._error(cmd, f"OBS refused to {what}: {e}")
                if cmd.kind == "switch_scene":
                    with contextlib.suppress(ObsConnectionLost, ObsRequestFailed):
                        self.director.switch_failed(cmd.scene, await self._call(link.current_scene))
            except ObsConnectionLost as e:
                self._error(cmd, f"connection lost while trying to {what}: {e}")
                self._link_closed.set()
            else:
                self.counters["actions"] += 1
                self._event(
                    TriggerEvent(
                        cmd.room, self._clock(), "obs_action", f"{what} ({cmd.reason})", dict(cmd.values)
                    )
                )

    def _error(self, cmd: ObsCommand, message: str) -> None:
        self.counters["errors"] += 1
        log.warning("%s", message)
        self._event(TriggerEvent(cmd.room, self._clock(), "obs_error", message, dict(cmd.values)))

    def _event(self, event: TriggerEvent) -> None:
        self.recent.append(
            {
                "ts": round(event.ts, 3),
                "room": event.room,
                "kind": event.kind,
                "message": event.message,
                "values": {k: round(v, 4) for k, v in event.values.items()},
            }
        )
        try:
            self._publish(event)
        except Exception:  # the log must never take automation down
            log.exception("could not publish OBS event")

    # -- producer controls --------------------------------------------------------------------------
    async def set_paused(self, paused: bool, who: str = "") -> None:
        """Pause (nothing is done in OBS, decisions are still logged) or resume (re-apply what rules want)."""
        async with self._lock:
            if self.director.paused == paused:
                return
            self.director.paused = paused
            verb = "paused" if paused else "resumed"
            self._event(TriggerEvent(OBS_ROOM, self._clock(), f"obs_{verb}", f"automation {verb}{who}", {}))
            # Saved before acting: a producer's pause must hold even if OBS or moodcast restarts now.
            await self._save_state()
            if not paused:
                await self._perform(self.director.reconcile(self._clock()))

    async def edit_rule(self, name: str, changes: Mapping[str, object]) -> Rule:
        """Apply dashboard edits to a rule and save them (they outlive a restart); KeyError/ValueError."""
        async with self._lock:
            rule = self.engine.update(name, changes)
            desc = ", ".join(f"{k}={v}" for k, v in changes.items())
            self._event(
                TriggerEvent(OBS_ROOM, self._clock(), "obs_rule_edited", f"rule {name!r} edited: {desc}", {})
            )
        await self._save_state()
        return rule

    async def _save_state(self) -> None:
        if self._state_file is None:
            return
        data = {
            STATE_FORMAT_KEY: STATE_FORMAT,
            "paused": self.director.paused,
            "rules": {r.name: {k: getattr(r, k) for k in EDITABLE} for r in self.engine.rules},
        }
        await asyncio.to_thread(write_json_atomic, self._state_file, data)

    def _apply_saved_state(self) -> None:
        data = read_json_object(self._state_file, "OBS automation state")
        if data is None:
            return
        if data.get(STATE_FORMAT_KEY) == STATE_FORMAT:
            if data.get("paused") is True:
                self.director.paused = True
                log.warning("OBS automation starts paused, as a producer left it (resume on the dashboard)")
            edits = data.get("rules")
            data = edits if isinstance(edits, dict) else {}
        # Else the first format: the file is the rule edits alone.
        for name, changes in data.items():
            if not isinstance(changes, dict):
                continue
            try:
                self.engine.update(str(name), changes)
            except (KeyError, ValueError) as e:
                # A rule renamed or removed from config.toml since: its old edits no longer apply.
                log.warning("ignoring saved edits of OBS rule %r: %s", name, e)

    # -- what the panel shows -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """State, rules, recent actions, for the REST endpoint and the dashboard panel."""
        now = self._clock()
        active = self.engine.active()
        rules = []
        for r in self.engine.rules:
            d = r.describe()
            d["active_rooms"] = sorted(room for name, room in active if name == r.name)
            rules.append(d)
        return {
            "enabled": True,
            "state": self.state,
            "detail": self.detail,
            "obs_version": self.obs_version,
            "host": f"{self.config.host}:{self.config.port}",
            "dry_run": self.dry_run,
            "min_dwell_seconds": self.config.min_dwell_seconds,
            "max_switches_per_minute": self.config.max_switches_per_minute,
            "rules_state_file": str(self._state_file) if self._state_file else "",
            **self.director.state(now),
            "rules": rules,
            "recent": list(self.recent)[-50:][::-1],
            "counters": dict(self.counters),
        }
