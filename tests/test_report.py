"""The post-stream review on a synthetic session with planted answers, checked number by number."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from bot.content import DEFAULTS_DIR, load_catalogue
from engine.config import Config
from engine.store import Store
from engine.types import ChatMessage, ClassifiedMessage, Prediction
from moodcast.cli import main as cli_main
from report import synthetic
from report.analysis import ReportOptions, build_report
from report.data import ReportDB, ReportError, parse_session_id, session_id
from report.orders import read_orders
from report.render import write_report

PLAN = synthetic.Plan()
T0 = synthetic.T0


@pytest.fixture(scope="module")
def session_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("report") / "moodcast.db"
    assert synthetic.write(PLAN, db) == PLAN.minutes * PLAN.per_minute
    return db


@pytest.fixture(scope="module")
def orders_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.orders_csv(PLAN, tmp_path_factory.mktemp("orders") / "orders.csv")


@pytest.fixture(scope="module")
def report(session_db: Path, orders_path: Path) -> dict[str, Any]:
    with ReportDB(session_db) as db:
        return build_report(
            db,
            "shop",
            T0,
            T0 + 60 * PLAN.minutes,
            catalogue=load_catalogue(DEFAULTS_DIR / "products.toml"),
            orders=read_orders(orders_path),
            options=ReportOptions(permutations=999, bootstrap=500, tz=UTC),
        )


def _episodes(r: dict[str, Any], emotion: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in r["episodes"] if e["emotion"] == emotion and e["kind"] == kind]


def test_sessions_are_split_at_silences_and_ids_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with Store.open(db) as store:
        batch = []
        # 5 active minutes, 15 min silence, 3 active, 8 min silence (< gap), 2 more; one stray message.
        for minute in [*range(0, 5), *range(20, 23), *range(31, 33)]:
            for k in range(10):
                ts = T0 + 60 * minute + k
                msg = ChatMessage("r", f"u{k}", "hi", ts)
                batch.append(
                    ClassifiedMessage(msg, "hi", Prediction("neutral", 0.9, (0.02,) * 5 + (0.9,)), 1.0, "m")
                )
        batch.append(
            ClassifiedMessage(ChatMessage("r", "x", "hi", T0 + 3600), "hi", batch[0].prediction, 1.0, "m")
        )
        store.write_messages(batch)
    with ReportDB(db) as rdb:
        sessions = rdb.sessions("r", gap_minutes=10, min_messages=5, now=T0 + 60 * 40)
    assert [(s.start - T0, s.end - T0, s.messages) for s in sessions] == [(0, 300, 50), (1200, 1980, 50)]
    assert [s.finished for s in sessions] == [True, False]  # the second ended 7 min before "now"
    assert sessions[0].id == "20251121-0800" == session_id(T0)
    assert parse_session_id("20251121-0800") == T0
    with pytest.raises(ReportError, match="not a session id"):
        parse_session_id("yesterday")


def test_planted_peaks_are_found_exactly(report: dict[str, Any]) -> None:
    (exc,) = _episodes(report, "excited", "peak")
    assert (exc["start_index"], exc["end_index"]) == PLAN.excited_peak
    assert (exc["start"], exc["end"]) == (T0 + 60 * 30, T0 + 60 * 33)
    assert exc["time"] == "08:30–08:33"
    assert exc["share"] == 0.6 and exc["typical"] == 0.1 and exc["lift"] == 0.5
    assert exc["messages"] == 300
    (ang,) = _episodes(report, "angry", "peak")
    assert (ang["start_index"], ang["end_index"]) == PLAN.angry_peak
    assert ang["share"] == 0.5 and ang["typical"] == 0.05
    # Neutral is crowded out in both: two dips, at the planted minutes, to 15 % and 25 %.
    dips = _episodes(report, "neutral", "dip")
    assert [(d["start_index"], d["end_index"], d["share"]) for d in dips] == [(30, 33, 0.15), (80, 82, 0.25)]
    # Nothing else moved: happy wobbles 15-25 % by design, below the 8-point lift.
    assert len(report["episodes"]) == 4


def test_peak_keywords_and_examples_are_the_planted_ones(report: dict[str, Any]) -> None:
    (exc,) = _episodes(report, "excited", "peak")
    words = [k["word"] for k in exc["keywords"]]
    assert words[:2] == ["秒杀", "抢到"] or set(words[:3]) >= {"秒杀", "抢到"}
    assert all(k["z"] >= 1.96 for k in exc["keywords"])
    (ang,) = _episodes(report, "angry", "peak")
    assert {"赠品", "客服"} <= {k["word"] for k in ang["keywords"][:3]}
    texts = [x["text"] for x in ang["examples"]]
    assert texts[0] == synthetic.HOSTILE  # highest confidence, and it names the top keywords
    planted = set(synthetic._PEAK_TEXTS["angry"]) | {synthetic.HOSTILE}
    assert all(t.split(" ")[0] in planted or t == synthetic.HOSTILE for t in texts)
    assert len(set(texts)) == len(texts) == 4
    # The alert and the scene switch sit next to the anger peak they answered.
    assert [e["category"] for e in ang["events"]] == ["alert", "scene"]


def test_products_and_their_mood(report: dict[str, Any], orders_path: Path) -> None:
    (jacket,) = [p for p in report["products"] if p["id"] == "down-jacket"]
    # Mentions: every excited peak message naming 羽绒服 or 1号链接 (3 of the 5 texts, over 3 x 60 messages).
    assert jacket["mentions"] == 108
    assert jacket["dominant"] == "excited" and jacket["emotions"]["excited"] == 1.0
    assert jacket["peak_time"] == "08:30" and jacket["per_minute"][30:33] == [36, 36, 36]
    assert jacket["room_around"]["excited"] == 0.6
    orders = read_orders(orders_path)
    assert jacket["sales"] == sum(o.amount for o in orders if o.product == "down-jacket") > 0
    # Orders name products by id or by any alias the chat matcher knows: "围巾" is the scarf set.
    assert report["sales"]["per_product"]["scarf-set"] == sum(o.amount for o in orders if o.product == "围巾")


def test_sales_follow_mood_by_the_planted_lag(report: dict[str, Any], orders_path: Path) -> None:
    s = report["sales"]
    orders = read_orders(orders_path)
    assert s["orders"] == len(orders) and s["orders_outside"] == 0
    assert s["enough"] is True
    lag = s["lag"]
    assert lag["best_lag"] == PLAN.lag
    assert lag["best_r"] > 0.9
    # 120 minutes, lags 0..15: circular shifts 16..103 are admissible (88), and none comes close.
    assert lag["permutations"] == 88 and lag["p"] == pytest.approx(1 / 89, abs=1e-4)
    assert lag["significant"] is True
    assert lag["pearson"]["ci_low"] > 0.9
    # At the same minute the link is weak: the planted lag is what makes it.
    assert abs(s["same_minute"]["pearson"]["r"]) < 0.3
    assert s["lag_used"] == 3
    assert "Sales follow the mood by about 3 min" in s["verdict"]
    # The best promotion moment is the planted excitement, and its sales come 3 minutes later.
    first = s["moments"][0]
    assert first["index"] == 30 and first["positive"] == 0.75 and first["product"] == "轻薄羽绒服"
    assert first["time"] == "08:30" and first["sales_window"] == "08:33–08:35"
    assert first["sales_vs_average"] > 2


def test_summary_reads_in_ten_seconds(report: dict[str, Any]) -> None:
    summ = report["summary"]
    assert summ["headline"].startswith("2 h 00 min, 12,000 messages, mostly neutral")
    assert summ["best"]["emotion"] == "excited" and summ["worst"]["emotion"] == "angry"
    assert any("Sales follow the mood by about 3 min" in line for line in summ["lines"])


def test_too_little_data_is_said_plainly(session_db: Path, tmp_path: Path) -> None:
    thin = tmp_path / "thin.csv"
    thin.write_text(
        "timestamp,product,quantity,amount\n"
        + "".join(f"{T0 + 600 + i * 60},围巾,1,129\n" for i in range(3)),
        encoding="utf-8",
    )
    with ReportDB(session_db) as db:
        r = build_report(
            db, "shop", T0, T0 + 3600, orders=read_orders(thin), options=ReportOptions(bootstrap=0)
        )
    assert r["sales"]["enough"] is False
    assert r["sales"]["verdict"].startswith("Too little data to conclude: 3 orders")
    assert "lag" not in r["sales"]


def test_orders_file_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "o.csv"
    bad.write_text("timestamp,product,quantity,amount\n2026-11-21 20:00:00,a,1,10\nnot-a-time,a,1,10\n")
    with pytest.raises(ReportError, match=r"o.csv:3: not a time"):
        read_orders(bad)
    bad.write_text("when,product\n1,2\n")
    with pytest.raises(ReportError, match="lacks timestamp, quantity, amount"):
        read_orders(bad)
    ok = tmp_path / "ok.csv"
    ok.write_text(
        "Amount,Timestamp,Product,Quantity\n10.5,1763712000000,x,2\n3,2025-11-21T08:01:00+00:00,y,1\n"
    )
    assert [(o.ts, o.product, o.quantity, o.amount) for o in read_orders(ok)] == [
        (T0, "x", 2.0, 10.5),
        (T0 + 60, "y", 1.0, 3.0),
    ]


def test_exports_and_escaped_html(report: dict[str, Any], tmp_path: Path) -> None:
    files = {p.name for p in write_report(report, tmp_path)}
    assert files == {
        "report.html",
        "report.json",
        "minutes.csv",
        "episodes.csv",
        "products.csv",
        "events.csv",
        "sales.csv",
    }
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html and "onerror=alert(1)>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    # In the embedded JSON too: no raw "<" that could end the data block.
    data = html.split('id="report-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data
    # Offline by construction: a policy allowing only its own inline script and style, and no URL to fetch.
    assert "content=\"default-src 'none'; script-src 'sha256-" in html
    assert "http://" not in html and "https://" not in html and "src=" not in html.replace("src=x", "")
    with (tmp_path / "minutes.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 120 and rows[30]["share_excited"] == "0.6" and rows[30]["messages"] == "100"
    assert float(rows[33]["sales_amount"]) > float(rows[29]["sales_amount"])
    saved = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert saved["sales"]["lag"]["best_lag"] == 3
    with (tmp_path / "sales.csv").open(encoding="utf-8") as fh:
        lag_rows = list(csv.DictReader(fh))
    assert [int(r["lag_minutes"]) for r in lag_rows] == list(range(16))


def test_cli_lists_sessions_and_writes_a_report(
    session_db: Path, orders_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["report", "--room", "shop", "--db", str(session_db), "--list-sessions", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["id"], s["minutes"], s["messages"], s["finished"]) for s in listed] == [
        ("20251121-0800", 120, 12000, True)
    ]
    out = tmp_path / "out"
    args = ["report", "--room", "shop", "--db", str(session_db), "--session", "20251121-0800"]
    assert cli_main([*args, "--orders", str(orders_path), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "report: " in captured.out and "100% done" in captured.err  # progress on stderr
    assert (out / "report.html").is_file() and (out / "sales.csv").is_file()
    # A time range instead of a session; an unknown session and room say what to do.
    since = ["--since", "2025-11-21T08:20:00+00:00", "--until", "2025-11-21T08:40:00+00:00"]
    assert cli_main([*args[:5], *since, "-q", "-o", str(tmp_path / "r2")]) == 0
    part = json.loads((tmp_path / "r2" / "report.json").read_text(encoding="utf-8"))
    assert part["messages"] == 2000 and len(part["minutes"]["ts"]) == 20
    assert cli_main([*args[:5], "--session", "20250101-0000", "-o", str(tmp_path / "x")]) == 2
    assert "has no session" in capsys.readouterr().err
    assert cli_main(["report", "--room", "nope", "--db", str(session_db), "-o", str(tmp_path / "y")]) == 2
    assert "rooms with data: shop" in capsys.readouterr().err


def test_config_defaults_reach_the_report_options() -> None:
    rc = Config().report
    assert rc.session_gap_minutes == 10.0 and rc.max_lag_minutes == 15
    assert replace(rc, timezone="Asia/Shanghai").timezone == "Asia/Shanghai"
