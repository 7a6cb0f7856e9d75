"""A simulated e-commerce live room (直播带货) for demos, tests and load runs.

A *script* is a list of phases; each phase has a duration, an arrival rate (Poisson), an emotion mix
(relative weights) and optional disturbances: spam bursts (one user repeating one line), copy-paste
floods (many users pasting the same line) and a share of messages that carry a gift. Everything is
drawn from one ``random.Random(seed)``, so a seed gives the same room, message for message.

The compact form, one phase per ``;`` or line, ``#`` starts a comment::

    users=300 moderators=3                       # optional settings segment
    warm-up   1m     3/s   neutral=5 happy=3 excited
    reveal    75s    12/s  excited=6 happy=3 flood=3 gifts=0.05
    no-gift   1m15s  600/min angry=6 sad spam=1

Tokens of a phase, in any order after the name: a duration (``90s``, ``2m``, ``1m30s``), a rate
(``4/s``, ``240/min``; omitted = the source's ``rate``), emotions with optional weights (``happy=2``;
a bare ``happy`` weighs 1; none = a balanced everyday mix), ``spam=N`` and ``flood=N`` (events per
minute) and ``gifts=F`` (share of messages, 0..1). A rate of ``0/s`` is a silent pause.

The same script as TOML (or JSON with the same keys), in a ``.toml`` / ``.json`` file::

    users = 300
    [[phases]]
    name = "warm-up"
    duration = "1m"          # or seconds as a number
    rate = 3                 # messages per second, or "180/min"
    mix = { neutral = 5, happy = 3, excited = 1 }
    spam = 0.5
    flood = 0
    gifts = 0.02

Built-in scripts: ``steady`` (one everyday minute at the source's rate) and ``demo`` (the six-minute
arc of the bundled replay: warm-up, product reveal, price hesitation, a missing gift, recovery).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import math
import random
import re
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import SourceConfig
from engine.emotions import EMOTIONS
from engine.sources.base import YIELD_EVERY, Emit, SourceError, SourceState, StateTracker
from engine.types import ChatMessage

PLATFORM = "simulator"
MODERATOR_SHARE = 0.02
"""Share of ordinary chat written by the room's moderators (always neutral housekeeping lines)."""


class ScriptError(SourceError):
    """A simulator script that cannot be parsed; the message names the phase and the token."""


@dataclass(frozen=True, slots=True)
class Phase:
    """One stretch of the room: how long, how busy, which feelings, which disturbances."""

    name: str
    duration: float
    rate: float
    mix: tuple[tuple[str, float], ...]
    spam: float = 0.0
    flood: float = 0.0
    gifts: float = 0.0


