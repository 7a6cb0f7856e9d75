"""The chat bot end to end through a real IRC server (ngircd): viewers chat, the real pipeline classifies
(keyword fake model for determinism), the bot answers in the channel; moderators steer it by chat
command and over the REST API; the kill switch silences it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp

from bot.build import build_bot
from bot.components import ModCommands
from bot.core import Bot
from bot.web import setup_bot
from engine.config import BotConfig, BotIrcConfig, ClassifierConfig, Config
from engine.pipeline import Pipeline
from overlay.app import create_app
from tests.fake_model import FakeRegistry
from tests.ircd import IrcServer, ircd
from tests.servers import run_app

ADMIN = "admin-token-for-bot-tests"


class Viewer:
    """A plain IRC client in the channel: posts lines and collects what others say."""

    def __init__(self, nick: str, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.nick = nick
        self.r = r
        self.w = w
        self.heard: list[tuple[str, str]] = []  # (sender nick, text)
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def join(cls, srv: IrcServer, nick: str, channel: str) -> Viewer:
        r, w = await asyncio.open_connection(srv.host, srv.port)
        w.write(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nJOIN {channel}\r\n".encode())
        await w.drain()
        while True:
            line = await asyncio.wait_for(r.readline(), 10)
            if b" JOIN " in line and line.startswith(f":{nick}!".encode()):
                return cls(nick, r, w)

    async def _read(self) -> None:
        while line := await self.r.readline():
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if text.startswith("PING"):
                self.w.write(("PONG" + text[4:] + "\r\n").encode())
            elif " PRIVMSG " in text:
                prefix, _, rest = text.partition(" PRIVMSG ")
                self.heard.append((prefix[1:].split("!")[0], rest.partition(" :")[2]))
                self._new.set()

    async def say(self, channel: str, text: str) -> None:
        self.w.write(f"PRIVMSG {channel} :{text}\r\n".encode())
        await self.w.drain()

    async def wait_for(self, pred: Callable[[str, str], bool], timeout: float = 15) -> str:  # noqa: ASYNC109
        async def loop() -> str:
            seen = 0
            while True:
                for who, text in self.heard[seen:]:
                    if pred(who, text):
                        return text
                seen = len(self.heard)
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(loop(), timeout)

    def from_bot(self) -> list[str]:
        return [t for who, t in self.heard if who.startswith("moodbot")]

    async def close(self) -> None:
        self._task.cancel()
        self.w.close()


def bot_config(tmp_path: Path, srv: IrcServer, **bot: object) -> Config:
    b = BotConfig(
        sender="irc",
        rooms=("shop",),
        moderators=("modalice",),
        auto_send=("push", "faq", "apology"),
        reply_interval_seconds=1.0,
        min_messages=5,
        tip_interval_seconds=3600.0,
        max_posts_per_minute=0,
        streamer_token_file=str(tmp_path / "streamer-token"),
        irc=BotIrcConfig(host=srv.host, port=srv.port, tls=False, nick="moodbot", ingest_chat=True),
    )
    return replace(
        Config(),
        base_dir=str(tmp_path),
        classifier=ClassifierConfig(model="kw"),
        bot=replace(b, **bot),  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def running_bot(config: Config) -> AsyncIterator[tuple[Pipeline, Bot, str]]:
    """The real pipeline + bot inside the real web app (bot routes, admin auth), served on loopback."""
    pipe = Pipeline(config, FakeRegistry().get)
    bot = build_bot(config, pipe, submit=pipe.submit)
    app = create_app(
        pipe, config, admin_token=ADMIN, extra_setup=[lambda a: setup_bot(a, config, pipe, bot=bot)]
    )
    pipe_task = asyncio.create_task(pipe.run())
    try:
        async with run_app(app) as base:
            yield pipe, bot, base
    finally:
        pipe_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pipe_task


async def ready(bot: Bot) -> None:
    client = getattr(bot.sender, "client")  # noqa: B009 - IrcSender's client, by duck typing
    assert await client.wait_ready(10), client.last_error


async def test_excited_room_gets_a_push_faq_gets_answered_once(tmp_path: Path) -> None:
    async with ircd(tmp_path) as srv:
        config = bot_config(tmp_path, srv)
        async with running_bot(config) as (pipe, bot, _base):
            await ready(bot)
            viewers = [await Viewer.join(srv, f"viewer{i}", "#shop") for i in range(3)]
            try:
                for i in range(12):
                    await viewers[i % 3].say("#shop", f"666 羽绒服冲冲冲 {i}")
                # Excited -> a push line with the hottest new/limited product, straight to chat (auto).
                line = await viewers[0].wait_for(lambda who, t: who == "moodbot" and "轻薄羽绒服" in t)
                assert "299" in line and "https://shop.example.com/p/1" in line
                await viewers[1].say("#shop", "包邮吗")
                answer = await viewers[1].wait_for(lambda who, t: who == "moodbot" and "包邮" in t)
                assert answer.startswith("@viewer1 ")
                await viewers[1].say("#shop", "请问包邮吗？")
                await viewers[2].say("#shop", "包邮吗 主播")  # the rule answered the room moments ago
                await viewers[2].say("#shop", "几号发货啊")
                delivery = await viewers[0].wait_for(lambda who, t: who == "moodbot" and "发货" in t)
                assert delivery.startswith("@viewer2 ")
                assert await pipe.drain(5)
                faq = [(d.template_id, d.text.split()[0]) for d in bot.drafts if d.type == "faq"]
                # viewer1 asked twice but is answered once (per-user cooldown); the shipping answer rests
                # for its room cooldown; another question is answered at once.
                assert faq == [("faq:shipping", "@viewer1"), ("faq:delivery", "@viewer2")]
                # Push templates rest for their cooldown: every push line in chat is a different template.
                pushes = [d for d in bot.drafts if d.type == "push" and d.status == "sent"]
                assert len({d.template_id for d in pushes}) == len(pushes) >= 1
            finally:
                for v in viewers:
                    await v.close()


async def test_moderators_pause_resume_query_and_say_by_chat(tmp_path: Path) -> None:
    async with ircd(tmp_path) as srv:
        config = bot_config(tmp_path, srv)
        async with running_bot(config) as (pipe, bot, _base):
            await ready(bot)
            mod = await Viewer.join(srv, "modalice", "#shop")
            troll = await Viewer.join(srv, "troll", "#shop")
            try:
                await troll.say("#shop", "!bot pause")  # not a moderator: ignored
                await mod.say("#shop", "!bot pause")
                await troll.wait_for(lambda who, t: t == "bot paused by modalice")
                assert bot.moderation.paused == {"shop"}
                for i in range(10):
                    await troll.say("#shop", f"666 羽绒服 {i}")
                assert await pipe.drain(5)
                await asyncio.sleep(1.5)  # a few snapshots: the bot would push now if it were not paused
                assert not [d for d in bot.drafts if d.type == "push" and d.status == "sent"]
                assert any(d.type == "push" and "paused" in d.reason for d in bot.drafts)
                await mod.say("#shop", "!mood")
                mood = await troll.wait_for(lambda who, t: t.startswith("房间情绪"))
                assert "兴奋" in mood
                await mod.say("#shop", "!products")
                assert "轻薄羽绒服" in await troll.wait_for(lambda who, t: t.startswith("热门"))
                await mod.say("#shop", "!bot resume")
                await troll.wait_for(lambda who, t: t == "bot resumed by modalice")
                await mod.say("#shop", "!say apology")
                apology = await troll.wait_for(lambda who, t: "抱歉" in t or "对不起" in t)
                assert "羽绒服" not in apology  # apologies never promote
                commands = next(c for c in bot.components if isinstance(c, ModCommands))
                assert commands.ignored >= 1
                assert all(who != "moodbot" or "troll" not in t for who, t in troll.heard)
            finally:
                await mod.close()
                await troll.close()


async def test_approval_queue_edit_reject_and_kill_switch_over_rest(tmp_path: Path) -> None:
    async with ircd(tmp_path) as srv:
        # Push is queued for approval here (the default); commands and FAQ answers still go out.
        config = bot_config(tmp_path, srv, auto_send=("faq",))
        async with running_bot(config) as (pipe, bot, base), aiohttp.ClientSession() as http:
            await ready(bot)
            viewer = await Viewer.join(srv, "viewer9", "#shop")
            auth = {"Authorization": f"Bearer {ADMIN}"}
            try:
                for i in range(8):
                    await viewer.say("#shop", f"666 一号链接 {i}")
                async with http.get(f"{base}/api/bot/drafts?status=pending") as r:
                    assert r.status == 401  # moderators only
                pending: list[dict[str, object]] = []
                for _ in range(100):
                    async with http.get(f"{base}/api/bot/drafts?status=pending", headers=auth) as r:
                        pending = (await r.json())["drafts"]
                    if len(pending) >= 2:
                        break
                    await asyncio.sleep(0.1)
                assert len(pending) >= 2 and {d["type"] for d in pending} == {"push"}
                assert not viewer.from_bot()  # nothing posted while it waits for approval
                first, second = pending[-1], pending[-2]
                async with http.post(f"{base}/api/bot/drafts/{first['id']}/approve", json={}) as r:
                    assert r.status == 401
                edited = "{user} 家人们 羽绒服最后 10 件\r\nPRIVMSG #shop :injected"
                async with http.post(
                    f"{base}/api/bot/drafts/{first['id']}/approve", json={"text": edited}, headers=auth
                ) as r:
                    assert r.status == 200
                line = await viewer.wait_for(lambda who, t: who == "moodbot")
                assert line == "{user} 家人们 羽绒服最后 10 件 PRIVMSG #shop :injected"
                async with http.post(f"{base}/api/bot/drafts/{second['id']}/reject", headers=auth) as r:
                    assert (await r.json())["status"] == "rejected"
                async with http.post(f"{base}/api/bot/drafts/{second['id']}/approve", headers=auth) as r:
                    assert r.status == 409  # rejected stays rejected
                # Switching the type off drops what is still pending of it.
                async with http.post(
                    f"{base}/api/bot/modes", json={"type": "push", "mode": "off"}, headers=auth
                ) as r:
                    assert (await r.json())["modes"]["push"] == "off"
                assert not [d for d in bot.drafts if d.status == "pending" and d.type == "push"]
                # Kill switch: not even a moderator's command gets an answer.
                async with http.post(f"{base}/api/bot/kill", json={"on": True}, headers=auth) as r:
                    assert (await r.json())["killed"] is True
                await viewer.say("#shop", "包邮吗")
                assert await pipe.drain(5)
                await asyncio.sleep(0.5)
                faq = [d for d in bot.drafts if d.type == "faq"]
                assert faq and all(d.status == "blocked" and "kill" in d.reason for d in faq)
                assert viewer.from_bot() == [line]
                async with http.get(f"{base}/bot/panel", headers=auth) as r:
                    assert r.status == 200 and "Approval queue" in await r.text()
            finally:
                await viewer.close()
