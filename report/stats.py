"""Correlation statistics in numpy: Pearson and Spearman with confidence intervals, exact-t p-values,
bootstrap, and lagged cross-correlation with a circular-shift permutation test.

Written here rather than taken from scipy so the runtime needs only numpy; tests/test_report_stats.py
checks every function against scipy and against textbook values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

_Z975 = 1.959963984540054
"""The standard normal's 97.5 % quantile: two-sided 95 % intervals."""


@dataclass(frozen=True, slots=True)
class Correlation:
    """One correlation coefficient with its 95 % interval and two-sided p-value."""

    method: str
    r: float
    n: int
    lo: float
    hi: float
    p: float
    boot_lo: float = math.nan
    boot_hi: float = math.nan

    def as_dict(self) -> dict[str, float | int | str]:
        """JSON-friendly, NaN as None-compatible floats rounded for people."""
        return {
            "method": self.method,
            "r": _round(self.r),
            "n": self.n,
            "ci_low": _round(self.lo),
            "ci_high": _round(self.hi),
            "p": _round(self.p, 6),
            "bootstrap_ci_low": _round(self.boot_lo),
            "bootstrap_ci_high": _round(self.boot_hi),
        }


def _round(x: float, digits: int = 4) -> float:
    return round(x, digits) if math.isfinite(x) else math.nan


# -- special functions ---------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    # Lentz's continued fraction for the incomplete beta function (Numerical Recipes 6.4).
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if not math.isfinite(t):
        return 0.0 if math.isinf(t) else math.nan
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def normal_two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for the standard normal."""
    return math.erfc(abs(z) / math.sqrt(2.0))


# -- correlation ----------------------------------------------------------------------------------
def rankdata(x: Array) -> Array:
    """Ranks from 1, ties given their average rank (scipy's ``method='average'``)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # Boundaries of runs of equal values; each run gets the mean of the ranks it spans.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(xs)]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def _pearson_r(x: Array, y: Array) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float(xc @ xc) * float(yc @ yc))
    if den == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(xc @ yc) / den))


def _fisher_ci(r: float, n: int, se: float) -> tuple[float, float]:
    if not math.isfinite(r) or n <= 3:
        return math.nan, math.nan
    if abs(r) >= 1.0:
        return r, r
    z = math.atanh(r)
    return math.tanh(z - _Z975 * se), math.tanh(z + _Z975 * se)


def pearson(x: Array, y: Array) -> Correlation:
    """Pearson's r, its Fisher-z 95 % interval and the exact t-test p-value (as scipy.stats.pearsonr)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    r = _pearson_r(x, y) if n >= 2 else math.nan
    lo, hi = _fisher_ci(r, n, 1.0 / math.sqrt(n - 3)) if n > 3 else (math.nan, math.nan)
    return Correlation("pearson", r, n, lo, hi, _r_p(r, n))


def _r_p(r: float, n: int) -> float:
    if not math.isfinite(r) or n <= 2:
        return math.nan
    if abs(r) >= 1.0:
        return 0.0
    df = n - 2
    return t_two_sided_p(r * math.sqrt(df / (1.0 - r * r)), df)


def spearman(x: Array, y: Array, *, bootstrap: int = 2000, seed: int = 0) -> Correlation:
    """Spearman's rho; Fisher-z interval with the Bonett-Wright variance (1 + rho^2/2)/(n - 3), the
    t-approximation p-value (as scipy.stats.spearmanr), and a percentile bootstrap interval."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    if n < 2:
        return Correlation("spearman", math.nan, n, math.nan, math.nan, math.nan)
    r = _pearson_r(rankdata(x), rankdata(y))
    se = math.sqrt((1.0 + r * r / 2.0) / (n - 3)) if n > 3 and math.isfinite(r) else math.nan
    lo, hi = _fisher_ci(r, n, se) if n > 3 else (math.nan, math.nan)
    blo, bhi = bootstrap_spearman_ci(x, y, bootstrap, seed) if bootstrap and n > 3 else (math.nan, math.nan)
    return Correlation("spearman", r, n, lo, hi, _r_p(r, n), blo, bhi)


