"""Writes a built review to a directory: report.html (self-contained), report.json and CSV exports.

The HTML carries its CSS and script inline and a Content-Security-Policy that allows exactly those two
(by hash) and nothing from the network, so it opens offline, can be mailed around, and a hostile chat
line can neither run script nor load anything even if escaping were ever got wrong.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from engine.emotions import EMOTIONS
from overlay.app import find_web_dirs
from report import svg

FILES = (
    "report.html",
    "report.json",
    "minutes.csv",
    "episodes.csv",
    "products.csv",
    "events.csv",
    "sales.csv",
)
"""Everything a report directory may hold (the dashboard serves only these names)."""
DEFAULT_COLORS = {
    "happy": "#43a047",
    "excited": "#fb8c00",
    "neutral": "#9e9e9e",
    "anxious": "#8e24aa",
    "sad": "#1e88e5",
    "angry": "#e53935",
}
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_META_CSP = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">')


def clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def csp_of(html: str) -> str:
    """The policy a report declares for itself (the dashboard sends it as the header too)."""
    m = _META_CSP.search(html)
    return m.group(1) if m else "default-src 'none'"


def _json_for_script(data: Any) -> str:
    # Inside <script type="application/json">: "</script>" or "<!--" in chat text must not end the block.
    text = json.dumps(clean(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(report: Mapping[str, Any], colors: Mapping[str, str] | None = None) -> str:
    """The self-contained HTML page of a review."""
    cols = dict(colors or DEFAULT_COLORS)
    dirs = find_web_dirs()
    css = (dirs.static / "css" / "report.css").read_text(encoding="utf-8")
    # The emotion colours follow [overlay] color_*, like every other moodcast page.
    css += "".join(f".dot-{e} {{ background: {cols[e]}; }}\n" for e in EMOTIONS if _HEX.match(cols[e]))
    js = (dirs.static / "js" / "report.js").read_text(encoding="utf-8")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs.templates), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.0%}"
    env.filters["pval"] = lambda v: "–" if v is None else ("< 0.001" if v < 0.001 else f"{v:.3f}")
    env.filters["num"] = lambda v, d=0: "–" if v is None else f"{v:,.{d}f}"
    tpl = env.get_template("report.html")
    data = {
        "minutes": report["minutes"],
        "emotions": report["emotions"],
        "colors": cols,
        "events": report["events"],
        "sales": report["sales"].get("per_minute_amount") if report["sales"].get("has_orders") else None,
    }
    csp = "; ".join(
        (
            "default-src 'none'",
            f"script-src {_sha(js)}",
            f"style-src {_sha(css)}",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )
    lag = report["sales"].get("lag")
    return tpl.render(
        r=report,
        colors=cols,
        emotions=list(EMOTIONS),
        css=Markup(css),
        js=Markup(js),
        csp=Markup(csp),  # our own constant text and base64 hashes: no quote to escape
        data_json=Markup(_json_for_script(data)),
        timeline=svg.timeline(report, cols),
        heatmap=svg.heatmap(report, cols),
        lag_chart=svg.lag_chart(lag) if lag else None,
        sparkline=svg.sparkline,
        share_bar=lambda shares: svg.share_bar(shares, cols),
        lane_colors=svg.EVENT_COLORS,
        lane_labels=svg.EVENT_LABELS,
    )


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows([["" if v is None else v for v in row] for row in rows])


def write_report(report: Mapping[str, Any], out: Path, colors: Mapping[str, str] | None = None) -> list[Path]:
    """Write the HTML, JSON and CSVs into ``out`` (created); returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    mins = report["minutes"]
    sales = report["sales"]
    amount = sales.get("per_minute_amount") if sales.get("has_orders") else None
    rows = []
    for i, ts in enumerate(mins["ts"]):
        row: list[Any] = [ts, mins["labels"][i], mins["messages"][i]]
        row += mins["counts"][i] + mins["shares"][i] + [mins["positive"][i], mins["negative"][i]]
        if amount is not None:
            row.append(amount[i])
        rows.append(row)
    header = (
        ["minute_unix", "time", "messages"]
        + [f"count_{e}" for e in EMOTIONS]
        + [f"share_{e}" for e in EMOTIONS]
    )
    header += ["share_positive", "share_negative"] + (["sales_amount"] if amount is not None else [])
    _write_csv(out / "minutes.csv", header, rows)
    written.append(out / "minutes.csv")

    _write_csv(
        out / "episodes.csv",
        [
            "emotion",
            "kind",
            "start_unix",
            "end_unix",
            "time",
            "share",
            "typical",
            "lift",
            "z",
            "messages",
            "keywords",
            "examples",
        ],
        [
            [
                e["emotion"],
                e["kind"],
                e["start"],
                e["end"],
                e["time"],
                e["share"],
                e["typical"],
                e["lift"],
                e["z"],
                e["messages"],
                " ".join(k["word"] for k in e["keywords"]),
                " | ".join(x["text"] for x in e["examples"]),
            ]
            for e in report["episodes"]
        ],
    )
    written.append(out / "episodes.csv")
    _write_csv(
        out / "products.csv",
        ["id", "name", "mentions", "dominant", "peak_time", "sales"]
        + [f"mention_{e}" for e in EMOTIONS]
        + [f"room_{e}" for e in EMOTIONS],
        [
            [p["id"], p["name"], p["mentions"], p["dominant"], p["peak_time"], p["sales"]]
            + [p["emotions"][e] for e in EMOTIONS]
            + [p["room_around"][e] for e in EMOTIONS]
            for p in report["products"]
        ],
    )
    written.append(out / "products.csv")
    _write_csv(
        out / "events.csv",
        ["ts", "time", "kind", "category", "message"],
        [[e["ts"], e["time"], e["kind"], e["category"], e["message"]] for e in report["events"]],
    )
    written.append(out / "events.csv")
    lag = sales.get("lag")
    if lag:
        _write_csv(
            out / "sales.csv",
            ["lag_minutes", "r", "n"],
            [list(x) for x in zip(lag["lags"], lag["r"], lag["n"], strict=True)],
        )
        written.append(out / "sales.csv")
    (out / "report.json").write_text(
        json.dumps(clean(report), ensure_ascii=False, allow_nan=False, indent=1), encoding="utf-8"
    )
    written.append(out / "report.json")
    (out / "report.html").write_text(render_html(report, colors), encoding="utf-8")
    written.append(out / "report.html")
    return written
