"""Configuration: ``config.toml`` parsed into frozen dataclasses.

An unknown key or a wrong type stops start-up with a ConfigError naming the dotted key and, when
the key is written in the file, its line. Secrets never live here: sections name the environment
variable that holds them.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem; the message names the dotted key (and line) to fix."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The web server for overlays, dashboard, REST API and ingest."""

    host: str = "127.0.0.1"
    port: int = 8750
    public_url: str = ""


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Queue sizes and micro-batching between stages."""

    ingest_queue: int = 20000
    subscriber_queue: int = 20000
    batch_max: int = 256
    batch_wait_ms: int = 15
    classify_threads: int = 1


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    """Which model reads the chat and how far its confidence is trusted."""

    model: str = "fast"
    models_dir: str = "var/models"
    confidence_floor: float = 0.0
    cache_size: int = 50000
    api_max_chars: int = 2000
    api_max_inputs: int = 1000


@dataclass(frozen=True, slots=True)
class FloodConfig:
    """How floods and spammers are kept from moving the room's mood."""

    window_seconds: float = 10.0
    per_user_cap: int = 3
    same_text_cap: int = 8
    max_run: int = 3


@dataclass(frozen=True, slots=True)
class AggregateConfig:
    """Rolling windows, snapshot rate and spike detection per room."""

    windows: tuple[int, ...] = (10, 60, 180)
    snapshot_hz: float = 4.0
    recent_messages: int = 100
    history_minutes: int = 30
    baseline_seconds: int = 300
    spike_threshold: float = 3.0
    spike_min_messages: int = 15
    spike_cooldown_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """SQLite storage of messages, minute aggregates and events."""

    path: str = "var/moodcast.db"
    retention_hours: float = 24.0
    batch_size: int = 500
    flush_ms: int = 250


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """The authenticated HTTP/WebSocket ingest endpoint."""

    enabled: bool = True
    token_env: str = "MOODCAST_INGEST_TOKEN"
    token_file: str = "var/ingest-token"
    max_body_bytes: int = 1_048_576
    max_batch: int = 1000
    journal: bool = True
    journal_fsync: bool = False
    rate_limit_per_second: float = 5000.0
    rate_limit_burst: int = 10000
    overload_fraction: float = 0.5
    overload_retry_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class ObsActionConfig:
    """One thing a mood rule does in OBS (see engine/rules.py for which fields each type reads)."""

    type: Literal[
        "switch_scene",
        "source_visibility",
        "set_text",
        "advss_message",
        "advss_set_variable",
        "advss_run_macro",
        "vendor_request",
        "broadcast_event",
    ] = "switch_scene"
    when: Literal["fire", "end"] = "fire"
    revert: bool = True
    scene: str = ""
    source: str = ""
    visible: bool = True
    text: str = ""
    message: str = ""
    variable: str = ""
    value: str = ""
    macro: str = ""
    vendor: str = ""
    request: str = ""
    data: str = ""


