"""The bot's components: mood replies, trending products, FAQ, streamer prompts, moderator commands."""

from __future__ import annotations

import asyncio
from collections import deque

from bot.content import MOOD_NAMES_ZH, Product, ReplyTemplate
from bot.core import COMMAND_TYPE, Bot, Component
from bot.keywords import KeywordExtractor
from bot.products import TrendItem
from bot.render import TemplateError, clean_value
from bot.senders import IncomingChat
from engine.emotions import EMOTIONS, NEGATIVE
from engine.types import ClassifiedMessage, MoodSnapshot, TriggerEvent

MOOD_WINDOW = 60
"""Seconds of chat a mood reply reads: long enough not to chase every burst."""


def room_mood(snap: MoodSnapshot, seconds: int = MOOD_WINDOW) -> tuple[str, float, int]:
    """(dominant emotion, its share, messages) of the snapshot's window closest to ``seconds``."""
    w = snap.window(seconds)
    if w.total <= 0:
        return "neutral", 0.0, w.messages
    shares = w.shares
    i = max(range(len(EMOTIONS)), key=lambda k: shares[k])
    return EMOTIONS[i], shares[i], w.messages


class Trending(Component):
    """Counts product mentions per room; answers "what is hot" for the other components and the ticker."""

    name = "trending"

    def on_classified(self, cm: ClassifiedMessage) -> None:
        m = cm.message
        self.b.tracker.observe(m.room, m.text, cm.emotion, cm.weight, m.ts)

    def top(self, room: str, limit: int = 5) -> list[TrendItem]:
        return self.b.tracker.trending(room, self.b.clock(), limit)

    def pick(self, room: str, mood: str) -> Product | None:
        return self.b.tracker.pick(room, mood, self.b.clock())


def template_values(
    room: str, mood: str, share: float, product: Product | None, user: str = ""
) -> dict[str, str]:
    """The variables a template may use; absent ones make a template that needs them ineligible."""
    values = {"room": room, "mood": MOOD_NAMES_ZH.get(mood, mood), "share": f"{share:.0%}"}
    if user:
        values["user"] = clean_value(user, 20)
    if product is not None:
        values.update(
            product=product.name, price=product.price_text, link=product.link, stock=str(product.stock)
        )
    return values


class MoodReplies(Component):
    """Posts a line of the mood's strategy type when the room has a clear mood and enough chat."""

    name = "mood-replies"

    def __init__(self, trending: Trending) -> None:
        super().__init__()
        self.trending = trending
        self._last_reply: dict[str, float] = {}
        self._used: dict[tuple[str, str], float] = {}  # (room, template id) -> when

    def on_snapshot(self, snap: MoodSnapshot) -> None:
        bot = self.b
        now = bot.clock()
        room = snap.room
        if now - self._last_reply.get(room, -1e18) < bot.config.reply_interval_seconds:
            return
        mood, share, messages = room_mood(snap)
        if messages < bot.config.min_messages:
            return
        self._last_reply[room] = now
        if mood == "angry":
            # Angry: apologise, never promote, and make sure the moderators know.
            bot.add_prompt(
                room, "alert", f"房间情绪：生气 ({share:.0%})，已暂停推品；请场控关注评论。", mood=mood
            )
        self.reply(room, mood, share)

    def eligible(self, room: str, mood: str) -> list[ReplyTemplate]:
        now = self.b.clock()
        return [
            t for t in self.b.book.for_mood(mood) if now - self._used.get((room, t.id), -1e18) >= t.cooldown
        ]

    def reply(self, room: str, mood: str, share: float) -> bool:
        """Propose one line for ``mood``; False when no template fits right now."""
        bot = self.b
        product = self.trending.pick(room, mood)
        candidates = [t for t in self.eligible(room, mood) if product is not None or not t.needs_product]
        bot.rng.shuffle(candidates)
        values = template_values(room, mood, share, product)
        recent = bot.recently_posted(room)
        for t in candidates:
            for _ in range(4):  # alternatives are random: a few draws usually find an unused line
                try:
                    line = bot.rng.choice(t.lines).render(values, bot.rng)
                except TemplateError:
                    break
                if line not in recent:
                    self._used[(room, t.id)] = bot.clock()
                    bot.propose(room, t.type, line, template_id=t.id)
                    return True
        return False


