"""As-is training data: a recipe without a skew design uses every row, in the user's splits or carved ones."""

import json

import numpy as np
import pandas as pd
import pytest

from langtrainer.data.sampling import build_from_recipe
from langtrainer.data.carving import carve_sizes
from langtrainer.errors import UserError
from langtrainer.recipe import load_recipe, recipe_from_dict

# Uneven cells, several under 5 rows: (language, label) -> rows.
CELLS = {("en", "neg"): 30, ("en", "pos"): 4, ("de", "neg"): 3, ("de", "pos"): 12, ("fr", "neg"): 2,
         ("fr", "pos"): 9}


def uneven_rows():
    return [{"id": f"{lang}-{label}-{i}", "text": f"{lang} {label} {i}", "label": label, "language": lang}
            for (lang, label), n in CELLS.items() for i in range(n)]


def write_recipe(tmp_path, source, body=""):
    path = tmp_path / "recipe.yaml"
    path.write_text(f"name: asis\nseed: 3\ndata:\n  source: \"{source}\"\n{body}", encoding="utf-8")
    return path


def cells(dataset):
    frame = dataset.to_pandas()
    names = dataset.features["label"].names
    return {(lang, names[label]): n for (lang, label), n in frame.groupby(["language", "label"]).size().items()}


def test_carve_sizes_keep_a_row_per_split_where_the_cell_allows():
    sizes = carve_sizes(np.array([1, 2, 3, 4, 9, 10, 30, 50]), [0.1, 0.1])
    assert sizes.tolist() == [[0, 0], [1, 0], [1, 1], [1, 1], [1, 1], [1, 1], [3, 3], [5, 5]]
    assert carve_sizes(np.array([10]), [0.0, 0.25]).tolist() == [[0, 3]]


def test_no_imbalance_block_trains_on_every_row_with_carved_stratified_splits(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in uneven_rows()) + "\n", encoding="utf-8")
    recipe = load_recipe(write_recipe(tmp_path, path))
    assert recipe.imbalance.subset == "none"
    subsets, report = build_from_recipe(recipe)
    assert list(subsets) == ["train", "validation", "test"]
    # every row is in exactly one split
    ids = [set(subsets[s]["id"]) for s in subsets]
    assert sum(map(len, ids)) == sum(CELLS.values()) == len(set().union(*ids))
    # 10 % per cell rounded, at least one row per carved split where the cell keeps one for train
    # (a 2-row cell gives its second row to validation, none to test)
    test = {("en", "neg"): 3, ("en", "pos"): 1, ("de", "neg"): 1, ("de", "pos"): 1, ("fr", "pos"): 1}
    validation = test | {("fr", "neg"): 1}
    assert cells(subsets["validation"]) == validation
    assert cells(subsets["test"]) == test
    assert cells(subsets["train"]) == {k: n - validation[k] - test.get(k, 0) for k, n in CELLS.items()}
    assert report["counts"]["train"]["en"] == {"neg": 24, "pos": 2}
    assert report["counts"]["train"]["fr"] == {"neg": 1, "pos": 7}
    assert report["totals"] == {"train": 45, "validation": 8, "test": 7}
    assert report["overlap"] == {} and report["labels"] == ["neg", "pos"]
    assert report["source"]["carved_splits"] == ["validation", "test"]
    json.dumps(report)
    again, _ = build_from_recipe(recipe)
    assert again["test"]["id"] == subsets["test"]["id"]


def test_fractions_from_the_recipe_and_subset_none_explicit(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in uneven_rows()) + "\n", encoding="utf-8")
    body = "  validation_fraction: 0.2\n  test_fraction: 0.1\nimbalance:\n  subset: none\n"
    subsets, report = build_from_recipe(load_recipe(write_recipe(tmp_path, path, body)))
    assert len(subsets["test"]) > 0
    assert cells(subsets["validation"])[("en", "neg")] == 6
    with pytest.raises(UserError, match=r"data.test_fraction must be in \(0, 1\), got 0.0: .* empty"):
        load_recipe(write_recipe(tmp_path, path, body), ["data.test_fraction=0"])
    for bad in ("data.test_fraction=1.0", "data.validation_fraction=-0.1", "data.validation_fraction=0.6",
                "data.test_fraction=.nan"):
        with pytest.raises(UserError, match="fraction"):
            load_recipe(write_recipe(tmp_path, path, body), [bad, "data.test_fraction=0.5"]
                        if bad == "data.validation_fraction=0.6" else [bad])


