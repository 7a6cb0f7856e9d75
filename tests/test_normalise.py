"""The normaliser: one canonical form per message, identical for training and serving."""

from __future__ import annotations

import pytest

from engine.normalise import normalise, normalise_cached


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("哈哈哈哈哈哈哈哈", "哈哈哈"),
        ("６６６６６６６", "666"),  # full-width digits fold to ASCII, then the run is cut
        ("ＡＢＣ！！！！！", "abc!!!"),
        ("冲鸭冲鸭冲鸭冲鸭冲鸭", "冲鸭冲鸭冲鸭"),
        ("好看//@小明:真的吗//@小红:哈哈", "好看"),
        ("//@小明:真的吗//@小红:哈哈", "真的吗"),
        ("回复@主播: 谢谢", "谢谢"),
        ("[emot:dy115][emot:dy115]太好了[哭]", "太好了[哭]"),
        ("看这个 https://t.cn/abc 好", "看这个 好"),
        ("#双十一#买买买", "买买买"),
        ("a\u200bb\u202ec\u2066", "abc"),  # zero-width and bidi controls
        ("  多   空格\t\n ", "多 空格"),
        ("[emot:dy1]", ""),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_max_run_is_configurable() -> None:
    assert normalise("啊啊啊啊啊", max_run=2) == "啊啊"
    assert normalise("啊啊啊啊啊", max_run=0) == "啊啊啊啊啊"


def test_cached_matches_uncached() -> None:
    for t in ["哈哈哈哈哈", "ＡＢＣ", "//@x:y"]:
        assert normalise_cached(t) == normalise(t)


def test_hostile_input_does_not_explode() -> None:
    assert len(normalise("哈" * 1_000_000)) == 3
    assert normalise("\x00\x01\x02abc\x7f") == "abc"
    assert normalise("<script>alert(1)</script>") == "<script>alert(1)</script>"  # escaping is the page's job