class Faq(Component):
    """Answers recognised questions, with per-user and per-rule cooldowns."""

    name = "faq"

    def __init__(self, trending: Trending) -> None:
        super().__init__()
        self.trending = trending
        self._user_last: dict[tuple[str, str, str], float] = {}
        self._rule_last: dict[tuple[str, str], float] = {}

    def on_classified(self, cm: ClassifiedMessage) -> None:
        bot = self.b
        m = cm.message
        # Flood weight is not checked: a chatty viewer's question is still a question, and the per-user
        # and per-rule cooldowns below already stop a wave of copies from getting a wave of answers.
        if not m.user or m.text.lstrip().startswith("!"):
            return
        text = cm.norm_text
        now = bot.clock()
        for rule in bot.faq.rules:
            hit = any(k in text for k in rule.keywords) or any(p.search(text) for p in rule.patterns)
            if not hit:
                continue
            ukey = (m.room, m.user.lower(), rule.id)
            if now - self._user_last.get(ukey, -1e18) < rule.user_cooldown:
                return
            if now - self._rule_last.get((m.room, rule.id), -1e18) < rule.cooldown:
                return
            mood = "neutral"
            snap = bot.feed.latest(m.room)
            share = 0.0
            if snap is not None:
                mood, share, _ = room_mood(snap)
            product = self.trending.pick(m.room, mood)
            values = template_values(m.room, mood, share, product, user=m.user or "朋友")
            try:
                line = bot.rng.choice(rule.answers).render(values, bot.rng)
            except TemplateError:
                continue  # this answer needs a product the room has none of; try the next rule
            self._user_last[ukey] = now
            self._rule_last[(m.room, rule.id)] = now
            bot.propose(m.room, "faq", line, template_id=f"faq:{rule.id}")
            return


class StreamerPrompts(Component):
    """A tip every minute from the three-minute trend, and an urgent alert on a negative spike."""

    name = "streamer-prompts"

    def __init__(self, extractor: KeywordExtractor, trend_window: int = 180) -> None:
        super().__init__()
        self.extractor = extractor
        self.trend_window = trend_window
        self._latest: dict[str, MoodSnapshot] = {}
        self._last_tip: dict[str, float] = {}
        self._prev_shares: dict[str, tuple[float, ...]] = {}
        self._negative: dict[str, deque[tuple[float, str]]] = {}
        self._warm: asyncio.Task[None] | None = None

    async def load(self, bot: Bot) -> None:
        await super().load(bot)
        # jieba's dictionary costs about a second of CPU (and the GIL) to build: spend it now, in a
        # worker thread, rather than at the first negative spike, when the room is at its busiest.
        self._warm = asyncio.create_task(asyncio.to_thread(self.extractor.load), name="jieba-warm")

    @property
    def ready(self) -> bool:
        return self.extractor.loaded

    async def teardown(self) -> None:
        if self._warm is not None:
            # A thread cannot be cancelled; wait for it so the process exits cleanly.
            await asyncio.gather(self._warm, return_exceptions=True)

    def on_classified(self, cm: ClassifiedMessage) -> None:
        if cm.emotion in NEGATIVE and cm.weight > 0:
            q = self._negative.setdefault(cm.message.room, deque(maxlen=300))
            q.append((cm.message.ts, cm.message.text))

    def on_snapshot(self, snap: MoodSnapshot) -> None:
        self._latest[snap.room] = snap
        self._last_tip.setdefault(snap.room, self.b.clock())

    def on_tick(self, now: float) -> None:
        interval = self.b.config.tip_interval_seconds
        for room, snap in self._latest.items():
            if now - self._last_tip.get(room, now) >= interval:
                self._last_tip[room] = now
                self.tip(room, snap)

    def tip(self, room: str, snap: MoodSnapshot) -> None:
        """Tell the streamer how the last three minutes went and what to do about it."""
        w = snap.window(self.trend_window)
        if w.messages == 0:
            return
        shares = w.shares
        mood = EMOTIONS[max(range(len(EMOTIONS)), key=lambda k: shares[k])]
        prev = self._prev_shares.get(room)
        self._prev_shares[room] = shares
        parts = []
        for i in sorted(range(len(EMOTIONS)), key=lambda k: -shares[k])[:3]:
            arrow = ""
            if prev is not None:
                delta = shares[i] - prev[i]
                arrow = " ↑" if delta > 0.05 else (" ↓" if delta < -0.05 else "")
            parts.append(f"{MOOD_NAMES_ZH[EMOTIONS[i]]} {shares[i]:.0%}{arrow}")
        advice = self.b.book.tips.get(mood, "")
        text = f"近{w.seconds // 60}分钟：" + "，".join(parts) + (f"。{advice}" if advice else "")
        self.b.add_prompt(room, "tip", text, mood=mood)

    async def on_event(self, event: TriggerEvent) -> None:
        if event.kind != "negative_spike":
            return
        q = self._negative.get(event.room, deque())
        horizon = event.ts - 60
        texts = [t for ts, t in q if ts >= horizon] or [t for _, t in q]
        words = await asyncio.to_thread(self.extractor.extract, texts[-200:], 5) if texts else []
        share = event.values.get("negative_share", 0.0)
        text = f"⚠ 负面情绪激增：{share:.0%} 负面" + (f"，关键词：{'、'.join(words)}" if words else "")
        self.b.add_prompt(event.room, "alert", text, keywords=tuple(words), mood="angry")