@dataclass(frozen=True, slots=True)
class Script:
    """Phases played in order, and the audience that plays them."""

    phases: tuple[Phase, ...]
    users: int = 300
    moderators: int = 3

    @property
    def duration(self) -> float:
        """Seconds one pass of the script lasts."""
        return sum(p.duration for p in self.phases)

    def phase_at(self, offset: float) -> tuple[Phase, float]:
        """The phase playing ``offset`` seconds in (looping) and the offset at which it ends."""
        pass_start = offset - offset % self.duration
        end = pass_start
        for phase in self.phases:
            end += phase.duration
            if offset < end:
                return phase, end
        return self.phases[-1], end + self.duration  # float rounding at the very end of a pass


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One simulated message before it becomes a ChatMessage; ``offset`` is seconds from the start."""

    offset: float
    user: str
    text: str
    emotion: str
    is_moderator: bool = False
    gift_value: float = 0.0
    phase: str = ""


# ---------------------------------------------------------------------------------------------- script

EVERYDAY_MIX: tuple[tuple[str, float], ...] = (
    ("neutral", 4.0),
    ("happy", 2.0),
    ("excited", 1.5),
    ("anxious", 1.0),
    ("angry", 0.5),
    ("sad", 0.5),
)

PRESETS: dict[str, str] = {
    "steady": "steady 1m {rate}/s spam=0.5 flood=0.5 gifts=0.02 "
    + " ".join(f"{e}={w}" for e, w in EVERYDAY_MIX),
    "demo": """
        users=260 moderators=3
        warm-up   1m     3/s   neutral=5 happy=3 excited=1 anxious=1 gifts=0.02
        reveal    75s    12/s  excited=6 happy=3 neutral=1 anxious=0.5 sad=0.5 flood=3 gifts=0.05
        price     1m     7/s   anxious=5 neutral=3 excited=1 sad=1 spam=0.5
        no-gift   75s    10/s  angry=6 anxious=1.5 sad=1 neutral=1 flood=4 spam=1
        recovery  1m30s  5/s   happy=4 neutral=3 excited=2 angry=0.5 gifts=0.04
    """,
}

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!in))?(?:(\d+(?:\.\d+)?)s)?$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)/(s|sec|m|min)$")
_SETTINGS = {"users", "moderators"}
_PHASE_KEYS = {"spam", "flood", "gifts"}


def parse_duration(token: str) -> float | None:
    """Seconds in ``90s``, ``2m``, ``1m30s``, ``1h``; None if the token is not a duration."""
    m = _DURATION.match(token.strip().lower())
    if not m or not any(m.groups()):
        return None
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def parse_rate(token: str) -> float | None:
    """Messages per second in ``4/s`` or ``240/min``; None if the token is not a rate."""
    m = _RATE.match(token.strip().lower())
    if not m:
        return None
    value = float(m.group(1))
    return value if m.group(2) in ("s", "sec") else value / 60.0


def parse_script(text: str, *, default_rate: float = 10.0) -> Script:
    """Parse the compact script form (see the module docstring); raises ScriptError naming the token."""
    phases: list[Phase] = []
    settings: dict[str, int] = {}
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    segments = [s.strip() for s in ";".join(lines).split(";")]
    for segment in filter(None, segments):
        tokens = segment.split()
        if all("=" in t and t.split("=", 1)[0] in _SETTINGS for t in tokens):
            for t in tokens:
                key, value = t.split("=", 1)
                settings[key] = _int_setting(key, value)
            continue
        phases.append(_parse_phase(tokens, len(phases) + 1, default_rate))
    return _script(phases, settings)


def _int_setting(key: str, value: Any) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ScriptError(f"script setting {key!r} must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or n < 0 or (key == "users" and n < 1):
        raise ScriptError(f"script setting {key!r} is out of range: {value!r}")
    return n


def _parse_phase(tokens: list[str], index: int, default_rate: float) -> Phase:
    name = f"phase {index}"
    rest = tokens
    first = tokens[0]
    if (
        parse_duration(first) is None
        and parse_rate(first) is None
        and "=" not in first
        and first not in EMOTIONS
    ):
        name, rest = first, tokens[1:]
    where = f"script phase {index} ({name})"
    duration: float | None = None
    rate = default_rate
    mix: dict[str, float] = {}
    extra: dict[str, float] = {}
    for tok in rest:
        low = tok.lower()
        if (d := parse_duration(low)) is not None:
            duration = d
        elif (r := parse_rate(low)) is not None:
            rate = r
        elif low in EMOTIONS:
            mix[low] = 1.0
        elif "=" in low:
            key, value = low.split("=", 1)
            number = _number(value, f"{where}: {tok!r}")
            if key in EMOTIONS:
                mix[key] = number
            elif key in _PHASE_KEYS:
                extra[key] = number
            else:
                allowed = ", ".join([*EMOTIONS, *sorted(_PHASE_KEYS)])
                raise ScriptError(f"{where}: unknown key {key!r} in {tok!r} (allowed: {allowed})")
        else:
            raise ScriptError(
                f"{where}: cannot read {tok!r}; expected a duration (90s, 2m), a rate (4/s, 240/min), "
                "an emotion (happy=2) or spam=/flood=/gifts="
            )
    if duration is None:
        raise ScriptError(f"{where}: needs a duration such as 60s or 2m")
    return _phase(name, duration, rate, mix, extra, where)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ScriptError(f"{where}: expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ScriptError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ScriptError(f"{where}: expected a non-negative number, got {value!r}")
    return number


def _phase(
    name: str, duration: float, rate: float, mix: Mapping[str, float], extra: Mapping[str, float], where: str
) -> Phase:
    if duration <= 0:
        raise ScriptError(f"{where}: duration must be positive")
    gifts = extra.get("gifts", 0.0)
    if gifts > 1:
        raise ScriptError(f"{where}: gifts is a share of messages, 0..1")
    weights = tuple((e, float(mix[e])) for e in EMOTIONS if mix.get(e, 0.0) > 0) if mix else EVERYDAY_MIX
    if not weights:
        raise ScriptError(f"{where}: the emotion weights add up to zero")
    return Phase(name, duration, rate, weights, extra.get("spam", 0.0), extra.get("flood", 0.0), gifts)


def _script(phases: list[Phase], settings: Mapping[str, int]) -> Script:
    if not phases:
        raise ScriptError("script has no phases")
    users = settings.get("users", 300)
    mods = min(settings.get("moderators", 3), users)
    return Script(tuple(phases), users=users, moderators=mods)


def script_from_data(
    data: Mapping[str, Any], *, default_rate: float = 10.0, source: str = "script"
) -> Script:
    """Build a Script from parsed TOML/JSON (``users``, ``moderators``, ``phases``: [...])."""
    if not isinstance(data, Mapping):
        raise ScriptError(f"{source}: must be a table/object with a 'phases' array")
    unknown = set(data) - {"users", "moderators", "phases"}
    if unknown:
        raise ScriptError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    settings = {k: _int_setting(k, data[k]) for k in _SETTINGS if k in data}
    raw = data.get("phases")
    if not isinstance(raw, list):
        raise ScriptError(f"{source}: 'phases' must be an array of tables")
    phases: list[Phase] = []
    for i, p in enumerate(raw):
        where = f"{source}: phases[{i}]"
        if not isinstance(p, Mapping):
            raise ScriptError(f"{where} must be a table")
        bad = set(p) - {"name", "duration", "rate", "mix", *_PHASE_KEYS}
        if bad:
            raise ScriptError(f"{where}: unknown key(s) {', '.join(sorted(bad))}")
        dur = p.get("duration")
        duration = parse_duration(dur) if isinstance(dur, str) else _number(dur, f"{where}.duration")
        if duration is None:
            raise ScriptError(f"{where}.duration: cannot read {dur!r}")
        rate_raw = p.get("rate", default_rate)
        rate = parse_rate(rate_raw) if isinstance(rate_raw, str) else _number(rate_raw, f"{where}.rate")
        if rate is None:
            raise ScriptError(f"{where}.rate: cannot read {rate_raw!r}")
        mix_raw = p.get("mix", {})
        if not isinstance(mix_raw, Mapping) or any(k not in EMOTIONS for k in mix_raw):
            raise ScriptError(f"{where}.mix must map emotions ({', '.join(EMOTIONS)}) to weights")
        mix = {k: _number(v, f"{where}.mix.{k}") for k, v in mix_raw.items()}
        extra = {k: _number(p[k], f"{where}.{k}") for k in _PHASE_KEYS if k in p}
        name = p.get("name", f"phase {i + 1}")
        if not isinstance(name, str):
            raise ScriptError(f"{where}.name must be a string")
        phases.append(_phase(name, duration, rate, mix, extra, where))
    return _script(phases, settings)


def load_script(spec: str, *, base_dir: Path = Path("."), default_rate: float = 10.0) -> Script:
    """A preset name, a ``.toml``/``.json`` file (relative to ``base_dir``), or a compact script string."""
    spec = spec.strip() or "steady"
    if spec in PRESETS:
        return parse_script(PRESETS[spec].format(rate=default_rate), default_rate=default_rate)
    if spec.lower().endswith((".toml", ".json")) and "\n" not in spec and ";" not in spec:
        path = Path(spec).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ScriptError(f"cannot read simulator script {path}: {e}") from None
        try:
            data = tomllib.loads(raw) if path.suffix.lower() == ".toml" else json.loads(raw)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
            raise ScriptError(f"{path}: {e}") from None
        return script_from_data(data, default_rate=default_rate, source=str(path))
    return parse_script(spec, default_rate=default_rate)


# ------------------------------------------------------------------------------------------ phrase banks
# Written for this project, one phrase a line. {slots} are filled from _SLOTS; {six} and {haha} are
# runs of 6 and 哈 of random length. A message may also get a suffix from _SUFFIXES.


def _lines(block: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in block.splitlines() if line.strip())


def _words(block: str) -> tuple[str, ...]:
    return tuple(block.split())


_BANKS: dict[str, tuple[str, ...]] = {
    "happy": _lines(
        """
        哈哈哈主播太逗了
        {haha}笑死我了
        上次买的{product}超好用，又来回购啦
        收到货了，比图片还好看
        主播今天的妆好好看
        爱了爱了
        谢谢主播宠粉
        抢到了！开心到转圈
        已拍，坐等收货
        这个{color}也太温柔了吧，喜欢
        质量真的可以，给好评
        宝藏直播间，已关注
        主播声音好好听
        {product}我妈用了说好
        今天运气好，第一次秒到
        被助理小姐姐笑到了
        穿上{product}同事都夸好看
        好喜欢主播的讲解，很实在
        终于等到你们家上新了，开心
        买到就是赚到，满足
        主播好可爱{haha}
        包装好精致，送人很有面子
        物流好快，昨天拍今天就到了
        这个价格拿下很开心
        看主播试穿心情都变好了
        """
    ),
    "excited": _lines(
        """
        {six}
        冲冲冲！
        上链接上链接！
        来了来了来了！
        3、2、1，上车！
        家人们冲啊！
        这价格太炸了吧！
        主播牛啊！
        这波必须拿下！
        抢抢抢！
        手速已就位！
        福利来了！！
        库存再加点啊主播！
        开抢了吗开抢了吗！
        {product}我来了！
        {n}号链接冲鸭！
        今晚全场最值就是它！
        给我上！
        啊啊啊啊终于上了！
        {price}块？这也太划算了吧！
        姐妹们快抢！
        秒了秒了！
        加库存！加库存！
        {six}主播太会了
        再来一单！
        """
    ),
    "angry": _lines(
        """
        骗子！说好的赠品呢？
        退钱！
        赠品没送，我要投诉
        说好的买一送一呢？骗人
        客服一直不回消息，气死了
        链接一秒就没了，假库存吧
        主播别装没看见，回答问题！
        坑人啊这是
        再也不来了，太坑了
        拍了一周还没发货，搞什么
        比昨天还贵了{price}，当我们傻吗
        赠品呢？？？
        收到的{product}是坏的，气死我了
        虚假宣传，已举报
        承诺的赠品一个都没有，退货！
        什么破质量，洗一次就掉色
        别删我评论！赠品到底给不给
        说好的{price}包邮呢，结账怎么变了
        答应的小样没发，骗子直播间
        我要退款，太失望了还生气
        主播说话不算话
        拉黑了，套路太深
        运费险都不给，恶心
        """
    ),
    "sad": _lines(
        """
        呜呜没抢到
        又没抢到，哭了
        手慢了，好难过
        每次都抢不到
        要下播了吗，舍不得
        钱包空了呜呜
        没钱买，只能看看了
        蹲了一晚上还是没抢到
        心碎了
        好可惜，{size}码没了
        唉，又错过了
        刚付款就说没货了，哭死
        我的{color}没了，伤心
        学生党买不起，难过
        等了三天的链接，秒空，失落
        网太卡了没抢上，好难受
        为什么我总是慢一步
        {product}没了，今晚白等了
        眼睁睁看着库存变零
        哭了，被别人抢走了
        """
    ),
    "anxious": _lines(
        """
        好纠结啊买不买
        还有货吗？
        {size}码还有吗？急
        会不会起球啊，有点担心
        怕买了不合适
        不合适能退吗？有点慌
        几天能发货啊，急用
        这个价是不是有点贵，犹豫了
        黑色还是{color}啊，纠结死了
        付款一直失败怎么办
        会不会买贵了啊
        万一尺码不对怎么办
        还在犹豫，再想想
        担心质量不好
        链接在哪？找不到啊急死了
        库存还剩多少？慌了
        身高{h}体重{w}斤，选哪个码啊，好怕选错
        敏感肌能用吗？不敢买
        赠品还会有吗？好担心没了
        下单了但是没显示，怎么办
        等等我，还在填地址
        到底是不是正品啊，心里没底
        优惠券领不了，急
        """
    ),
    "neutral": _lines(
        """
        主播晚上好
        {size}码的有吗
        多少钱
        什么时候发货
        这个{product}有几个颜色
        身高{h}穿什么码
        包邮吗
        刚来，讲到哪了
        主播多高
        有优惠券吗
        现在是几号链接
        来了
        打卡
        看看{product}
        是正品吗
        支持七天无理由吗
        第一次来
        能讲一下材质吗
        体重{w}斤穿什么码
        发什么快递
        {city}能发吗
        {n}号是什么
        再讲一下{color}那款
        有没有大码
        可以开发票吗
        主播穿的是哪个码
        今天播到几点
        """
    ),
}

_MODERATOR_LINES = _lines(
    """
    欢迎新进直播间的宝宝，点点关注
    大家不要刷屏哦
    下单记得备注尺码
    售后问题请私信客服
    赠品会统一补发，大家放心
    {n}号链接已上架
    尺码不确定的可以问助理
    理性消费，按需购买
    """
)

_SPAM_LINES = _lines(
    """
    关注我，每天领红包
    免费领{product}，私信我
    点我头像看福利
    主播看我看我看我
    求翻牌求翻牌
    互粉互粉，必回
    """
)

_FLOOD_LINES: dict[str, tuple[str, ...]] = {
    "happy": ("哈哈哈哈哈哈", "主播好美", "好看好看"),
    "excited": ("冲冲冲冲冲", "666666", "上链接！上链接！", "加库存！"),
    "angry": ("退钱！退钱！", "骗子", "还我赠品", "赠品呢？"),
    "sad": ("呜呜呜呜", "没抢到+1", "哭了"),
    "anxious": ("还有货吗", "急急急", "链接呢？"),
    "neutral": ("打卡", "来了来了", "1"),
}

_SUFFIXES: dict[str, tuple[str, ...]] = {
    "happy": ("~", "哈哈", "😄", "[笑]", "❤️", "！"),
    "excited": ("！！", "🔥", "!!!", "🚀", "冲"),
    "angry": ("！", "？？？", "😡", "[怒]"),
    "sad": ("😭", "[哭]", "…", "呜呜"),
    "anxious": ("？", "😰", "。。。", "啊"),
    "neutral": ("？", "~", "呀"),
}

_SLOTS: dict[str, tuple[str, ...]] = {
    "product": _words("羽绒服 面膜 口红 连衣裙 零食大礼包 保温杯 运动鞋 精华液 卫衣 空气炸锅 牛仔裤 洗发水"),
    "size": _words("S M L XL 2XL 155 160 165 170"),
    "color": _words("奶白色 雾霾蓝 焦糖色 樱花粉 燕麦色 墨绿色"),
    "price": _words("39 49.9 59 79 99 129 199 299"),
    "city": _words("新疆 西藏 香港 海南 内蒙古 偏远地区"),
    "n": tuple(str(i) for i in range(1, 41)),
    "h": tuple(str(i) for i in range(150, 186, 5)),
    "w": tuple(str(i) for i in range(85, 165, 5)),
}

_GIFT_VALUES = (1.0, 1.0, 1.0, 6.6, 6.6, 9.9, 19.9, 52.0, 66.0, 99.0, 520.0)

_NAME_ADJ = (
    "快乐的",
    "爱睡觉的",
    "不吃香菜的",
    "会飞的",
    "减肥中的",
    "熬夜的",
    "元气",
    "佛系",
    "社恐",
    "暴躁",
)
_NAME_NOUN = ("小熊", "橘猫", "兔叽", "柠檬", "汤圆", "小鱼", "奶茶", "土豆", "仓鼠", "蘑菇", "西瓜", "小鹿")
_NAME_SHORT = (
    "阿杰",
    "小雨",
    "大刘",
    "老王",
    "小鱼儿",
    "阿珍",
    "甜甜",
    "晓晓",
    "子涵",
    "一一",
    "木子",
    "乐乐",
)
_NAME_LATIN = (
    "Lily",
    "momo",
    "Cici",
    "Kevin",
    "Amy",
    "Jason",
    "Yuki",
    "Coco",
    "Leo",
    "Mia",
    "Annie",
    "Sunny",
)
_MOD_NAMES = ("场控小琪", "房管阿星", "助理小美", "运营大白", "场控糖糖")
_NAME_TAIL = ("的小号", "在减肥", "今天也要开心", "不熬夜", "_", "酱", "呀")

_SLOT = re.compile(r"\{(\w+)\}")


def _fill(text: str, rng: random.Random) -> str:
    def pick(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "six":
            return "6" * rng.randint(3, 9)
        if key == "haha":
            return "哈" * rng.randint(2, 8)
        return rng.choice(_SLOTS[key])

    return _SLOT.sub(pick, text) if "{" in text else text


class UserPool:
    """A deterministic audience with realistic nicknames; a few talk a lot, most rarely (Zipf-like)."""

    def __init__(self, rng: random.Random, size: int, moderators: int) -> None:
        names: list[str] = []
        seen: set[str] = set()
        while len(names) < size:
            name = self._name(rng)
            if name not in seen:
                seen.add(name)
                names.append(name)
        self.names = names
        # Room staff are separate people with recognisable handles, not the chattiest viewers.
        self.moderator_names = [
            _MOD_NAMES[i % len(_MOD_NAMES)] + (str(i // len(_MOD_NAMES) + 1) if i >= len(_MOD_NAMES) else "")
            for i in range(moderators)
        ]
        self.moderators = frozenset(self.moderator_names)
        self._cum = list(itertools.accumulate(1.0 / (rank + 3) ** 0.7 for rank in range(size)))

    @staticmethod
    def _name(rng: random.Random) -> str:
        kind = rng.random()
        if kind < 0.25:
            return rng.choice(("用户", "bili_", "dy")) + str(rng.randint(10_000_000, 9_999_999_999))
        if kind < 0.5:
            return rng.choice(_NAME_ADJ) + rng.choice(_NAME_NOUN)
        if kind < 0.7:
            return rng.choice(_NAME_SHORT) + rng.choice(_NAME_TAIL)
        if kind < 0.9:
            return rng.choice(_NAME_LATIN) + rng.choice(("", "_", "", str(rng.randint(1, 2005))))
        return "爱吃" + rng.choice(_NAME_NOUN) + "的" + rng.choice(_NAME_SHORT)

    def pick(self, rng: random.Random) -> str:
        """One viewer, weighted by activity."""
        return rng.choices(self.names, cum_weights=self._cum)[0]

    def moderator(self, rng: random.Random) -> str:
        """One of the room's moderators (call only when there are some)."""
        return rng.choice(self.moderator_names)


