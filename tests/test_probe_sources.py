"""The probe reads the run's recipe (analysis.probe) and its external corpus from it; every table format."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml

from hub_shaped import write_wikipedia_like
from langtrainer.analysis.probe import probe_texts, run_probe
from langtrainer.analysis.probe import ProbeOptions
from langtrainer.errors import UserError
from langtrainer.rundir import RunDir
from tiny_model import tiny_test_frame


def _test_frame(per_language: int = 10) -> pd.DataFrame:
    return tiny_test_frame(per_language)


@pytest.fixture(scope="module")
def wikipedia(tmp_path_factory):
    return write_wikipedia_like(tmp_path_factory.mktemp("wiki") / "wikimedia__wikipedia",
                                languages=("de", "en", "es", "fr"), articles=20)


def _make_run(path, tiny_model_dir, probe: dict, languages=("de", "en", "fr")):
    import datasets

    shutil.copytree(tiny_model_dir, path)
    test = datasets.Dataset.from_pandas(_test_frame(), preserve_index=False)
    datasets.DatasetDict({"test": test}).save_to_disk(str(path / "data"))
    recipe = {"name": "r", "seed": 3, "model": {"max_length": 32},
              "data": {"languages": list(languages)}, "analysis": {"probe": probe}}
    (path / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_external_probe_reads_the_recipes_wikipedia_shaped_corpus(tmp_path, tiny_model_dir, wikipedia):
    run = _make_run(tmp_path / "run", tiny_model_dir, {
        "C": 0.5, "folds": 2, "per_language": 7, "external": str(wikipedia),
        "external_configs": {lang: f"20231101.{lang}" for lang in ("de", "en", "es", "fr")},
        "feature": "mean", "layer": 1,
    })
    from langtrainer.pipelines.probe import probe_and_write

    report, paths = probe_and_write(run, ProbeOptions(data="external", folds=3))
    report = report.to_dict()  # the JSON's shape
    assert paths["json"] == RunDir(run).probe_path("external")
    # Wikipedia's 20 articles per language, 7 drawn, only the run's languages (es left out).
    assert report["n_per_language"] == {"de": 7, "en": 7, "fr": 7}
    assert report["data_source"].startswith(str(wikipedia)) and "20231101.fr" in report["data_source"]
    assert report["settings"]["C"] == 0.5 and report["settings"]["folds"] == 3
    assert report["feature"] == "mean" and report["layer"] == 1 and report["max_length"] == 32
    assert report["sources"]["C"] == "recipe" and report["sources"]["folds"] == "cli"
    assert report["sources"]["seed"] == "default" and report["sources"]["external"] == "recipe"
    assert report["sources"]["languages"] == "recipe"
    saved = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert saved["options"]["external_configs"]["fr"] == "20231101.fr"


def test_config_template_and_article_draw(wikipedia):
    frame, source = probe_texts("nowhere", "external", per_language=5, languages=["en", "es"], seed=1,
                                external=str(wikipedia), external_configs="20231101.{lang}")
    assert frame["language"].tolist() == ["en"] * 5 + ["es"] * 5
    # The draw is seeded: articles differ between languages' draws, repeat exactly for the seed.
    again, _ = probe_texts("nowhere", "external", per_language=5, languages=["en", "es"], seed=1,
                           external=str(wikipedia), external_configs="20231101.{lang}")
    other, _ = probe_texts("nowhere", "external", per_language=5, languages=["en", "es"], seed=2,
                           external=str(wikipedia), external_configs="20231101.{lang}")
    assert frame["text"].tolist() == again["text"].tolist()
    assert frame["text"].tolist() != other["text"].tolist()
    with pytest.raises(UserError, match="no config for language 'ja'"):
        probe_texts("nowhere", "external", 5, ["ja"], 0, external=str(wikipedia),
                    external_configs={"en": "20231101.en"})


def test_builtin_external_is_what_it_was(tmp_path, tiny_model_dir):
    """The default corpus goes through load_examples now: the same rows in the same order as before."""
    from langtrainer.analysis.probe.texts import _clean_frame
    from langtrainer.data.builtin import load_builtin
    from langtrainer.data.stratified import sample_per_language

    frame, source = probe_texts("nowhere", "external", per_language=40, languages=["de", "fr", "ja"], seed=5)
    expected = sample_per_language(_clean_frame(load_builtin("debian-reference"), "x"), 40, 5, ["de", "fr", "ja"])
    assert source == "builtin:debian-reference"
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected.reset_index(drop=True))


@pytest.mark.parametrize("kind", ["csv", "parquet", "json", "split_folder", "save_to_disk"])
def test_probe_data_reads_every_table_format(kind, tmp_path):
    import datasets

    frame = _test_frame(4)[["text", "language"]]
    frame.loc[0, "language"] = " DE"  # read like finetune reads it: stripped, lower-case
    if kind == "csv":
        path = tmp_path / "t.csv"
        frame.to_csv(path, index=False)
    elif kind == "parquet":
        path = tmp_path / "t.parquet"
        frame.to_parquet(path)
    elif kind == "json":
        path = tmp_path / "t.json"
        frame.to_json(path, orient="records")
    elif kind == "split_folder":
        path = tmp_path / "folder"
        path.mkdir()
        frame.to_json(path / "test.jsonl", orient="records", lines=True)
        frame.iloc[:3].to_json(path / "train.jsonl", orient="records", lines=True)
    else:
        path = tmp_path / "saved"
        ds = datasets.Dataset.from_pandas(frame, preserve_index=False)
        datasets.DatasetDict({"train": ds.select(range(3)), "test": ds}).save_to_disk(str(path))
    texts, _ = probe_texts("nowhere", str(path), per_language=None, languages=None, seed=0)
    assert texts["language"].value_counts().to_dict() == {"de": 4, "en": 4, "fr": 4}


def test_file_probe_defaults_to_the_runs_languages(tmp_path, tiny_model_dir):
    run = _make_run(tmp_path / "run", tiny_model_dir, {"folds": 2}, languages=("de", "fr"))
    path = tmp_path / "t.jsonl"
    _test_frame(4)[["text", "language"]].to_json(path, orient="records", lines=True)
    texts, _ = probe_texts(run, str(path), per_language=None, languages=None, seed=0)
    assert sorted(texts["language"].unique()) == ["de", "fr"]
    texts, _ = probe_texts(run, str(path), per_language=None, languages=["en"], seed=0)
    assert sorted(texts["language"].unique()) == ["en"]


def test_cli_flag_overrides_recipe_and_bad_recipe_value_names_the_key(tmp_path, tiny_model_dir):
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    run = _make_run(tmp_path / "run", tiny_model_dir, {"C": 0.01, "folds": 3, "per_language": 6})
    result = CliRunner().invoke(app, ["probe", "--ckpt", str(run), "--C", "2.0", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((run / "probe_test.json").read_text(encoding="utf-8"))
    assert report["settings"]["C"] == 2.0 and report["sources"]["C"] == "cli"
    assert report["settings"]["folds"] == 3 and report["sources"]["folds"] == "recipe"
    # the test split is probed whole (the paper's code): the recipe's per_language caps other corpora
    assert report["n_per_language"] == {"de": 10, "en": 10, "fr": 10}
    assert report["sources"]["feature"] == "default" and report["feature"] == "first-token"
    result = CliRunner().invoke(app, ["probe", "--ckpt", str(run), "--per-language", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((run / "probe_test.json").read_text(encoding="utf-8"))
    assert report["n_per_language"] == {"de": 4, "en": 4, "fr": 4} and report["sources"]["per_language"] == "cli"

    bad = _make_run(tmp_path / "bad", tiny_model_dir, {"folds": 1})
    result = CliRunner().invoke(app, ["probe", "--ckpt", str(bad), "--quiet"])
    assert result.exit_code == 2
    assert "analysis.probe.folds" in result.output and "at least 2" in result.output


def test_external_named_on_the_cli_drops_the_recipes_configs(tmp_path, tiny_model_dir):
    run = _make_run(tmp_path / "run", tiny_model_dir, {"external": "wikimedia/wikipedia",
                                                      "external_configs": "20231101.{lang}"})
    resolved, sources = ProbeOptions(external="builtin:debian-reference").resolve(RunDir(run))
    assert resolved.external == "builtin:debian-reference" and resolved.external_configs is None
    resolved, sources = ProbeOptions().resolve(RunDir(run))
    assert resolved.external == "wikimedia/wikipedia" and resolved.external_configs == "20231101.{lang}"
    assert sources["external_configs"] == "recipe"


def test_probe_layer_plot_takes_an_axes(tmp_path, tiny_model_dir):
    from langtrainer.reporting.plots import new_axes, plot_probe_layers

    report = run_probe(tiny_model_dir, data=str(_write(tmp_path)), layer="all", folds=2)
    ax = new_axes()
    assert plot_probe_layers(report, ax=ax) is ax
    assert len(ax.lines) >= 2  # the curve and the chance line


def _write(tmp_path):
    path = tmp_path / "t.jsonl"
    _test_frame(4)[["text", "language"]].to_json(path, orient="records", lines=True)
    return path


def test_configs_with_a_single_table_corpus_are_refused():
    with pytest.raises(UserError, match="external_configs"):
        probe_texts("nowhere", "external", 5, ["en"], 0, external="builtin:debian-reference",
                    external_configs="20231101.{lang}")
