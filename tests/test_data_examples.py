"""`load_examples`: the one reader for a table of examples, in every format a command accepts."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hub_shaped import write_amazon_like, write_xnli_like  # noqa: E402
from langtrainer.data.source_tables import split_names  # noqa: E402
from langtrainer.data.sources import load_examples  # noqa: E402
from langtrainer.errors import UserError  # noqa: E402


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


REVIEWS = [{"review": f"text {i}", "stars": str(1 + i % 5), "lang": ["en", "de", "fr"][i % 3]} for i in range(30)]


def test_csv_with_other_column_names_is_renamed(tmp_path):
    path = tmp_path / "reviews.csv"
    pd.DataFrame(REVIEWS).to_csv(path, index=False)
    ds = load_examples(path, columns={"text": "review", "label": "stars", "language": "lang"},
                       require=("text", "label", "language"))
    assert ds.column_names == ["text", "label", "language"]
    assert len(ds) == 30
    assert ds[4] == {"text": "text 4", "label": "5", "language": "de"}  # csv text read as text


def test_missing_column_names_the_flag_and_the_recipe_field(tmp_path):
    path = tmp_path / "reviews.csv"
    pd.DataFrame(REVIEWS).to_csv(path, index=False)
    with pytest.raises(UserError) as err:
        load_examples(path, columns={"text": "review", "label": "stars"}, require=("text", "label", "language"))
    assert str(err.value) == (f"{path}: the language column 'language' is not in the data "
                              "(columns present: review, stars, lang); set data.columns.language")
    with pytest.raises(UserError, match="the text column 'body' is not in the data .*; set data.columns.text"):
        load_examples(path, columns={"text": "body"})


def test_jsonl_split_column_numbers_as_text_and_other_columns_kept(tmp_path):
    records = [{"id": i, "text": 1000 + i, "label": i % 2, "language": "en", "split": "test" if i < 4 else "train",
                "extra": "x"} for i in range(10)]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    test = load_examples(path, split="test")
    assert len(test) == 4 and test["text"] == ["1000", "1001", "1002", "1003"]
    assert test["id"] == ["0", "1", "2", "3"] and test["extra"] == ["x"] * 4
    assert len(load_examples(path)) == 10
    assert split_names(path) == ["test", "train"]
    with pytest.raises(UserError, match="no rows with split 'dev'"):
        load_examples(path, split="dev")
    plain = write_jsonl(tmp_path / "plain.jsonl", [{k: v for k, v in r.items() if k != "split"} for r in records])
    assert len(load_examples(plain, split="test")) == 10  # a table without a split column is its own split


def test_save_to_disk_dataset_dict_picks_the_split_and_keeps_classlabel(tmp_path):
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"), "language": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    part = datasets.Dataset.from_dict({"sentence": ["a", "b"], "language": ["EN", " fr"], "label": [0, 1]},
                                      features=features)
    datasets.DatasetDict({"train": part, "test": part}).save_to_disk(str(tmp_path / "saved"))
    test = load_examples(tmp_path / "saved", split="test", columns={"text": "sentence"})
    assert test["text"] == ["a", "b"] and test["language"] == ["en", "fr"]
    assert test.features["label"].names == ["neg", "pos"]
    assert split_names(tmp_path / "saved") == ["train", "test"]
    with pytest.raises(UserError, match="several splits .*train, test.*the split argument"):
        load_examples(tmp_path / "saved")
    with pytest.raises(UserError, match="no split 'dev'"):
        load_examples(tmp_path / "saved", split="dev")
    part.save_to_disk(str(tmp_path / "one"))
    assert len(load_examples(tmp_path / "one", split="anything", columns={"text": "sentence"})) == 2


def test_folder_of_split_files(tmp_path):
    folder = tmp_path / "splits"
    folder.mkdir()
    pd.DataFrame(REVIEWS[:6]).to_csv(folder / "train.csv", index=False)
    write_jsonl(folder / "test.jsonl", REVIEWS[6:9])
    assert sorted(split_names(folder)) == ["test", "train"]
    test = load_examples(folder, split="test", columns={"text": "review", "label": "stars", "language": "lang"})
    assert test["text"] == ["text 6", "text 7", "text 8"]


def test_hub_shaped_folder_with_config(tmp_path):
    root = write_amazon_like(tmp_path / "amazon", per_cell={"train": 2, "test": 1})
    test = load_examples(root, split="test", config="de", require=("id", "text", "label"))
    assert len(test) == 5 and test["label"] == [0, 1, 2, 3, 4] and test[0]["id"].startswith("de_test_")
    pairs = write_xnli_like(tmp_path / "xnli", per_cell={"train": 1, "test": 1})
    test = load_examples(pairs, split="test", config="fr", columns={"text": "premise", "text_pair": "hypothesis"})
    assert {"text", "text_pair", "label"} <= set(test.column_names) and len(test) == 3


def test_builtin_corpus_by_split():
    test = load_examples("builtin:libreoffice-help", split="test", require=("id", "text", "label", "language"))
    assert set(test["split"]) == {"test"} and len(test) > 0


def test_bad_values_are_one_line_user_errors(tmp_path):
    nested = write_jsonl(tmp_path / "nested.jsonl", [{"text": ["a", "b"], "label": 1, "language": "en"}])
    with pytest.raises(UserError, match="text column holds a list in row 1, not a string"):
        load_examples(nested)
    mapping = write_jsonl(tmp_path / "dict.jsonl", [{"text": "ok", "label": 1, "language": "en"},
                                                     {"text": {"a": 1}, "label": 1, "language": "en"}])
    with pytest.raises(UserError, match="holds a dict in row 2"):
        load_examples(mapping)
    no_lang = write_jsonl(tmp_path / "nolang.jsonl", [{"text": "a", "label": 1, "language": "en"},
                                                       {"text": "b", "label": 1, "language": None}])
    with pytest.raises(UserError, match=r"1 row\(s\) have no language \(first: row 2\)"):
        load_examples(no_lang)
    csv = tmp_path / "blank.csv"
    csv.write_text("text,label,language\na,pos, EN\nb,,en\n", encoding="utf-8")
    ds = load_examples(csv)
    assert ds["label"] == ["pos", None] and ds["language"] == ["en", "en"]
    with pytest.raises(UserError, match="does not exist"):
        load_examples(tmp_path / "missing.jsonl")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text,label,language\ncaf\xe9,a,fr\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_examples(latin1)


def test_cli_audit_csv_with_column_flags(tmp_path):
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    path = tmp_path / "reviews.csv"
    rows = [{"review": f"r{i}", "stars": "good" if (i % 4 == 0) == (lang == "en") else "bad", "lang": lang}
            for lang in ("en", "de") for i in range(40)]
    pd.DataFrame(rows).to_csv(path, index=False)
    runner = CliRunner()
    missing = runner.invoke(app, ["data", "audit", str(path)])
    assert missing.exit_code == 2
    assert ("the label column 'label' is not in the data (columns present: review, stars, lang); "
            "pass --label-column or set data.columns.label") in missing.output
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["data", "audit", str(path), "--label-column", "stars", "--language-column", "lang",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())["reviews.csv"]
    assert report["counts"] == {"de": {"bad": 10, "good": 30}, "en": {"bad": 30, "good": 10}}
    assert report["cramers_v"] == pytest.approx(0.5)
    bare = runner.invoke(app, ["data", "audit", "nosuchfile"])
    assert bare.exit_code == 2 and "does not exist" in bare.output