@dataclass(frozen=True, slots=True)
class ObsRuleConfig:
    """A mood rule: when ``metric`` stays at or above ``threshold``, run ``actions``; undo when calm."""

    name: str = ""
    room: str = ""
    enabled: bool = True
    metric: Literal["negative_share", "emotion_share", "rate", "spike_score"] = "negative_share"
    emotion: str = "angry"
    window: int = 10
    threshold: float = 0.5
    exit_threshold: float = 0.3
    for_seconds: float = 5.0
    calm_seconds: float = 15.0
    cooldown_seconds: float = 60.0
    min_messages: int = 10
    actions: tuple[ObsActionConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class ObsConfig:
    """obs-websocket v5 connection; the password comes from the environment variable named here."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 4455
    password_env: str = "MOODCAST_OBS_PASSWORD"
    dry_run: bool = False
    connect_timeout_seconds: float = 3.0
    reconnect_max_seconds: float = 30.0
    min_dwell_seconds: float = 20.0
    max_switches_per_minute: int = 4
    rules_state_file: str = "var/obs-rules.json"
    rules: tuple[ObsRuleConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class OverlayConfig:
    """The OBS overlay's defaults (every one can be overridden per Browser Source by URL parameter)."""

    theme: Literal["dark", "light", "glass", "bare"] = "dark"
    font: str = ""
    scale: float = 1.0
    grid_rows: int = 10
    grid_cols: int = 10
    timeline_minutes: int = 30
    alert_seconds: float = 8.0
    ticker_items: int = 8
    ticker_window_seconds: float = 120.0
    color_happy: str = "#43a047"
    color_excited: str = "#fb8c00"
    color_neutral: str = "#9e9e9e"
    color_anxious: str = "#8e24aa"
    color_sad: str = "#1e88e5"
    color_angry: str = "#e53935"
    user_css: str = ""
    token_file: str = "var/overlay-tokens.json"


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """The producer dashboard's login; the admin token itself comes from $MOODCAST_ADMIN_TOKEN or a file."""

    admin_token_file: str = "var/admin-token"
    session_hours: float = 12.0


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """The post-stream review (``moodcast report``, report/): sessions, peaks, keywords, sales statistics."""

    session_gap_minutes: float = 10.0
    min_session_messages: int = 20
    output_dir: str = "var/reports"
    timezone: str = ""
    peak_z: float = 3.0
    peak_min_lift: float = 0.08
    keyword_sample: int = 200_000
    max_lag_minutes: int = 15
    permutations: int = 999
    bootstrap: int = 2000


@dataclass(frozen=True, slots=True)
class BotIrcConfig:
    """The bot's own Twitch-style IRC connection (sends lines, reads moderators' commands)."""

    host: str = "irc.chat.twitch.tv"
    port: int = 6697
    tls: bool = True
    nick: str = ""
    token_env: str = "MOODCAST_TWITCH_OAUTH"
    rate_messages: int = 20
    rate_seconds: float = 30.0
    ingest_chat: bool = False


@dataclass(frozen=True, slots=True)
class BotBilibiliConfig:
    """Bilibili's send-danmaku API; the account's cookie comes from the environment variable named here."""

    base_url: str = "https://api.live.bilibili.com"
    cookie_env: str = "MOODCAST_BILIBILI_COOKIE"
    room_id: int = 0
    max_chars: int = 20


@dataclass(frozen=True, slots=True)
class BotWebhookConfig:
    """A generic webhook that receives each line as JSON."""

    url: str = ""
    token_env: str = "MOODCAST_BOT_WEBHOOK_TOKEN"


@dataclass(frozen=True, slots=True)
class BotConfig:
    """The mood-aware chat bot: templates, products, FAQ, moderation, senders (see bot/)."""

    enabled: bool = True
    sender: Literal["console", "irc", "bilibili", "webhook"] = "console"
    rooms: tuple[str, ...] = ()
    templates: str = ""
    products: str = ""
    faq: str = ""
    approval: bool = True
    auto_send: tuple[str, ...] = ()
    off: tuple[str, ...] = ()
    moderators: tuple[str, ...] = ()
    max_posts_per_minute: int = 6
    reply_interval_seconds: float = 60.0
    min_messages: int = 10
    tip_interval_seconds: float = 60.0
    trend_half_life_seconds: float = 120.0
    send_retries: int = 3
    retry_base_seconds: float = 2.0
    max_delay_seconds: float = 120.0
    streamer_token_env: str = "MOODCAST_STREAMER_TOKEN"
    streamer_token_file: str = "var/streamer-token"
    state_file: str = "var/bot-state.json"
    irc: BotIrcConfig = field(default_factory=BotIrcConfig)
    bilibili: BotBilibiliConfig = field(default_factory=BotBilibiliConfig)
    webhook: BotWebhookConfig = field(default_factory=BotWebhookConfig)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One chat source feeding one room."""

    type: Literal["replay", "simulator", "bilibili", "twitch", "douyu", "youtube", "tiktok"] = "replay"
    room: str = "demo"
    path: str = ""
    speed: float = 1.0
    loop: bool = False
    rate: float = 20.0
    script: str = ""
    seed: int = 0
    # Live platforms (engine/sources/platforms.py); secrets only as environment variable names.
    channel: str = ""
    url: str = ""
    cookie_env: str = ""
    auth_code_env: str = ""
    app_id: int = 0
    app_key_env: str = "MOODCAST_BILIBILI_APP_KEY"
    app_secret_env: str = "MOODCAST_BILIBILI_APP_SECRET"
    heartbeat: float = 0.0
    reconnect_max: float = 60.0


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, one table per component."""

    server: ServerConfig = field(default_factory=ServerConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    flood: FloodConfig = field(default_factory=FloodConfig)
    aggregate: AggregateConfig = field(default_factory=AggregateConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    obs: ObsConfig = field(default_factory=ObsConfig)
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    bot: BotConfig = field(default_factory=BotConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    sources: tuple[SourceConfig, ...] = ()
    base_dir: str = "."
    """Directory relative paths in the file resolve against (the config file's own); not a TOML key."""

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p


_NOT_KEYS = {"base_dir"}


def load_config(path: str | Path | None) -> Config:
    """Load and validate a config file; ``None`` gives the embedded defaults."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    return parse_config(text, source=str(p), base_dir=str(p.resolve().parent))


def parse_config(text: str, *, source: str = "<config>", base_dir: str = ".") -> Config:
    """Parse TOML text into a Config, raising ConfigError with the dotted key and line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: invalid TOML: {e}") from None
    locator = _KeyLocator(text)
    cfg = _build(Config, data, "", locator, source)
    return dataclasses.replace(cfg, base_dir=base_dir)


def _build(cls: type[T], data: Any, prefix: str, loc: _KeyLocator, source: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(_where(source, loc, prefix, f"'{prefix}' must be a table"))
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - _NOT_KEYS  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in names:
            allowed = ", ".join(sorted(names))
            raise ConfigError(
                _where(source, loc, dotted, f"unknown key '{dotted}' (allowed here: {allowed})")
            )
        kwargs[key] = _convert(hints[key], value, dotted, loc, source)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # pragma: no cover - _convert checks first
        raise ConfigError(f"{source}: {prefix or 'config'}: {e}") from None


def _convert(hint: Any, value: Any, dotted: str, loc: _KeyLocator, source: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)

    def bad(expected: str) -> ConfigError:
        got = type(value).__name__
        return ConfigError(_where(source, loc, dotted, f"'{dotted}' must be {expected}, got {got} {value!r}"))

    if dataclasses.is_dataclass(hint):
        return _build(hint, value, dotted, loc, source)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in args:
            raise bad("one of " + ", ".join(repr(a) for a in args))
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise bad("an array")
        item = args[0]
        return tuple(_convert(item, v, f"{dotted}[{i}]", loc, source) for i, v in enumerate(value))
    if origin in (types.UnionType, typing.Union):
        raise TypeError(f"unsupported config type {hint}")  # pragma: no cover - keep config types plain
    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        if value < 0:
            raise bad("a non-negative integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        if value < 0:
            raise bad("a non-negative number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    raise TypeError(f"unsupported config type {hint}")  # pragma: no cover


def _where(source: str, loc: _KeyLocator, dotted: str, message: str) -> str:
    line = loc.line_of(dotted)
    return f"{source}:{line}: {message}" if line else f"{source}: {message}"


class _KeyLocator:
    """Finds the line a dotted key is written on (tomllib keeps no positions)."""

    _header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")

    def __init__(self, text: str) -> None:
        self._lines: list[tuple[str, int]] = []
        table = ""
        counts: dict[str, int] = {}
        for n, raw in enumerate(text.splitlines(), start=1):
            h = self._header.match(raw)
            if h:
                table = h.group(1).replace('"', "").replace(" ", "")
                if raw.lstrip().startswith("[["):
                    idx = counts.get(table, 0)
                    counts[table] = idx + 1
                    table = f"{table}[{idx}]"
                self._lines.append((table, n))
                continue
            k = self._key.match(raw)
            if k:
                self._lines.append((f"{table}.{k.group(1)}" if table else k.group(1), n))

    def line_of(self, dotted: str) -> int | None:
        key = re.sub(r"\[\d+\]$", "", dotted)
        for candidate in (dotted, key):
            for name, n in self._lines:
                if name == candidate:
                    return n
        return None