# ------------------------------------------------------------------------------------------- generator


class Simulator:
    """Generates a room's chat from a Script; deterministic for a given seed."""

    def __init__(self, script: Script, *, seed: int = 0, room: str = "sim") -> None:
        self.script = script
        self.seed = seed
        self.room = room

    def events(self, *, loop: bool = False) -> Iterator[SimEvent]:
        """Every message of the script in time order (forever when ``loop``), without sleeping."""
        rng = random.Random(self.seed)
        users = UserPool(rng, self.script.users, self.script.moderators)
        pending: list[tuple[float, int, SimEvent]] = []  # bursts and floods scheduled ahead
        seq = itertools.count()
        base = 0.0
        while True:
            for phase in self.script.phases:
                end = base + phase.duration
                spam_rate, flood_rate = phase.spam / 60.0, phase.flood / 60.0
                total = phase.rate + spam_rate + flood_rate
                t = base
                while total > 0:
                    t += rng.expovariate(total)
                    if t >= end:
                        break
                    # Competing Poisson processes: one draw decides which kind of arrival this is.
                    r = rng.random() * total
                    if r < phase.rate:
                        heapq.heappush(pending, (t, next(seq), self._chat(rng, users, phase, t)))
                    elif r < phase.rate + spam_rate:
                        for ev in self._spam(rng, users, phase, t):
                            heapq.heappush(pending, (ev.offset, next(seq), ev))
                    else:
                        for ev in self._flood(rng, users, phase, t):
                            heapq.heappush(pending, (ev.offset, next(seq), ev))
                    while pending and pending[0][0] <= t:
                        yield heapq.heappop(pending)[2]
                base = end
            if not loop:
                break
        while pending:
            yield heapq.heappop(pending)[2]

    def iter_messages(
        self, limit: int | None = None, *, start_ts: float = 0.0, loop: bool = False
    ) -> Iterator[tuple[ChatMessage, str]]:
        """(message, intended emotion) pairs stamped ``start_ts + offset``; a ``limit`` loops as needed."""
        events = self.events(loop=loop or limit is not None)
        for ev in itertools.islice(events, limit):
            yield self.message(ev, ts=start_ts + ev.offset), ev.emotion

    def message(self, ev: SimEvent, *, ts: float) -> ChatMessage:
        """The ChatMessage for one event, stamped ``ts``."""
        return ChatMessage.create(
            room=self.room,
            user=ev.user,
            text=ev.text,
            ts=ts,
            platform=PLATFORM,
            is_moderator=ev.is_moderator,
            gift_value=ev.gift_value,
        )

    def _chat(self, rng: random.Random, users: UserPool, phase: Phase, t: float) -> SimEvent:
        if users.moderators and rng.random() < MODERATOR_SHARE:
            text = _fill(rng.choice(_MODERATOR_LINES), rng)
            return SimEvent(t, users.moderator(rng), text, "neutral", True, 0.0, phase.name)
        emotion = _pick_emotion(rng, phase.mix)
        text = _fill(rng.choice(_BANKS[emotion]), rng)
        if rng.random() < 0.3:
            text += rng.choice(_SUFFIXES[emotion])
        gift = 0.0
        if phase.gifts > 0 and emotion not in ("angry", "sad") and rng.random() < phase.gifts:
            gift = rng.choice(_GIFT_VALUES)
        return SimEvent(t, users.pick(rng), text, emotion, False, gift, phase.name)

    def _spam(self, rng: random.Random, users: UserPool, phase: Phase, t: float) -> list[SimEvent]:
        """One user sending one line again and again, a second or less apart."""
        user = users.pick(rng)
        if rng.random() < 0.5:
            emotion, text = "neutral", _fill(rng.choice(_SPAM_LINES), rng)
        else:
            emotion = _pick_emotion(rng, phase.mix)
            text = _fill(rng.choice(_BANKS[emotion]), rng)
        out = []
        for _ in range(rng.randint(6, 15)):
            out.append(SimEvent(t, user, text, emotion, False, 0.0, phase.name))
            t += rng.uniform(0.3, 1.2)
        return out

    def _flood(self, rng: random.Random, users: UserPool, phase: Phase, t: float) -> list[SimEvent]:
        """Many users pasting the same short line within a few seconds."""
        # Floods carry the room's strongest feeling, so neutral only floods when nothing else is in the mix.
        felt = tuple((e, w) for e, w in phase.mix if e != "neutral") or phase.mix
        emotion = _pick_emotion(rng, felt)
        text = rng.choice(_FLOOD_LINES[emotion])
        span = rng.uniform(4.0, 12.0)
        out = []
        for _ in range(rng.randint(10, 30)):
            user = users.pick(rng)
            copy = text if rng.random() < 0.8 else text + rng.choice(("+1", "！", " " + text))
            out.append(SimEvent(t + rng.uniform(0.0, span), user, copy, emotion, False, 0.0, phase.name))
        return out


