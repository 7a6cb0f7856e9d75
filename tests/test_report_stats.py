"""report/stats.py against scipy and textbook values: the report's numbers must be the standard ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from report import stats

scipy_stats = pytest.importorskip("scipy.stats")
scipy_special = pytest.importorskip("scipy.special")


def test_pearson_matches_textbook_and_scipy() -> None:
    x = np.array([1, 2, 3, 4, 5], float)
    y = np.array([2, 4, 5, 4, 5], float)
    c = stats.pearson(x, y)
    # r = 6 / sqrt(10 * 6) = 0.7745966...; p from t = r sqrt(3 / (1 - r^2)) with 3 df.
    assert c.r == pytest.approx(6 / math.sqrt(60), abs=1e-12)
    ref = scipy_stats.pearsonr(x, y)
    assert c.p == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (c.lo, c.hi) == (pytest.approx(ci.low, abs=1e-9), pytest.approx(ci.high, abs=1e-9))


def test_pearson_on_random_data_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    for n in (8, 30, 200):
        x = rng.normal(size=n)
        y = 0.4 * x + rng.normal(size=n)
        c = stats.pearson(x, y)
        ref = scipy_stats.pearsonr(x, y)
        assert c.r == pytest.approx(ref.statistic, abs=1e-12)
        assert c.p == pytest.approx(ref.pvalue, rel=1e-8)
        ci = ref.confidence_interval(0.95)
        assert c.lo == pytest.approx(ci.low, abs=1e-9)
        assert c.hi == pytest.approx(ci.high, abs=1e-9)


def test_spearman_with_ties_matches_scipy_and_its_interval_is_bonett_wright() -> None:
    x = np.array([1, 2, 2, 3, 4, 5, 5, 5, 6, 7, 8, 9], float)
    y = np.array([2, 1, 4, 3, 6, 5, 8, 7, 7, 9, 12, 10], float)
    c = stats.spearman(x, y, bootstrap=500, seed=3)
    ref = scipy_stats.spearmanr(x, y)
    assert c.r == pytest.approx(ref.statistic, abs=1e-12)
    assert c.p == pytest.approx(ref.pvalue, rel=1e-8)
    se = math.sqrt((1 + c.r**2 / 2) / (len(x) - 3))
    assert c.lo == pytest.approx(math.tanh(math.atanh(c.r) - 1.959963984540054 * se), abs=1e-12)
    assert c.hi == pytest.approx(math.tanh(math.atanh(c.r) + 1.959963984540054 * se), abs=1e-12)
    assert c.boot_lo < c.r < c.boot_hi <= 1.0


def test_bootstrap_interval_covers_the_truth_and_is_reproducible() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)  # population Spearman rho = (6/pi) asin(rho_p / 2), rho_p = 1/sqrt(2)
    truth = 6 / math.pi * math.asin(1 / math.sqrt(2) / 2)
    lo, hi = stats.bootstrap_spearman_ci(x, y, 1000, seed=9)
    assert lo < truth < hi
    assert (lo, hi) == stats.bootstrap_spearman_ci(x, y, 1000, seed=9)
    assert hi - lo < 0.15


def test_rankdata_and_special_functions_match_scipy() -> None:
    v = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0])
    np.testing.assert_allclose(stats.rankdata(v), scipy_stats.rankdata(v))
    for a, b, x in [(0.5, 0.5, 0.3), (2.0, 3.0, 0.7), (10.0, 0.5, 0.95), (50.0, 0.5, 0.5), (1.5, 20.0, 0.01)]:
        assert stats.betainc(a, b, x) == pytest.approx(scipy_special.betainc(a, b, x), rel=1e-10, abs=1e-14)
    for t, df in [(2.0, 5), (0.3, 100), (-4.5, 12), (1.96, 1e6)]:
        assert stats.t_two_sided_p(t, df) == pytest.approx(2 * scipy_stats.t.sf(abs(t), df), rel=1e-8)
    assert stats.normal_two_sided_p(1.959963984540054) == pytest.approx(0.05, abs=1e-12)


def test_degenerate_inputs_give_nan_not_errors() -> None:
    c = stats.pearson(np.array([1.0, 1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert math.isnan(c.r) and math.isnan(c.p)
    s = stats.spearman(np.array([1.0]), np.array([2.0]))
    assert math.isnan(s.r)
    perfect = stats.pearson(np.arange(10.0), 2 * np.arange(10.0))
    assert perfect.r == 1.0 and perfect.p == 0.0 and perfect.lo == perfect.hi == 1.0


def test_lag_scan_finds_a_planted_lag_and_pays_for_scanning() -> None:
    rng = np.random.default_rng(11)
    T, lag = 200, 4
    mood = rng.normal(size=T).cumsum() * 0.1 + rng.normal(size=T)
    sales = np.zeros(T)
    sales[lag:] = 3.0 * mood[:-lag]
    sales += rng.normal(scale=0.5, size=T)
    res = stats.lag_scan(mood, sales, 12, permutations=199, seed=2)
    assert res.best_lag == lag
    assert res.best_r > 0.9
    # Fewer admissible shifts (13..186) than permutations asked for: all 174 are used, none comes close.
    assert res.permutations == 174
    assert res.p == pytest.approx(1 / 175)
    assert res.n[lag] == T - lag
    # r at each lag is the plain Pearson r of the aligned pairs.
    assert res.r[lag] == pytest.approx(scipy_stats.pearsonr(mood[:-lag], sales[lag:]).statistic, abs=1e-12)


def test_lag_scan_on_unrelated_series_is_not_significant() -> None:
    rng = np.random.default_rng(12)
    mood, sales = rng.normal(size=150), rng.normal(size=150)
    res = stats.lag_scan(mood, sales, 10, permutations=299, seed=4)
    assert res.p > 0.05
    assert res.permutations == 128  # every shift from 11 to 138: exact rather than sampled
