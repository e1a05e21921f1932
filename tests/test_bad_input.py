"""Messy input: exit code 2, one stderr line that names the problem, and nothing written.

Each case runs the real CLI (typer's CliRunner, in process) on a small local
dataset (3 languages x 3 labels) and the tiny BERT fixture, and checks that
the folder holding the inputs is exactly as before: no run directory, no
half-built subsets, no probe json.

Empty or whitespace-only texts are not an error: the sources module drops
those rows (and rows without a label) and reports the counts per split in
distribution.json under `dropped_rows` (`empty_text`, `missing_label`) and in
the `data build` summary line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langtrainer.cli.main import app
from fault_helpers import (
    SPLIT_ROWS,
    error_line,
    make_rows,
    run_cli,
    tree,
    write_dataset,
    write_jsonl,
    write_recipe,
)


@pytest.fixture
def ds(tmp_path) -> Path:
    return write_dataset(tmp_path / "ds")


def invoke(*args) -> "object":
    return CliRunner().invoke(app, [str(a) for a in args])


def fails(folder: Path, *args) -> str:
    """Run the CLI; assert exit 2, one stderr line, nothing on stdout, `folder` unchanged; return the line."""
    before = tree(folder)
    result = invoke(*args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    line = error_line(result.stderr)
    assert line.startswith("error: ")
    assert result.stdout == ""
    assert tree(folder) == before, "the failed command left files behind"
    return line


def edited_recipe(tmp_path: Path, model: Path, source: Path, old: str, new: str, name: str = "bad") -> Path:
    recipe = write_recipe(tmp_path / f"{name}.yaml", model, source)
    text = recipe.read_text()
    assert old in text
    recipe.write_text(text.replace(old, new))
    return recipe


# ------------------------------------------------------------------ data


@pytest.mark.parametrize("column", ["text", "label", "language"])
def test_missing_column(tiny_model_dir, tmp_path, column):
    source = tmp_path / "ds"
    for split, n in SPLIT_ROWS.items():
        write_jsonl(source / f"{split}.jsonl", [{k: v for k, v in r.items() if k != column} for r in make_rows(split, n)])
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, source)
    line = fails(tmp_path, "data", "build", recipe, "--out", tmp_path / "out", "--quiet")
    present = ", ".join(c for c in ("id", "text", "label", "language") if c != column)
    assert line == (f"error: {source}: the {column} column '{column}' is not in the 'train' data "
                    f"(columns present: {present}); pass --{column}-column or set data.columns.{column}")


def test_recipe_language_absent_from_data(tiny_model_dir, tmp_path, ds):
    recipe = edited_recipe(tmp_path, tiny_model_dir, ds, "B: [en]", "B: [en, ja]")
    recipe.write_text(recipe.read_text().replace("languages: [de, en, fr]", "languages: [de, en, fr, ja]"))
    line = fails(tmp_path, "data", "build", recipe, "--out", tmp_path / "out", "--quiet")
    assert line == f"error: {ds}: language 'ja' is not in the data (languages present: de, en, fr)"
    # The same recipe through finetune: the run directory it created is removed again.
    line = fails(tmp_path, "finetune", recipe, "-o", tmp_path / "run", "--quiet")
    assert "language 'ja' is not in the data" in line


@pytest.mark.parametrize("row, message", [
    ("[50, 25, 20]", "imbalance.distribution.A sums to 95%, expected 100% (+/- 0.5)"),
    ("[50, 25, 24.4]", "imbalance.distribution.A sums to 99.4%, expected 100% (+/- 0.5)"),
    ("[50, 50]", "imbalance.distribution.A has 2 entries, expected one per label (3)"),
    ("[25, 25, 25, 25]", "imbalance.distribution.A has 4 entries, expected one per label (3)"),
])
def test_bad_distribution_row(tiny_model_dir, tmp_path, ds, row, message):
    recipe = edited_recipe(tmp_path, tiny_model_dir, ds, "A: [50, 25, 25]", f"A: {row}")
    assert fails(tmp_path, "data", "build", recipe, "--out", tmp_path / "out", "--quiet") == f"error: {message}"


def test_distribution_row_within_tolerance_is_accepted(tiny_model_dir, tmp_path, ds):
    """99.6% is within the 0.5-point tolerance (Table 1a's printed rows sum to 99.9%)."""
    recipe = edited_recipe(tmp_path, tiny_model_dir, ds, "A: [50, 25, 25]", "A: [50, 25, 24.6]")
    result = invoke("data", "build", recipe, "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "distribution.json").read_text())
    assert report["totals"]["train_imbalanced"] == 27
    assert sum(report["counts"]["train_imbalanced"]["de"].values()) == 9


def test_cell_with_too_few_examples(tiny_model_dir, tmp_path, ds):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, ds)
    line = fails(tmp_path, "data", "build", recipe, "--out", tmp_path / "out", "--quiet",
                 "--set", "data.test_per_cell=5")
    assert line == ("error: not enough examples in the test split for language 'de', label 'a': needed 5, "
                    "available 3 (and 8 more cells); lower the per-language counts or add data")


def test_empty_and_whitespace_texts_are_dropped_and_counted(tiny_model_dir, tmp_path):
    import datasets

    source = tmp_path / "ds"
    blanks = ["", "   ", "\t\n", None]
    for split, n in SPLIT_ROWS.items():
        rows = make_rows(split, n) + [
            {"id": f"blank-{split}-{i}", "text": text, "label": "b", "language": "en"} for i, text in enumerate(blanks)
        ]
        write_jsonl(source / f"{split}.jsonl", rows)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, source)
    result = invoke("data", "build", recipe, "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 0, result.output
    assert "dropped 12 rows with empty text" in " ".join(result.stdout.split())
    report = json.loads((tmp_path / "out" / "distribution.json").read_text())
    assert report["dropped_rows"]["empty_text"] == {"train": 4, "validation": 4, "test": 4}
    assert report["dropped_rows"]["missing_label"] == {"train": 0, "validation": 0, "test": 0}
    assert report["source"]["rows"] == {split: 9 * n for split, n in SPLIT_ROWS.items()}
    subsets = datasets.load_from_disk(str(tmp_path / "out"))
    for split in subsets:
        assert all(text.strip() for text in subsets[split]["text"])
        assert not any(i.startswith("blank-") for i in subsets[split]["id"])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_non_utf8_file(tiny_model_dir, tmp_path, suffix):
    import pandas as pd

    rows = make_rows("train", 12) + [{"id": "latin", "text": "Größe der Tabelle", "label": "a", "language": "de"}]
    source = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        text = pd.DataFrame(rows).to_csv(index=False)
    else:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    source.write_bytes(text.encode("latin-1"))
    offset = next(i for i, ch in enumerate(text) if ord(ch) > 127)  # latin-1: one byte per character
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, source)
    line = fails(tmp_path, "data", "build", recipe, "--out", tmp_path / "out", "--quiet")
    assert line == f"error: '{source}' is not UTF-8 text (invalid byte at offset {offset}); re-save it as UTF-8"


