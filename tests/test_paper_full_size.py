"""Every paper recipe at the real datasets' sizes: it plans, builds and dry-runs, with the released ratios.

Hub-shaped folders (tests/hub_shaped.py) hold synthetic texts in the published
split sizes per (language, label) below; every `amazon_*` / `xnli_*` recipe is
planned against them, its subsets are built, and every cell of every built
subset is checked against the released code's ratios (within one row), its
own cell counts (within one row) and the uniform marginals.

Published sizes relied on:
- MARC (Keung et al., EMNLP 2020, Section 2; the `amazon_reviews_multi` card):
  per language 200,000 train, 5,000 validation, 5,000 test reviews, balanced
  over the five stars: 40,000 / 1,000 / 1,000 per (language, star).
- XNLI (`facebook/xnli` card: 392,702 / 2,490 / 5,010 rows per language).
  Train is MultiNLI's train translated: 130,899 entailment, 130,900 neutral,
  130,903 contradiction (MultiNLI 1.0 train); validation and test are balanced
  (Conneau et al., EMNLP 2018: 830 and 1,670 per label and language).
The released ratios: `scripts/config_amz_imbal.json` (de/en/zh 5:4:3:2:1,
es/fr/ja 1:2:3:4:5) and `scripts/config_xnli_imbal.json` (en 1:2:3, fr 3:2:1);
the released cell sizes: `int(ratio / max(ratio) * split_size / C) - 1`
(`scripts/create_imbal_amz.py`, `create_imbal_xnli.py`), balanced cells with the
mean ratio; the Amazon test set is the whole test split (`test_orig`), XNLI's is
`test_bal`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hub_shaped import write_amazon_like, write_xnli_like
from langtrainer.cli.main import app
from langtrainer.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

MARC_PER_STAR = {"train": 40_000, "validation": 1_000, "test": 1_000}
XNLI_PER_LABEL = {"train": [130_899, 130_900, 130_903], "validation": [830] * 3, "test": [1_670] * 3}
RELEASED_RATIOS = {
    "amazon": {"de": [5, 4, 3, 2, 1], "en": [5, 4, 3, 2, 1], "zh": [5, 4, 3, 2, 1],
               "es": [1, 2, 3, 4, 5], "fr": [1, 2, 3, 4, 5], "ja": [1, 2, 3, 4, 5]},
    "xnli": {"en": [1, 2, 3], "fr": [3, 2, 1]},
}
SPLIT_SIZE = {  # rows per language and split, as the released scripts saw them
    "amazon": {split: 5 * n for split, n in MARC_PER_STAR.items()},
    "xnli": {split: sum(n) for split, n in XNLI_PER_LABEL.items()},
}


def released_cells(dataset: str, split: str, language: str, balanced: bool) -> list[int]:
    """The released scripts' cell sizes, in their own float arithmetic."""
    ratio = [x / max(RELEASED_RATIOS[dataset][language]) for x in RELEASED_RATIOS[dataset][language]]
    if balanced:
        ratio = [sum(ratio) / len(ratio)] * len(ratio)
    size = SPLIT_SIZE[dataset][split]
    return [int(x * size / len(ratio)) - 1 for x in ratio]


@pytest.fixture(scope="module")
def full_size_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub_full")
    return {"amazon": write_amazon_like(root / "amazon", MARC_PER_STAR),
            "xnli": write_xnli_like(root / "xnli", XNLI_PER_LABEL)}


def paper_recipes(dataset: str) -> list[Path]:
    return sorted(p for p in RECIPES.glob(f"{dataset}_*.yaml") if p.stem != f"{dataset}_base")


def data_design(recipe) -> tuple:
    """What decides the built subsets: the data block, the skew and the seed (not the subset used or the loss)."""
    return (repr(recipe.data), repr(recipe.imbalance.groups), repr(recipe.imbalance.distribution), recipe.seed)


def cell_counts(dataset, languages, n_labels) -> np.ndarray:
    """[L, C] rows of a built subset, counted from its Arrow columns."""
    language = dataset.data.column("language").to_numpy(zero_copy_only=False)
    label = dataset.data.column("label").to_numpy(zero_copy_only=False).astype(int)
    ordered = sorted(languages)
    recipe_index = np.array([list(languages).index(lang) for lang in ordered])
    row = recipe_index[np.searchsorted(np.array(ordered), language)]
    return np.bincount(row * n_labels + label, minlength=len(languages) * n_labels).reshape(len(languages), n_labels)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["amazon", "xnli"])
