"""Builds a session's review from the database: one pass of SQL aggregates plus one streamed pass over
the messages (products, keyword baseline, peak windows), then statistics. Pure data out (a JSON-ready
dict); report/render.py turns it into HTML, CSV and JSON.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.content import Catalogue
from bot.products import ProductMatcher
from engine.emotions import EMOTIONS, INDEX, NEGATIVE_INDEXES
from engine.types import TriggerEvent
from report import stats
from report.data import ReportDB, session_id
from report.keywords import Tokenizer, WordCounts, log_odds
from report.orders import Order

Array = npt.NDArray[np.float64]
Progress = Callable[[str, float], None]
"""(what is happening, fraction done 0..1) - the CLI prints it, the dashboard shows it."""

POSITIVE = (INDEX["happy"], INDEX["excited"])
MIN_ORDERS = 5
MIN_MINUTES = 10
"""Below these the sales section says "too little data to conclude" instead of showing verdicts."""


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """Knobs of the analysis (defaults match ``[report]`` in config.toml)."""

    peak_z: float = 3.0
    """Robust z-score (median/MAD of the minute shares) a minute needs to be part of a peak or dip."""
    peak_min_lift: float = 0.08
    """...and at least this far (share points) from the session's typical minute."""
    peaks_per_emotion: int = 3
    examples: int = 4
    keywords: int = 6
    keyword_sample: int = 200_000
    """Messages tokenised for the baseline (a systematic sample beyond this; jieba is the slow part)."""
    window_cap: int = 20_000
    """Messages kept per peak window for its keywords and examples."""
    alpha0: float = 500.0
    max_lag_minutes: int = 15
    permutations: int = 999
    bootstrap: int = 2000
    tz: tzinfo | None = None
    """Zone for times shown to people (None: this machine's)."""
    seed: int = 0


@dataclass(slots=True)
class _Episode:
    emotion: int
    kind: str  # "peak" | "dip"
    start: int  # minute index, inclusive
    end: int  # exclusive
    peak: int
    share: float
    center: float
    z: float
    window: WordCounts = field(default_factory=WordCounts)
    candidates: list[tuple[float, str, float, str]] = field(default_factory=list)


def find_episodes(
    shares: Array, totals: Array, *, z_min: float, min_lift: float, kind: str, emotion: int = 0
) -> list[_Episode]:
    """Runs of minutes whose share sits far above (peak) or below (dip) the session's typical minute.

    Typical = median of the minute shares; spread = 1.4826 x MAD, floored by the binomial standard error
    at the median minute's volume (a perfectly steady session has MAD 0) and by one share point.
    """
    ok = np.isfinite(shares) & (
        totals >= max(5.0, 0.25 * float(np.median(totals[totals > 0] if (totals > 0).any() else [0])))
    )
    if ok.sum() < 3:
        return []
    s = shares[ok]
    center = float(np.median(s))
    mad = 1.4826 * float(np.median(np.abs(s - center)))
    n_med = float(np.median(totals[ok]))
    scale = max(mad, math.sqrt(max(center * (1 - center), 1e-4) / max(n_med, 1.0)), 0.01)
    sign = 1.0 if kind == "peak" else -1.0
    with np.errstate(invalid="ignore"):
        dev = sign * (shares - center)
        flag = ok & (dev >= min_lift) & (dev / scale >= z_min)
    out: list[_Episode] = []
    i, T = 0, len(shares)
    while i < T:
        if not flag[i]:
            i += 1
            continue
        j = i
        while j < T and flag[j]:
            j += 1
        seg = dev[i:j]
        k = i + int(np.nanargmax(seg))
        out.append(_Episode(emotion, kind, i, j, k, float(shares[k]), center, float(dev[k] / scale)))
        i = j
    return out


def _fmt_clock(ts: float, tz: tzinfo | None) -> str:
    return (
        datetime.fromtimestamp(ts, tz).strftime("%H:%M")
        if tz
        else datetime.fromtimestamp(ts).strftime("%H:%M")
    )


def _fmt_datetime(ts: float, tz: tzinfo | None) -> str:
    dt = datetime.fromtimestamp(ts, tz) if tz else datetime.fromtimestamp(ts).astimezone()
    return dt.strftime("%Y-%m-%d %H:%M %Z").strip()