# ------------------------------------------------------------------ checkpoints and models


@pytest.mark.parametrize("data", ["test", "file"])
def test_probe_on_a_folder_without_a_model(tmp_path, data):
    empty = tmp_path / "ckpt"
    empty.mkdir()
    args = ["probe", "--ckpt", empty, "--quiet"]
    if data == "file":
        args += ["--data", write_jsonl(tmp_path / "texts.jsonl", make_rows("test", 5))]
    line = fails(tmp_path, *args)
    assert line == (f"error: '{empty}' holds no model (no config.json): give a finished run directory, "
                    "an HF model folder or builtin:NAME")


def test_model_path_that_does_not_exist_fails_at_once(tiny_model_dir, tmp_path, ds, monkeypatch):
    """No Hub lookup (it would retry for ~30 s online), no data built, no run folder left."""
    import transformers.utils.hub

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was asked for a local path")

    monkeypatch.setattr(transformers.utils.hub, "cached_files", no_hub)
    missing = tmp_path / "models" / "tiny-typo"
    recipe = edited_recipe(tmp_path, tiny_model_dir, ds, str(tiny_model_dir), str(missing))
    line = fails(tmp_path, "finetune", recipe, "-o", tmp_path / "run", "--quiet")
    assert not (tmp_path / "run").exists()
    assert line == f"error: model path '{missing}' does not exist"


# ------------------------------------------------------------------ recipes and --set


def test_training_key_that_is_not_a_training_argument(tiny_model_dir, tmp_path, ds):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, ds, training="  learning_rat: 0.0001\n")
    line = fails(tmp_path, "finetune", recipe, "-o", tmp_path / "run", "--quiet")
    assert line == ("error: r.yaml: unknown recipe key 'training.learning_rat': not a TrainingArguments field "
                    "(did you mean 'learning_rate'?)")


