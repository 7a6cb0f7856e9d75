"""The report's charts as inline SVG strings, drawn server-side so the file renders with no script and no
network: stacked timeline (counts and shares) with event and sales lanes, heatmap, lag bars, sparklines.

Every piece of text that came from data (chat, event messages, product names) goes through ``escape``.
No ``style`` attributes: presentation attributes only, so the report's strict CSP holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

STACK_ORDER = ("angry", "sad", "anxious", "neutral", "happy", "excited")
"""Bottom to top: negative moods sit on the axis where a rise is easiest to see, positive ones on top."""
EVENT_LANES = ("scene", "alert", "calm", "bot", "obs")
EVENT_COLORS = {"scene": "#7c4dff", "alert": "#e53935", "calm": "#2e7d32", "bot": "#0288d1", "obs": "#9e9e9e"}
EVENT_LABELS = {
    "scene": "scene switch",
    "alert": "alert",
    "calm": "calm again",
    "bot": "bot post",
    "obs": "OBS",
}

W = 1100
LEFT = 86
RIGHT = 16


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _x(i: float, T: int) -> float:
    return LEFT + (W - LEFT - RIGHT) * (i / max(T, 1))


def _tick_step(T: int) -> int:
    for step in (1, 2, 5, 10, 15, 30, 60, 120):
        if T / step <= 14:
            return step
    return 240


def _axis(labels: Sequence[str], y: float) -> str:
    T = len(labels)
    step = _tick_step(T)
    parts = [f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{_f(y)}" y2="{_f(y)}"/>']
    for i in range(0, T, step):
        x = _x(i, T)
        parts.append(f'<line class="tick" x1="{_f(x)}" x2="{_f(x)}" y1="{_f(y)}" y2="{_f(y + 4)}"/>')
        parts.append(
            f'<text class="tick-label" x="{_f(x)}" y="{_f(y + 16)}" '
            f'text-anchor="middle">{escape(labels[i])}</text>'
        )
    return "".join(parts)


def _stack_paths(
    values: Sequence[Sequence[float]],
    emotions: Sequence[str],
    colors: Mapping[str, str],
    top: float,
    height: float,
    vmax: float,
) -> str:
    T = len(values)
    order = [emotions.index(e) for e in STACK_ORDER]
    base = [0.0] * T
    out = []
    for j in order:
        lower = list(base)
        upper = [
            base[i] + (values[i][j] if values[i][j] is not None and math.isfinite(values[i][j]) else 0.0)
            for i in range(T)
        ]
        base = upper

        def y(v: float) -> float:
            return top + height - height * (v / vmax if vmax > 0 else 0.0)

        # Each minute is a flat step [i, i+1): the minute's value, not an interpolation between minutes.
        pts_up: list[str] = []
        pts_down: list[str] = []
        for i in range(T):
            x0, x1 = _x(i, T), _x(i + 1, T)
            pts_up += [f"{_f(x0)},{_f(y(upper[i]))}", f"{_f(x1)},{_f(y(upper[i]))}"]
            pts_down += [f"{_f(x1)},{_f(y(lower[i]))}", f"{_f(x0)},{_f(y(lower[i]))}"]
        d = "M" + " L".join(pts_up + pts_down[::-1]) + " Z" if T else ""
        e = emotions[j]
        out.append(
            f'<path class="series" data-emotion="{e}" fill="{colors[e]}" d="{d}"><title>{e}</title></path>'
        )
    return "".join(out)


def timeline(report: Mapping[str, Any], colors: Mapping[str, str]) -> Markup:
    """Stacked per-minute emotions (counts; shares in a second group), events above, sales below."""
    mins = report["minutes"]
    labels: list[str] = mins["labels"]
    T = len(labels)
    emotions: list[str] = report["emotions"]
    has_sales = bool(report["sales"].get("has_orders"))
    ev_h = 16 * len(EVENT_LANES) + 8
    top = ev_h + 10
    height = 280
    sales_h = 70 if has_sales else 0
    total_h = top + height + (sales_h + 14 if has_sales else 0) + 30
    parts = [
        f'<svg id="timeline" class="chart" viewBox="0 0 {W} {total_h}" width="100%" role="img" '
        f'aria-label="emotions per minute" data-minutes="{T}" data-left="{LEFT}" data-right="{RIGHT}" '
        f'data-width="{W}">'
    ]
    # Event lanes: one row per kind, a marker per event and a faint line down through the chart.
    for r, lane in enumerate(EVENT_LANES):
        y = 8 + r * 16
        parts.append(
            f'<text class="lane-label" x="{LEFT - 6}" y="{y + 4}" '
            f'text-anchor="end">{EVENT_LABELS[lane]}</text>'
        )
        parts.append(f'<line class="lane" x1="{LEFT}" x2="{W - RIGHT}" y1="{y}" y2="{y}"/>')
    for ev in report["events"]:
        cat = ev["category"]
        r = EVENT_LANES.index(cat)
        x = _x(float(ev["index"]), T)
        y = 8 + r * 16
        color = EVENT_COLORS[cat]
        title = escape(f"{ev['time']} {EVENT_LABELS[cat]}: {ev['message']}")
        parts.append(
            f'<g class="event" data-category="{cat}"><title>{title}</title>'
            f'<line class="event-line" x1="{_f(x)}" x2="{_f(x)}" y1="{y}" y2="{top + height}" '
            f'stroke="{color}"/>'
            f'<circle cx="{_f(x)}" cy="{y}" r="5" fill="{color}"/></g>'
        )
    counts = mins["counts"]
    vmax = max((sum(row) for row in counts), default=0.0) * 1.08
    parts.append(
        f'<g class="mode" data-mode="counts">{_stack_paths(counts, emotions, colors, top, height, vmax)}'
    )
    # y grid for counts
    for frac in (0.25, 0.5, 0.75, 1.0):
        gy = top + height - height * frac
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{_f(gy)}" y2="{_f(gy)}"/>')
        parts.append(
            f'<text class="y-label" x="{LEFT - 6}" y="{_f(gy + 4)}" '
            f'text-anchor="end">{vmax * frac:.0f}</text>'
        )
    parts.append("</g>")
    shares = [[v if v is not None else 0.0 for v in row] for row in mins["shares"]]
    parts.append(
        f'<g class="mode" data-mode="shares" '
        f'visibility="hidden">{_stack_paths(shares, emotions, colors, top, height, 1.0)}'
    )
    for frac in (0.25, 0.5, 0.75, 1.0):
        gy = top + height - height * frac
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{_f(gy)}" y2="{_f(gy)}"/>')
        parts.append(
            f'<text class="y-label" x="{LEFT - 6}" y="{_f(gy + 4)}" text-anchor="end">{frac:.0%}</text>'
        )
    parts.append("</g>")
    # Peak labels
    for ep in report["episodes"]:
        if ep["kind"] != "peak":
            continue
        x = _x(ep["peak_index"] + 0.5, T)
        parts.append(
            f'<g class="peak-mark"><title>{escape(ep["time"])} {ep["emotion"]} {ep["share"]:.0%}</title>'
            f'<path d="M{_f(x - 5)},{top - 2} L{_f(x + 5)},{top - 2} L{_f(x)},{top + 6} Z" '
            f'fill="{colors[ep["emotion"]]}"/></g>'
        )
    y_axis = top + height
    if has_sales:
        amount = report["sales"]["per_minute_amount"]
        smax = max(amount, default=0.0) or 1.0
        sy = top + height + 14
        parts.append(f'<text class="lane-label" x="{LEFT - 6}" y="{sy + 12}" text-anchor="end">sales</text>')
        parts.append('<g class="sales">')
        bw = (W - LEFT - RIGHT) / max(T, 1)
        for i, a in enumerate(amount):
            if a <= 0:
                continue
            h = sales_h * a / smax
            parts.append(
                f'<rect class="sales-bar" x="{_f(_x(i, T))}" y="{_f(sy + sales_h - h)}" '
                f'width="{_f(max(bw - 0.5, 0.5))}" '
                f'height="{_f(h)}"><title>{escape(labels[i])}: {a:,.2f}</title></rect>'
            )
        parts.append("</g>")
        y_axis = sy + sales_h
    parts.append(_axis(labels, y_axis))
    parts.append(
        f'<line id="crosshair" x1="0" x2="0" y1="{top}" y2="{y_axis}" visibility="hidden"/>'
        f'<rect id="timeline-hit" x="{LEFT}" y="{top}" width="{W - LEFT - RIGHT}" height="{y_axis - top}" '
        f'fill="transparent"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def heatmap(report: Mapping[str, Any], colors: Mapping[str, str]) -> Markup:
    """Minutes across, emotions down; each cell's opacity is its share relative to that row's maximum."""
    mins = report["minutes"]
    labels: list[str] = mins["labels"]
    T = len(labels)
    emotions: list[str] = report["emotions"]
    row_h = 26
    h = row_h * len(emotions) + 30
    parts = [
        f'<svg id="heatmap" class="chart" viewBox="0 0 {W} {h}" width="100%" role="img" aria-label="minute '
        f'by emotion heatmap">'
    ]
    cw = (W - LEFT - RIGHT) / max(T, 1)
    for r, e in enumerate(emotions):
        col = [row[r] for row in mins["shares"]]
        finite = [v for v in col if v is not None]
        # Darker = more of this emotion than in the row's typical (median) minute: a flat row stays pale,
        # so the eye goes to the minutes that moved, not to the emotions that are always there.
        typical = sorted(finite)[len(finite) // 2] if finite else 0.0
        hi = max(finite, default=0.0)
        span = hi - typical if hi - typical >= 0.02 else 0.0
        y = r * row_h
        parts.append(
            f'<text class="lane-label" x="{LEFT - 6}" y="{y + row_h / 2 + 4}" text-anchor="end">{e}</text>'
        )
        parts.append(f'<g class="heat-row" data-emotion="{e}">')
        for i, v in enumerate(col):
            if v is None:
                continue
            op = 0.12 + 0.88 * max(0.0, (v - typical) / span) if span else 0.12
            parts.append(
                f'<rect x="{_f(_x(i, T))}" y="{y + 1}" width="{_f(cw + 0.3)}" height="{row_h - 2}" '
                f'fill="{colors[e]}" '
                f'fill-opacity="{op:.2f}"><title>{escape(labels[i])} {e} {v:.0%}</title></rect>'
            )
        parts.append("</g>")
    parts.append(_axis(labels, row_h * len(emotions) + 2))
    parts.append("</svg>")
    return Markup("".join(parts))


def lag_chart(lag: Mapping[str, Any]) -> Markup:
    """Bars of r at each lag (minutes), the best one highlighted, with the ±1.96/sqrt(n) chance band."""
    lags: list[int] = lag["lags"]
    rs: list[float | None] = lag["r"]
    ns: list[int] = lag["n"]
    w, h, left, pad = 520, 200, 40, 20
    amp = h / 2  # r = 1 reaches this far from the zero line
    mid = amp + 8
    h += 16
    bw = (w - left - pad) / max(len(lags), 1)
    parts = [
        f'<svg id="lag-chart" class="chart small" viewBox="0 0 {w} {h + 30}" width="100%" role="img" '
        f'aria-label="cross-correlation by lag">'
    ]
    n = max(ns) if ns else 0
    if n > 3:
        band = 1.959963984540054 / math.sqrt(n)
        yb = amp * band
        parts.append(
            f'<rect class="band" x="{left}" y="{_f(mid - yb)}" width="{w - left - pad}" '
            f'height="{_f(2 * yb)}"><title>chance band ±{band:.2f}</title></rect>'
        )
    parts.append(f'<line class="axis" x1="{left}" x2="{w - pad}" y1="{mid}" y2="{mid}"/>')
    for v, lbl in ((1.0, "+1"), (-1.0, "−1")):
        parts.append(
            f'<text class="y-label" x="{left - 6}" y="{_f(mid - amp * v + 4)}" text-anchor="end">{lbl}</text>'
        )
    for k, r in zip(lags, rs, strict=True):
        if r is None:
            continue
        x = left + k * bw + 2
        y0, y1 = (mid - amp * r, mid) if r >= 0 else (mid, mid - amp * r)
        cls = "lag-bar best" if k == lag["best_lag"] else "lag-bar"
        parts.append(
            f'<rect class="{cls}" x="{_f(x)}" y="{_f(y0)}" width="{_f(bw - 4)}" '
            f'height="{_f(max(y1 - y0, 0.5))}"><title>lag {k} min: r = {r:.2f}</title></rect>'
        )
        if k % max(1, len(lags) // 8) == 0 or k == lag["best_lag"]:
            parts.append(
                f'<text class="tick-label" x="{_f(x + bw / 2 - 2)}" y="{h + 16}" '
                f'text-anchor="middle">{k}</text>'
            )
    parts.append(
        f'<text class="tick-label" x="{w - pad}" y="{h + 28}" text-anchor="end">minutes after the mood</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(values: Sequence[float], color: str = "#5c6bc0") -> Markup:
    """A small area of a product's mentions per minute."""
    T = len(values)
    w, h = 220, 36
    vmax = max(values, default=0) or 1
    pts = (
        [f"0,{h}"]
        + [f"{_f(w * (i + 0.5) / max(T, 1))},{_f(h - (h - 2) * v / vmax)}" for i, v in enumerate(values)]
        + [f"{w},{h}"]
    )
    return Markup(
        f'<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}"><polygon '
        f'points="{" ".join(pts)}" fill="{color}" fill-opacity="0.35" stroke="{color}" '
        f'stroke-width="1"/></svg>'
    )


def share_bar(
    shares: Mapping[str, float | None], colors: Mapping[str, str], width: int = 220, height: int = 14
) -> Markup:
    """One 100 % bar of emotion shares (in stack order), each segment with its title."""
    x = 0.0
    parts = [f'<svg class="share-bar" viewBox="0 0 {width} {height}" width="{width}" height="{height}">']
    for e in STACK_ORDER[::-1]:
        v = shares.get(e) or 0.0
        if v <= 0:
            continue
        wseg = width * v
        parts.append(
            f'<rect x="{_f(x)}" y="0" width="{_f(wseg)}" height="{height}" fill="{colors[e]}"><title>{e} '
            f"{v:.0%}</title></rect>"
        )
        x += wseg
    parts.append("</svg>")
    return Markup("".join(parts))
