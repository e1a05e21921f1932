"""Every shipped recipe parses, and the paper recipes carry the paper's numbers."""

from pathlib import Path

import pytest

from langtrainer.recipe import load_recipe

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
ALL = sorted(p for p in RECIPES.glob("*.yaml"))


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_every_recipe_parses(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem or path.stem.endswith("_base")


@pytest.mark.parametrize("dataset", ["amazon", "xnli"])
@pytest.mark.parametrize("variant", ["bal", "imbal", "imbal_cw", "bal_mie", "imbal_mie", "imbal_cw_mie"])
def test_section3_settings(dataset, variant):
    recipe = load_recipe(RECIPES / f"{dataset}_{variant}.yaml")
    t = recipe.training
    assert recipe.model.name_or_path == "bert-base-multilingual-cased"
    assert t["per_device_train_batch_size"] == 16 and t["gradient_accumulation_steps"] == 8
    assert t["learning_rate"] == 5e-5 and t["head_learning_rate"] == 5e-4
    assert t["lr_scheduler_type"] == "linear" and t["warmup_steps"] == 0
    assert t["metric_for_best_model"] == "eval_loss" and t["load_best_model_at_end"] is True
    assert recipe.imbalance.subset == ("balanced" if variant.startswith("bal") else "imbalanced")
    assert recipe.loss.class_weights == ("per_language" if "cw" in variant else "none")
    assert recipe.loss.reduction == "mean"
    assert recipe.loss.mask_entropy == (1.0 if variant.endswith("mie") else 0.0)
    assert recipe.analysis.probe.per_language == 1000 and recipe.analysis.probe.folds == 5
    assert recipe.analysis.probe.external == "wikimedia/wikipedia"
    assert recipe.analysis.shap.threshold == 0.01 and recipe.analysis.shap.max_evals == 500


def test_table_1a_amazon():
    recipe = load_recipe(RECIPES / "amazon_imbal.yaml")
    table = recipe.imbalance.distribution
    groups = recipe.imbalance.groups
    assert sorted(groups[k][i] for k in groups for i in range(3)) == ["de", "en", "es", "fr", "ja", "zh"]
    assert set(groups["under_low"]) == {"fr", "es", "ja"} and set(groups["over_low"]) == {"de", "en", "zh"}
    assert table["under_low"] == [6.6, 13.3, 20.0, 26.7, 33.3]
    assert table["over_low"] == [33.3, 26.7, 20.0, 13.3, 6.6]
    assert recipe.data.hub_configs == {lang: lang for lang in ["de", "en", "es", "fr", "ja", "zh"]}
    # Table 5 sizes: 719k train, 18k validation, 30k test
    assert abs(6 * recipe.data.train_per_language - 719_000) < 1_000
    assert 6 * recipe.data.validation_per_language == 18_000
    assert 6 * 5 * recipe.data.test_per_cell == 30_000


def test_table_1b_xnli():
    recipe = load_recipe(RECIPES / "xnli_imbal.yaml")
    assert recipe.data.languages == ["fr", "en"]
    assert recipe.imbalance.distribution == {"fr": [50.0, 33.33, 16.67], "en": [16.67, 33.33, 50.0]}
    assert recipe.data.columns.text == "premise" and recipe.data.columns.text_pair == "hypothesis"
    assert abs(2 * recipe.data.train_per_language - 524_000) < 1_000
    assert abs(2 * recipe.data.validation_per_language - 3_300) < 50
    assert 2 * 3 * recipe.data.test_per_cell == 6_600
