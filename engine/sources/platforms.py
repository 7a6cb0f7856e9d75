"""Builds live platform sources from ``[[sources]]`` tables; secrets are read from the environment here.

Also answers ``moodcast doctor``'s question "would this source start?" without connecting anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from engine.config import SourceConfig
from engine.sources.base import Source, SourceError
from engine.sources.connector import jittered_backoff

PLATFORM_TYPES = ("bilibili", "twitch", "douyu", "youtube", "tiktok")


def _env(name: str, env: Mapping[str, str], what: str, key: str) -> str:
    value = env.get(name, "").strip() if name else ""
    if not value:
        raise SourceError(f"{what}: environment variable {name or '(none named)'} is not set (sources.{key})")
    return value


def build_platform_source(cfg: SourceConfig, env: Mapping[str, str] | None = None) -> Source | None:
    """The live source for ``cfg``, None if its type is not a platform; SourceError on a bad setting."""
    if cfg.type not in PLATFORM_TYPES:
        return None
    env = os.environ if env is None else env
    backoff = jittered_backoff(cap=cfg.reconnect_max if cfg.reconnect_max > 0 else 60.0)
    if cfg.type == "bilibili":
        from engine.sources.bilibili import HEARTBEAT_SECONDS, BilibiliSource, OpenPlatformAuth

        open_auth = None
        if cfg.auth_code_env:
            if cfg.app_id <= 0:
                raise SourceError("bilibili open platform: set sources.app_id to your project's app id")
            open_auth = OpenPlatformAuth(
                code=_env(cfg.auth_code_env, env, "bilibili open platform 身份码", "auth_code_env"),
                app_id=cfg.app_id,
                access_key_id=_env(cfg.app_key_env, env, "bilibili open platform key", "app_key_env"),
                access_key_secret=_env(
                    cfg.app_secret_env, env, "bilibili open platform secret", "app_secret_env"
                ),
            )
        elif not cfg.channel:
            raise SourceError(
                "bilibili: set sources.channel to the room id (or auth_code_env for the open platform)"
            )
        cookie = env.get(cfg.cookie_env, "").strip() if cfg.cookie_env else ""
        return BilibiliSource(
            cfg.channel,
            room=cfg.room,
            url=cfg.url,
            cookie=cookie,
            open_auth=open_auth,
            heartbeat=cfg.heartbeat or HEARTBEAT_SECONDS,
            backoff=backoff,
        )
    if not cfg.channel:
        raise SourceError(f"{cfg.type}: set sources.channel (see config.toml)")
    if cfg.type == "twitch":
        from engine.sources.twitch import TwitchSource

        return TwitchSource(cfg.channel, room=cfg.room, url=cfg.url, backoff=backoff)
    if cfg.type == "douyu":
        from engine.sources.douyu import HEARTBEAT_SECONDS as DOUYU_HEARTBEAT
        from engine.sources.douyu import DouyuSource

        return DouyuSource(
            cfg.channel,
            room=cfg.room,
            url=cfg.url,
            heartbeat=cfg.heartbeat or DOUYU_HEARTBEAT,
            backoff=backoff,
        )
    if cfg.type == "youtube":
        from engine.sources.youtube import YouTubeSource

        return YouTubeSource(cfg.channel, room=cfg.room, backoff=backoff)
    from engine.sources.tiktok import TikTokSource

    return TikTokSource(cfg.channel, room=cfg.room, backoff=backoff)


@dataclass(frozen=True, slots=True)
class Readiness:
    """What doctor says about one platform source before anything connects."""

    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""


def readiness(cfg: SourceConfig, env: Mapping[str, str] | None = None) -> Readiness:
    """Whether the source would start, and what it will be missing (login cookie, brotli...)."""
    env = os.environ if env is None else env
    try:
        build_platform_source(cfg, env)
    except SourceError as e:
        return Readiness("fail", str(e), _fix_for(cfg))
    where = f"{cfg.type} {cfg.channel or 'open platform'} -> room {cfg.room!r}"
    if cfg.type == "bilibili" and not cfg.auth_code_env:
        from engine.sources.bilibili_proto import brotli_available

        notes, fixes = [], []
        if not (cfg.cookie_env and env.get(cfg.cookie_env, "").strip()):
            notes.append("no login cookie: Bilibili will mask viewers' names")
            fixes.append("set sources.cookie_env to a variable holding your browser's Bilibili Cookie header")
        if not brotli_available():
            notes.append("brotli not installed: asking for zlib bodies")
            fixes.append("pip install 'moodcast[bilibili]'")
        if notes:
            return Readiness("warn", f"{where} ({'; '.join(notes)})", "; ".join(fixes))
    return Readiness("ok", where)


def _fix_for(cfg: SourceConfig) -> str:
    if cfg.type == "youtube":
        return "pip install 'moodcast[youtube]'"
    if cfg.type == "tiktok":
        return "pip install 'moodcast[tiktok]'"
    if cfg.type == "bilibili" and cfg.auth_code_env:
        return (
            f"export {cfg.auth_code_env}=<the streamer's 身份码>, {cfg.app_key_env} and {cfg.app_secret_env} "
            "(from open-live.bilibili.com), and set sources.app_id"
        )
    return "fix the [[sources]] table (see config.toml and docs/platforms.md)"
