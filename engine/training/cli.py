"""``moodcast train`` and ``moodcast eval``; runnable now as ``python -m engine.training.cli train|eval``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engine.classify.base import ModelError
from engine.normalise import normalise
from engine.training import data as D

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
"""``../shared/data`` beside the checkout: the corpus lives next to the project, never inside it."""

NAMED_SETS = {
    "danmu-heldout": "the stratified 20% of danmu/silver.tsv that training never sees",
    "gold-heldout": "the stratified 20% of the gold pool labels (engine/training/labels/*.tsv)",
    "danmu-heldout-all": "danmu-heldout plus gold-heldout",
    "danmu-train": "the 80% of danmu/silver.tsv that training uses",
    "smp-usual-test": "SMP2020 usual-test minus texts also in its train set (five classes)",
}


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="moodcast train", description="Train, calibrate and export an emotion model."
    )
    p.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="shared corpus folder (default: %(default)s)"
    )
    p.add_argument(
        "--no-shared", action="store_true", help="train on --data files only, without the shared corpus"
    )
    p.add_argument(
        "--data",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="extra labelled CSV/TSV with text,label columns (repeatable)",
    )
    p.add_argument("--tier", default="fast", help="model tier recipe (default: %(default)s)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed for the cross-validation folds (default: %(default)s)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("var/models"),
        help="output folder; the registry scans [classifier] models_dir (default: %(default)s)",
    )
    p.add_argument(
        "--id",
        dest="model_id",
        default=None,
        help="model id / file stem (default: the tier name, or TIER-custom when --data is given)",
    )
    p.add_argument(
        "--labels-dir",
        type=Path,
        default=D.GOLD_DIR,
        help="folder of adjudicated id<TAB>label files on danmu/pool.tsv, all read (default: %(default)s)",
    )
    p.add_argument("--no-gold", action="store_true", help="ignore the gold label files")
    return p


def train_main(argv: list[str] | None = None) -> int:
    """Entry point of ``moodcast train``; returns the exit status."""
    from engine.training.train import train

    args = _train_parser().parse_args(argv)
    data_dir: Path | None = None if args.no_shared else args.data_dir
    if data_dir is not None and not (data_dir / D.SILVER).is_file():
        if not args.data:
            print(f"error: {data_dir / D.SILVER} not found; pass --data-dir or --data FILE", file=sys.stderr)
            return 2
        print(f"note: no shared corpus at {data_dir}; training on --data files only", file=sys.stderr)
        data_dir = None
    try:
        res = train(
            data_dir=data_dir,
            extra=args.data,
            tier=args.tier,
            seed=args.seed,
            out_dir=args.out,
            model_id=args.model_id or (f"{args.tier}-custom" if args.data else None),
            labels_dir=None if args.no_gold else args.labels_dir,
        )
    except (D.DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(res.path)
    print(
        f"registered as {res.model_id!r}: moodcast classify --model {res.model_id} ..., "
        f'POST /predict {{"model_id": "{res.model_id}"}} (with [classifier] models_dir = '
        f"{str(args.out)!r}), or moodcast eval --model {res.path}",
        file=sys.stderr,
    )
    return 0


def _eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="moodcast eval", description="Score a model on a labelled file.")
    named = "; ".join(f"{k}: {v}" for k, v in NAMED_SETS.items())
    p.add_argument(
        "--data",
        required=True,
        help=f"labelled file (CSV/TSV text,label; silver TSV; SMP JSON/CSV) or a named set ({named})",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="shared corpus for named sets (default: %(default)s)",
    )
    p.add_argument("--model", default="fast", help="model id or path to an .onnx file (default: %(default)s)")
    p.add_argument(
        "--models-dir", type=Path, action="append", default=[], help="extra model folder (repeatable)"
    )
    p.add_argument("--uncalibrated", action="store_true", help="score the logits before temperature scaling")
    p.add_argument("--json", action="store_true", help="print one JSON object (has a macro_f1 field)")
    return p


def _load_eval_set(spec: str, data_dir: Path) -> D.Labelled:
    if spec == "danmu-heldout":
        return D.split_heldout(D.read_silver(data_dir))[1]
    if spec == "danmu-train":
        return D.split_heldout(D.read_silver(data_dir))[0]
    if spec in {"gold-heldout", "danmu-heldout-all"}:
        files = D.gold_files()
        if not files:
            raise D.DataError(f"no gold label files in {D.GOLD_DIR}")
        gold = D.split_gold(*D.read_gold(data_dir, files))[1]
        if spec == "gold-heldout":
            return gold
        return D.concat([D.split_heldout(D.read_silver(data_dir))[1], gold], "danmu held-out, silver + gold")
    if spec == "smp-usual-test":
        return D.read_smp_usual_test(data_dir)
    return D.read_any(Path(spec))


def eval_main(argv: list[str] | None = None) -> int:
    """Entry point of ``moodcast eval``; returns the exit status."""
    from engine.classify.onnx_model import OnnxEmotionModel
    from engine.classify.registry import ModelRegistry
    from engine.training.linear import softmax
    from engine.training.metrics import evaluate

    args = _eval_parser().parse_args(argv)
    try:
        ds = _load_eval_set(args.data, args.data_dir)
        model = ModelRegistry(args.models_dir).get(args.model)
    except (D.DataError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not isinstance(model, OnnxEmotionModel):  # pragma: no cover - the registry only builds these
        print("error: eval needs an ONNX model", file=sys.stderr)
        return 2
    texts = [normalise(t) for t in ds.texts]
    gold = np.asarray(ds.labels, dtype=np.int64)
    if args.uncalibrated:
        probs = softmax(model.logits(texts).astype(np.float64))
    else:
        probs = model.probabilities(texts).astype(np.float64)
    rep = evaluate(probs, gold)
    if args.json:
        print(
            json.dumps(rep.as_dict() | {"model": model.info.model_id, "data": ds.source}, ensure_ascii=False)
        )
    else:
        print(f"model {model.info.model_id} ({model.info.path})\ndata  {ds.source} ({len(ds)} rows)\n")
        print(rep.format())
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.training.cli train|eval ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in {"train", "eval"}:
        print("usage: python -m engine.training.cli {train,eval} [options]", file=sys.stderr)
        return 2
    return train_main(args[1:]) if args[0] == "train" else eval_main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
