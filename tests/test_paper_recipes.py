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
    # The released code's exact 1:2:3:4:5 (config_amz_imbal.json); Table 1a prints it rounded.
    assert table["under_low"] == pytest.approx([100 * k / 15 for k in (1, 2, 3, 4, 5)], abs=1e-12)
    assert table["over_low"] == pytest.approx([100 * k / 15 for k in (5, 4, 3, 2, 1)], abs=1e-12)
    assert [round(v, 1) for v in table["under_low"]] == [6.7, 13.3, 20.0, 26.7, 33.3]  # Table 1a: 6.6 (truncated)
    assert recipe.data.hub_configs == {lang: lang for lang in ["de", "en", "es", "fr", "ja", "zh"]}
    # Table 5 sizes: 719k train (720k here: the released code drops one row per cell), 18k validation, 30k test
    assert 6 * recipe.data.train_per_language == 720_000
    assert 6 * recipe.data.validation_per_language == 18_000
    assert 6 * 5 * recipe.data.test_per_cell == 30_000


def test_table_1b_xnli():
    recipe = load_recipe(RECIPES / "xnli_imbal.yaml")
    assert recipe.data.languages == ["fr", "en"]
    table = recipe.imbalance.distribution  # the released 3:2:1 / 1:2:3 (config_xnli_imbal.json)
    assert table["fr"] == pytest.approx([50.0, 100 / 3, 50 / 3], abs=1e-12)
    assert table["en"] == pytest.approx([50 / 3, 100 / 3, 50.0], abs=1e-12)
    assert recipe.data.columns.text == "premise" and recipe.data.columns.text_pair == "hypothesis"
    assert abs(2 * recipe.data.train_per_language - 524_000) < 1_000
    assert abs(2 * recipe.data.validation_per_language - 3_300) < 50
    assert abs(2 * 3 * recipe.data.test_per_cell - 6_600) < 100  # 6,672: the released test_bal


def test_a2_xlmr_recipes_carry_the_entropy_term():
    """Annex A.2: every XLM-R run was trained with the masked-input entropy term."""
    for dataset in ("amazon", "xnli"):
        for variant in ("bal", "imbal", "imbal_cw"):
            xlmr = load_recipe(RECIPES / f"{dataset}_{variant}_xlmr.yaml")
            mie = load_recipe(RECIPES / f"{dataset}_{variant}_mie.yaml")
            assert xlmr.model.name_or_path == "xlm-roberta-base"
            assert xlmr.loss == mie.loss and xlmr.loss.mask_entropy == 1.0
            assert xlmr.data == mie.data and xlmr.imbalance == mie.imbalance and xlmr.training == mie.training


# Where the paper is silent, the released code's settings (docs/fidelity.md).
EPOCHS = {"amazon": 1, "xnli": 3}
# Optimizer steps per epoch at the recipes' sizes (batch 16 x accumulation 8).
STEPS_PER_EPOCH = {"amazon": 720_000 // 128, "xnli": 523_596 // 128}


@pytest.mark.parametrize("dataset", ["amazon", "xnli"])
@pytest.mark.parametrize("variant", ["bal", "imbal", "imbal_cw", "bal_mie", "imbal_mie", "imbal_cw_mie"])
def test_released_code_settings_where_the_paper_is_silent(dataset, variant, tmp_path):
    from transformers import TrainerState

    from langtrainer.training.args import build_training_args

    recipe = load_recipe(RECIPES / f"{dataset}_{variant}.yaml")
    t = recipe.training
    assert recipe.model.max_length == 512
    assert t["num_train_epochs"] == EPOCHS[dataset]
    assert t["eval_strategy"] == "steps" and t["save_strategy"] == "steps"
    assert t["max_grad_norm"] == 0.0 and t["fp16_on_gpu"] is True and t["radam"] is True
    # Fractional eval_steps are a ratio of ALL steps: 10 evaluations per epoch (val_check_interval=0.1).
    args = build_training_args(recipe, tmp_path, has_eval=True)
    state = TrainerState()
    total = EPOCHS[dataset] * STEPS_PER_EPOCH[dataset]
    state.compute_steps(args, total)
    assert round(STEPS_PER_EPOCH[dataset] / state.eval_steps) == 10
    assert state.save_steps == state.eval_steps
    # The paper's schedule where it disagrees with the code (linear to 0, not to 1 %).
    assert args.lr_scheduler_type == "linear" and args.warmup_steps == 0
    if variant.endswith("mie"):
        assert (recipe.loss.mask_entropy_normalisation, recipe.loss.mask_entropy_input) == ("mean", "last_row")


def test_fp16_only_where_cuda_trains():
    from langtrainer.training.args import wants_fp16

    assert wants_fp16(False, True, use_cpu=False, bf16=False, cuda=True) is True
    assert wants_fp16(False, True, use_cpu=False, bf16=False, cuda=False) is False
    assert wants_fp16(False, True, use_cpu=True, bf16=False, cuda=True) is False
    assert wants_fp16(False, True, use_cpu=False, bf16=True, cuda=True) is False
    assert wants_fp16(False, False, use_cpu=False, bf16=False, cuda=True) is False
    assert wants_fp16(True, False, use_cpu=False, bf16=False, cuda=False) is True  # asked for: kept


def test_radam_is_the_optimizer_with_both_learning_rates(tiny_model_dir, tmp_path):
    import torch

    from test_trainer import make_trainer

    trainer = make_trainer(tiny_model_dir, tmp_path, radam=True)
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.RAdam)
    assert {g["group"]: g["lr"] for g in optimizer.param_groups} == {"body": 5e-5, "head": 5e-4}
    assert optimizer.defaults["eps"] == 1e-8 and optimizer.defaults["betas"] == (0.9, 0.999)
