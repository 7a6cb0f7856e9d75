"""Wires engine, overlay and (later) bot into one running service.

Everything long-lived runs inside one aiohttp cleanup context, so start-up and shutdown have a single
order: store writer, pipeline, then sources; on the way down sources stop first, the pipeline drains,
and the store writer flushes what is left. A clean shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from aiohttp import web

from engine.classify.registry import ModelRegistry
from engine.config import Config, SourceConfig
from engine.pipeline import Pipeline
from engine.queues import DropOldestQueue
from engine.ratelimit import RateLimiter
from engine.sources.base import Source, build_source
from engine.sources.ingest import INGEST_KEY, add_ingest_routes
from engine.store import StoreWriter
from engine.store.journal import AsyncJournal, journaled_rows
from engine.types import ClassifiedMessage
from moodcast.overlay_cli import AdminToken, dashboard_setup, load_admin, overlay_tokens
from moodcast.resources import DEMO_REPLAY, DEMO_ROOM
from overlay.app import create_app
from overlay.obs import obs_setup

log = logging.getLogger(__name__)


def default_sources(config: Config) -> tuple[SourceConfig, ...]:
    """The configured sources, or the bundled demo replay when none are configured."""
    if config.sources:
        return config.sources
    return (SourceConfig(type="replay", room=DEMO_ROOM, path=str(DEMO_REPLAY), speed=1.0, loop=True),)


def ingest_token(config: Config) -> tuple[str, str]:
    """The ingest token and where it came from: the environment, or a generated 0600 file."""
    from_env = os.environ.get(config.ingest.token_env, "").strip()
    if from_env:
        return from_env, f"environment variable {config.ingest.token_env}"
    path = config.resolve(config.ingest.token_file)
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return token, str(path)


@dataclass
class Service:
    """The running parts, reachable from tests and the CLI."""

    config: Config
    registry: ModelRegistry
    pipeline: Pipeline
    sources: list[Source] = field(default_factory=list)
    writer: StoreWriter | None = None
    sources_done: asyncio.Event = field(default_factory=asyncio.Event)
    admin: AdminToken | None = None
    """The dashboard/CLI admin token; loaded (or generated, then printed once) by build_app."""
    journal: AsyncJournal | None = None
    """The ingest journal (acknowledged = committed); opened and replayed by the engine context."""
    store_queue: DropOldestQueue[ClassifiedMessage] | None = None

    def overloaded(self) -> float:
        """Seconds an ingest client should wait while the inbox or the store backlog is too full, else 0."""
        cfg = self.config
        frac = cfg.ingest.overload_fraction
        if frac <= 0:
            return 0.0
        if self.pipeline.backlog() >= frac * cfg.pipeline.ingest_queue:
            return cfg.ingest.overload_retry_seconds
        q = self.store_queue
        if q is not None and q.maxsize > 0 and q.qsize() >= frac * q.maxsize:
            return cfg.ingest.overload_retry_seconds
        return 0.0

    def health(self) -> dict[str, dict[str, object]]:
        """Each source's health by name (status, detail, counters); the feed's stats carry it too."""
        return {s.name: {"room": s.room, **s.state.as_dict()} for s in self.sources}


def build_service(config: Config, *, with_sources: bool = True) -> Service:
    """Load the model and build the pipeline; raises on a broken model before anything listens."""
    dirs = [config.resolve(config.classifier.models_dir)] if config.classifier.models_dir else []
    registry = ModelRegistry(dirs)
    pipeline = Pipeline(config, registry.get)
    srcs = [build_source(s, Path(config.base_dir)) for s in default_sources(config)] if with_sources else []
    service = Service(config, registry, pipeline, srcs)
    pipeline.source_health = service.health  # /healthz, the dashboard and doctor read it from stats()
    return service


def build_app(service: Service) -> web.Application:
    """The web app with the engine's lifecycle attached; building it starts nothing."""
    config = service.config
    token, _ = ingest_token(config) if config.ingest.enabled else ("", "")

    ic = config.ingest
    store_path = config.resolve(config.store.path)
    if ic.enabled and ic.journal:
        service.journal = AsyncJournal(store_path, fsync=ic.journal_fsync)
    elif pending := journaled_rows(store_path):
        # Acknowledged by an earlier run and never stored: they are owed to the store whatever the
        # ingest settings are now.
        log.warning(
            "ingest journal: %d acknowledged messages from an earlier run are waiting; replaying them "
            "although [ingest] %s is off now",
            pending,
            "enabled" if not ic.enabled else "journal",
        )
        service.journal = AsyncJournal(store_path, fsync=ic.journal_fsync)

    # A journal opened only to replay an earlier run's rows is not used for new batches.
    ingest_journal = service.journal if ic.journal else None

    def add_ingest(app: web.Application) -> None:
        if config.ingest.enabled:
            add_ingest_routes(
                app,
                token=token,
                emit=service.pipeline.submit,
                max_body_bytes=ic.max_body_bytes,
                max_batch=ic.max_batch,
                default_room=DEMO_ROOM if not config.sources else config.sources[0].room,
                journal=ingest_journal,
                limiter=RateLimiter(ic.rate_limit_per_second, max(ic.rate_limit_burst, ic.max_batch)),
                overloaded=service.overloaded,
            )
            state = app[INGEST_KEY]
            service.pipeline.stats_hooks["ingest"] = lambda: {
                **state.stats(),
                "journal": ingest_journal.stats() if ingest_journal is not None else None,
            }

    def add_engine(app: web.Application) -> None:
        app.cleanup_ctx.append(lambda _app: _engine_ctx(service))

    # After add_engine: the OBS controller starts once the pipeline runs and stops before it drains.
    add_obs = obs_setup(config, service.pipeline.publish_event)

    def add_bot(app: web.Application) -> None:
        # After add_engine: the bot starts once the pipeline runs and stops (reporting unsent lines) first.
        from bot.web import setup_bot

        setup_bot(
            app,
            config,
            service.pipeline,
            submit=service.pipeline.submit,
            record=service.pipeline.publish_event,
        )

    def add_predict(app: web.Application) -> None:
        from overlay.predict_api import PredictLimits
        from overlay.predict_api import setup as predict_setup

        cc = config.classifier
        limits = PredictLimits(
            default_model=cc.model,
            max_chars=cc.api_max_chars,
            max_inputs=cc.api_max_inputs,
            max_body_bytes=config.ingest.max_body_bytes,
            confidence_floor=cc.confidence_floor,
            max_run=config.flood.max_run,
        )
        predict_setup(app, service.registry, limits)

    def add_model_select(app: web.Application) -> None:
        # POST /api/rooms/{room}/model and the dashboard's model panel (overlay/model_select.py).
        from overlay.model_select import model_select_setup

        model_select_setup(service.pipeline, service.registry.ids, service.registry.get)(app)

    def add_reports(app: web.Application) -> None:
        # The dashboard's "Reports" panel: each finished session's review (report/web.py).
        from report.web import reports_setup

        reports_setup(config)(app)

    if service.admin is None:
        service.admin = load_admin(config)
    return create_app(
        service.pipeline,
        config,
        extra_setup=[
            dashboard_setup(service),
            add_ingest,
            add_engine,
            add_obs,
            add_bot,
            add_predict,
            add_model_select,
            add_reports,
        ],
        tokens=overlay_tokens(config),
        admin_token=service.admin.token,
    )


