"""Recipe parsing: types, unknown keys, overrides, extends."""

from pathlib import Path

import pytest

from langtrainer.errors import UserError
from langtrainer.recipe import load_recipe, parse_override, recipe_from_dict, save_recipe

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def write(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_recipe_extends_and_types():
    recipe = load_recipe(RECIPES / "demo_imbal_cw.yaml")
    assert recipe.name == "demo_imbal_cw"
    assert recipe.data.languages == ["de", "en", "es", "fr", "ja", "zh"]
    assert recipe.imbalance.distribution["A"] == [10.0, 20.0, 30.0, 40.0]
    assert recipe.loss.class_weights == "per_language"
    assert recipe.training["head_learning_rate"] == 5e-4
    assert recipe.analysis.probe.C == 1e-4
    assert load_recipe(RECIPES / "demo_bal.yaml").imbalance.subset == "balanced"


def test_override_sets_any_field_with_yaml_types():
    recipe = load_recipe(
        RECIPES / "demo_imbal.yaml",
        ["training.num_train_epochs=1", "data.train_per_language=12", "loss.mask_entropy=0.5", "seed=7"],
    )
    assert recipe.training["num_train_epochs"] == 1
    assert recipe.data.train_per_language == 12
    assert recipe.loss.mask_entropy == 0.5
    assert recipe.seed == 7


@pytest.mark.parametrize(
    "item", ["training.num_train_epochs", "=3", "training..x=1", ""]
)
def test_malformed_override(item):
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_override(item)


def test_unknown_key_names_closest(tmp_path):
    path = write(tmp_path, "data:\n  langauges: [en]\n")
    with pytest.raises(UserError, match=r"unknown recipe key 'data.langauges' \(did you mean 'languages'\?\)"):
        load_recipe(path)


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(UserError, match=r"'trainig'.*did you mean 'training'"):
        load_recipe(write(tmp_path, "trainig: {}\n"))


def test_training_key_must_be_training_argument(tmp_path):
    with pytest.raises(UserError, match=r"training.num_train_epoch'.*did you mean 'num_train_epochs'"):
        load_recipe(write(tmp_path, "training:\n  num_train_epoch: 2\n"))


def test_wrong_type_names_field_and_type(tmp_path):
    with pytest.raises(UserError, match=r"training.num_train_epochs: expected a number, got 'two'"):
        load_recipe(write(tmp_path, "training:\n  num_train_epochs: two\n"))
    with pytest.raises(UserError, match=r"data.train_per_language: expected an integer, got 'many'"):
        load_recipe(write(tmp_path, "data:\n  train_per_language: many\n"))
    with pytest.raises(UserError, match=r"loss.class_weights: expected one of 'none', 'per_language', 'global'"):
        load_recipe(write(tmp_path, "loss:\n  class_weights: per-language\n"))


def test_override_type_error_is_checked_too():
    with pytest.raises(UserError, match="training.num_train_epochs: expected a number"):
        load_recipe(RECIPES / "demo_imbal.yaml", ["training.num_train_epochs=two"])


def test_language_sampler_excludes_other_training_orders():
    with pytest.raises(UserError, match="per_language_balanced.*train_sampling_strategy=group_by_length"):
        load_recipe(RECIPES / "demo_imbal.yaml", ["data.sampler=per_language_balanced"])  # the demo groups by length
    recipe = load_recipe(RECIPES / "demo_imbal.yaml",
                         ["data.sampler=per_language_balanced", "training.train_sampling_strategy=random"])
    assert recipe.data.sampler == "per_language_balanced"


def test_group_and_distribution_consistency():
    with pytest.raises(UserError, match="'it' is not in data.languages"):
        recipe_from_dict({"data": {"languages": ["en", "fr"]}, "imbalance": {"groups": {"A": ["it"]}}})
    with pytest.raises(UserError, match="'X' is neither a language"):
        recipe_from_dict({"data": {"languages": ["en"]}, "imbalance": {"distribution": {"X": [50, 50]}}})


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="not valid YAML at line"):
        load_recipe(write(tmp_path, "data: [\n"))
    with pytest.raises(UserError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_recipe(bad)


def test_extends_cycle(tmp_path):
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(UserError, match="extends itself"):
        load_recipe(tmp_path / "a.yaml")


def test_resolved_recipe_round_trip(tmp_path):
    recipe = load_recipe(RECIPES / "demo_imbal_cw.yaml", ["training.num_train_epochs=2"])
    out = save_recipe(recipe, tmp_path / "resolved.yaml")
    again = load_recipe(out)
    assert again == recipe


def test_yaml_is_loaded_safely(tmp_path):
    path = write(tmp_path, "name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(path)
