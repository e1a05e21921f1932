"""`finetune --dry-run`: the plan's numbers are the ones a real run has, and it loads no weights, writes nothing."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from langtrainer.cli.main import app
from langtrainer.pipelines.dry_run import dry_run, optimizer_steps
from langtrainer.pipelines.finetune import finetune
from test_finetune_tiny import tiny_recipe, write_dataset

# An awkward schedule: a partial last batch, a partial accumulation group, evaluation every 0.3 of the steps.
AWKWARD = {"training": {"num_train_epochs": 2, "per_device_train_batch_size": 7, "gradient_accumulation_steps": 3,
                        "eval_strategy": "steps", "eval_steps": 0.3, "save_strategy": "steps", "save_steps": 0.3,
                        "logging_steps": 1},
           "analysis": {"probe": {"during_training_per_language": 0}}}


def test_optimizer_steps_worked_example():
    # 720,000 rows, 16 x 8: 45,000 batches, 5,625 optimizer steps (amazon_imbal at the real size)
    assert optimizer_steps(720_000, 16, 8, 1, 1.0) == (45_000, 5_625, 5_625)
    # 160 rows, batch 7: 23 batches; accumulation 3: 7 full steps + 1 partial = 8 per epoch
    assert optimizer_steps(160, 7, 3, 1, 2.0) == (23, 8, 16)
    assert optimizer_steps(160, 7, 3, 2, 1.0) == (12, 4, 4)  # two processes halve the batches
    assert optimizer_steps(160, 7, 3, 1, 2.0, max_steps=5)[2] == 5


def test_dry_run_matches_the_real_run(tiny_model_dir, tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "data.jsonl")
    recipe = tiny_recipe(tiny_model_dir, data, **AWKWARD)
    import langtrainer.models.classifier as classifier

    def no_weights(*args, **kwargs):
        raise AssertionError("the dry run loaded model weights")

    with monkeypatch.context() as patch:
        patch.setattr(classifier, "load_model_for_classification", no_weights)
        import transformers

        patch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", no_weights)
        plan = dry_run(recipe)
    assert not (tmp_path / "run").exists()
    # rows per split and cell: the imbalanced design of tiny_recipe (A: 10/20/30/40 %, B: reversed, 40 per language)
    assert plan.split_names == {"train": "train_imbalanced", "validation": "validation_imbalanced", "test": "test"}
    assert plan.languages == ["de", "en", "fr", "ja"]
    assert plan.rows["train"][1] == [4, 8, 12, 16] and plan.rows["train"][0] == [16, 12, 8, 4]
    assert np.sum(plan.rows["validation"]) == 80 and plan.rows["test"] == [[5] * 4] * 4
    assert (plan.batches_per_epoch, plan.steps_per_epoch, plan.optimizer_steps) == (23, 8, 16)
    assert plan.eval_every_steps == 5 and plan.evaluations == 4 and plan.checkpoints == 4  # ceil(16 * 0.3) = 5, and 16
    assert plan.tokens_method.startswith(f"{tiny_model_dir}'s tokenizer")  # a local tokenizer is measured
    assert 0 < plan.mean_tokens_per_row <= 32 and plan.tokens_per_epoch == round(plan.mean_tokens_per_row * 160)
    assert plan.device == "cpu" and plan.fp16 is False
    assert {w.what: w.forward_passes for w in plan.workload}["evaluation"] == 4 * 80 + 80

    metrics = finetune(recipe, tmp_path / "run").to_dict()
    assert metrics["train"]["steps"] == plan.optimizer_steps
    assert metrics["train"]["examples"] == np.sum(plan.rows["train"])
    evaluations = [h for h in metrics["log_history"] if "eval_loss" in h]
    assert [h["step"] for h in evaluations] == [5, 10, 15, 16]  # and at the last step
    assert metrics["test_examples"] == np.sum(plan.rows["test"])


def test_dry_run_cli_refuses_a_design_that_does_not_fit(tiny_model_dir, tmp_path):
    data = write_dataset(tmp_path / "data.jsonl")
    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(
        f"name: tiny\nmodel: {{name_or_path: {tiny_model_dir}, max_length: 32}}\n"
        f"data: {{source: {data}, languages: [de, en, fr, ja], labels: [l0, l1, l2, l3], "
        f"train_per_language: 400, validation_per_language: 20, test_per_cell: 5}}\n"
        "imbalance: {subset: imbalanced, groups: {A: [en, fr], B: [de, ja]}, distribution: {A: '1:2:3:4', B: '4:3:2:1'}}\n",
        encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(app, ["finetune", str(recipe_file), "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "not enough examples for the subset design" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    fits = CliRunner().invoke(app, ["finetune", str(recipe_file), "--dry-run",
                                    "--set", "data.train_per_language=40"])
    assert fits.exit_code == 0, fits.output
    assert "train: train_imbalanced (160 rows)" in fits.output
    assert "optimizer steps" in fits.output and sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("ratio, expected", [("1:2:3:4", [10.0, 20.0, 30.0, 40.0]), ("3:1", [75.0, 25.0])])
def test_ratio_rows_are_exact_percentages(ratio, expected):
    from langtrainer.recipe import ratio_to_percentages

    assert ratio_to_percentages(ratio) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("ratio", ["1:x:3", "5", "1:-2:3", "0:0"])
def test_bad_ratio_rows_are_refused(ratio):
    from langtrainer.errors import UserError
    from langtrainer.recipe import ratio_to_percentages

    with pytest.raises(UserError, match="ratio such as '1:2:3'"):
        ratio_to_percentages(ratio, "imbalance.distribution.A")
