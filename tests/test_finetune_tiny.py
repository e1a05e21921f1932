"""finetune end to end on the tiny fixture: run directory contract and logged evaluators."""

import json

import pandas as pd
import pytest

from langtrainer.pipelines.finetune import finetune
from langtrainer.recipe import recipe_from_dict
from tiny_model import SAMPLE_TEXTS

LANGS = ["de", "en", "fr", "ja"]


def write_dataset(path, per_cell=20):
    rows = []
    for split, n in (("train", per_cell), ("validation", per_cell // 2), ("test", per_cell // 2)):
        for lang in LANGS:
            for label in range(4):
                for i in range(n):
                    text = f"{SAMPLE_TEXTS[lang][label % 2]} {split} {label} {i}"
                    rows.append({"text": text, "label": f"l{label}", "language": lang, "split": split})
    pd.DataFrame(rows).to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def tiny_recipe(model_dir, data_path, **extra):
    raw = {
        "name": "tiny",
        "seed": 0,
        "model": {"name_or_path": str(model_dir), "max_length": 32},
        "data": {
            "source": str(data_path),
            "languages": LANGS,
            "labels": ["l0", "l1", "l2", "l3"],
            "train_per_language": 40,
            "validation_per_language": 20,
            "test_per_cell": 5,
        },
        "imbalance": {"subset": "imbalanced", "groups": {"A": ["en", "fr"], "B": ["de", "ja"]},
                      "distribution": {"A": [10, 20, 30, 40], "B": [40, 30, 20, 10]}},
        "loss": {"class_weights": "per_language"},
        "training": {"num_train_epochs": 2, "per_device_train_batch_size": 8, "logging_steps": 5},
        "analysis": {"probe": {"during_training_per_language": 10, "folds": 2, "C": 1.0}},
    }
    for key, value in extra.items():
        raw.setdefault(key, {}).update(value)
    return recipe_from_dict(raw)


def test_finetune_tiny_run_directory(tiny_model_dir, tmp_path):
    data = write_dataset(tmp_path / "data.jsonl")
    recipe = tiny_recipe(tiny_model_dir, data)
    run_dir = tmp_path / "run"
    metrics = finetune(recipe, run_dir).to_dict()

    assert metrics["train"]["steps"] == 2 * (4 * 40) // 8
    assert metrics["test_examples"] == 4 * 4 * 5
    assert metrics["favoured_labels"] == {"A": [2, 3], "B": [0, 1]}
    test = metrics["test"]
    assert 0.0 <= test["accuracy"] <= 1.0
    units = {**test["by_language"], **test["by_group"]}
    assert sorted(units) == sorted(LANGS + ["A", "B"])
    for row in units.values():
        assert sum(row["prediction_shares"][f"l{c}"] for c in range(4)) == pytest.approx(1.0)
    assert sum(test["by_language"][lang]["n"] for lang in LANGS) == test["n"] == metrics["test_examples"]
    # the class-weight table is eq. 2 on the imbalanced subset: en has 4/8/12/16 of 40
    assert metrics["class_weights"][1] == pytest.approx([40 / (4 * 4), 40 / (4 * 8), 40 / (4 * 12), 40 / (4 * 16)])
    # evaluators ran inside evaluation and were logged with the other eval metrics
    evals = [h for h in metrics["log_history"] if "eval_loss" in h]
    assert len(evals) == 2 and all("eval_lid_accuracy" in h and "eval_accuracy_en" in h for h in evals)
    assert metrics["best_validation_loss"] == min(h["eval_loss"] for h in evals)

    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["test"] == test
    # predictions.parquet holds the predictions behind metrics.json's test block
    from langtrainer.rundir import RunDir

    predictions = RunDir(run_dir).read_predictions()
    assert len(predictions) == test["n"] and predictions["id"].is_unique
    assert predictions.attrs["label_names"] == ["l0", "l1", "l2", "l3"]
    correct = predictions["label"] == predictions["predicted"]
    assert correct.mean() == pytest.approx(test["accuracy"])
    for lang, row in test["by_language"].items():
        mine = predictions["language"] == lang
        assert correct[mine].mean() == pytest.approx(row["accuracy"]) and mine.sum() == row["n"]
    from langtrainer.training.language_dependence import language_prediction_cmi

    assert language_prediction_cmi(predictions["predicted"], predictions["label"], predictions["language"]) == \
        pytest.approx(test["language_prediction_cmi"], abs=1e-12)
    assert 0 < test["language_prediction_cmi_p_value"] <= 1
    for lang, row in test["by_language"].items():
        mine = predictions[predictions["language"] == lang]
        assert row["label_shares"] == {f"l{c}": pytest.approx((mine["label"] == f"l{c}").mean()) for c in range(4)}
        assert row["accuracy_ci"][0] <= row["accuracy"] <= row["accuracy_ci"][1]
    probabilities = predictions[["l0", "l1", "l2", "l3"]].to_numpy()
    assert probabilities.sum(axis=1) == pytest.approx(1.0)
    assert (predictions[["l0", "l1", "l2", "l3"]].idxmax(axis=1) == predictions["predicted"]).all()
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(run_dir)
    assert model.config.id2label[3] == "l3"
    assert (run_dir / "recipe.yaml").exists() and not (run_dir / "checkpoints").exists()


def test_finished_run_is_not_overwritten(tiny_model_dir, tmp_path):
    from langtrainer.errors import UserError

    data = write_dataset(tmp_path / "data.jsonl")
    recipe = tiny_recipe(tiny_model_dir, data, training={"num_train_epochs": 1},
                         analysis={"probe": {"during_training_per_language": 0}})
    finetune(recipe, tmp_path / "run")
    with pytest.raises(UserError, match="already holds a finished run"):
        finetune(recipe, tmp_path / "run")


def test_length_grouped_training_keeps_evaluation_aligned(tiny_model_dir, tmp_path):
    """Evaluation runs in length order (and group_by_length shuffles the stock eval
    sampler): the test metrics must still pair each prediction with its own row."""
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from langtrainer.training.metrics import metric_frame

    data = write_dataset(tmp_path / "data.jsonl")
    training = {"num_train_epochs": 4, "learning_rate": 2e-3, "train_sampling_strategy": "group_by_length",
                "per_device_eval_batch_size": 7}
    recipe = tiny_recipe(tiny_model_dir, data, training=training, analysis={"probe": {"during_training_per_language": 0}})
    run_dir = tmp_path / "run"
    metrics = finetune(recipe, run_dir).to_dict()

    test = datasets.load_from_disk(str(run_dir / "data"))["test"]
    assert len(set(map(len, test["text"]))) > 1  # lengths differ, so sorting reorders rows
    model = AutoModelForSequenceClassification.from_pretrained(run_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    with torch.no_grad():
        predictions = [int(model(**tokenizer(text, return_tensors="pt")).logits.argmax(-1)) for text in test["text"]]
    assert len(set(predictions)) > 1  # a constant classifier would hide a misalignment
    expected = metric_frame(predictions, test["label"], test["language"], metrics["label_names"],
                            recipe.imbalance.groups)
    got = metrics["test"]
    assert got["accuracy"] == pytest.approx(expected["accuracy"])
    for lang in ("de", "ja"):
        assert got["by_language"][lang]["accuracy"] == pytest.approx(expected["by_language"][lang]["accuracy"])
    assert got["by_language"]["en"]["prediction_shares"]["l0"] == pytest.approx(
        expected["by_language"]["en"]["prediction_shares"]["l0"])
    assert got["by_group"]["A"]["prediction_shares"]["l3"] == pytest.approx(
        expected["by_group"]["A"]["prediction_shares"]["l3"])
