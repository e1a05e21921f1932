"""Loading sources into pools: formats, column mapping, labels, errors, carving splits."""

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from langtrainer.data.sources import load_source
from langtrainer.errors import UserError

SPLITS = {"train": "train", "validation": "validation", "test": "test"}
COLUMNS = {"id": None, "text": "text", "text_pair": None, "label": "label", "language": "language"}


def rows(split, langs=("en", "fr"), labels=("neg", "pos"), per_cell=3):
    return [{"id": f"{split}-{lang}-{label}-{i}", "text": f"{lang} {label} {i}", "label": label,
             "language": lang, "split": split}
            for lang in langs for label in labels for i in range(per_cell)]


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def test_jsonl_with_split_column_maps_labels_in_recipe_order(tmp_path):
    records = rows("train") + rows("validation") + rows("test")
    records.append({"id": "blank", "text": "  \t", "label": "neg", "language": "en", "split": "train"})
    records.append({"id": "de-1", "text": "de text", "label": "neg", "language": "de", "split": "train"})
    path = write_jsonl(tmp_path / "d.jsonl", records)
    pools, names = load_source(str(path), SPLITS, COLUMNS, ["fr", "en"], ["pos", "neg"])
    assert names == ["pos", "neg"]
    assert set(pools) == {"train", "validation", "test"}
    train = pools["train"]
    assert len(train) == 12 and set(train["language"]) == {"en", "fr"}  # 'de' left out, blank dropped
    assert train.loc[train["id"] == "train-en-pos-0", "label"].item() == 0
    assert train.loc[train["id"] == "train-fr-neg-2", "label"].item() == 1
    assert train["label"].dtype == np.int64
    assert pools.report["dropped_empty_text"] == {"train": 1, "validation": 0, "test": 0}
    assert list(train.columns) == ["id", "text", "label", "language"]


def test_sorted_labels_when_recipe_gives_none_and_column_mapping(tmp_path):
    records = [{"uid": r["id"], "sentence": r["text"], "stars": r["label"], "lang": r["language"], "split": "train"}
               for r in rows("train", labels=("b", "c", "a"))]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    columns = {"id": "uid", "text": "sentence", "label": "stars", "language": "lang"}
    pools, names = load_source(str(path), SPLITS, columns, None, None, seed=0)
    assert names == ["a", "b", "c"]
    everything = pd.concat(pools.values())
    assert everything.loc[everything["id"] == "train-en-c-0", "label"].item() == 2
    assert everything.loc[everything["id"] == "train-fr-a-1", "label"].item() == 0


def test_folder_of_csv_files_and_int_labels(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        frame = pd.DataFrame(rows(split, labels=(5, 1, 3))).drop(columns="split")
        frame.to_csv(folder / f"{split}.csv", index=False)
    pools, names = load_source(str(folder), SPLITS, COLUMNS, ["en"], None)
    # stars 1, 3, 5 -> ids 0, 1, 2 with the original numbers as names
    assert names == ["1", "3", "5"]
    assert sorted(pools["test"]["label"].unique().tolist()) == [0, 1, 2]
    assert pools["train"].loc[pools["train"]["id"] == "train-en-5-0", "label"].item() == 2
    # int labels picked by number, in recipe order
    pools, names = load_source(str(folder), SPLITS, COLUMNS, ["en"], ["5", "1"])
    assert names == ["5", "1"] and len(pools["train"]) == 6


def test_parquet_and_save_to_disk_with_classlabel(tmp_path):
    import datasets

    frame = pd.DataFrame(rows("train") + rows("validation") + rows("test"))
    frame.to_parquet(tmp_path / "d.parquet")
    pools, names = load_source(str(tmp_path / "d.parquet"), SPLITS, COLUMNS, None, None)
    assert names == ["neg", "pos"] and len(pools["validation"]) == 12

    features = datasets.Features({"text": datasets.Value("string"), "language": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])})
    def ds(n):
        return datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(n)], "language": ["fr", "en"] * (n // 2),
                                           "label": [i % 3 for i in range(n)]}, features=features)
    datasets.DatasetDict({"train": ds(12), "validation": ds(6), "test": ds(6)}).save_to_disk(str(tmp_path / "hf"))
    pools, names = load_source(str(tmp_path / "hf"), SPLITS, COLUMNS, ["fr", "en"], ["contradiction", "entailment"])
    assert names == ["contradiction", "entailment"]
    train = pools["train"]
    assert len(train) == 8  # neutral rows left out
    assert train.loc[train["text"] == "t2", "label"].item() == 0 and train.loc[train["text"] == "t0", "label"].item() == 1
    assert train["id"].iloc[0] == "train-0"  # generated when the source has no id
    pools, names = load_source(str(tmp_path / "hf"), SPLITS, COLUMNS, None, None)
    assert names == ["entailment", "neutral", "contradiction"]


def test_builtin_source_uses_its_split_column(monkeypatch):
    table = pd.DataFrame(rows("train", labels=("scalc", "swriter")) + rows("test", labels=("scalc", "swriter"))
                         + rows("validation", labels=("scalc", "swriter")))
    table["page"], table["par_id"] = "p", "x"
    fake = types.ModuleType("langtrainer.data.builtin")
    fake.load_builtin = lambda name: table if name == "libreoffice-help" else None
    monkeypatch.setitem(sys.modules, "langtrainer.data.builtin", fake)
    pools, names = load_source("builtin:libreoffice-help", SPLITS, COLUMNS, ["en", "fr"], ["swriter", "scalc"])
    assert names == ["swriter", "scalc"]
    assert len(pools["test"]) == 12 and pools["test"]["id"].str.startswith("test-").all()
    assert pools.report["carved_splits"] == []