def test_training_value_of_the_wrong_type(tiny_model_dir, tmp_path, ds):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, ds)
    line = fails(tmp_path, "finetune", recipe, "-o", tmp_path / "run", "--quiet",
                 "--set", "training.num_train_epochs=many")
    assert line.startswith("error: r.yaml: training.num_train_epochs: expected a number")


@pytest.mark.parametrize("pair, message", [
    ("training.num_train_epochs", "--set expects KEY=VALUE"),
    ("=3", "--set expects KEY=VALUE"),
    ("training..num_train_epochs=3", "--set expects KEY=VALUE"),
    ("trainng.num_train_epochs=3", "unknown recipe key 'trainng' (did you mean 'training'?)"),
    ("data.train_per_language.x=3", "'train_per_language' is not a mapping"),
])
def test_malformed_set(tiny_model_dir, tmp_path, ds, pair, message):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, ds)
    line = fails(tmp_path, "data", "build", recipe, "--out", tmp_path / "out", "--quiet", "--set", pair)
    assert message in line
    if message.startswith("--set"):
        assert line.endswith(f"e.g. training.num_train_epochs=1; got {pair!r}")


# ------------------------------------------------------------------ the Hub, unreachable


def test_hub_dataset_without_the_hub(tiny_model_dir, tmp_path, ds):
    recipe = edited_recipe(tmp_path, tiny_model_dir, ds, f'"{ds}"', "someorg/multilingual-reviews")
    line = fails(tmp_path, "data", "build", recipe, "--out", tmp_path / "out", "--quiet")
    assert line.startswith("error: needs the Hugging Face Hub: could not load 'someorg/multilingual-reviews'")
    assert "point data.source at a local copy" in line


def test_hub_model_without_the_hub(tiny_model_dir, tmp_path, ds):
    """The data is built before the model is loaded; the run directory is removed with the error."""
    recipe = edited_recipe(tmp_path, tiny_model_dir, ds, str(tiny_model_dir), "someorg/some-encoder")
    line = fails(tmp_path, "finetune", recipe, "-o", tmp_path / "run", "--quiet")
    assert line.startswith("error: model 'someorg/some-encoder' needs the Hugging Face Hub, which is unreachable: "
                           "use a local folder or builtin:multilingual-e5-small")


def test_one_line_in_a_real_process(tiny_model_dir, tmp_path, ds):
    """The same contract outside CliRunner: exit 2, one stderr line, no traceback, no Hub access attempted."""
    recipe = edited_recipe(tmp_path, tiny_model_dir, ds, str(tiny_model_dir), str(tmp_path / "nope"))
    before = tree(tmp_path)
    done = run_cli("finetune", recipe, "-o", tmp_path / "run", "--quiet", cwd=tmp_path,
                   env={"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert done.returncode == 2
    assert error_line(done.stderr) == f"error: model path '{tmp_path / 'nope'}' does not exist"
    assert done.stdout == "" and tree(tmp_path) == before


# ------------------------------------------------------------------ output folders that hold other things


def test_data_build_does_not_replace_a_folder_it_did_not_write(tiny_model_dir, tmp_path, ds):
    """`--out` is replaced whole, so pointing it at the source data (or $HOME) must not delete it."""
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, ds)
    line = fails(tmp_path, "data", "build", recipe, "--out", ds, "--quiet")
    assert line == f"error: --out '{ds}' exists and is not a data build output; it would be replaced: " \
                   "give a new folder (or delete it)"
    (tmp_path / "notes.txt").write_text("mine")
    line = fails(tmp_path, "data", "build", recipe, "--out", tmp_path / "notes.txt", "--quiet")
    assert "is a file" in line
    # An earlier build output is fine to replace.
    for seed in (0, 1):
        result = invoke("data", "build", recipe, "--out", tmp_path / "out", "--quiet", "--set", f"seed={seed}")
        assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "distribution.json").read_text())["seed"] == 1


def test_finetune_does_not_write_into_a_folder_that_is_not_a_run(tiny_model_dir, tmp_path, ds):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, ds)
    project = tmp_path / "project"
    (project / "checkpoints").mkdir(parents=True)  # a run deletes its checkpoints/ at the end
    (project / "config.json").write_text("{}")
    line = fails(tmp_path, "finetune", recipe, "-o", project, "--quiet")
    assert line == (f"error: '{project}' is not a langtrainer run directory (it holds checkpoints, config.json): "
                    "give a new or empty --output-dir")
