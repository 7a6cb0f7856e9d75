"""Builds a bot from ``[bot]``: loads the content files, picks the sender, adds the components."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.components import Faq, ModCommands, MoodReplies, StreamerPrompts, Trending
from bot.content import DEFAULTS_DIR, load_catalogue, load_faq, load_templates
from bot.core import Bot
from bot.irc import IrcSettings, channel_for_room
from bot.keywords import KeywordExtractor
from bot.senders import BilibiliSender, ConsoleSender, IrcSender, Sender, WebhookSender, env_secret
from engine.config import Config
from engine.feed import MoodFeed
from engine.types import ChatMessage, TriggerEvent


def _content_path(config: Config, value: str, default: str) -> Path:
    return config.resolve(value) if value else DEFAULTS_DIR / default


def build_sender(config: Config) -> Sender:
    """The sender ``[bot] sender`` names; secrets come from the environment variables the config names."""
    b = config.bot
    if b.sender == "irc":
        if not b.irc.nick:
            raise ValueError('[bot] sender = "irc" needs [bot.irc] nick')
        token = env_secret(b.irc.token_env)
        settings = IrcSettings(
            host=b.irc.host,
            port=b.irc.port,
            nick=b.irc.nick,
            password=token,
            tls=b.irc.tls,
            channels=tuple(channel_for_room(r) for r in b.rooms),
            rate_messages=b.irc.rate_messages,
            rate_seconds=b.irc.rate_seconds,
        )
        return IrcSender(settings)
    if b.sender == "bilibili":
        return BilibiliSender(
            env_secret(b.bilibili.cookie_env),
            base_url=b.bilibili.base_url,
            room_id=b.bilibili.room_id,
            max_chars=b.bilibili.max_chars,
        )
    if b.sender == "webhook":
        return WebhookSender(b.webhook.url, env_secret(b.webhook.token_env))
    return ConsoleSender()


def build_bot(
    config: Config,
    feed: MoodFeed,
    *,
    submit: Callable[[ChatMessage], None] | None = None,
    record: Callable[[TriggerEvent], None] | None = None,
    sender: Sender | None = None,
    extractor: KeywordExtractor | None = None,
) -> Bot:
    """A ready-to-start bot; raises ContentError/ValueError for bad files or settings (before serving)."""
    b = config.bot
    book = load_templates(_content_path(config, b.templates, "templates.toml"))
    catalogue = load_catalogue(_content_path(config, b.products, "products.toml"))
    faq = load_faq(_content_path(config, b.faq, "faq.toml"))
    snd = sender or build_sender(config)
    bot = Bot(
        b,
        feed,
        snd,
        book=book,
        catalogue=catalogue,
        faq=faq,
        submit=submit,
        record=record,
        state_file=config.resolve(b.state_file) if b.state_file else None,
    )
    if isinstance(snd, IrcSender):
        snd.listener = bot.chat_listener
    trending = Trending()
    replies = MoodReplies(trending)
    for c in (
        trending,
        replies,
        Faq(trending),
        StreamerPrompts(extractor or KeywordExtractor()),
        ModCommands(trending, replies),
    ):
        bot.add_component(c)
    return bot
