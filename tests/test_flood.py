"""Flood control: one spammer or a copy-paste wave cannot move the room's mood."""

from __future__ import annotations

from engine.config import FloodConfig
from engine.flood import FloodControl


def test_one_users_burst_is_capped() -> None:
    f = FloodControl(FloodConfig(window_seconds=10, per_user_cap=3))
    weights = [f.weigh("r", "spammer", f"骗子{i}", i * 0.1)[0] for i in range(20)]
    assert sum(weights) == 3
    assert f.stats["r"].user_burst == 17


def test_user_cap_resets_after_the_window() -> None:
    f = FloodControl(FloodConfig(window_seconds=10, per_user_cap=1))
    assert f.weigh("r", "u", "a", 0.0)[0] == 1.0
    assert f.weigh("r", "u", "b", 5.0) == (0.0, "user_burst")
    assert f.weigh("r", "u", "c", 16.0)[0] == 1.0


def test_a_user_repeating_themself_counts_once() -> None:
    f = FloodControl(FloodConfig(per_user_cap=10))
    assert f.weigh("r", "u", "退钱", 0.0) == (1.0, "")
    assert f.weigh("r", "u", "退钱", 1.0) == (0.0, "user_repeat")


def test_copy_flood_grows_logarithmically_but_crowds_still_count() -> None:
    f = FloodControl(FloodConfig(same_text_cap=8))
    total = sum(f.weigh("r", f"v{i}", "666", 0.0)[0] for i in range(1000))
    # Harmonic tail: 8 + 8 * (H(1000) - H(8)) ~= 8 + 8 * 4.8; far below 1000, well above 8.
    assert 40 < total < 50


def test_rooms_are_independent_and_anonymous_users_only_face_the_copy_rule() -> None:
    f = FloodControl(FloodConfig(per_user_cap=1, same_text_cap=100))
    assert f.weigh("a", "u", "x", 0)[0] == 1.0
    assert f.weigh("b", "u", "x", 0)[0] == 1.0
    assert all(f.weigh("c", "", f"t{i}", 0)[0] == 1.0 for i in range(50))
