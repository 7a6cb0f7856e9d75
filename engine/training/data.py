"""Readers for the labelled corpora in ../shared/data and for a user's own ``text,label`` file.

Every reader returns raw texts; normalisation happens once, in training, with the serving normaliser.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.emotions import EMOTIONS, INDEX

SILVER = Path("danmu") / "silver.tsv"
POOL = Path("danmu") / "pool.tsv"
GOLD_DIR = Path(__file__).resolve().parent / "labels"
"""Adjudicated ``id<TAB>label`` files keyed by pool ids (never texts); every ``*.tsv`` here is read."""
SMP_TRAIN = (
    Path("smp2020-ewect") / "tomhg_model-0_data" / "train0.csv",
    Path("smp2020-ewect") / "tomhg_model-0_data" / "dev0.csv",
)
SMP_USUAL_TEST = Path("smp2020-ewect") / "brownsweater_data_raw" / "usual_test_labeled.txt"
SMP_USUAL_EVAL = Path("smp2020-ewect") / "brownsweater_data_raw" / "usual_eval_labeled.txt"

# SMP's surprise mixes shock, awe and dismay: no single label of ours fits, so it is dropped.
SMP_MAP: dict[str, str | None] = {
    "happy": "happy",
    "angry": "angry",
    "sad": "sad",
    "fear": "anxious",
    "neural": "neutral",
    "neutral": "neutral",
    "surprise": None,
}

HELDOUT_FRACTION = 0.2
HELDOUT_SEED = 0
"""Fixed, independent of the training seed, so every model is scored on the same held-out lines."""


class DataError(ValueError):
    """A data file that is missing or malformed; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class Labelled:
    """Parallel lists of raw texts and gold class indexes (EMOTIONS order), with where they came from."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: Iterable[int], source: str | None = None) -> Labelled:
        """The rows at ``idx``, in that order."""
        ix = list(idx)
        return Labelled(
            tuple(self.texts[i] for i in ix), tuple(self.labels[i] for i in ix), source or self.source
        )

    def counts(self) -> dict[str, int]:
        """Rows per label, in EMOTIONS order."""
        c = np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=len(EMOTIONS))
        return {e: int(c[i]) for i, e in enumerate(EMOTIONS)}


def concat(parts: Sequence[Labelled], source: str) -> Labelled:
    """All rows of ``parts`` in order."""
    return Labelled(
        tuple(t for p in parts for t in p.texts), tuple(y for p in parts for y in p.labels), source
    )


def _need(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path} not found")
    return path


def read_silver(data_dir: Path) -> Labelled:
    """danmu/silver.tsv: ``id source stratum label text``, labelled by LABELS.md."""
    if not (data_dir / SILVER).is_file():
        raise DataError(f"{data_dir / SILVER} not found (pass --data-dir pointing at the shared data folder)")
    d = read_silver_file(data_dir / SILVER)
    # Named relative to the corpus folder, so training records do not carry this machine's paths.
    return Labelled(d.texts, d.labels, SILVER.as_posix())


def read_silver_file(path: Path) -> Labelled:
    """A silver-style TSV with a header naming ``label`` and ``text`` columns."""
    _need(path)
    texts: list[str] = []
    labels: list[int] = []
    with path.open(encoding="utf-8", newline="") as f:
        header = f.readline().rstrip("\n").split("\t")
        try:
            li, ti = header.index("label"), header.index("text")
        except ValueError as exc:
            raise DataError(f"{path}: header must name 'label' and 'text'") from exc
        for n, line in enumerate(f, start=2):
            cols = line.rstrip("\n").split("\t")
            if len(cols) <= max(li, ti):
                raise DataError(f"{path}:{n}: expected {len(header)} tab-separated columns")
            if cols[li] not in INDEX:
                raise DataError(f"{path}:{n}: unknown label {cols[li]!r}")
            texts.append(cols[ti])
            labels.append(INDEX[cols[li]])
    return Labelled(tuple(texts), tuple(labels), str(path))


def split_heldout(data: Labelled) -> tuple[Labelled, Labelled]:
    """Stratified 80/20 (train, held-out) split with a fixed seed, independent of the training seed."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(data))
    tr, te = train_test_split(
        idx, test_size=HELDOUT_FRACTION, random_state=HELDOUT_SEED, stratify=np.asarray(data.labels)
    )
    return data.subset(sorted(tr), data.source + " [train 80%]"), data.subset(
        sorted(te), data.source + " [held-out 20%]"
    )


