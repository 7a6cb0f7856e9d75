"""The bot's parts: IRC parsing, safe templates, content files, product trends, FAQ, the outbox's retries,
and the Bilibili send-danmaku request checked against a local HTTP server that records it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web

from bot.build import build_bot
from bot.content import DEFAULTS_DIR, ContentError, load_catalogue, load_faq, load_templates
from bot.core import Bot
from bot.irc import IrcMessage, channel_for_room, privmsg, unescape_tag_value
from bot.keywords import KeywordExtractor
from bot.products import TrendTracker
from bot.render import TemplateError, parse_template
from bot.senders import BilibiliSender, SendError
from engine.config import BotConfig, Config
from engine.emotions import EMOTIONS
from engine.types import ChatMessage, ClassifiedMessage, Prediction, TriggerEvent
from tests.fakes import FakeFeed, make_snapshot
from tests.servers import run_app


# -- IRC protocol ----------------------------------------------------------------------------------
def test_irc_parse_tags_badges_and_trailing() -> None:
    line = (
        "@badge-info=;badges=moderator/1,subscriber/12;display-name=Mod\\sAlice;mod=1;"
        "msg=a\\:b\\\\c :modalice!modalice@modalice.tmi.twitch.tv PRIVMSG #shop :!bot pause now\r\n"
    )
    m = IrcMessage.parse(line)
    assert (m.command, m.params, m.nick) == ("PRIVMSG", ("#shop", "!bot pause now"), "modalice")
    assert m.display_name == "Mod Alice" and m.tags["msg"] == "a;b\\c"
    assert m.badges == {"moderator": "1", "subscriber": "12"} and m.is_moderator
    assert not IrcMessage.parse(":v!v@h PRIVMSG #shop :hi").is_moderator
    assert IrcMessage.parse("@badges=broadcaster/1 :s!s@h PRIVMSG #s :x").is_moderator
    assert IrcMessage.parse("PING :tmi.twitch.tv").params == ("tmi.twitch.tv",)
    assert unescape_tag_value("trailing\\") == "trailing"
    with pytest.raises(ValueError):
        IrcMessage.parse("@a=b ")


def test_privmsg_cannot_be_split_or_styled_by_its_text() -> None:
    line = privmsg("#shop", "hi\r\nPRIVMSG #other :x\x03" + "长" * 400)
    assert line.count("\r\n") == 1 and line.endswith("\r\n")
    assert "\x03" not in line and len(line.encode()) <= 512
    assert channel_for_room("Shop 1,#x") == "#shop1#x"


# -- templates -------------------------------------------------------------------------------------
def test_template_variables_alternatives_and_escapes() -> None:
    t = parse_template("{宝宝|家人们}好，{{user}} 是 {user}：{product} {price} 元")
    out = t.render({"user": "u1", "product": "围巾", "price": "9.9"}, random.Random(1))
    assert out.endswith("好，{user} 是 u1：围巾 9.9 元") and out[:2] in {"宝宝", "家人"}
    with pytest.raises(TemplateError):
        t.render({"user": "u1"})  # no product: the caller picks another template
    for bad in ("{oops", "x}", "{a b}", "{{nested{x}}"):
        with pytest.raises(TemplateError):
            parse_template(bad)


def test_values_never_inject_braces_newlines_commands_or_length() -> None:
    t = parse_template("{user} 欢迎！")
    evil = "/ban {product}\r\nPRIVMSG #x :pwned\x01ACTION\x01" + "x" * 100
    out = t.render({"user": evil, "product": "LEAK"})
    assert "LEAK" not in out and "\r" not in out and "\n" not in out and "\x01" not in out
    assert not out.startswith(("/", ".")) and "{" not in out
    assert len(out.split(" 欢迎")[0]) <= 20  # long names are cut (with an ellipsis)
    assert parse_template("{user}").render({"user": ".timeout x"}) == "timeout x"


# -- content files ---------------------------------------------------------------------------------
def test_default_content_covers_all_six_moods() -> None:
    book = load_templates(DEFAULTS_DIR / "templates.toml")
    for mood in EMOTIONS:
        assert book.for_mood(mood), mood
        assert book.tips.get(mood), mood
    assert not any(t.needs_product for t in book.for_mood("angry"))  # apologies never promote
    assert len(load_catalogue(DEFAULTS_DIR / "products.toml").products) >= 4
    assert {r.id for r in load_faq(DEFAULTS_DIR / "faq.toml").rules} >= {
        "size",
        "shipping",
        "delivery",
        "discount",
        "colour",
    }


def test_bad_content_names_the_file_and_entry(tmp_path: Path) -> None:
    f = tmp_path / "t.toml"
    f.write_text('[[template]]\nid = "x"\ntype = "push"\ntext = "{oops"\n', encoding="utf-8")
    with pytest.raises(ContentError, match=r"template 'x'.*unclosed"):
        load_templates(f)
    f.write_text('[[template]]\nid = "x"\ntype = "push"\nmoods = ["furious"]\ntext = "a"\n', encoding="utf-8")
    with pytest.raises(ContentError, match="unknown mood"):
        load_templates(f)
    f.write_text('[[rule]]\nid = "r"\npatterns = ["("]\nanswer = "a"\n', encoding="utf-8")
    with pytest.raises(ContentError, match="rule 'r': bad pattern"):
        load_faq(f)


# -- products --------------------------------------------------------------------------------------
def test_mentions_aliases_variants_and_mood_picks() -> None:
    cat = load_catalogue(DEFAULTS_DIR / "products.toml")
    tr = TrendTracker(cat, half_life=60)
    assert tr.matcher.mentions("一号链接还有吗") == ["down-jacket"]
    assert tr.matcher.mentions("１号链接 和 羊毛衫") == ["down-jacket", "wool-sweater"]
    assert tr.matcher.mentions("链接3 好看") == ["wool-sweater"]
    assert tr.matcher.mentions("羽 绒 服") == ["down-jacket"]
    now = 1000.0
    for i in range(5):
        tr.observe("r", "毛衣好看", "happy", 1.0, now - i)
    tr.observe("r", "羽绒服冲", "excited", 1.0, now)
    tr.observe("r", "保暖内衣退钱", "angry", 1.0, now)
    top = tr.trending("r", now)
    assert [t.product.id for t in top][:2] == ["wool-sweater", "down-jacket"]
    assert top[0].emotion == "happy"
    picks = {mood: tr.pick("r", mood, now) for mood in EMOTIONS}
    assert picks["angry"] is None
    assert picks["excited"] is not None and picks["excited"].id == "down-jacket"  # 新品/限量
    assert picks["neutral"] is not None and picks["neutral"].id == "wool-sweater"  # 热销, hottest
    assert picks["anxious"] is not None and picks["anxious"].id == "wool-sweater"  # 保障
    assert picks["sad"] is not None and picks["sad"].id == "thermal-set"  # 优惠
    assert picks["happy"] is not None and picks["happy"].id == "scarf-set"  # 套装, not trending yet
    # Mentions fade: an hour later nothing is trending.
    assert tr.trending("r", now + 3600) == []


# -- the bot with a fake feed ----------------------------------------------------------------------
class RecordingSender:
    """A sender for our own seam: fails the first ``fail`` sends, records the rest."""

    name = "recording"
    receives_chat = False

    def __init__(self, fail: int = 0, retry: bool = True) -> None:
        self.fail = fail
        self.retry = retry
        self.attempts = 0
        self.sent: list[tuple[str, str]] = []

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def send(self, room: str, text: str) -> None:
        self.attempts += 1
        if self.attempts <= self.fail:
            raise SendError("platform said no", retry=self.retry)
        self.sent.append((room, text))

    def health(self) -> dict[str, object]:
        return {"sender": self.name, "ok": True}


def classified(
    room: str, user: str, text: str, emotion: str = "neutral", ts: float = 0.0
) -> ClassifiedMessage:
    msg = ChatMessage.create(room=room, user=user, text=text, ts=ts or None)
    scores = tuple(0.9 if e == emotion else 0.02 for e in EMOTIONS)
    return ClassifiedMessage(msg, text, Prediction(emotion, 0.9, scores), 1.0, "kw")


async def _bot(feed: FakeFeed, sender: RecordingSender, **cfg: object) -> Bot:
    cfg.setdefault("state_file", "")  # nothing saved into the working tree unless a test asks
    config = replace(Config(), bot=replace(BotConfig(retry_base_seconds=0.01, **cfg)))  # type: ignore[arg-type]
    bot = build_bot(config, feed, sender=sender)  # type: ignore[arg-type]
    await bot.start()
    return bot


async def _until(pred: Callable[[], object], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Poll ``pred`` every 20 ms; fail after ``timeout`` seconds (a hang guard, not a speed assertion)."""
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_failed_sends_are_retried_then_reported_never_lost() -> None:
    feed = FakeFeed()
    flaky = RecordingSender(fail=2)
    bot = await _bot(feed, flaky, auto_send=("faq",))
    try:
        feed.classified.publish(classified("r", "u1", "包邮吗"))
        await _until(lambda: flaky.sent)
        d = next(d for d in bot.drafts if d.type == "faq")
        assert (d.status, d.attempts, flaky.attempts) == ("sent", 3, 3)
        assert bot.counters["retries"] == 2
    finally:
        await bot.stop()
    feed2 = FakeFeed()
    broken = RecordingSender(fail=99, retry=False)
    bot = await _bot(feed2, broken, auto_send=("faq",))
    try:
        feed2.classified.publish(classified("r", "u1", "几号发货"))
        await _until(lambda: any(d.status == "failed" for d in bot.drafts))
        d = next(d for d in bot.drafts if d.type == "faq")
        assert d.attempts == 1 and "platform said no" in d.reason  # not retryable: reported at once
        assert bot.status()["errors"]  # and shown on the dashboard
    finally:
        await bot.stop()