def test_paper_recipes_plan_build_and_dry_run_at_real_size(dataset, full_size_folders):
    from langtrainer.data.design_plan import SIZE_FIELDS, design_plan
    from langtrainer.data.sampling import build_subsets, recipe_pools

    source = f"data.source={full_size_folders[dataset]}"
    recipes = {p.stem: load_recipe(p, [source]) for p in paper_recipes(dataset)}
    assert {f"{dataset}_{v}" for v in ("bal", "imbal", "imbal_cw", "bal_mie", "imbal_mie", "imbal_cw_mie",
                                       "bal_xlmr", "imbal_xlmr", "imbal_cw_xlmr")} <= set(recipes)
    # Every recipe of a dataset has the same data design (only the subset trained on, the loss and the model
    # differ), and the plan and the build depend on nothing else: one plan and one build check them all.
    assert len({data_design(r) for r in recipes.values()}) == 1
    first = recipes[f"{dataset}_imbal"]
    pools, label_names, languages = recipe_pools(first)
    data, imbalance = first.data, first.imbalance
    sizes = {field: getattr(data, field) for field in SIZE_FIELDS.values()}
    plan = design_plan(pools, languages, label_names, sizes, imbalance.distribution, imbalance.groups,
                       with_largest=False)
    assert plan.shortages() == []

    subsets, report = build_subsets(pools, languages, len(label_names), data.train_per_language,
                                    data.validation_per_language, data.test_per_cell, imbalance.distribution,
                                    imbalance.groups, first.seed, label_names=label_names)
    n_labels = len(label_names)
    for split, per_language in (("train", data.train_per_language), ("validation", data.validation_per_language)):
        for kind in ("balanced", "imbalanced"):
            counts = cell_counts(subsets[f"{split}_{kind}"], languages, n_labels)
            assert (counts == np.array([[report["counts"][f"{split}_{kind}"][lang][name] for name in label_names]
                                        for lang in languages])).all()
            # marginals: every language has its size, every label the same share
            assert (counts.sum(axis=1) == per_language).all(), (split, kind)
            assert (counts.sum(axis=0) == per_language * len(languages) // n_labels).all(), (split, kind)
            for i, lang in enumerate(languages):
                ratio = np.array(RELEASED_RATIOS[dataset][lang], dtype=float)
                if kind == "balanced":
                    ratio = np.full(n_labels, ratio.mean())
                exact = per_language * ratio / ratio.sum()
                assert np.abs(counts[i] - exact).max() <= 1, (split, kind, lang, counts[i], exact)
                released = released_cells(dataset, split, lang, balanced=kind == "balanced")
                assert np.abs(counts[i] - released).max() <= 1, (split, kind, lang, counts[i], released)
        # maximal overlap: in every cell the smaller subset lies inside the larger
        overlap = report["overlap"][split]
        bal = cell_counts(subsets[f"{split}_balanced"], languages, n_labels)
        imbal = cell_counts(subsets[f"{split}_imbalanced"], languages, n_labels)
        assert overlap == pytest.approx(np.minimum(bal, imbal).sum() / bal.sum())
    test = cell_counts(subsets["test"], languages, n_labels)
    expected_test = 1_000 if dataset == "amazon" else released_cells("xnli", "test", "en", balanced=True)[0]
    assert (test == data.test_per_cell).all() and data.test_per_cell == expected_test

    # The dry run of the imbalanced recipe, as a user types it: the paper's schedule at this size.
    result = CliRunner().invoke(app, ["finetune", str(RECIPES / f"{dataset}_imbal.yaml"), "--dry-run",
                                      "--set", source])
    assert result.exit_code == 0, result.output
    steps, per_epoch, epochs, evaluations = {"amazon": (5625, 5625, 1, 10), "xnli": (12273, 4091, 3, 30)}[dataset]
    assert f"{steps} ({per_epoch} per epoch x {epochs} epochs)" in result.output, result.output
    assert f"{evaluations} (every" in result.output, result.output
    assert "no weights loaded" in " ".join(result.output.split())
    train_rows = subsets["train_imbalanced"].num_rows
    assert f"train: train_imbalanced ({train_rows} rows)" in result.output