async def _engine_ctx(service: Service) -> AsyncIterator[None]:
    """Start store writer, pipeline and sources; on exit stop sources, drain, flush."""
    config = service.config
    pipe = service.pipeline
    service.store_queue = pipe.classified.subscribe("store")
    writer = StoreWriter(
        config.resolve(config.store.path),
        config.store,
        service.store_queue,
        pipe.events.subscribe("store"),
    )
    service.writer = writer
    pipe.stats_hooks["store"] = writer.stats
    await writer.open()  # a bad path or read-only disk stops start-up with a clear StoreError
    journal = service.journal
    if journal is not None:
        try:
            await journal.open()
        except BaseException:
            await writer.close()
            raise
    writer_task = asyncio.create_task(writer.run(), name="store-writer")
    pipe_task = asyncio.create_task(pipe.run(), name="pipeline")
    replay_task = asyncio.create_task(_replay_journal(service), name="journal-replay") if journal else None
    source_tasks = [
        asyncio.create_task(_run_source(s, pipe), name=f"source:{s.name}") for s in service.sources
    ]

    async def watch_sources() -> None:
        await asyncio.gather(*source_tasks, return_exceptions=True)
        service.sources_done.set()

    watcher = asyncio.create_task(watch_sources())
    try:
        yield
    finally:
        for t in [*source_tasks, watcher, *([replay_task] if replay_task else [])]:
            t.cancel()
        await asyncio.gather(*source_tasks, watcher, return_exceptions=True)
        if replay_task is not None:
            await asyncio.gather(replay_task, return_exceptions=True)
        if not await pipe.drain(timeout=15.0):
            log.warning("pipeline did not drain in time; %d messages still queued", pipe.stats()["queued"])
        pipe_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pipe_task
        await writer.close()
        writer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer_task
        if journal is not None:
            await journal.close()


async def _replay_journal(service: Service) -> None:
    """Put what ingest acknowledged before a crash back through the pipeline (each stored exactly once)."""
    journal = service.journal
    assert journal is not None
    limit = service.config.pipeline.ingest_queue // 2
    try:
        n = await journal.replay(service.pipeline.submit, lambda: service.pipeline.backlog() < limit)
    except Exception:
        log.exception("ingest journal: replay failed; the rows stay journaled for the next start")
        return
    if n:
        log.warning("ingest journal: replayed %d acknowledged messages that were not stored before", n)


async def _run_source(source: Source, pipe: Pipeline) -> None:
    try:
        await source.run(pipe.submit)
    except asyncio.CancelledError:
        raise
    except Exception:  # one broken source must not take the others down
        log.exception("source %s failed", source.name)


def with_overrides(config: Config, *, host: str | None, port: int | None) -> Config:
    """The config with command-line overrides applied."""
    server = config.server
    if host:
        server = replace(server, host=host)
    if port is not None:
        server = replace(server, port=port)
    return replace(config, server=server)
