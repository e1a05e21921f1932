"""Relative paths in a recipe resolve against the recipe's folder, from any working directory."""

import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fault_helpers import write_dataset
from langtrainer.cli.main import app
from langtrainer.data.sampling import build_from_recipe
from langtrainer.errors import UserError
from langtrainer.recipe import load_recipe, resolve_recipe_path
from langtrainer.rundir import RunDir

RELATIVE = """name: rel
model: {{name_or_path: {model}, max_length: 32}}
data:
  source: {source}
  languages: [de, en, fr]
  labels: [a, b, c]
  train_per_language: 9
  validation_per_language: 3
  test_per_cell: 2
imbalance: {{subset: balanced}}
analysis: {{probe: {{external: {external}}}}}
training: {{num_train_epochs: 1, per_device_train_batch_size: 8, dataloader_num_workers: 0}}
"""


@pytest.fixture
def project(tmp_path, tiny_model_dir):
    """project/recipes/r.yaml naming ../data, ../model and ../ext.jsonl relatively; elsewhere/ is another folder."""
    root = tmp_path / "project"
    write_dataset(root / "data")
    os.symlink(tiny_model_dir, root / "model")
    (root / "ext.jsonl").write_text('{"text": "x", "language": "en"}\n', encoding="utf-8")
    (root / "recipes").mkdir()
    recipe = root / "recipes" / "r.yaml"
    recipe.write_text(RELATIVE.format(model="../model", source="../data", external="../ext.jsonl"), encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    return recipe


@pytest.mark.parametrize("cwd", ["elsewhere", "project", "project/recipes"])
def test_relative_paths_resolve_against_the_recipe_folder(project, tmp_path, monkeypatch, cwd):
    monkeypatch.chdir(tmp_path / cwd)
    recipe = load_recipe(os.path.relpath(project, tmp_path / cwd))
    root = tmp_path / "project"
    assert recipe.data.source == str(root / "data")
    assert recipe.model.name_or_path == str(root / "model")
    assert recipe.analysis.probe.external == str(root / "ext.jsonl")
    subsets, _ = build_from_recipe(recipe)
    assert len(subsets["train_balanced"]) == 27


def test_extends_base_paths_resolve_against_the_base_folder(project, tmp_path, monkeypatch):
    child = tmp_path / "other" / "child.yaml"
    child.parent.mkdir()
    child.write_text("extends: ../project/recipes/r.yaml\nname: child\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path / "elsewhere")
    recipe = load_recipe(child)
    assert recipe.name == "child"
    assert recipe.data.source == str(tmp_path / "project" / "data")


def test_set_override_paths_resolve_against_the_working_directory(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "project")
    recipe = load_recipe(project, ["data.source=data", "model.name_or_path=./model"])
    assert recipe.data.source == str(tmp_path / "project" / "data")
    assert recipe.model.name_or_path == str(tmp_path / "project" / "model")


def test_builtin_and_hub_ids_stay(tmp_path):
    for value in ("builtin:libreoffice-help", "facebook/xnli", "imdb", "xlm-roberta-base"):
        assert resolve_recipe_path(value, tmp_path) == value
    # local-looking values that do not exist become absolute, so the error names where it looked
    for value in ("./data", "../x", "reviews.csv", "a/b/c", "data/"):
        assert resolve_recipe_path(value, tmp_path) == os.path.normpath(tmp_path / value)
    assert resolve_recipe_path("/abs/x.jsonl", tmp_path) == "/abs/x.jsonl"
    (tmp_path / "org").mkdir()  # an 'org/name' whose first part exists here is a local path
    assert resolve_recipe_path("org/name", tmp_path) == str(tmp_path / "org" / "name")


def test_missing_relative_source_names_the_recipe_folder(tmp_path, monkeypatch):
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.parent.mkdir()
    recipe.write_text("data: {source: all.jsonl}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "all.jsonl").write_text("", encoding="utf-8")  # in the cwd, not beside the recipe
    loaded = load_recipe(recipe)
    assert loaded.data.source == str(tmp_path / "recipes" / "all.jsonl")
    with pytest.raises(UserError, match="recipes/all.jsonl"):
        build_from_recipe(loaded)


def test_finetune_from_elsewhere_saves_absolute_paths(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = CliRunner().invoke(app, ["finetune", "../project/recipes/r.yaml", "-o", "run", "--quiet"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load(RunDir(tmp_path / "elsewhere" / "run").recipe_path.read_text(encoding="utf-8"))
    root = tmp_path / "project"
    assert saved["data"]["source"] == str(root / "data")
    assert saved["model"]["name_or_path"] == str(root / "model")
    assert saved["analysis"]["probe"]["external"] == str(root / "ext.jsonl")
    assert all(Path(p).is_absolute() for p in (saved["data"]["source"], saved["model"]["name_or_path"]))
    test = RunDir(tmp_path / "elsewhere" / "run").read_metrics().test.to_dict()
    assert test["ce"] == pytest.approx(test["loss"], rel=1e-6)  # no class weights: the loss is the cross-entropy