def test_missing_splits_are_carved_stratified_and_seeded(tmp_path):
    records = [r for r in rows("train", per_cell=50)]
    path = write_jsonl(tmp_path / "d.jsonl", [{k: v for k, v in r.items() if k != "split"} for r in records])
    pools, _ = load_source(str(path), SPLITS, COLUMNS, None, None, seed=1, validation_fraction=0.1, test_fraction=0.1)
    assert pools.report["carved_splits"] == ["validation", "test"]
    for split, size in (("validation", 5), ("test", 5), ("train", 40)):
        counts = pools[split].groupby(["language", "label"]).size()
        assert counts.tolist() == [size] * 4, split
    ids = [set(pools[s]["id"]) for s in ("train", "validation", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    again, _ = load_source(str(path), SPLITS, COLUMNS, None, None, seed=1, validation_fraction=0.1, test_fraction=0.1)
    assert again["test"]["id"].tolist() == pools["test"]["id"].tolist()
    other, _ = load_source(str(path), SPLITS, COLUMNS, None, None, seed=2, validation_fraction=0.1, test_fraction=0.1)
    assert set(other["test"]["id"]) != set(pools["test"]["id"])


def test_carving_keeps_translation_groups_together(tmp_path):
    records = []
    for g in range(60):
        label = ["neg", "pos"][g % 2]
        for lang in ("en", "fr", "de"):
            records.append({"id": f"{g}-{lang}", "text": f"{lang} {g}", "label": label, "language": lang,
                            "group": f"page{g}"})
    path = write_jsonl(tmp_path / "d.jsonl", records)
    pools, _ = load_source(str(path), SPLITS, COLUMNS, None, None, seed=0, validation_fraction=0.2, test_fraction=0.2)
    groups = {s: set(pools[s]["group"]) for s in pools}
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["validation"])
    assert not (groups["validation"] & groups["test"])
    for split in pools:  # every group whole: three languages each
        assert (pools[split].groupby("group").size() == 3).all()
    # stratified by label: 30 groups per label, 20% -> 6 groups = 18 rows per label in test
    assert pools["test"].groupby("label").size().tolist() == [18, 18]
    assert len(pools["train"]) == 180 - 2 * 36


def test_errors_are_user_errors_with_the_facts(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", rows("train") + rows("test") + rows("validation"))
    with pytest.raises(UserError, match="does not exist"):
        load_source(str(tmp_path / "missing.jsonl"), SPLITS, COLUMNS, None, None)
    with pytest.raises(UserError, match="does not exist"):
        load_source("./no/such/folder", SPLITS, COLUMNS, None, None)
    with pytest.raises(UserError) as err:
        load_source(str(path), SPLITS, {**COLUMNS, "text": "body"}, None, None)
    assert "text column 'body'" in str(err.value) and "columns present: id, text, label, language, split" in str(err.value)
    with pytest.raises(UserError, match="language column 'lang'"):
        load_source(str(path), SPLITS, {**COLUMNS, "language": "lang"}, None, None)
    with pytest.raises(UserError, match="label column 'stars'"):
        load_source(str(path), SPLITS, {**COLUMNS, "label": "stars"}, None, None)
    with pytest.raises(UserError) as err:
        load_source(str(path), SPLITS, COLUMNS, ["en", "ja"], None)
    assert "language 'ja' is not in the data" in str(err.value) and "en, fr" in str(err.value)
    with pytest.raises(UserError, match="label 'neutral' is not in the data"):
        load_source(str(path), SPLITS, COLUMNS, None, ["neg", "neutral"])
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("id,text,label,language\n1,caf\xe9,a,fr\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_source(str(latin1), SPLITS, COLUMNS, None, None)
    with pytest.raises(UserError, match="no rows with split 'training'"):
        load_source(str(path), {**SPLITS, "train": "training"}, COLUMNS, None, None)


def test_hub_id_offline_is_one_line_user_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        load_source("facebook/xnli", SPLITS, COLUMNS, ["fr", "en"], None, hub_configs={"fr": "fr", "en": "en"})
    message = str(err.value)
    assert message.startswith("needs the Hugging Face Hub") and "facebook/xnli" in message
    assert "\n" not in message
    with pytest.raises(UserError, match="no config for language"):
        load_source("facebook/xnli", SPLITS, COLUMNS, ["fr", "de"], None, hub_configs={"fr": "fr"})


def test_text_pair_and_json_array(tmp_path):
    records = [{"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3, "lang": "fr" if i % 2 else "en",
                "split": ["train", "validation", "test"][i % 3 if i < 30 else 0]} for i in range(60)]
    path = tmp_path / "nli.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    columns = {"text": "premise", "text_pair": "hypothesis", "label": "label", "language": "lang"}
    pools, names = load_source(str(path), SPLITS, columns, None, None)
    assert names == ["0", "1", "2"]
    train = pools["train"]
    assert list(train.columns) == ["id", "text", "text_pair", "label", "language"]
    row = train[train["text"] == "p31"].iloc[0]
    assert (row["text_pair"], row["label"], row["language"]) == ("h31", 1, "fr")
    assert len(pools["validation"]) == 10 and len(pools["test"]) == 10 and len(train) == 40
