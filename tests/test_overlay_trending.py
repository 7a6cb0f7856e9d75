"""Trending words for the ticker: terms, stop words, flood weight, the rolling window."""

from __future__ import annotations

from overlay.trending import Trending, terms_of
from overlay.wire import ticker_payload


def test_terms_are_cjk_bigrams_and_words_without_filler() -> None:
    assert terms_of("退钱 骗子") == {"退钱", "骗子"}
    assert terms_of("主播好可爱") == {"好可", "可爱"}  # 主播 is filler in every room
    assert terms_of("the price is crazy 666") == {"price", "crazy", "666"}
    assert terms_of("我的天") == set()  # particles and pronouns cannot start or end a term
    assert terms_of("哈哈") == set()


def test_top_terms_window_weight_and_merged_bigrams() -> None:
    now = [1000.0]
    t = Trending(window=60, size=3, clock=lambda: now[0])
    for _ in range(5):
        t.add("r", "好可爱", "happy")
    for _ in range(3):
        t.add("r", "退钱 骗子", "angry")
    t.add("r", "退钱", "angry", weight=0.0)  # flooded: weighs nothing
    t.add("r", "spam spam", "neutral", weight=0.5)
    top = t.top("r")
    # 好可/可爱 are one word: only the first survives; ties sort alphabetically.
    assert [(x.text, x.score, x.emotion) for x in top] == [
        ("可爱", 5.0, "happy"),
        ("退钱", 3.0, "angry"),
        ("骗子", 3.0, "angry"),
    ]
    assert t.top("other") == []
    now[0] += 61  # the window slides past all of it
    assert t.top("r") == []
    assert t.active_rooms() == []


def test_ticker_payload_is_generic() -> None:
    class Product:
        text = "保温杯 <b>"
        score = 12.345
        emotion = "not-an-emotion"

    assert ticker_payload("r", [Product()], source="products") == {
        "room": "r",
        "source": "products",
        "items": [{"text": "保温杯 <b>", "score": 12.35, "emotion": "neutral"}],
    }
