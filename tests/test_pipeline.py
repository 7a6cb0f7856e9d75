"""The pipeline's stages with a fake model: counts, floods, hot swap, failures, drain."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from engine.config import ClassifierConfig, Config
from engine.emotions import INDEX
from engine.pipeline import Pipeline
from engine.types import ChatMessage
from tests.fake_model import FakeRegistry, KeywordModel, keyword_emotion
from tests.waiting import running

TEXTS = ["哈哈哈哈", "666666", "退钱！", "呜呜呜", "急急急", "包邮吗", "主播好", "哈哈"]


def config(**classifier: object) -> Config:
    cfg = Config()
    return replace(cfg, classifier=replace(ClassifierConfig(model="kw"), **classifier))  # type: ignore[arg-type]


async def test_counts_match_what_was_submitted() -> None:
    pipe = Pipeline(config(), FakeRegistry().get)
    got = pipe.classified.subscribe("test")
    async with running(pipe):
        for i in range(400):
            pipe.submit(ChatMessage.create(room="r", user=f"u{i}", text=TEXTS[i % len(TEXTS)]))
        assert await pipe.drain(timeout=5)
    snap = pipe.latest("r")
    assert snap is not None and snap.total_messages == 400
    assert got.qsize() == 400
    w = snap.window(180)
    expected = {e: 0.0 for e in INDEX}
    for i in range(400):
        expected[keyword_emotion(TEXTS[i % len(TEXTS)])] += 1
    # Identical texts from many users beyond the copy cap weigh less, so compare shares' ranking and messages.
    assert w.messages == 400
    assert snap.dominant == "happy"  # two of the eight texts are laughter
    assert all(w.counts[INDEX[e]] > 0 for e, n in expected.items() if n)


async def test_one_spammer_cannot_move_the_mood() -> None:
    pipe = Pipeline(config(), FakeRegistry().get)
    async with running(pipe):
        for i in range(50):
            pipe.submit(ChatMessage.create(room="r", user=f"viewer{i}", text=f"哈哈 {i}"))
        for i in range(500):
            pipe.submit(ChatMessage.create(room="r", user="troll", text=f"退钱 {i}"))
        assert await pipe.drain(timeout=5)
    snap = pipe.latest("r")
    assert snap is not None
    w = snap.window(10)
    assert w.counts[INDEX["angry"]] <= 3  # the troll's per-user cap
    assert snap.dominant == "happy"
    assert snap.flooded_messages == 497


async def test_rooms_are_separate() -> None:
    pipe = Pipeline(config(), FakeRegistry().get)
    async with running(pipe):
        for i in range(30):
            pipe.submit(ChatMessage.create(room="a", user=f"u{i}", text=f"哈哈{i}"))
            pipe.submit(ChatMessage.create(room="b", user=f"u{i}", text=f"退钱{i}"))
        assert await pipe.drain(timeout=5)
    a, b = pipe.latest("a"), pipe.latest("b")
    assert a is not None and b is not None
    assert (a.dominant, b.dominant) == ("happy", "angry")
    assert pipe.rooms() == ["a", "b"]


async def test_hot_swap_under_load_loses_no_message() -> None:
    m1, m2 = KeywordModel("kw"), KeywordModel("kw2")
    pipe = Pipeline(config(cache_size=0), FakeRegistry(m1, m2).get)
    got = pipe.classified.subscribe("test")
    async with running(pipe):
        for i in range(3000):
            pipe.submit(ChatMessage.create(room="r", user=f"u{i}", text=f"哈哈{i}"))
            if i == 1500:
                pipe.set_model("kw2")
            if i % 100 == 0:
                await asyncio.sleep(0)
        assert await pipe.drain(timeout=10)
    items = got.drain_nowait(10_000)
    assert len(items) == 3000
    assert {c.model_id for c in items} == {"kw", "kw2"}
    assert m1.texts_seen + m2.texts_seen == 3000
    assert pipe.stats()["dropped"] == 0


async def test_per_room_model_and_unknown_model_is_refused() -> None:
    pipe = Pipeline(config(), FakeRegistry(KeywordModel("kw"), KeywordModel("kw2")).get)
    pipe.set_model("kw2", room="vip")
    assert pipe.model_for("vip") == "kw2" and pipe.model_for("other") == "kw"
    from engine.classify.base import ModelError

    with pytest.raises(ModelError):
        pipe.set_model("nope")
    assert pipe.model_for("other") == "kw"


async def test_a_failing_model_is_counted_and_the_stage_survives() -> None:
    bad = KeywordModel("kw", fail=True)
    pipe = Pipeline(config(), FakeRegistry(bad).get)
    async with running(pipe):
        pipe.submit(ChatMessage.create(room="r", user="u", text="哈哈"))
        await asyncio.sleep(0.1)
        bad.fail = False
        pipe.submit(ChatMessage.create(room="r", user="u2", text="呜呜"))
        assert await pipe.drain(timeout=5)
    assert pipe.stats()["model_errors"] == 1
    assert pipe.counters.classified == 1


async def test_full_inbox_drops_oldest_and_counts() -> None:
    cfg = replace(config(), pipeline=replace(Config().pipeline, ingest_queue=10))
    pipe = Pipeline(cfg, FakeRegistry().get)
    for i in range(25):
        pipe.submit(ChatMessage.create(room="r", user=f"u{i}", text=f"t{i}"))
    assert pipe.stats()["ingest_dropped"] == 15
    got = pipe.classified.subscribe("t")
    async with running(pipe):
        assert await pipe.drain(timeout=5)
    assert [c.message.text for c in got.drain_nowait(100)] == [f"t{i}" for i in range(15, 25)]


async def test_confidence_floor_turns_unsure_readings_neutral() -> None:
    class Unsure(KeywordModel):
        def predict(self, texts):  # type: ignore[no-untyped-def]
            return [replace(p, confidence=0.3) for p in super().predict(texts)]

    pipe = Pipeline(config(confidence_floor=0.5), FakeRegistry(Unsure("kw")).get)
    got = pipe.classified.subscribe("t")
    async with running(pipe):
        pipe.submit(ChatMessage.create(room="r", user="u", text="退钱"))
        assert await pipe.drain(timeout=5)
    assert got.get_nowait().emotion == "neutral"
