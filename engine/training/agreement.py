"""Inter-annotator agreement and adjudication bookkeeping for our own danmu labels.

Label files are ``id<TAB>label`` keyed by the ids of ../shared/data/danmu/pool.tsv (never the texts).

    python -m engine.training.agreement A.tsv B.tsv            # agreement report
    python -m engine.training.agreement A.tsv B.tsv --disagreements out.tsv
    python -m engine.training.agreement A.tsv B.tsv --adjudicated ADJ.tsv --gold GOLD.tsv
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.emotions import EMOTIONS, parse_emotion
from engine.training.metrics import confusion_matrix, macro_f1


class LabelFileError(ValueError):
    """A label file that is not ``id<TAB>label`` with the six labels; names the file and line."""


def read_labels(path: Path) -> dict[str, str]:
    """id -> label; a header line ``id<TAB>label`` is allowed; duplicates and unknown labels are errors."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or (n == 1 and line.lower().startswith("id\t")):
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise LabelFileError(f"{path}:{n}: expected id<TAB>label")
        ident, label = parts[0].strip(), parts[1].strip()
        try:
            out_label = parse_emotion(label)
        except ValueError as e:
            raise LabelFileError(f"{path}:{n}: {e}") from None
        if ident in out:
            raise LabelFileError(f"{path}:{n}: id {ident} appears twice")
        out[ident] = out_label
    return out


@dataclass(frozen=True, slots=True)
class Agreement:
    """How far two independent passes agree on the ids they share."""

    n: int
    observed: float
    kappa: float
    macro_f1: float  # pass B scored against pass A, the statistic the data README quotes for annotators
    confusion: list[list[int]]


def cohen_kappa(cm: np.ndarray) -> float:
    """Cohen's kappa from a square confusion matrix of two raters."""
    n = cm.sum()
    if n == 0:
        return 0.0
    po = float(np.trace(cm)) / n
    pe = float((cm.sum(axis=0) * cm.sum(axis=1)).sum()) / (n * n)
    return 1.0 if pe == 1 else (po - pe) / (1 - pe)


def agreement(a: Mapping[str, str], b: Mapping[str, str]) -> Agreement:
    """Agreement statistics over the ids labelled by both passes."""
    ids = sorted(set(a) & set(b))
    ya = [EMOTIONS.index(a[i]) for i in ids]
    yb = [EMOTIONS.index(b[i]) for i in ids]
    cm = confusion_matrix(ya, yb, len(EMOTIONS))
    observed = float(np.trace(cm)) / max(1, len(ids))
    return Agreement(len(ids), observed, cohen_kappa(cm), macro_f1(cm), cm.tolist())


def gold(a: Mapping[str, str], b: Mapping[str, str], adjudicated: Mapping[str, str]) -> dict[str, str]:
    """Agreed labels, plus the adjudicator's decision wherever the passes disagree (required for each)."""
    out: dict[str, str] = {}
    missing: list[str] = []
    for i in sorted(set(a) & set(b)):
        if a[i] == b[i]:
            out[i] = a[i]
        elif i in adjudicated:
            out[i] = adjudicated[i]
        else:
            missing.append(i)
    if missing:
        raise LabelFileError(f"{len(missing)} disagreements have no adjudicated label, e.g. {missing[:3]}")
    return out


def _write(path: Path, labels: Mapping[str, str]) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write("id\tlabel\n")
        for i, lab in labels.items():
            f.write(f"{i}\t{lab}\n")


def format_agreement(ag: Agreement) -> str:
    """A readable report, confusion rows = pass A, columns = pass B."""
    lines = [
        f"items labelled by both passes: {ag.n}",
        f"observed agreement: {ag.observed:.3f}   Cohen's kappa: {ag.kappa:.3f}   "
        f"macro-F1 (B vs A): {ag.macro_f1:.3f}",
        "confusion (rows pass A, columns pass B):",
        "          " + " ".join(f"{e[:7]:>8}" for e in EMOTIONS),
    ]
    for e, row in zip(EMOTIONS, ag.confusion, strict=True):
        lines.append(f"{e[:9]:>9} " + " ".join(f"{v:>8}" for v in row))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: report agreement, list disagreements, or merge into a gold file."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument(
        "--disagreements", type=Path, help="write id<TAB>label_a<TAB>label_b for each disagreement"
    )
    p.add_argument("--adjudicated", type=Path, help="id<TAB>label decisions for the disagreements")
    p.add_argument("--gold", type=Path, help="write the merged gold labels here (needs --adjudicated)")
    args = p.parse_args(argv)
    a, b = read_labels(args.a), read_labels(args.b)
    print(format_agreement(agreement(a, b)))
    if args.disagreements:
        with args.disagreements.open("w", encoding="utf-8") as f:
            f.write("id\tlabel_a\tlabel_b\n")
            for i in sorted(set(a) & set(b)):
                if a[i] != b[i]:
                    f.write(f"{i}\t{a[i]}\t{b[i]}\n")
    if args.gold:
        if not args.adjudicated:
            p.error("--gold needs --adjudicated")
        merged = gold(a, b, read_labels(args.adjudicated))
        _write(args.gold, merged)
        print(f"gold labels: {len(merged)} written to {args.gold}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