async def test_sent_and_failed_lines_are_recorded_as_events() -> None:
    feed = FakeFeed()
    events: list[TriggerEvent] = []
    sender = RecordingSender()
    config = replace(Config(), bot=replace(BotConfig(retry_base_seconds=0.01, auto_send=("faq",))))
    bot = build_bot(config, feed, sender=sender, record=events.append)  # type: ignore[arg-type]
    await bot.start()
    try:
        feed.classified.publish(classified("r", "u1", "包邮吗"))
        await _until(lambda: events)
    finally:
        await bot.stop()
    assert [(e.room, e.kind) for e in events] == [("r", "bot_post")]
    assert events[0].message == sender.sent[0][1]


async def test_global_rate_limit_holds_lines_back() -> None:
    feed = FakeFeed()
    sender = RecordingSender()
    bot = await _bot(feed, sender, auto_send=("faq",), max_posts_per_minute=2)
    try:
        for i, q in enumerate(["包邮吗", "几号发货", "有优惠券吗", "什么颜色"]):
            feed.classified.publish(classified("r", f"u{i}", q))
        await _until(lambda: len(sender.sent) == 2)
        await asyncio.sleep(0.3)
        assert len(sender.sent) == 2  # the other two wait for the window (or go stale, reported)
        assert sum(1 for d in bot.drafts if d.status == "queued") == 2
    finally:
        await bot.stop()
    assert sum(1 for d in bot.drafts if d.status == "failed" and "stopped" in d.reason) == 2