def _pick_emotion(rng: random.Random, mix: Sequence[tuple[str, float]]) -> str:
    return rng.choices([e for e, _ in mix], weights=[w for _, w in mix])[0]


# ---------------------------------------------------------------------------------------------- source


class SimulatorSource:
    """Plays a simulator script live into one room, paced by its arrival times divided by ``speed``."""

    def __init__(
        self,
        script: Script,
        *,
        room: str = "sim",
        seed: int = 0,
        speed: float = 1.0,
        loop: bool = False,
        name: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if speed < 0 or not math.isfinite(speed):
            raise SourceError(f"simulator speed must be a non-negative number, got {speed}")
        self.simulator = Simulator(script, seed=seed, room=room)
        self.room = room
        self.name = name or f"simulator:{room}"
        self.speed = speed
        self.loop = loop
        self._clock = clock
        self._state = StateTracker()

    @classmethod
    def from_config(cls, cfg: SourceConfig, base_dir: Path) -> SimulatorSource:
        """Build from a ``[[sources]]`` table: ``script`` (preset, file or compact), ``rate``, ``seed``."""
        script = load_script(cfg.script, base_dir=base_dir, default_rate=cfg.rate)
        return cls(script, room=cfg.room, seed=cfg.seed, speed=cfg.speed, loop=cfg.loop)

    @property
    def state(self) -> SourceState:
        """Status and counters for the dashboard."""
        return self._state.snapshot()

    async def run(self, emit: Emit) -> None:
        """Emit the script's messages live (scaled by ``speed``); returns at the end unless looping."""
        st = self._state
        loop = asyncio.get_running_loop()
        start = loop.time()
        script = self.simulator.script
        phase, phase_end = script.phase_at(0.0)
        st.set("running", f"phase {phase.name}")
        since_yield = 0
        try:
            for ev in self.simulator.events(loop=self.loop):
                # Bursts may outlast a script that does not loop; they stay in its last phase.
                if ev.offset >= phase_end and (self.loop or ev.offset < script.duration):
                    phase, phase_end = script.phase_at(ev.offset)
                    st.set("running", f"phase {phase.name}")
                if self.speed > 0:
                    delay = start + ev.offset / self.speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                        since_yield = 0
                since_yield += 1
                if since_yield >= YIELD_EVERY:
                    await asyncio.sleep(0)
                    since_yield = 0
                emit(self.simulator.message(ev, ts=self._clock()))
                st.messages += 1
        except asyncio.CancelledError:
            st.set("finished", "stopped")
            raise
        st.set("finished", f"script done after {st.messages} messages")
