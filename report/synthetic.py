"""A synthetic session with known answers, for tests, the benchmark and trying the report out.

Every minute has exactly ``per_minute`` messages with a fixed emotion mix (happy wobbles 15-25 % against
neutral, deterministically), and two planted peaks: excited 60 % over three minutes (flash sale talk,
"秒杀"/"抢到了", the down jacket) and angry 50 % over two minutes (the missing gift, "赠品"/"客服", with
one hostile line carrying markup). Orders follow the happy + excited share ``lag`` minutes later.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.emotions import EMOTIONS, INDEX
from engine.store import Store
from engine.types import ChatMessage, ClassifiedMessage, Prediction, TriggerEvent

T0 = 1_763_712_000
"""2025-11-21 08:00 UTC: the synthetic session's first minute."""
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> 赠品呢？？客服呢'

_TEXTS = {
    "neutral": [
        "来了来了",
        "主播晚上好",
        "今天几点下播",
        "刚进来",
        "这个是什么颜色",
        "有没有小码",
        "打卡",
        "路过看看",
    ],
    "happy": ["主播好可爱", "哈哈哈太好笑了", "喜欢这个颜色", "好看好看", "支持主播", "开心"],
    "excited": ["冲冲冲", "666", "太值了", "好激动", "来了来了冲"],
    "anxious": ["还有货吗", "什么时候发货", "会不会起球", "尺码准不准"],
    "sad": ["没抢到呜呜", "好可惜", "错过了"],
    "angry": ["太慢了", "卡死了", "垃圾网速"],
}
_PEAK_TEXTS = {
    "excited": ["秒杀秒杀羽绒服", "抢到了抢到了", "羽绒服秒杀冲啊", "秒杀太值了抢到了", "1号链接抢到了"],
    "angry": ["赠品呢说好的赠品", "客服不回消息", "赠品没有客服也不理", "骗人赠品在哪", "客服呢退钱"],
}


@dataclass(frozen=True, slots=True)
class Plan:
    """Where the answers are: minute indexes of the planted peaks, the lag, the mix."""

    minutes: int = 120
    per_minute: int = 100
    excited_peak: tuple[int, int] = (30, 33)  # [start, end) minute indexes
    angry_peak: tuple[int, int] = (80, 82)
    lag: int = 3
    seed: int = 7

    def mix(self, i: int, rng: random.Random) -> dict[str, int]:
        """Messages per emotion in minute ``i`` (per 100, scaled to per_minute)."""
        if self.excited_peak[0] <= i < self.excited_peak[1]:
            base = {"excited": 60, "happy": 15, "neutral": 15, "anxious": 5, "sad": 3, "angry": 2}
        elif self.angry_peak[0] <= i < self.angry_peak[1]:
            base = {"angry": 50, "neutral": 25, "happy": 10, "excited": 5, "anxious": 5, "sad": 5}
        else:
            d = rng.randint(-5, 5)
            base = {"neutral": 50 - d, "happy": 20 + d, "excited": 10, "anxious": 10, "sad": 5, "angry": 5}
        k = self.per_minute / 100
        return {e: round(n * k) for e, n in base.items()}


def _scores(emotion: str, conf: float) -> tuple[float, ...]:
    rest = (1.0 - conf) / (len(EMOTIONS) - 1)
    return tuple(conf if e == emotion else rest for e in EMOTIONS)


def messages(plan: Plan, room: str = "shop") -> Iterator[ClassifiedMessage]:
    """Every message of the session, minute by minute."""
    rng = random.Random(plan.seed)
    n = 0
    for i in range(plan.minutes):
        mix = plan.mix(i, rng)
        total = sum(mix.values())
        slot = 0
        for emotion, count in mix.items():
            peak = emotion in _PEAK_TEXTS and (
                plan.excited_peak[0] <= i < plan.excited_peak[1]
                if emotion == "excited"
                else plan.angry_peak[0] <= i < plan.angry_peak[1]
            )
            pool = _PEAK_TEXTS[emotion] if peak else _TEXTS[emotion]
            for j in range(count):
                n += 1
                text = pool[(j + i) % len(pool)] + ("" if j < len(pool) else f" {j}")
                conf = 0.8
                if peak and emotion == "angry" and j == 0 and i == plan.angry_peak[0]:
                    text, conf = HOSTILE, 0.99
                ts = T0 + 60 * i + 60 * slot / total
                slot += 1
                msg = ChatMessage(
                    room=room, user=f"u{n}", text=text, ts=ts, platform="synthetic", msg_id=str(n)
                )
                yield ClassifiedMessage(
                    msg, text, Prediction(emotion, conf, _scores(emotion, conf)), 1.0, "synthetic"
                )


def positive_shares(plan: Plan) -> list[float]:
    """The happy + excited share of each minute (what the planted orders follow)."""
    rng = random.Random(plan.seed)
    out = []
    for i in range(plan.minutes):
        mix = plan.mix(i, rng)
        out.append((mix["happy"] + mix["excited"]) / sum(mix.values()))
    return out


def orders_csv(plan: Plan, path: Path) -> Path:
    """Orders whose count in minute t+lag follows the positive share of minute t (plus a little noise)."""
    rng = random.Random(plan.seed + 1)
    pos = positive_shares(plan)
    lines = ["timestamp,product,quantity,amount"]
    for i in range(plan.lag, plan.minutes):
        n = round(40 * pos[i - plan.lag]) + rng.randint(0, 2)
        for k in range(n):
            ts = T0 + 60 * i + 60 * (k + 0.5) / (n + 1)
            lines.append(f"{ts:.1f},{'down-jacket' if k % 2 else '围巾'},1,{199 if k % 2 else 129}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def events(plan: Plan, room: str = "shop") -> list[TriggerEvent]:
    """An alert, a scene switch, a calm-down and a bot post around the planted peaks."""
    a, e = plan.angry_peak[0], plan.excited_peak[0]
    return [
        TriggerEvent(room, T0 + 60 * e + 5, "bot_post", "1号链接羽绒服秒杀开始啦", {}),
        TriggerEvent(
            room, T0 + 60 * a + 30, "negative_spike", "negative spike: 55% negative, mostly angry", {}
        ),
        TriggerEvent(room, T0 + 60 * a + 40, "obs_action", "switch program scene to 'Calm' (anger)", {}),
        TriggerEvent(room, T0 + 60 * (a + 3) + 10, "calm", "the room has calmed down", {}),
    ]


def write(plan: Plan, db: Path, room: str = "shop", batch: int = 20_000) -> int:
    """Write the session into the database at ``db`` through the real Store; returns messages written."""
    n = 0
    with Store.open(db) as store:
        buf: list[ClassifiedMessage] = []
        for cm in messages(plan, room):
            buf.append(cm)
            if len(buf) >= batch:
                store.write_messages(buf)
                n += len(buf)
                buf.clear()
        store.write_messages(buf)
        n += len(buf)
        store.write_events(events(plan, room))
    return n


assert INDEX["happy"] == 0  # the mix dicts name emotions; EMOTIONS order is only used for scores
