"""`shap --data FILE`: tables without an id column (row numbers), label names, duplicate ids refused."""

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from fault_helpers import error_line
from langtrainer.cli.main import app
from test_attribution import LANGS, TEXTS


@pytest.fixture(scope="module")
def bare_run(tiny_model_dir, tmp_path_factory):
    """The tiny checkpoint as a run folder with a recipe but no data/: --data must be given."""
    run = tmp_path_factory.mktemp("run") / "model"
    shutil.copytree(tiny_model_dir, run)
    (run / "recipe.yaml").write_text("seed: 0\n", encoding="utf-8")
    return run


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def shap(*args):
    return CliRunner().invoke(app, ["shap", *map(str, args), "--max-evals", "20", "--quiet"])


def test_jsonl_without_id_uses_row_numbers(bare_run, tmp_path):
    # label names of the tiny model (label0..label3), as a user's own file would have them
    rows = [{"text": t, "label": f"label{i % 4}", "language": lang} for i, (t, lang) in enumerate(zip(TEXTS, LANGS))]
    data = write_rows(tmp_path / "reviews_test.jsonl", rows)
    out = tmp_path / "shap"
    result = shap("--ckpt", bare_run, "--data", data, "--out", out)
    assert result.exit_code == 0, result.output
    examples = pd.concat(pd.read_parquet(p) for p in sorted((out / "shards").glob("*.parquet")))
    assert sorted(examples["id"], key=int) == [str(i) for i in range(len(rows))]
    by_id = examples.set_index("id")
    for i in (0, 5, len(rows) - 1):
        assert by_id.loc[str(i), "label"] == i % 4
        assert by_id.loc[str(i), "language"] == LANGS[i]


def test_csv_with_int_labels(bare_run, tmp_path):
    frame = pd.DataFrame({"text": TEXTS[:6], "label": [0, 1, 2, 3, 0, 1], "language": LANGS[:6]})
    data = tmp_path / "t.csv"
    frame.to_csv(data, index=False)
    result = shap("--ckpt", bare_run, "--data", data, "--out", tmp_path / "shap")
    assert result.exit_code == 0, result.output


def test_duplicate_ids_and_unknown_labels_are_refused(bare_run, tmp_path):
    rows = [{"id": "a", "text": t, "label": "label0", "language": "en"} for t in TEXTS[:2]]
    result = shap("--ckpt", bare_run, "--data", write_rows(tmp_path / "dup.jsonl", rows), "--out", tmp_path / "o1")
    assert result.exit_code == 2
    assert "duplicate ids, e.g. 'a'" in error_line(result.stderr)
    rows = [{"text": t, "label": "positive", "language": "en"} for t in TEXTS[:2]]
    result = shap("--ckpt", bare_run, "--data", write_rows(tmp_path / "bad.jsonl", rows), "--out", tmp_path / "o2")
    assert result.exit_code == 2
    assert "label 'positive' is not one of the model's labels (label0, label1, label2, label3)" in error_line(result.stderr)


def test_column_flags(bare_run, tmp_path):
    frame = pd.DataFrame({"review": TEXTS[:8], "stars": [f"label{i % 4}" for i in range(8)], "lang": LANGS[:8]})
    data = tmp_path / "reviews.csv"
    frame.to_csv(data, index=False)
    result = shap("--ckpt", bare_run, "--data", data, "--out", tmp_path / "o1")
    assert result.exit_code == 2
    assert ("the text column 'text' is not in the data (columns present: review, stars, lang); pass --text-column "
            "or set data.columns.text") in error_line(result.stderr)
    out = tmp_path / "o2"
    result = shap("--ckpt", bare_run, "--data", data, "--out", out, "--text-column", "review",
                  "--label-column", "stars", "--language-column", "lang")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["arguments"]["columns"] == {"label": "stars", "language": "lang", "text": "review"}
    examples = pd.concat(pd.read_parquet(p) for p in sorted((out / "shards").glob("*.parquet"))).set_index("id")
    assert examples.loc["3", "label"] == 3 and examples.loc["3", "language"] == LANGS[3]
