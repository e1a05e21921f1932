"""Every paper recipe, end to end, against local folders shaped like its Hub datasets.

The recipes name `mteb/amazon_reviews_multi`, `facebook/xnli` and
`wikimedia/wikipedia`; here `--set data.source=FOLDER` and
`--set analysis.probe.external=FOLDER` point them at copies in the same layout
and schema (tests/hub_shaped.py), with the tiny model and a few steps. What
runs is the recipe's own pipeline: its subsets (Table 1 skews), pair inputs
for XNLI, training with its loss settings, the probe on the Wikipedia-shaped
corpus, SHAP (on pairs for XNLI), shap-diff and the report. That is also how
a user with a local copy of the datasets (an air-gapped cluster) runs them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub_shaped import write_amazon_like, write_wikipedia_like, write_xnli_like
from langtrainer.cli.main import app

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"

# Small enough for the fixtures, large enough for every Table 1 cell to be non-empty.
SIZES = {
    "amazon": ["data.train_per_language=60", "data.validation_per_language=15", "data.test_per_cell=4"],
    "xnli": ["data.train_per_language=30", "data.validation_per_language=9", "data.test_per_cell=4"],
}
FAST = [
    "model.max_length=64",
    "training.max_steps=2",
    "training.per_device_train_batch_size=4",
    "training.gradient_accumulation_steps=2",
    "training.per_device_eval_batch_size=16",
    "analysis.probe.per_language=12",
    "analysis.probe.folds=2",
    "analysis.shap.subsample=6",  # every language (Amazon has 6): shap-diff needs each group's languages
    "analysis.shap.max_evals=24",
]


@pytest.fixture(scope="module")
def hub_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    return {
        "amazon": write_amazon_like(root / "mteb__amazon_reviews_multi"),
        "xnli": write_xnli_like(root / "facebook__xnli"),
        "wikipedia": write_wikipedia_like(root / "wikimedia__wikipedia"),
    }


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _paper_recipes(dataset: str) -> list[Path]:
    # The _xlmr recipes are the _mie ones with another model name, which this test replaces by the tiny model.
    return sorted(p for p in RECIPES.glob(f"{dataset}_*.yaml")
                  if p.stem != f"{dataset}_base" and not p.stem.endswith("_xlmr"))


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["amazon", "xnli"])
def test_every_paper_recipe_runs_end_to_end_offline(dataset, hub_folders, tiny_model_dir, tiny_pair_model_dir,
                                                   tmp_path):
    model = tiny_model_dir if dataset == "amazon" else tiny_pair_model_dir
    recipes = _paper_recipes(dataset)
    assert {p.stem for p in recipes} >= {f"{dataset}_{v}" for v in ("bal", "imbal", "imbal_cw", "bal_mie",
                                                                     "imbal_mie", "imbal_cw_mie")}
    overrides = [f"data.source={hub_folders[dataset]}", f"model.name_or_path={model}",
                 f"analysis.probe.external={hub_folders['wikipedia']}", *SIZES[dataset], *FAST]
    sets = [x for o in overrides for x in ("--set", o)]
    runs = {}
    for recipe in recipes:
        run = tmp_path / recipe.stem
        _invoke("finetune", recipe, *sets, "-o", run, "--quiet")
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["test"]["n"] == len(metrics["languages"]) * len(metrics["label_names"]) * 4
        assert set(metrics["test"]["by_language"]) == set(metrics["languages"])
        if dataset == "xnli":
            assert metrics["label_names"] == ["entailment", "neutral", "contradiction"]
        for data in ("test", "external"):
            _invoke("probe", "--ckpt", run, "--data", data, "--quiet")
            probe = json.loads((run / f"probe_{data}.json").read_text(encoding="utf-8"))
            assert set(probe["languages"]) == set(metrics["languages"])
            if data == "external":  # the Wikipedia-shaped folder, one config per language, from the recipe
                assert probe["data_source"].startswith(str(hub_folders["wikipedia"]))
                assert probe["sources"]["external"] == "recipe" and probe["sources"]["C"] == "recipe"
                assert set(probe["n_per_language"].values()) == {12}
        _invoke("shap", "--ckpt", run, "--quiet")
        runs[recipe.stem] = run
    # Figure 1 (imbal, imbal_cw against bal) and its Annex A.3 version, Figure 3 (both with the entropy term)
    for bal, other in (("bal", "imbal"), ("bal", "imbal_cw"), ("bal_mie", "imbal_mie")):
        out = tmp_path / f"diff_{other}"
        _invoke("shap-diff", "--bal", runs[f"{dataset}_{bal}"], "--imbal", runs[f"{dataset}_{other}"],
                "--out", out, "--quiet")
        assert (out / "shap_diff.json").is_file()
    report = tmp_path / "report"
    _invoke("report", *runs.values(), "--out", report)
    assert (report / "report.md").is_file()
