"""The orders file: CSV with a header naming timestamp, product, quantity, amount (any order, any case).

``timestamp`` is Unix seconds or milliseconds, or ISO 8601 (``2026-11-21 20:31:05``, ``...+08:00``);
a time without a zone is read in ``tz`` (default: this machine's zone). Bad lines stop the report with
their line number: sales statistics from a half-read file would be quietly wrong.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from report.data import ReportError

REQUIRED = ("timestamp", "product", "quantity", "amount")
_ALIASES = {"ts": "timestamp", "time": "timestamp", "qty": "quantity", "price": "amount", "gmv": "amount"}


@dataclass(frozen=True, slots=True)
class Order:
    """One order line."""

    ts: float
    product: str
    quantity: float
    amount: float


def parse_time(value: str, tz: tzinfo | None = None) -> float:
    """Unix seconds from Unix seconds/milliseconds or ISO 8601; ValueError otherwise."""
    v = value.strip()
    try:
        x = float(v)
    except ValueError:
        pass
    else:
        if not math.isfinite(x):
            raise ValueError(f"not a time: {value!r}")
        return x / 1000.0 if x > 1e11 else x  # milliseconds since 1970 pass 1e11 in 1973
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00").replace("/", "-"))
    except ValueError:
        raise ValueError(
            f"not a time: {value!r} (Unix seconds or ISO 8601 like 2026-11-21 20:31:05)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz) if tz is not None else dt.astimezone()
    return dt.timestamp()


def read_orders(path: Path, tz: tzinfo | None = None) -> list[Order]:
    """Every order in the file, sorted by time; ReportError naming the line of the first bad one."""
    try:
        fh = path.open(encoding="utf-8-sig", newline="")
    except OSError as e:
        raise ReportError(f"cannot read orders file {path}: {e.strerror or e}") from e
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise ReportError(f"{path}: empty orders file (header: {', '.join(REQUIRED)})") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise ReportError(f"{path}:1: {e}") from None
        names = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise ReportError(
                f"{path}:1: the header lacks {', '.join(missing)} (need {', '.join(REQUIRED)}; got {header})"
            )
        col = {c: names.index(c) for c in REQUIRED}
        out: list[Order] = []
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                try:
                    cells = {c: row[i] for c, i in col.items()}
                    ts = parse_time(cells["timestamp"], tz)
                    qty = float(cells["quantity"] or 1)
                    amount = float(cells["amount"] or 0)
                except (IndexError, ValueError) as e:
                    raise ReportError(f"{path}:{line}: {e}") from None
                if not (math.isfinite(qty) and math.isfinite(amount)) or qty < 0 or amount < 0:
                    raise ReportError(f"{path}:{line}: quantity and amount must be non-negative numbers")
                out.append(Order(ts, cells["product"].strip(), qty, amount))
        except (csv.Error, UnicodeDecodeError) as e:
            raise ReportError(f"{path}:{reader.line_num}: {e}") from None
    out.sort(key=lambda o: o.ts)
    return out
