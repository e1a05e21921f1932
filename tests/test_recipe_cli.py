"""`recipe check --set`, TrainingArguments choices, and the default run folder per subset."""

import pytest
from typer.testing import CliRunner

from fault_helpers import error_line, write_dataset, write_recipe
from langtrainer.cli.main import app
from langtrainer.errors import UserError
from langtrainer.recipe import load_recipe
from langtrainer.rundir import RunDir
from test_recipe import RECIPES, write


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_recipe_check_applies_set():
    recipe = RECIPES / "demo_imbal.yaml"
    assert invoke("recipe", "check", recipe, "--set", "data.train_per_language=12").exit_code == 0
    result = invoke("recipe", "check", recipe, "--set", "training.lr_scheduler_type=cosinee")
    assert result.exit_code == 2
    assert error_line(result.stderr).startswith(
        "error: demo_imbal.yaml: training.lr_scheduler_type: 'cosinee' is not a valid choice (did you mean 'cosine'? "
        "valid: linear, cosine, "
    )
    result = invoke("recipe", "check", recipe, "--set", "data.train_per_languag=12")
    assert result.exit_code == 2
    assert "did you mean 'train_per_language'" in error_line(result.stderr)


@pytest.mark.parametrize(
    "text, message",
    [
        ("training:\n  lr_scheduler_type: cosinee\n", r"'cosinee' is not a valid choice \(did you mean 'cosine'\?"),
        ("training:\n  eval_strategy: epochs\n", r"training.eval_strategy: 'epochs' .*valid: no, steps, epoch\)"),
        ("training:\n  save_strategy: bst\n", r"valid: no, steps, epoch, best\)"),
        ("training:\n  optim: adamw\n", r"training.optim: 'adamw' is not a valid choice"),
        ("training:\n  report_to: [tensorbord]\n", r"did you mean 'tensorboard'"),
        ("training:\n  train_sampling_strategy: shuffled\n", r"valid: random, sequential, group_by_length"),
        ("training:\n  log_level: verbose\n", r"training.log_level: 'verbose'"),
    ],
)
def test_training_choices_refused_at_check(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=message):
        load_recipe(path)
    result = invoke("recipe", "check", path)
    assert result.exit_code == 2 and "not a valid choice" in error_line(result.stderr)


def test_valid_training_choices_pass(tmp_path):
    recipe = load_recipe(write(tmp_path, "training:\n  lr_scheduler_type: cosine\n  eval_strategy: epoch\n"
                                         "  save_strategy: best\n  optim: adamw_torch\n  report_to: none\n"
                                         "  log_level: info\n"))
    assert recipe.training["lr_scheduler_type"] == "cosine" and recipe.training["save_strategy"] == "best"
    # YAML reads an unquoted `no` as false: for a field whose choices include 'no' that is what was meant
    assert load_recipe(write(tmp_path, "training:\n  save_strategy: no\n")).training["save_strategy"] == "no"
    with pytest.raises(UserError, match=r"training.save_strategy: True is not a valid choice"):
        load_recipe(write(tmp_path, "training:\n  save_strategy: yes\n"))


def test_default_run_folder_names_subset_and_seed(tiny_model_dir, tmp_path, monkeypatch):
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_model_dir, write_dataset(tmp_path / "ds"), epochs=1)
    monkeypatch.chdir(tmp_path)
    for subset in ("imbalanced", "balanced"):
        result = invoke("finetune", recipe, "--subset", subset, "--set", "seed=4", "--quiet")
        assert result.exit_code == 0, result.output
    # and without / with class weights: a run folder per mitigation (rundir.default_run_name)
    result = invoke("finetune", recipe, "--subset", "imbalanced", "--set", "seed=4", "--set",
                    "loss.class_weights=per_language", "--quiet")
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {
        "tiny-imbalanced-none-seed4", "tiny-balanced-none-seed4", "tiny-imbalanced-cw-seed4"}
    for subset in ("imbalanced", "balanced"):
        run = RunDir(tmp_path / "runs" / f"tiny-{subset}-none-seed4")
        assert run.recipe_value("imbalance", "subset") == subset
        assert run.recipe_value("seed") == 4
