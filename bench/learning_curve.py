"""How the emotion model's held-out score grows with labelled chat: the case for (or against) more labels.

    python -m bench.learning_curve [--data-dir ../shared/data] [--fractions 0.125 0.25 0.5 1] [--draws 2]

Trains the plain n-gram recipe (char 1-3-grams, C = 32, class-balanced, no pruning) on random fractions
of the training part (silver 80% + gold 80%) and scores each on the fixed held-out sets (silver 20%, gold
20%), which no fraction ever trains on. A few minutes on one core; results go in fast.card.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.classify.features import FeaturiserConfig
from engine.normalise import normalise
from engine.training import data as D
from engine.training.linear import LinearParams, softmax
from engine.training.metrics import evaluate
from engine.training.train import TierConfig, fit

ROOT = Path(__file__).resolve().parent.parent
RECIPE = TierConfig(
    featuriser=FeaturiserConfig(min_n=1, max_n=3, boundary=True, tf="binary", max_chars=200),
    linear=LinearParams(c=32.0, class_weight="balanced"),
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.125, 0.25, 0.5, 1.0])
    p.add_argument("--draws", type=int, default=2, help="random draws per fraction below 1 (averaged)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    s_tr, s_te = D.split_heldout(D.read_silver(args.data_dir))
    g_tr, g_te = D.split_gold(*D.read_gold(args.data_dir, D.gold_files(D.GOLD_DIR)))
    train = D.concat([s_tr, g_tr], "train")
    texts = [normalise(t) for t in train.texts]
    y = np.asarray(train.labels, dtype=np.int64)
    held = {
        "silver held-out": ([normalise(t) for t in s_te.texts], np.asarray(s_te.labels, dtype=np.int64)),
        "gold held-out": ([normalise(t) for t in g_te.texts], np.asarray(g_te.labels, dtype=np.int64)),
    }
    rng = np.random.default_rng(args.seed)
    print("| training lines | " + " | ".join(held) + " |")
    print("|---|" + "---|" * len(held))
    for frac in args.fractions:
        n = round(frac * len(texts))
        scores = []
        for _ in range(args.draws if frac < 1 else 1):
            idx = rng.permutation(len(texts))[:n]
            m = fit([texts[i] for i in idx], y[idx], np.ones(n), RECIPE)
            scores.append([evaluate(softmax(m.logits(t)), g).macro_f1 for t, g in held.values()])
        mean = np.mean(scores, axis=0)
        print(f"| {n:,} | " + " | ".join(f"{v:.3f}" for v in mean) + " |", flush=True)


if __name__ == "__main__":
    main()