def test_csv_with_own_splits_and_other_column_names_is_kept_as_is(tmp_path):
    folder = tmp_path / "reviews"
    folder.mkdir()
    for split, n in (("train", 7), ("validation", 2), ("test", 3)):
        pd.DataFrame({"review": [f"{split} {i}" for i in range(n)], "stars": [str(1 + i % 2) for i in range(n)],
                      "lang": (["en", " DE"] * n)[:n]}).to_csv(folder / f"{split}.csv", index=False)
    body = "  columns: {text: review, label: stars, language: lang}\n"
    subsets, report = build_from_recipe(load_recipe(write_recipe(tmp_path, folder, body)))
    assert {s: len(d) for s, d in subsets.items()} == {"train": 7, "validation": 2, "test": 3}
    assert subsets["train"]["text"] == [f"train {i}" for i in range(7)]  # source order, nothing sampled
    assert report["labels"] == ["1", "2"] and report["source"]["carved_splits"] == []
    assert report["languages"] == ["de", "en"]  # ' DE' read as 'de'
    assert report["counts"]["test"] == {"de": {"1": 0, "2": 1}, "en": {"1": 2, "2": 0}}


def test_group_column_mapped_keeps_groups_on_one_side(tmp_path):
    rows = [{"text": f"{lang} {g}", "label": g % 2, "language": lang, "item": f"pkg{g}"}
            for g in range(40) for lang in ("en", "de")]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    subsets, _ = build_from_recipe(load_recipe(write_recipe(tmp_path, path, "  columns: {group: item}\n")))
    sides = [set(subsets[s]["group"]) for s in subsets]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert [len(s) for s in sides] == [32, 4, 4]  # 20 groups per label, 10 % = 2 groups each
    with pytest.raises(UserError, match="group column 'family' .*; set data.columns.group$"):
        build_from_recipe(load_recipe(write_recipe(tmp_path, path, "  columns: {group: family}\n")))


def test_subset_defaults_follow_the_design():
    assert recipe_from_dict({}).imbalance.subset == "none"
    skew = {"imbalance": {"groups": {"A": ["en"], "B": ["de"]}, "distribution": {"A": [75, 25], "B": [25, 75]}}}
    assert recipe_from_dict(skew).imbalance.subset == "imbalanced"
    assert recipe_from_dict({"imbalance": {"subset": "balanced"}}).imbalance.subset == "balanced"


def test_cli_data_build_as_is(tmp_path):
    import datasets
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in uneven_rows()) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["data", "build", str(write_recipe(tmp_path, path)), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "(train 45, validation 8, test 7)" in " ".join(result.output.split())
    assert {s: len(d) for s, d in datasets.load_from_disk(str(out)).items()} == {"train": 45, "validation": 8,
                                                                                "test": 7}


def test_finetune_as_is_on_a_csv_with_other_column_names(tiny_model_dir, tmp_path):
    """A recipe without a skew design trains on every training row with eq. 2 weights from its counts."""
    from typer.testing import CliRunner

    from langtrainer.cli.main import app
    from langtrainer.rundir import RunDir
    from tiny_model import SAMPLE_TEXTS

    rows = uneven_rows()
    frame = pd.DataFrame({"review": [f"{SAMPLE_TEXTS[r['language']][i % 2]} {i}" for i, r in enumerate(rows)],
                          "stars": [r["label"] for r in rows], "lang": [r["language"] for r in rows]})
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: reviews\nseed: 1\nmodel: {{name_or_path: '{tiny_model_dir}', max_length: 32}}\n"
        f"data:\n  source: '{tmp_path / 'reviews.csv'}'\n  columns: {{text: review, label: stars, language: lang}}\n"
        "loss: {class_weights: per_language}\n"
        "training: {num_train_epochs: 1, per_device_train_batch_size: 8}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["finetune", str(recipe), "-o", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    run = RunDir(tmp_path / "run")
    metrics = run.read_metrics().to_dict()
    train = run.load_subsets()["train"]
    assert metrics["subset"] == "none"
    assert metrics["train"]["examples"] == len(train) == 45  # every training row: 60 rows less 8 + 7 carved
    # eq. 2 on the training split's counts: w_{c,l} = n_l / (C * n_{c,l})
    counts = {lang: {label: sum(1 for x, y in zip(train["language"], train["label"]) if x == lang and y == c)
                     for c, label in enumerate(["neg", "pos"])} for lang in metrics["languages"]}
    for i, lang in enumerate(metrics["languages"]):
        n_l = sum(counts[lang].values())
        expected = [n_l / (2 * counts[lang][label]) for label in ("neg", "pos")]
        assert metrics["class_weights"][i] == pytest.approx(expected)
    assert metrics["class_weights"][metrics["languages"].index("en")] == pytest.approx([26 / 48, 26 / 4])
    by_language = metrics["test"]["by_language"]
    assert sorted(by_language) == ["de", "en", "fr"]
    assert sum(row["n"] for row in by_language.values()) == metrics["test"]["n"] == 7
    assert all(set(row["prediction_shares"]) == {"neg", "pos"} for row in by_language.values())