async def test_negative_spike_alerts_the_streamer_with_jieba_keywords() -> None:
    feed = FakeFeed()
    bot = await _bot(feed, RecordingSender())
    try:
        texts = ["说好的赠品呢退钱", "赠品没有发货", "客服不回复，赠品呢", "骗子，赠品到底有没有", "退钱退钱"]
        for i, t in enumerate(texts * 3):
            feed.classified.publish(classified("r", f"u{i}", t, "angry"))
        feed.push(make_snapshot("r", {"angry": 0.8, "neutral": 0.2}))
        feed.push_event(TriggerEvent("r", 1e10, "negative_spike", "spike", {"negative_share": 0.8}))
        await _until(lambda: any(p.kind == "alert" and p.keywords for p in bot.prompts), timeout=30)
        alert = next(p for p in bot.prompts if p.keywords)
        assert alert.keywords[0] == "赠品" and "退钱" in alert.keywords
        assert "赠品" in alert.text
    finally:
        await bot.stop()


def test_jieba_works_offline_from_its_bundled_dictionary() -> None:
    # The dictionary ships inside the package: extraction needs no network and no download step.
    assert KeywordExtractor().extract(["客服态度太差了", "客服不理人"], 3)[0] == "客服"


# -- Bilibili send-danmaku -------------------------------------------------------------------------
@pytest.fixture
async def bilibili() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    """A local stand-in for api.live.bilibili.com that records each request and answers like it."""
    seen: list[dict[str, object]] = []

    async def send(request: web.Request) -> web.Response:
        form = await request.post()
        seen.append(
            {
                "form": dict(form),
                "cookie": request.headers.get("Cookie", ""),
                "ctype": request.headers.get("Content-Type", ""),
            }
        )
        if form.get("msg") == "fail-once" and len(seen) == 1:
            return web.Response(status=502)
        if form.get("csrf") != "jct123":
            return web.json_response({"code": -111, "message": "csrf 校验失败"})
        return web.json_response({"code": 0, "message": "", "data": {}})

    app = web.Application()
    app.router.add_post("/msg/send", send)
    async with run_app(app) as base:
        yield base, seen


