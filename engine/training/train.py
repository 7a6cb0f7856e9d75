"""Train, calibrate, evaluate and export one tier of the emotion model."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.classify.features import Featuriser, FeaturiserConfig, build_vocab
from engine.emotions import EMOTIONS
from engine.normalise import normalise
from engine.training import data as D
from engine.training.export import RouteBlocks, build_model, build_routed_model, write_model
from engine.training.linear import (
    LinearParams,
    design_matrix,
    fit_idf,
    fit_logreg,
    fit_temperature,
    softmax,
)
from engine.training.metrics import Report, evaluate
from engine.training.route import (
    ABSENT_LOGIT,
    OffsetChoice,
    RouteParams,
    Router,
    choose_offset,
    fit_router,
    mix,
    out_of_fold_router_logits,
    prose_logits,
)
from engine.training.stack import (
    BaseModel,
    Stack,
    StackParams,
    fit_base,
    fit_base_in_vocab,
    fold_in_vocab,
    make_stack,
    merged_blocks,
    remap_block,
)

ONNX_TOLERANCE = 1e-5


@dataclass(frozen=True, slots=True)
class TierConfig:
    """Everything that defines a tier's recipe; chosen by CV on the silver train part, never the held-out."""

    featuriser: FeaturiserConfig = field(default_factory=FeaturiserConfig)
    linear: LinearParams = field(default_factory=LinearParams)
    min_df: int = 1
    smp_weight: float = 0.0
    """Weight of each SMP2020 row relative to a danmu row; 0 leaves SMP out."""
    smp_neutral: bool = False
    """SMP neutral is news and encyclopedia prose, not chat neutral; off by default."""
    cv_folds: int = 5
    max_vocab: int = 0
    """Keep only this many n-grams (0 = all): the ones that weigh most in a first fit, then refit on them."""
    stack_smp: StackParams | None = None
    """Stack a Weibo (SMP2020 train) model's scores as features (stack.py); None = plain n-grams."""
    stack_smp_in_vocab: StackParams | None = None
    """Stack a Weibo model that reads the danmu vocabulary and idf (stack.fit_base_in_vocab): it folds
    into the danmu weights, so the exported graph keeps one block. Skipped without the shared corpus."""
    route_smp: RouteParams | None = None
    """Mix in the stacked Weibo model as a prose expert where a learnt router says the text is prose
    (route.py). Needs ``stack_smp``; the router's offset is chosen on training-side data only."""