class ModCommands(Component):
    """``!mood``, ``!bot pause``, ``!bot resume``, ``!products``, ``!say <template>`` for moderators."""

    name = "mod-commands"

    def __init__(self, trending: Trending, replies: MoodReplies) -> None:
        super().__init__()
        self.trending = trending
        self.replies = replies
        self.ignored = 0

    def on_classified(self, cm: ClassifiedMessage) -> None:
        # Platforms whose reader marks moderators (Bilibili, ingest) command the bot through the feed,
        # unless the sender reads its own chat (IRC), which would deliver each command twice.
        if self.b.sender.receives_chat:
            return
        m = cm.message
        if m.text.lstrip().startswith("!"):
            self.on_chat(IncomingChat(m.room, m.user, m.text, m.is_moderator, m.platform))

    def on_chat(self, chat: IncomingChat) -> None:
        text = chat.text.strip()
        if not text.startswith("!"):
            return
        bot = self.b
        if not bot.is_moderator(chat.user, chat.is_moderator):
            self.ignored += 1
            return
        words = text.split()
        cmd = words[0].lower()
        args = words[1:]
        room = chat.room
        who = clean_value(chat.user, 20)
        if cmd == "!mood":
            snap = bot.feed.latest(room)
            if snap is None:
                self.say(room, "还没有数据")
                return
            mood, share, messages = room_mood(snap)
            neg = snap.window(10).negative_share
            self.say(
                room, f"房间情绪：{MOOD_NAMES_ZH[mood]} {share:.0%}（近1分钟 {messages} 条，负面 {neg:.0%}）"
            )
        elif cmd == "!bot" and args and args[0].lower() in {"pause", "resume"}:
            pause = args[0].lower() == "pause"
            bot.set_paused(room, pause)
            self.say(room, f"bot {'paused' if pause else 'resumed'} by {who}")
        elif cmd == "!products":
            top = self.trending.top(room, 3)
            if top:
                self.say(room, "热门：" + "，".join(f"{t.product.name} ¥{t.product.price_text}" for t in top))
            else:
                self.say(room, "热门：暂无")
        elif cmd == "!say" and args:
            self.say_template(room, args[0], who)

    def say(self, room: str, text: str) -> None:
        self.b.propose(room, COMMAND_TYPE, text, by="command")

    def say_template(self, room: str, template_id: str, who: str) -> None:
        """Post a template now, for its type and the current mood; the gate still applies."""
        bot = self.b
        t = bot.book.by_id(template_id[:64])
        if t is None:
            self.say(room, f"unknown template {clean_value(template_id, 30)}")
            return
        snap = bot.feed.latest(room)
        mood, share = (
            (room_mood(snap)[:2]) if snap is not None else (t.moods[0] if t.moods else "neutral", 0.0)
        )
        if mood not in t.moods and t.moods:
            mood = t.moods[0]
        product = self.trending.pick(room, mood)
        try:
            line = bot.rng.choice(t.lines).render(template_values(room, mood, share, product), bot.rng)
        except TemplateError as e:
            self.say(room, f"cannot say {t.id}: {e}")
            return
        bot.propose(room, t.type, line, template_id=t.id, by=who, force=True)