async def test_bilibili_send_has_the_real_request_shape(
    bilibili: tuple[str, list[dict[str, object]]],
) -> None:
    base, seen = bilibili
    cookie = "SESSDATA=sess%2Cabc; bili_jct=jct123; DedeUserID=42"
    s = BilibiliSender(cookie, base_url=base, max_chars=20, part_gap=0.0)
    text = "家人们冲！轻薄羽绒服只要299元，限量50件，手慢无，链接在1号"
    await s.send("7734200", text)
    assert len(seen) == 2  # 33 characters: two danmaku of at most 20
    first = seen[0]["form"]
    assert isinstance(first, dict)
    assert set(first) == {"bubble", "msg", "color", "mode", "fontsize", "rnd", "roomid", "csrf", "csrf_token"}
    assert first["roomid"] == "7734200" and first["csrf"] == first["csrf_token"] == "jct123"
    assert (first["color"], first["fontsize"], first["mode"]) == ("16777215", "25", "1")
    assert first["rnd"].isdigit()  # type: ignore[union-attr]
    assert "".join(str(r["form"]["msg"]) for r in seen) == text  # type: ignore[index]
    assert "SESSDATA=sess%2Cabc" in str(seen[0]["cookie"])
    assert str(seen[0]["ctype"]).startswith("application/x-www-form-urlencoded")
    with pytest.raises(SendError) as err:
        await BilibiliSender("SESSDATA=x; bili_jct=wrong", base_url=base).send("1", "hi")
    assert not err.value.retry and "-111" in str(err.value)
    with pytest.raises(SendError, match="not a Bilibili room id"):
        await s.send("shop", "hi")


async def test_bilibili_5xx_is_retried_by_the_outbox(bilibili: tuple[str, list[dict[str, object]]]) -> None:
    base, seen = bilibili
    feed = FakeFeed()
    sender = BilibiliSender("SESSDATA=s; bili_jct=jct123", base_url=base, room_id=99)
    config = replace(Config(), bot=BotConfig(retry_base_seconds=0.01))
    bot = build_bot(config, feed, sender=sender)
    await bot.start()
    try:
        d = bot.propose("shop", "command", "fail-once")
        assert d is not None
        await _until(lambda: d.status in {"sent", "failed"})
        assert d.status == "sent" and d.attempts == 2
        assert [r["form"]["roomid"] for r in seen] == ["99", "99"]  # type: ignore[index]
    finally:
        await bot.stop()


async def test_moderators_switches_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "bot-state.json"
    feed, sender = FakeFeed(), RecordingSender()
    bot = await _bot(feed, sender, state_file=str(state))
    assert not bot.restored and not bot.moderation.killed
    bot.set_killed(True)
    bot.set_paused("demo", True)
    bot.set_mode("push", "off")
    await bot.stop()

    sender2 = RecordingSender()
    again = await _bot(FakeFeed(), sender2, state_file=str(state))
    try:
        m = again.moderation
        assert again.restored and again.status()["restored"] is True
        assert m.killed and m.paused == {"demo"} and m.mode("push") == "off"
        # Killed means nothing goes out after the restart either.
        d = again.propose("other", "engage", "大家好", force=True)
        assert d is not None and d.status == "blocked" and "kill switch" in d.reason
        assert sender2.sent == [] and again.counters["sent"] == 0
    finally:
        await again.stop()


async def test_a_damaged_or_stale_bot_state_file_costs_the_switches_not_the_start(tmp_path: Path) -> None:
    state = tmp_path / "bot-state.json"
    state.write_text("{half a file")
    bot = await _bot(FakeFeed(), RecordingSender(), state_file=str(state), approval=False)
    try:
        assert not bot.restored and not bot.moderation.killed and bot.moderation.mode("push") == "auto"
    finally:
        await bot.stop()
    # A template type from an older version is ignored; the rest of the file still applies.
    state.write_text(
        '{"killed": false, "paused": ["a"], "modes": {"gone": "off", "faq": "off", "push": "bogus"}}'
    )
    bot = await _bot(FakeFeed(), RecordingSender(), state_file=str(state), approval=False)
    try:
        m = bot.moderation
        assert bot.restored and m.paused == {"a"} and m.mode("faq") == "off" and m.mode("push") == "auto"
        assert "gone" not in m.modes
    finally:
        await bot.stop()


async def test_jieba_is_loaded_at_start_not_at_the_first_spike() -> None:
    extractor = KeywordExtractor()
    config = replace(Config(), bot=BotConfig(state_file=""))
    bot = build_bot(config, FakeFeed(), sender=RecordingSender(), extractor=extractor)  # type: ignore[arg-type]
    await bot.start()
    try:
        await _until(lambda: extractor.loaded)
        assert bot.status()["keywords_ready"] is True
    finally:
        await bot.stop()