def read_pool(data_dir: Path) -> dict[str, str]:
    """danmu/pool.tsv as ``id -> raw text`` (columns ``id source text``; a header line is skipped)."""
    path = data_dir / POOL
    if not path.is_file():
        raise DataError(f"{path} not found (pass --data-dir pointing at the shared data folder)")
    out: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t", 2)
            if len(cols) == 3 and cols[0] != "id":
                out[cols[0]] = cols[2]
    return out


def gold_files(labels_dir: Path = GOLD_DIR) -> list[Path]:
    """The gold label files, sorted by name (so the joined order, and with it the split, is stable)."""
    return sorted(labels_dir.glob("*.tsv")) if labels_dir.is_dir() else []


def read_gold(data_dir: Path, files: Sequence[Path]) -> tuple[Labelled, list[str]]:
    """Join ``id<TAB>label`` files with pool texts (sorted by id; the ids come back alongside).

    An id seen twice must carry the same label.
    Lines starting with ``#`` and a header ``id<TAB>label`` are skipped. Unknown ids or labels are errors
    naming the file and line, so a typo cannot silently shrink the training set.
    """
    pool = read_pool(data_dir)
    labels: dict[str, int] = {}
    for path in files:
        with _need(path).open(encoding="utf-8", newline="") as f:
            for n, line in enumerate(f, start=1):
                cols = line.rstrip("\r\n").split("\t")
                if not cols[0] or cols[0].startswith("#") or (cols[0] == "id" and n == 1):
                    continue
                if len(cols) < 2:
                    raise DataError(f"{path}:{n}: expected id<TAB>label")
                pid, lab = cols[0].strip(), cols[1].strip().lower()
                if lab not in INDEX:
                    raise DataError(f"{path}:{n}: label {lab!r} is not one of {', '.join(EMOTIONS)}")
                if pid not in pool:
                    raise DataError(f"{path}:{n}: id {pid!r} is not in {POOL.as_posix()}")
                if labels.setdefault(pid, INDEX[lab]) != INDEX[lab]:
                    raise DataError(f"{path}:{n}: id {pid} already labelled {EMOTIONS[labels[pid]]}")
    ids = sorted(labels)
    data = Labelled(
        tuple(pool[i] for i in ids), tuple(labels[i] for i in ids), f"gold labels on {POOL.as_posix()}"
    )
    return data, ids


def gold_is_heldout(pool_id: str) -> bool:
    """Whether a gold line belongs to the held-out 20%: decided by its id alone (sha1), never by the data.

    A split by id hash is stable as label files are added: a line held out once stays held out, so no
    model is ever scored on a line an earlier model of the same recipe trained on.
    """
    h = int(hashlib.sha1(pool_id.encode("utf-8")).hexdigest()[:8], 16)
    return h % 100 < round(HELDOUT_FRACTION * 100)


def split_gold(data: Labelled, ids: Sequence[str]) -> tuple[Labelled, Labelled]:
    """(train, held-out) of the gold lines by ``gold_is_heldout`` on their pool ids."""
    held = [gold_is_heldout(i) for i in ids]
    return data.subset([i for i, h in enumerate(held) if not h], data.source + " [train 80%]"), data.subset(
        [i for i, h in enumerate(held) if h], data.source + " [held-out 20%]"
    )


def _smp_rows(path: Path) -> Iterable[tuple[str, str]]:
    with _need(path).open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            yield row["content"], row["labels"]