def bootstrap_spearman_ci(x: Array, y: Array, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile 95 % bootstrap interval of Spearman's rho (pairs resampled with replacement)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    idx = rng.integers(0, n, size=(n_boot, n))
    # Rank within each resample (ties from repeated pairs get average ranks, as in the statistic).
    rx = np.apply_along_axis(rankdata, 1, x[idx])
    ry = np.apply_along_axis(rankdata, 1, y[idx])
    rs = _rowwise_r(rx, ry)
    rs = rs[np.isfinite(rs)]
    if len(rs) < n_boot // 2:
        return math.nan, math.nan
    lo, hi = np.percentile(rs, [2.5, 97.5])
    return float(lo), float(hi)


def _rowwise_r(a: Array, b: Array) -> Array:
    ac = a - a.mean(axis=-1, keepdims=True)
    bc = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((ac * ac).sum(-1) * (bc * bc).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out: Array = (ac * bc).sum(-1) / den
    return out


# -- lags -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LagResult:
    """Cross-correlation of mood(t) with sales(t + lag) for lag = 0..max_lag minutes."""

    lags: tuple[int, ...]
    r: tuple[float, ...]
    n: tuple[int, ...]
    best_lag: int
    best_r: float
    p: float
    """Permutation p-value of the best r, the scan over all lags included (family-wise)."""
    permutations: int


def lagged_r(mood: Array, sales: Array, max_lag: int) -> tuple[Array, npt.NDArray[np.int64]]:
    """r and n of corr(mood[t], sales[t + k]) for k = 0..max_lag, skipping pairs where mood is NaN."""
    rs: Array = np.full(max_lag + 1, np.nan, dtype=np.float64)
    ns = np.zeros(max_lag + 1, dtype=np.int64)
    T = len(mood)
    for k in range(max_lag + 1):
        if T - k < 3:
            break
        a, b = mood[: T - k], sales[k:]
        ok = np.isfinite(a) & np.isfinite(b)
        ns[k] = int(ok.sum())
        if ns[k] >= 3:
            rs[k] = _pearson_r(a[ok], b[ok])
    return rs, ns


def lag_scan(mood: Array, sales: Array, max_lag: int, *, permutations: int = 999, seed: int = 0) -> LagResult:
    """The lag at which sales best follow mood, with a circular-shift permutation test.

    Shifting the sales series round in a circle keeps its own autocorrelation (bursts of orders stay
    bursts), unlike shuffling minutes, so the null distribution is honest for time series. The statistic
    is the maximum r over all lags, so scanning many lags is paid for in the p-value.
    """
    mood = np.asarray(mood, np.float64)
    sales = np.asarray(sales, np.float64)
    rs, ns = lagged_r(mood, sales, max_lag)
    finite = np.isfinite(rs)
    if not finite.any():
        return LagResult(
            tuple(range(max_lag + 1)), tuple(rs.tolist()), tuple(ns.tolist()), 0, math.nan, math.nan, 0
        )
    best = int(np.nanargmax(rs))
    observed = float(rs[best])
    T = len(sales)
    rng = np.random.default_rng(seed)
    lo_shift, hi_shift = max_lag + 1, T - max_lag - 1
    done = 0
    exceed = 0
    if hi_shift > lo_shift:
        # Every admissible shift when there are few, else a random sample of them.
        shifts = (
            np.arange(lo_shift, hi_shift)
            if hi_shift - lo_shift <= permutations
            else rng.integers(lo_shift, hi_shift, size=permutations)
        )
        for s in shifts:
            surr, _ = lagged_r(mood, np.roll(sales, int(s)), max_lag)
            if np.isfinite(surr).any() and float(np.nanmax(surr)) >= observed - 1e-12:
                exceed += 1
            done += 1
    p = (1 + exceed) / (1 + done) if done else math.nan
    return LagResult(
        tuple(range(max_lag + 1)),
        tuple(float(v) for v in rs),
        tuple(int(v) for v in ns),
        best,
        observed,
        p,
        done,
    )