def _duration(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min"


def categorise(ev: TriggerEvent) -> str:
    """Timeline lane of an event: scene, alert, calm, bot or obs."""
    k = ev.kind
    if k.startswith("bot"):
        return "bot"
    if k in {"negative_spike", "rule_fired"}:
        return "alert"
    if k in {"calm", "rule_ended"}:
        return "calm"
    if k in {"obs_action", "obs_dry_run"} and "scene" in ev.message:
        return "scene"
    return "obs"


def _r(x: float, digits: int = 4) -> float | None:
    return round(float(x), digits) if x is not None and math.isfinite(float(x)) else None


class _ProductTally:
    __slots__ = ("emotions", "examples", "mentions", "per_minute")

    def __init__(self, T: int) -> None:
        self.mentions = 0
        self.emotions = np.zeros(len(EMOTIONS))
        self.per_minute = np.zeros(T)
        self.examples: list[tuple[float, str, float, str]] = []


def build_report(
    db: ReportDB,
    room: str,
    start: int,
    end: int,
    *,
    catalogue: Catalogue | None = None,
    orders: Sequence[Order] | None = None,
    options: ReportOptions | None = None,
    progress: Progress | None = None,
    tokenizer: Tokenizer | None = None,
) -> dict[str, Any]:
    """The review of ``room`` over the whole minutes [start, end), as a JSON-ready dict."""
    opt = options or ReportOptions()
    say = progress or (lambda _what, _f: None)
    tz = opt.tz
    t0 = time.perf_counter()
    say("reading minutes and events", 0.0)
    minutes, counts, messages = db.minutes(room, start, end)
    T = len(minutes)
    totals = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = counts / totals[:, None]
    shares[totals <= 0] = np.nan
    events = db.events(room, start, end)

    # -- peaks and dips from the per-minute shares ------------------------------------------------
    episodes: list[_Episode] = []
    for e in range(len(EMOTIONS)):
        peaks = find_episodes(
            shares[:, e], totals, z_min=opt.peak_z, min_lift=opt.peak_min_lift, kind="peak", emotion=e
        )
        dips = find_episodes(
            shares[:, e], totals, z_min=opt.peak_z, min_lift=opt.peak_min_lift, kind="dip", emotion=e
        )
        peaks.sort(key=lambda p: -(p.share - p.center))
        dips.sort(key=lambda p: -(p.center - p.share))
        episodes += peaks[: opt.peaks_per_emotion] + dips[: opt.peaks_per_emotion]
    by_minute: dict[int, list[_Episode]] = {}
    for ep in episodes:
        for i in range(ep.start, ep.end):
            by_minute.setdefault(i, []).append(ep)

    # -- one streamed pass over the messages ---------------------------------------------------------
    stored = db.count_messages(room, start, end)
    step = max(1, math.ceil(stored / max(1, opt.keyword_sample)))
    tok = tokenizer or Tokenizer()
    baseline = WordCounts()
    matcher = ProductMatcher(catalogue) if catalogue is not None else None
    mention_cache: dict[str, list[str]] = {}
    tallies: dict[str, _ProductTally] = {}
    seen = 0
    report_every = max(10_000, stored // 100)
    for ts, text, emotion, conf, weight, user, _id in db.stream_messages(room, start, end):
        seen += 1
        if seen % report_every == 0:
            say(f"reading messages {seen:,}/{stored:,}", 0.05 + 0.8 * seen / max(1, stored))
        ei = INDEX.get(emotion, INDEX["neutral"])
        i = int((ts - start) // 60)
        if seen % step == 0:
            baseline.add(tok.words(text), weight)
        for ep in by_minute.get(i, ()):
            if ep.window.messages >= opt.window_cap:
                continue
            # A peak's words come from its own emotion's messages; a dip's from everything said instead.
            if ep.kind == "peak" and ei != ep.emotion:
                continue
            words = tok.words(text)
            ep.window.add(words, weight)
            if weight >= 1.0 and ei == ep.emotion and ep.kind == "peak":
                ep.candidates.append((conf, text, ts, user))
        if matcher is not None:
            found = mention_cache.get(text)
            if found is None:
                found = matcher.mentions(text)
                if len(mention_cache) < 200_000:
                    mention_cache[text] = found
            for pid in found:
                tl = tallies.get(pid)
                if tl is None:
                    tl = tallies[pid] = _ProductTally(T)
                tl.mentions += 1
                tl.emotions[ei] += weight
                if 0 <= i < T:
                    tl.per_minute[i] += 1
                if weight >= 1.0 and len(tl.examples) < 400:
                    tl.examples.append((conf, text, ts, emotion))
    say("keywords and statistics", 0.88)

    def clock(idx: int) -> str:
        return _fmt_clock(float(minutes[idx]), tz) if 0 <= idx < T else ""

    # -- episodes: keywords and real examples -----------------------------------------------------------
    ep_out: list[dict[str, Any]] = []
    for ep in episodes:
        kws = log_odds(ep.window, baseline, alpha0=opt.alpha0, top=opt.keywords)
        kw_words = [k.word for k in kws]
        examples: list[dict[str, Any]] = []
        seen_text: set[str] = set()
        seen_user: set[str] = set()
        ranked = sorted(ep.candidates, key=lambda c: (-sum(w in c[1] for w in kw_words[:3]), -c[0], c[2]))
        for conf, text, ts, user in ranked:
            key = text.strip().lower()
            if key in seen_text or (user and user in seen_user):
                continue
            seen_text.add(key)
            if user:
                seen_user.add(user)
            examples.append(
                {"ts": round(ts, 3), "time": _fmt_clock(ts, tz), "text": text, "confidence": _r(conf, 3)}
            )
            if len(examples) >= opt.examples:
                break
        ep_out.append(
            {
                "emotion": EMOTIONS[ep.emotion],
                "kind": ep.kind,
                "start": int(minutes[ep.start]),
                "end": int(minutes[ep.end - 1]) + 60,
                "start_index": ep.start,
                "end_index": ep.end,
                "peak_minute": int(minutes[ep.peak]),
                "peak_index": ep.peak,
                "time": clock(ep.start) + (f"–{_fmt_clock(float(minutes[ep.end - 1]) + 60, tz)}"),
                "share": _r(ep.share),
                "typical": _r(ep.center),
                "lift": _r(ep.share - ep.center),
                "z": _r(ep.z, 2),
                "messages": int(messages[ep.start : ep.end].sum()),
                "keywords": [
                    {"word": k.word, "z": _r(k.z, 2), "count": _r(k.count, 1), "share": _r(k.share, 3)}
                    for k in kws
                ],
                "examples": examples,
                "events": [
                    _event_dict(ev, start, tz)
                    for ev in events
                    if minutes[ep.start] - 120 <= ev.ts < minutes[ep.end - 1] + 60
                ],
            }
        )
    ep_out.sort(key=lambda d: (d["start"], d["emotion"]))

    # -- products ----------------------------------------------------------------------------------
    overall = counts.sum(axis=0)
    overall_share = overall / overall.sum() if overall.sum() > 0 else np.full(len(EMOTIONS), np.nan)
    products: list[dict[str, Any]] = []
    for pid, tl in sorted(tallies.items(), key=lambda kv: -kv[1].mentions):
        prod = catalogue.get(pid) if catalogue is not None else None
        em = tl.emotions / tl.emotions.sum() if tl.emotions.sum() > 0 else tl.emotions
        # The room around a mention: the shares of the minutes it was mentioned in, mention-weighted.
        w = tl.per_minute
        okm = np.isfinite(shares).all(axis=1) & (w > 0)
        around = (
            (shares[okm] * w[okm, None]).sum(axis=0) / w[okm].sum()
            if okm.any()
            else np.full(len(EMOTIONS), np.nan)
        )
        ex = sorted(tl.examples, key=lambda c: (-c[0], c[2]))
        picked: list[dict[str, Any]] = []
        texts: set[str] = set()
        for conf, text, ts, emo in ex:
            if text in texts:
                continue
            texts.add(text)
            picked.append(
                {"time": _fmt_clock(ts, tz), "text": text, "emotion": emo, "confidence": _r(conf, 3)}
            )
            if len(picked) >= 3:
                break
        peak_i = int(np.argmax(w)) if w.any() else 0
        products.append(
            {
                "id": pid,
                "name": prod.name if prod else pid,
                "mentions": tl.mentions,
                "emotions": {e: _r(float(em[j])) for j, e in enumerate(EMOTIONS)},
                "dominant": EMOTIONS[int(np.argmax(tl.emotions))],
                "room_around": {e: _r(float(around[j])) for j, e in enumerate(EMOTIONS)},
                "room_positive_lift": _r(
                    float(around[list(POSITIVE)].sum() - overall_share[list(POSITIVE)].sum())
                ),
                "per_minute": [int(v) for v in w],
                "peak_minute": int(minutes[peak_i]) if T else start,
                "peak_time": clock(peak_i),
                "examples": picked,
                "sales": None,
            }
        )

    # -- orders --------------------------------------------------------------------------------------
    positive = shares[:, list(POSITIVE)].sum(axis=1)
    sales_block = _sales(
        orders,
        minutes,
        positive,
        shares,
        totals,
        tallies,
        catalogue,
        products,
        opt,
        clock,
        events,
        start,
        end,
    )

    # -- summary -----------------------------------------------------------------------------------------
    dominant = int(np.nanargmax(overall)) if overall.sum() > 0 else INDEX["neutral"]
    busiest = int(np.argmax(messages)) if T else 0
    neg = shares[:, list(NEGATIVE_INDEXES)].sum(axis=1)
    summary = _summary(
        ep_out,
        products,
        sales_block,
        overall_share,
        dominant,
        int(messages.sum()),
        end - start,
        busiest,
        messages,
        clock,
    )
    say("done", 1.0)
    return {
        "room": room,
        "session": session_id(start),
        "start": start,
        "end": end,
        "start_text": _fmt_datetime(start, tz),
        "end_text": _fmt_datetime(end, tz),
        "duration": _duration(end - start),
        "generated": time.time(),
        "seconds_taken": round(time.perf_counter() - t0, 2),
        "messages": int(messages.sum()),
        "stored_messages": stored,
        "weighted": _r(float(totals.sum()), 1),
        "emotions": list(EMOTIONS),
        "overall": {e: _r(float(overall_share[j])) for j, e in enumerate(EMOTIONS)},
        "dominant": EMOTIONS[dominant],
        "minutes": {
            "ts": [int(m) for m in minutes],
            "labels": [clock(i) for i in range(T)],
            "messages": [int(m) for m in messages],
            "counts": [[round(float(c), 3) for c in row] for row in counts],
            "shares": [[_r(float(c)) for c in row] for row in shares],
            "positive": [_r(float(v)) for v in positive],
            "negative": [_r(float(v)) for v in neg],
        },
        "episodes": ep_out,
        "products": products,
        "events": [_event_dict(ev, start, tz) for ev in events],
        "sales": sales_block,
        "summary": summary,
        "method": {
            "session_gap": "sessions are split at silences of [report] session_gap_minutes",
            "peaks": f"robust z >= {opt.peak_z} (median/MAD of minute shares) and >= "
            f"{opt.peak_min_lift:.0%} from typical",
            "keywords": "jieba words, weighted log-odds with informative Dirichlet prior "
            f"(alpha0={opt.alpha0:g}), z >= 1.96",
            "keyword_baseline_messages": _r(baseline.messages, 1),
        },
    }


def _event_dict(ev: TriggerEvent, start: int, tz: tzinfo | None) -> dict[str, Any]:
    return {
        "ts": round(ev.ts, 3),
        "index": (ev.ts - start) / 60.0,
        "time": _fmt_clock(ev.ts, tz),
        "kind": ev.kind,
        "category": categorise(ev),
        "message": ev.message,
    }


def _sales(
    orders: Sequence[Order] | None,
    minutes: npt.NDArray[np.int64],
    positive: Array,
    shares: Array,
    totals: Array,
    tallies: dict[str, _ProductTally],
    catalogue: Catalogue | None,
    products: list[dict[str, Any]],
    opt: ReportOptions,
    clock: Callable[[int], str],
    events: list[TriggerEvent],
    start: int,
    end: int,
) -> dict[str, Any]:
    T = len(minutes)
    block: dict[str, Any] = {"has_orders": orders is not None}
    amount = np.zeros(T)
    qty = np.zeros(T)
    n_in = 0
    outside = 0
    per_product: dict[str, float] = {}
    if orders is not None:
        matcher = ProductMatcher(catalogue) if catalogue is not None else None
        for o in orders:
            i = int((o.ts - start) // 60)
            if not (0 <= i < T):
                outside += 1
                continue
            n_in += 1
            amount[i] += o.amount
            qty[i] += o.quantity
            pid = o.product
            if catalogue is not None and catalogue.get(pid) is None and matcher is not None:
                found = matcher.mentions(o.product)
                pid = found[0] if found else o.product
            per_product[pid] = per_product.get(pid, 0.0) + o.amount
        for p in products:
            p["sales"] = _r(per_product.get(p["id"], 0.0), 2)
    block.update(
        {
            "orders": n_in,
            "orders_outside": outside,
            "amount_total": _r(float(amount.sum()), 2),
            "quantity_total": _r(float(qty.sum()), 2),
            "per_minute_amount": [round(float(a), 2) for a in amount],
            "per_product": {k: round(v, 2) for k, v in sorted(per_product.items(), key=lambda kv: -kv[1])},
        }
    )
    valid = np.isfinite(positive) & (totals >= 3)
    n_valid = int(valid.sum())
    block["minutes_with_chat"] = n_valid
    enough = orders is not None and n_in >= MIN_ORDERS and n_valid >= MIN_MINUTES
    block["enough"] = bool(enough)
    lag_used = 0
    if orders is None:
        block["verdict"] = "No orders file: add --orders orders.csv to see how mood and sales move together."
    elif not enough:
        block["verdict"] = (
            f"Too little data to conclude: {n_in} orders over {n_valid} minutes with chat "
            f"(need at least {MIN_ORDERS} orders and {MIN_MINUTES} minutes)."
        )
    else:
        mood = np.where(valid, positive, np.nan)
        ok = np.isfinite(mood)
        pear = stats.pearson(mood[ok], amount[ok])
        spear = stats.spearman(mood[ok], amount[ok], bootstrap=opt.bootstrap, seed=opt.seed)
        max_lag = max(0, min(opt.max_lag_minutes, T // 4))
        lag = stats.lag_scan(mood, amount, max_lag, permutations=opt.permutations, seed=opt.seed)
        significant = math.isfinite(lag.p) and lag.p < 0.05 and lag.best_r > 0
        lag_used = lag.best_lag if significant else 0
        # The relation at the best lag, with its own intervals (descriptive: the lag was chosen on this data).
        a, b = mood[: T - lag.best_lag], amount[lag.best_lag :]
        okl = np.isfinite(a)
        at_lag_p = stats.pearson(a[okl], b[okl])
        at_lag_s = stats.spearman(a[okl], b[okl], bootstrap=opt.bootstrap, seed=opt.seed)
        per_emotion = {}
        for j, e in enumerate(EMOTIONS):
            x = np.where(valid, shares[:, j], np.nan)[: T - lag_used]
            y = amount[lag_used:]
            okx = np.isfinite(x)
            c = stats.spearman(x[okx], y[okx], bootstrap=0)
            per_emotion[e] = {"rho": _r(c.r), "ci_low": _r(c.lo), "ci_high": _r(c.hi), "p": _r(c.p, 6)}
        block.update(
            {
                "mood_metric": "share of happy + excited messages per minute",
                "same_minute": {"pearson": pear.as_dict(), "spearman": spear.as_dict()},
                "lag": {
                    "lags": list(lag.lags),
                    "r": [_r(v) for v in lag.r],
                    "n": list(lag.n),
                    "best_lag": lag.best_lag,
                    "best_r": _r(lag.best_r),
                    "p": _r(lag.p, 4),
                    "permutations": lag.permutations,
                    "significant": significant,
                    "pearson": at_lag_p.as_dict(),
                    "spearman": at_lag_s.as_dict(),
                },
                "per_emotion": per_emotion,
            }
        )
        if significant:
            block["verdict"] = (
                f"Sales follow the mood by about {lag.best_lag} min: when the share of happy and excited "
                f"chat "
                f"rises, orders rise {lag.best_lag} min later (r = {lag.best_r:.2f}, 95 % CI "
                f"{at_lag_p.lo:.2f} to {at_lag_p.hi:.2f}; permutation p = {lag.p:.3f} over lags 0–{max_lag})."
            )
        else:
            block["verdict"] = (
                f"No reliable link between mood and sales in this session: the best lag ({lag.best_lag} min, "
                f"r = {lag.best_r:.2f}) is what chance gives too (permutation p = {lag.p:.2f})."
            )
    block["lag_used"] = lag_used
    block["moments"] = _moments(
        positive,
        totals,
        amount if orders is not None else None,
        lag_used,
        tallies,
        catalogue,
        clock,
        events,
        minutes,
    )
    return block


def _moments(
    positive: Array,
    totals: Array,
    amount: Array | None,
    lag: int,
    tallies: dict[str, _ProductTally],
    catalogue: Catalogue | None,
    clock: Callable[[int], str],
    events: list[TriggerEvent],
    minutes: npt.NDArray[np.int64],
) -> list[dict[str, Any]]:
    """The three best promotion moments: the most positive busy minutes, at least 10 minutes apart."""
    T = len(positive)
    if T == 0:
        return []
    busy = (
        totals >= max(3.0, 0.5 * float(np.median(totals[totals > 0]))) if (totals > 0).any() else totals > 0
    )
    fin = positive[np.isfinite(positive)]
    if not len(fin):
        return []
    # Only minutes that stand out from the session's typical positive share count as moments.
    typical = float(np.median(fin))
    bar = typical + max(0.05, 2 * 1.4826 * float(np.median(np.abs(fin - typical))))
    score = np.where(busy & np.isfinite(positive) & (positive >= bar), positive, -1.0)
    order = np.argsort(-score, kind="stable")
    chosen: list[int] = []
    for i in order:
        if score[i] < 0 or len(chosen) >= 3:
            break
        if all(abs(int(i) - c) >= 10 for c in chosen):
            chosen.append(int(i))
    avg = float(amount.mean()) if amount is not None and T else 0.0
    out: list[dict[str, Any]] = []
    for i in chosen:
        top = max(tallies.items(), key=lambda kv: kv[1].per_minute[i], default=None)
        pid = top[0] if top and top[1].per_minute[i] > 0 else ""
        prod = catalogue.get(pid) if catalogue is not None and pid else None
        m: dict[str, Any] = {
            "index": i,
            "minute": int(minutes[i]),
            "time": clock(i),
            "positive": _r(float(positive[i])),
            "messages": int(totals[i]),
            "product": prod.name if prod else pid,
            "events": [ev.message for ev in events if minutes[i] - 120 <= ev.ts < minutes[i] + 60][:3],
        }
        if amount is not None:
            lo, hi = i + lag, min(T, i + lag + 3)
            got = float(amount[lo:hi].sum()) if lo < T else 0.0
            m["sales_after"] = _r(got, 2)
            m["sales_window"] = f"{clock(lo)}–{clock(hi - 1)}" if lo < T else ""
            m["sales_vs_average"] = _r(got / (avg * (hi - lo)), 2) if avg > 0 and hi > lo else None
        out.append(m)
    return out


def _summary(
    episodes: list[dict[str, Any]],
    products: list[dict[str, Any]],
    sales: dict[str, Any],
    overall: Array,
    dominant: int,
    n_messages: int,
    seconds: int,
    busiest: int,
    messages: npt.NDArray[np.int64],
    clock: Callable[[int], str],
) -> dict[str, Any]:
    """The ten-second version: headline, best and worst moment, hottest product, the sales link."""
    peaks = [e for e in episodes if e["kind"] == "peak"]
    good = [e for e in peaks if e["emotion"] in ("excited", "happy")]
    bad = [e for e in peaks if e["emotion"] in ("angry", "sad", "anxious")]
    best = max(good, key=lambda e: e["lift"], default=None)
    worst = max(bad, key=lambda e: e["lift"], default=None)
    lines = [
        f"{_duration(seconds)}, {n_messages:,} messages, mostly {EMOTIONS[dominant]} "
        f"({overall[dominant]:.0%})."
        if n_messages
        else "No chat in this session."
    ]
    if best:
        kw = ", ".join(k["word"] for k in best["keywords"][:3])
        lines.append(
            f"Best moment {best['time']}: {best['share']:.0%} {best['emotion']}"
            + (f" ({kw})." if kw else ".")
        )
    if worst:
        kw = ", ".join(k["word"] for k in worst["keywords"][:3])
        lines.append(
            f"Worst moment {worst['time']}: {worst['share']:.0%} {worst['emotion']}"
            + (f" over {kw}." if kw else ".")
        )
    top = products[0] if products else None
    if top:
        lines.append(
            f"Most talked-about product: {top['name']} ({top['mentions']:,} mentions, mostly "
            f"{top['dominant']})."
        )
    if sales.get("has_orders"):
        lines.append(str(sales.get("verdict", "")))
    return {
        "headline": lines[0],
        "lines": lines,
        "best": best,
        "worst": worst,
        "top_product": top,
        "busiest_time": clock(busiest),
        "busiest_messages": int(messages[busiest]) if len(messages) else 0,
    }
