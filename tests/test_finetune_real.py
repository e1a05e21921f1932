"""Real fine-tuning of builtin:multilingual-e5-small on a slice of the builtin corpus (slow)."""

import json

import pytest

from langtrainer.pipelines.finetune import finetune
from langtrainer.recipe import load_recipe


@pytest.mark.slow
def test_finetune_real_model_learns_and_writes_a_standard_run_dir(tmp_path):
    recipe = load_recipe(
        "builtin:demo",
        [
            "name=real_small",
            "imbalance.subset=balanced",
            "data.train_per_language=120",
            "data.validation_per_language=40",
            "data.test_per_cell=20",
            "training.num_train_epochs=2",
        ],
    )
    run_dir = tmp_path / "run"
    metrics = finetune(recipe, run_dir).to_dict()

    # This configuration measured 0.690 on these 480 test examples with the demo
    # recipe's length-grouped batches (0.698 without; chance 0.25; one binomial SE is 0.021).
    assert metrics["test"]["accuracy"] > 0.6
    assert metrics["train"]["steps"] == 2 * (6 * 120) // 16
    assert metrics["best_checkpoint"] is not None
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["test"]["accuracy"] == metrics["test"]["accuracy"]
    assert (run_dir / "recipe.yaml").exists() and (run_dir / "data" / "dataset_dict.json").exists()
    assert not (run_dir / "checkpoints").exists()

    from transformers import AutoModelForSequenceClassification, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(run_dir)
    assert model.config.id2label == {0: "scalc", 1: "swriter", 2: "simpress", 3: "sbasic"}
    classify = pipeline("text-classification", model=str(run_dir), device="cpu")
    out = classify("Insert a new slide into the presentation and choose a slide layout.")
    assert out[0]["label"] in {"scalc", "swriter", "simpress", "sbasic"}