_NGRAMS = FeaturiserConfig(min_n=1, max_n=3, boundary=True, tf="binary", max_chars=200)
TIERS: dict[str, TierConfig] = {
    # C and the vocabulary re-chosen by CV on 16.9 k training lines (fast.card.md); 90 k n-grams is ~3.5 MB.
    "fast": TierConfig(
        featuriser=_NGRAMS, linear=LinearParams(c=32.0, class_weight="balanced"), max_vocab=90_000
    ),
    # The same plus a Weibo model over the same vocabulary, folded into one block (same size and speed);
    # it carries SMP2020's research-only licence, so it is not the default fast model.
    "fast-smp": TierConfig(
        featuriser=_NGRAMS,
        linear=LinearParams(c=32.0, class_weight="balanced"),
        min_df=2,
        stack_smp_in_vocab=StackParams(alpha=0.1, c=4.0),
    ),
    "accurate": TierConfig(
        featuriser=_NGRAMS,
        linear=LinearParams(c=32.0, class_weight="balanced"),
        stack_smp=StackParams(alpha=0.1, min_df=3, c=4.0),
        route_smp=RouteParams(),
    ),
}


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Where the model went and how it scored."""

    path: Path
    model_id: str
    temperature: float
    metrics: dict[str, float]
    reports: dict[str, dict[str, Any]]


Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _norm_all(texts: Sequence[str], desc: str) -> list[str]:
    from tqdm import tqdm

    return [normalise(t) for t in tqdm(texts, desc=desc, unit="msg", leave=False, mininterval=0.5)]


@dataclass(frozen=True, slots=True)
class Fitted:
    """A trained featuriser, idf and sklearn classifier."""

    feat: Featuriser
    idf: npt.NDArray[np.float32]
    clf: Any
    stack: Stack | None = None

    def design(self, texts: Sequence[str]) -> Any:
        """The classifier's input rows: tf-idf n-grams, then the stacked base scores if any."""
        return _design(self.feat, self.idf, texts, self.stack)

    def logits(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Uncalibrated decision values ``[n, 6]`` for normalised texts."""
        out: npt.NDArray[np.float64] = self.clf.decision_function(self.design(texts))
        return out


def _design(feat: Featuriser, idf: npt.NDArray[np.float32], texts: Sequence[str], stack: Stack | None) -> Any:
    x = design_matrix(feat, idf, texts)
    if stack is None:
        return x
    from scipy import sparse  # type: ignore[import-untyped]

    return sparse.hstack([x, sparse.csr_matrix(stack.features(texts))]).tocsr()


def fit(
    texts: Sequence[str],
    y: npt.NDArray[np.int64],
    weights: npt.NDArray[np.float64],
    cfg: TierConfig,
    stack: Stack | None = None,
    fixed: tuple[Featuriser, npt.NDArray[np.float32]] | None = None,
) -> Fitted:
    """Vocab, idf and logistic regression on normalised texts (on top of ``stack``'s scores if given).

    ``fixed`` is a featuriser and idf to use as they are (the in-vocabulary stack's base model reads
    them, so they cannot change per fold); they come from texts only, never from labels.
    """
    if fixed is not None:
        feat, idf = fixed
    else:
        feat = Featuriser(cfg.featuriser, build_vocab(texts, cfg.featuriser, cfg.min_df))
        idf = fit_idf(feat, texts)
    clf = fit_logreg(_design(feat, idf, texts, stack), y, cfg.linear, weights)
    if cfg.max_vocab and len(feat.vocab) > cfg.max_vocab:
        if fixed is not None:
            raise ValueError("max_vocab cannot prune a fixed featuriser (the base model reads it)")
        feat = prune_vocab(feat, idf, np.asarray(clf.coef_, dtype=np.float64), cfg.max_vocab)
        idf = fit_idf(feat, texts)
        clf = fit_logreg(_design(feat, idf, texts, stack), y, cfg.linear, weights)
    return Fitted(feat, idf, clf, stack)


def prune_vocab(
    feat: Featuriser, idf: npt.NDArray[np.float32], coef: npt.NDArray[np.float64], keep: int
) -> Featuriser:
    """The ``keep`` n-grams that weigh most (max over classes of |w| x idf), ids re-assigned in sorted order.

    Every n-gram seen once scores better in CV than n-grams seen twice (rare copy-paste memes recur), but
    all of them overflow the fast tier's 5 MB; the lightest weigh next to nothing, so they go instead.
    """
    imp = np.abs(coef[:, : feat.size]).max(axis=0) * idf.astype(np.float64)
    imp[0] = -np.inf  # padding
    top = np.argsort(-imp, kind="stable")[:keep]
    by_id = {i: g for g, i in feat.vocab.items()}
    kept = sorted(by_id[int(i)] for i in top if int(i) in by_id)
    return Featuriser(feat.config, {g: j + 1 for j, g in enumerate(kept)}, feat.lexicon)


def out_of_fold_logits(
    texts: Sequence[str],
    y: npt.NDArray[np.int64],
    weights: npt.NDArray[np.float64],
    core: npt.NDArray[np.bool_],
    cfg: TierConfig,
    seed: int,
    stack: Stack | None = None,
    fixed: tuple[Featuriser, npt.NDArray[np.float32]] | None = None,
) -> npt.NDArray[np.float64]:
    """Cross-validated logits for the ``core`` rows (the in-domain ones); extra rows train every fold."""
    from sklearn.model_selection import StratifiedKFold
    from tqdm import tqdm

    core_idx = np.nonzero(core)[0]
    extra_idx = np.nonzero(~core)[0]
    yc = y[core_idx]
    folds = min(cfg.cv_folds, int(np.bincount(yc, minlength=len(EMOTIONS)).min()))
    if folds < 2:
        raise ValueError("every class needs at least 2 training examples for calibration")
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    oof = np.zeros((len(core_idx), len(EMOTIONS)))
    for a, b in tqdm(list(skf.split(core_idx, yc)), desc="cross-validation", unit="fold", leave=False):
        tr = np.concatenate([core_idx[a], extra_idx])
        m = fit([texts[i] for i in tr], y[tr], weights[tr], cfg, stack, fixed)
        oof[b] = m.logits([texts[i] for i in core_idx[b]])
    return oof


def _flat(prefix: str, rep: Report) -> dict[str, float]:
    out = {f"{prefix}_macro_f1": rep.macro_f1, f"{prefix}_accuracy": rep.accuracy, f"{prefix}_ece": rep.ece}
    for i, lab in enumerate(rep.labels):
        if rep.support[i] > 0:
            out[f"{prefix}_f1_{lab}"] = float(rep.f1[i])
    return out


def train(
    *,
    data_dir: Path | None,
    extra: Sequence[Path] = (),
    tier: str = "fast",
    seed: int = 0,
    out_dir: Path,
    model_id: str | None = None,
    labels_dir: Path | None = D.GOLD_DIR,
    progress: Progress = _stderr,
) -> TrainResult:
    """Train ``tier`` on silver (80%) [+ SMP per the tier] + user files; evaluate, calibrate, export."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; known tiers: {', '.join(TIERS)}")
    cfg = TIERS[tier]
    mid = model_id or tier

    parts: list[D.Labelled] = []
    weights: list[float] = []
    core: list[bool] = []
    evalsets: dict[str, D.Labelled] = {}
    sources: list[str] = []
    if data_dir is not None:
        silver_tr, silver_te = D.split_heldout(D.read_silver(data_dir))
        parts.append(silver_tr)
        weights += [1.0] * len(silver_tr)
        core += [True] * len(silver_tr)
        evalsets["danmu_heldout"] = silver_te
        sources.append(f"{silver_tr.source}: {len(silver_tr)}")
        files = D.gold_files(labels_dir) if labels_dir is not None else []
        if files:
            # Adjudicated pool labels: their own 80/20 by id hash, so the held-out grows with them while
            # the silver held-out stays exactly the lines every earlier model was scored on.
            gold_tr, gold_te = D.split_gold(*D.read_gold(data_dir, files))
            parts.append(gold_tr)
            weights += [1.0] * len(gold_tr)
            core += [True] * len(gold_tr)
            sources.append(f"{gold_tr.source} ({', '.join(p.name for p in files)}): {len(gold_tr)}")
            if len(gold_te):
                evalsets["gold_heldout"] = gold_te
                evalsets["danmu_heldout_all"] = D.concat(
                    [silver_te, gold_te], "danmu held-out: silver 20% + gold 20%"
                )
        if cfg.smp_weight > 0:
            smp = D.read_smp_train(data_dir)
            if not cfg.smp_neutral:
                smp = smp.subset([i for i, y in enumerate(smp.labels) if EMOTIONS[y] != "neutral"])
            parts.append(smp)
            weights += [cfg.smp_weight] * len(smp)
            core += [False] * len(smp)
            sources.append(f"{smp.source} x{cfg.smp_weight}: {len(smp)}")
        try:
            evalsets["smp_usual_test"] = D.read_smp_usual_test(data_dir)
        except D.DataError as exc:
            progress(f"skipping SMP usual-test: {exc}")
    if extra:
        user = D.concat([D.read_any(p) for p in extra], ", ".join(str(p) for p in extra))
        if not evalsets:
            # Without the shared corpus, the user's own data gives the honest held-out score.
            user, held = D.split_heldout(user)
            evalsets["user_heldout"] = held
        parts.append(user)
        weights += [1.0] * len(user)
        core += [True] * len(user)
        sources.append(f"{user.source}: {len(user)}")
    if not parts:
        raise ValueError("no training data: give --data-dir with the shared data and/or --data FILE")
    train_set = D.concat(parts, "train")
    progress("training on " + "; ".join(sources))

    texts = _norm_all(train_set.texts, "normalise")
    y = np.asarray(train_set.labels, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    is_core = np.asarray(core, dtype=np.bool_)

    stack: Stack | None = None
    smp_texts: list[str] = []
    if cfg.stack_smp is not None:
        if data_dir is None:
            raise ValueError(f"tier {tier!r} stacks a model trained on SMP2020: it needs --data-dir")
        smp = D.read_smp_train(data_dir)
        sources.append(f"{smp.source} (base model whose scores are stacked, never mixed in): {len(smp)}")
        progress(f"fitting the base model on {len(smp)} SMP2020 posts (about a minute)")
        smp_texts = _norm_all(smp.texts, "normalise smp")
        base = fit_base(smp_texts, np.asarray(smp.labels, dtype=np.int64), cfg.featuriser, cfg.stack_smp)
        stack = make_stack(base, texts, cfg.stack_smp.alpha)
    fixed: tuple[Featuriser, npt.NDArray[np.float32]] | None = None
    if cfg.stack_smp_in_vocab is not None:
        if data_dir is None:
            progress("no shared corpus: training without the stacked SMP2020 scores")
        else:
            smp = D.read_smp_train(data_dir)
            sources.append(f"{smp.source} (base model on the danmu vocabulary, scores stacked): {len(smp)}")
            feat = Featuriser(cfg.featuriser, build_vocab(texts, cfg.featuriser, cfg.min_df))
            fixed = (feat, fit_idf(feat, texts))
            progress(f"fitting the base model on {len(smp)} SMP2020 posts over the danmu vocabulary")
            base = fit_base_in_vocab(
                feat,
                fixed[1],
                _norm_all(smp.texts, "normalise smp"),
                np.asarray(smp.labels, dtype=np.int64),
                cfg.stack_smp_in_vocab,
            )
            stack = make_stack(base, texts, cfg.stack_smp_in_vocab.alpha)

    progress(f"{cfg.cv_folds}-fold cross-validation on the training part for the temperature")
    oof = out_of_fold_logits(texts, y, w, is_core, cfg, seed, stack, fixed)
    temperature = fit_temperature(oof, y[is_core])
    cv_rep = evaluate(softmax(oof), y[is_core])
    progress(f"cv macro-F1 {cv_rep.macro_f1:.4f}; temperature {temperature:.3f}")

    progress("fitting the final model")
    model = fit(texts, y, w, cfg, stack, fixed)

    metrics: dict[str, float] = {"train_cv_macro_f1": cv_rep.macro_f1, "temperature": temperature}
    reports: dict[str, dict[str, Any]] = {"train_cv": cv_rep.as_dict()}

    desc = f"{tier} tier: char {cfg.featuriser.min_n}-{cfg.featuriser.max_n}-gram tf-idf logistic regression"
    coef = np.asarray(model.clf.coef_, dtype=np.float64)
    intercept = np.asarray(model.clf.intercept_, dtype=np.float64)
    export_feat = model.feat
    extra_blocks: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]] = []
    idf = model.idf
    if stack is not None and fixed is not None:
        desc += " with a stacked SMP2020 Weibo model's scores (same vocabulary, folded into one block)"
        coef, intercept = fold_in_vocab(model.feat, coef, intercept, stack)
    elif stack is not None:
        desc += " with a stacked SMP2020 Weibo model's scores"
        export_feat, idf, coef, idf1, coef1, intercept = merged_blocks(
            model.feat, model.idf, coef, intercept, stack
        )
        extra_blocks.append((idf1, coef1))

    routed: Routed | None = None
    if cfg.route_smp is not None:
        if stack is None or fixed is not None or data_dir is None:
            raise ValueError(
                f"tier {tier!r} routes to its stacked Weibo model: it needs stack_smp and --data-dir"
            )
        routed = fit_routing(
            export_feat,
            stack.base,
            [texts[i] for i in np.nonzero(is_core)[0]],
            smp_texts,
            (oof, y[is_core]),
            model,
            temperature,
            data_dir,
            cfg.route_smp,
            seed,
            progress,
        )
        desc += "; Weibo-style prose routed to that Weibo model by a learnt router"
        metrics.update(routed.metrics())
        reports["route"] = routed.report()

    for name, ds in evalsets.items():
        normed = _norm_all(ds.texts, name)
        lg = model.logits(normed)
        gold = np.asarray(ds.labels, dtype=np.int64)
        if routed is None:
            rep, raw = evaluate(softmax(lg / temperature), gold), evaluate(softmax(lg), gold)
        else:
            rep = evaluate(routed.probs(lg, temperature, normed), gold)
            raw = evaluate(routed.probs(lg, None, normed), gold)
        metrics.update(_flat(name, rep))
        metrics[f"{name}_ece_uncalibrated"] = raw.ece
        reports[name] = rep.as_dict() | {"ece_uncalibrated": raw.ece, "source": ds.source}
        progress(f"{name}: macro-F1 {rep.macro_f1:.4f}, ECE {raw.ece:.4f} -> {rep.ece:.4f} ({len(ds)} rows)")

    if routed is None:
        blob = build_model(
            export_feat,
            idf,
            coef,
            intercept,
            temperature,
            model_id=mid,
            tier=tier,
            description=desc,
            metrics=metrics,
            extra_blocks=extra_blocks,
        )

        def reference(sample: Sequence[str]) -> npt.NDArray[np.float64]:
            return softmax(model.logits(sample) / temperature)
    else:
        blob = build_routed_model(
            export_feat,
            [(idf, coef), *extra_blocks],
            intercept,
            temperature,
            routed.blocks(export_feat),
            model_id=mid,
            tier=tier,
            description=desc,
            metrics=metrics,
        )
        route = routed

        def reference(sample: Sequence[str]) -> npt.NDArray[np.float64]:
            return route.probs(model.logits(sample), temperature, sample)

    check = verify_onnx(blob, reference, texts[:512], export_feat)
    progress(f"onnx matches sklearn: max |diff| {check:.2e}")
    path = write_model(blob, out_dir / f"{mid}.onnx")
    summary = {
        "model_id": mid,
        "tier": tier,
        "seed": seed,
        "config": asdict(cfg),
        "sources": sources,
        "vocab_size": len(export_feat.vocab),
        "size_bytes": len(blob),
        "metrics": metrics,
        "reports": reports,
    }
    (out_dir / f"{mid}.metrics.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    progress(f"wrote {path} ({len(blob) / 1e6:.2f} MB)")
    return TrainResult(path, mid, temperature, metrics, reports)


@dataclass(frozen=True, slots=True)
class Routed:
    """The prose expert (the stacked Weibo model), its temperature and the router, offset applied."""

    expert: BaseModel
    prose_temperature: float
    router: Router
    choice: OffsetChoice

    def probs(
        self, chat_logits: npt.NDArray[np.float64], temperature: float | None, texts: Sequence[str]
    ) -> npt.NDArray[np.float64]:
        """The mixture for normalised ``texts``; ``temperature`` None = both experts uncalibrated."""
        zp = prose_logits(self.expert, texts)
        r = self.router.logit(texts)
        if temperature is None:
            return mix(chat_logits, 1.0, zp, 1.0, r)
        return mix(chat_logits, temperature, zp, self.prose_temperature, r)

    def blocks(self, feat: Featuriser) -> RouteBlocks:
        """The expert and the router as graph blocks over ``feat`` (the exported vocabulary)."""
        cls = list(self.expert.classes)
        p_idf, p_coef = remap_block(self.expert.feat, self.expert.idf, self.expert.coef, feat)
        full = np.zeros((len(EMOTIONS), feat.size))
        full[cls] = p_coef
        bias = np.full(len(EMOTIONS), ABSENT_LOGIT)
        bias[cls] = self.expert.intercept
        if self.router.feat.vocab is not feat.vocab:
            raise ValueError("the router must read the exported vocabulary")
        return RouteBlocks(
            p_idf,
            full,
            bias,
            self.prose_temperature,
            self.router.idf,
            self.router.coef,
            self.router.len_coef,
            self.router.intercept,
        )

    def metrics(self) -> dict[str, float]:
        """The offset choice as flat numbers for the model's metadata."""
        c = self.choice
        return {
            "route_offset": c.offset,
            "route_prose_temperature": self.prose_temperature,
            "route_train_cv_macro_f1_unrouted": c.chat_f1_unrouted,
            "route_train_cv_macro_f1": c.chat_f1,
            "route_smp_usual_eval_macro_f1_unrouted": c.prose_f1_unrouted,
            "route_smp_usual_eval_macro_f1": c.prose_f1,
        }

    def report(self) -> dict[str, Any]:
        """Every offset tried with its chat CV and prose usual-eval macro-F1 (for the model card)."""
        return {
            "offset": self.choice.offset,
            "table": [
                {"offset": o, "chat_cv_macro_f1": a, "smp_usual_eval_macro_f1": b}
                for o, a, b in self.choice.table
            ],
        }


def fit_routing(
    feat: Featuriser,
    expert: BaseModel,
    chat_texts: Sequence[str],
    prose_texts: Sequence[str],
    chat_oof: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]],
    model: Fitted,
    temperature: float,
    data_dir: Path,
    params: RouteParams,
    seed: int,
    progress: Progress,
) -> Routed:
    """Calibrate the prose expert and fit the router on SMP usual-eval and out-of-fold chat scores."""
    ev = D.read_smp_usual_eval(data_dir)
    ev_texts = _norm_all(ev.texts, "normalise smp usual-eval")
    ev_y = np.asarray(ev.labels, dtype=np.int64)
    ev_prose = prose_logits(expert, ev_texts)
    t_prose = fit_temperature(ev_prose, ev_y)
    progress(f"fitting the prose router ({params.folds}-fold cross-fit for its offset, then all)")
    oof_router = out_of_fold_router_logits(feat, chat_texts, prose_texts, params, seed)
    router = fit_router(feat, chat_texts, prose_texts, params)
    oof, y_chat = chat_oof
    choice = choose_offset(
        (oof, prose_logits(expert, chat_texts), oof_router, y_chat),
        (model.logits(ev_texts), ev_prose, router.logit(ev_texts), ev_y),
        temperature,
        t_prose,
        params,
    )
    progress(
        f"router offset {choice.offset:+.1f}: chat CV macro-F1 {choice.chat_f1_unrouted:.4f} -> "
        f"{choice.chat_f1:.4f}, SMP usual-eval {choice.prose_f1_unrouted:.4f} -> {choice.prose_f1:.4f}"
    )
    return Routed(expert, t_prose, router.with_offset(choice.offset), choice)


def verify_onnx(
    blob: bytes,
    reference: Callable[[Sequence[str]], npt.NDArray[np.float64]],
    texts: Sequence[str],
    feat: Featuriser,
) -> float:
    """Max abs difference between onnxruntime's probabilities and ``reference`` (numpy/sklearn) ones.

    ``feat`` is the exported featuriser (the merged vocabulary of a stacked model); the reference side
    runs sklearn on the separate featurisers, so the check covers the merge too. Raises above tolerance.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    ids, tf = feat.transform(texts)
    (probs,) = sess.run(["probs"], {"ids": ids, "tf": tf})
    ref = reference(texts)
    diff = float(np.abs(probs - ref).max()) if len(texts) else 0.0
    if diff > ONNX_TOLERANCE:
        raise RuntimeError(f"exported graph disagrees with sklearn by {diff:.2e}")
    return diff
