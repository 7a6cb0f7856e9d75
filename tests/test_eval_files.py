"""`moodcast eval --data FILE --model ID --json` on the files users have: CSV and TSV `text,label`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.emotions import EMOTIONS
from engine.training import data as D
from tests.test_training import tiny_model

ROWS = [("哈哈哈笑死", "happy"), ("退钱骗子", "angry"), ("包邮吗", "neutral"), ("哈哈好可爱", "happy")]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    _, blob, _ = tiny_model()
    path = tmp_path / "tiny.onnx"
    path.write_bytes(blob)
    return path


def _eval_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    from engine.training.cli import eval_main

    capsys.readouterr()
    assert eval_main(args) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("plain.csv", "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in ROWS)),
        ("quoted.csv", "label,text\n" + "".join(f'{lab},"{t}, 对"\n' for t, lab in ROWS)),
        ("tabs.tsv", "text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in ROWS)),
        # A TSV without the .tsv suffix, texts with commas and a stray quote: the header decides.
        (
            "export.txt",
            "id\ttext\tlabel\n" + "".join(f'{i}\t"{t},x\t{lab}\n' for i, (t, lab) in enumerate(ROWS)),
        ),
        ("bom.csv", "\ufefftext,label\n" + "".join(f"{t},{lab.upper()}\n" for t, lab in ROWS)),
    ],
)
def test_eval_json_reads_csv_and_tsv(
    name: str, content: str, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    ds = D.read_any(path)
    assert len(ds) == len(ROWS) and [lab for _, lab in ROWS] == [EMOTIONS[y] for y in ds.labels]
    out = _eval_json(["--data", str(path), "--model", str(model), "--json"], capsys)
    assert out["n"] == len(ROWS)
    assert isinstance(out["macro_f1"], float) and 0.0 <= out["macro_f1"] <= 1.0
    per_class = out["per_class"]
    assert isinstance(per_class, dict) and per_class["happy"]["support"] == 2
    assert "confusion" in out and "ece" in out and "accuracy" in out


def test_eval_file_errors_name_the_line(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.training.cli import eval_main

    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tlabel\n哈哈\thappy\n退钱\tfurious\n", encoding="utf-8")
    assert eval_main(["--data", str(bad), "--model", str(model), "--json"]) == 2
    assert "bad.tsv:3" in capsys.readouterr().err
    nohead = tmp_path / "nohead.csv"
    nohead.write_text("哈哈,happy\n", encoding="utf-8")
    assert eval_main(["--data", str(nohead), "--model", str(model)]) == 2
    assert "header must name 'text' and 'label'" in capsys.readouterr().err