def read_smp_train(data_dir: Path) -> Labelled:
    """SMP2020-EWECT train0.csv + dev0.csv (the official train set), mapped, surprise dropped."""
    texts: list[str] = []
    labels: list[int] = []
    for rel in SMP_TRAIN:
        for text, lab in _smp_rows(data_dir / rel):
            mapped = SMP_MAP.get(lab)
            if mapped is not None:
                texts.append(text)
                labels.append(INDEX[mapped])
    return Labelled(tuple(texts), tuple(labels), "smp2020-ewect train0+dev0")


def read_smp_json(path: Path) -> Labelled:
    """An SMP ``*_labeled.txt`` file (one JSON list of {content, label}), mapped, surprise dropped."""
    try:
        rows = json.loads(_need(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc})") from exc
    texts: list[str] = []
    labels: list[int] = []
    for r in rows:
        mapped = SMP_MAP.get(str(r.get("label")))
        if mapped is not None:
            texts.append(str(r["content"]))
            labels.append(INDEX[mapped])
    return Labelled(tuple(texts), tuple(labels), str(path))


def read_smp_usual_test(data_dir: Path) -> Labelled:
    """SMP usual-test minus the texts that also appear verbatim in the train set (232 of them)."""
    return _smp_minus_train(data_dir, SMP_USUAL_TEST)


def read_smp_usual_eval(data_dir: Path) -> Labelled:
    """SMP usual-eval minus train overlap (126 texts): tunes what touches Weibo text, never the test."""
    return _smp_minus_train(data_dir, SMP_USUAL_EVAL)


def _smp_minus_train(data_dir: Path, rel: Path) -> Labelled:
    data = read_smp_json(data_dir / rel)
    data = Labelled(data.texts, data.labels, rel.as_posix())
    seen = set(read_smp_train_raw_texts(data_dir))
    keep = [i for i, t in enumerate(data.texts) if t not in seen]
    return data.subset(keep, data.source + " [minus train overlap]")


def read_smp_train_raw_texts(data_dir: Path) -> list[str]:
    """Every SMP train text, surprise included (overlap must be removed whatever its label)."""
    return [t for rel in SMP_TRAIN for t, _ in _smp_rows(data_dir / rel)]


def read_user_file(path: Path) -> Labelled:
    """A user's CSV or TSV with a header naming ``text`` and ``label`` columns; labels are ours."""
    _need(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        header = f.readline()
        f.seek(0)
        # The header decides: texts may hold commas (TSV) or tabs (quoted CSV), the header never does.
        delim = "\t" if path.suffix.lower() == ".tsv" or "\t" in header else ","
        # TSV has no quoting: a danmu starting with " must not swallow the lines after it.
        if delim == "\t":
            reader = csv.DictReader(f, delimiter=delim, quoting=csv.QUOTE_NONE)
        else:
            reader = csv.DictReader(f, delimiter=delim)
        fields = [x.strip().lower() for x in reader.fieldnames or []]
        if "text" not in fields or "label" not in fields:
            raise DataError(f"{path}: header must name 'text' and 'label' columns, found {fields}")
        reader.fieldnames = fields
        texts: list[str] = []
        labels: list[int] = []
        for n, row in enumerate(reader, start=2):
            lab = (row.get("label") or "").strip().lower()
            if lab not in INDEX:
                raise DataError(f"{path}:{n}: label {lab!r} is not one of {', '.join(EMOTIONS)}")
            texts.append(row.get("text") or "")
            labels.append(INDEX[lab])
    return Labelled(tuple(texts), tuple(labels), str(path))


def read_any(path: Path) -> Labelled:
    """Pick the reader by file shape: silver-style TSV, SMP JSON or SMP CSV, or a user text,label file."""
    with _need(path).open(encoding="utf-8-sig") as f:
        head = f.readline()
    if path.suffix == ".txt" and head.lstrip().startswith(("[", "{")):
        return read_smp_json(path)
    if head.startswith("content,labels"):
        texts, labels = [], []
        for t, lab in _smp_rows(path):
            mapped = SMP_MAP.get(lab)
            if mapped is not None:
                texts.append(t)
                labels.append(INDEX[mapped])
        return Labelled(tuple(texts), tuple(labels), str(path))
    if head.startswith("id\t") and "\tstratum\t" in head:
        return read_silver_file(path)
    return read_user_file(path)
