"""Typed, versioned run-folder files (langtrainer.artifacts) and the one legacy reader.

tests/fixtures/legacy_run_8a5421a is a tiny run folder written by commit
8a5421a's code (before format_version; see tools/make_legacy_run.py):
it must still load, probe, explain and report.
"""

import json
import shutil
from pathlib import Path

import pytest

from langtrainer.artifacts import (FORMAT_KEY, Distribution, Identity, MetricFrame, ProbeReport, RunMetrics,
                                   ShapDiffReport, ShapManifest)
from langtrainer.errors import UserError
from langtrainer.rundir import RunDir

LEGACY = Path(__file__).parent / "fixtures" / "legacy_run_8a5421a"


def raw(name: str) -> dict:
    return json.loads((LEGACY / name).read_text(encoding="utf-8"))


@pytest.fixture
def legacy(tmp_path) -> RunDir:
    """A copy of the old run folder (readers that write, e.g. the report's model card, write here)."""
    return RunDir(shutil.copytree(LEGACY, tmp_path / "run"))


def test_the_fixture_is_in_the_old_format():
    for name in ("metrics.json", "data/distribution.json", "identity.json", "probe_test.json",
                 "shap/manifest.json", "shap_diff.json"):
        assert FORMAT_KEY not in raw(name), name
    assert raw("probe_test.json")["version"] == 1 and raw("shap/manifest.json")["version"] == 1


def test_legacy_files_load_as_objects_with_their_numbers(legacy):
    metrics = legacy.read_metrics()
    old = raw("metrics.json")
    assert isinstance(metrics, RunMetrics) and isinstance(metrics.test, MetricFrame)
    assert metrics.test.accuracy == old["test"]["accuracy"]
    assert metrics.test.by_language["fr"].accuracy == old["test"]["by_language"]["fr"]["accuracy"]
    assert metrics.test.by_language["en"].n == 6 and metrics.test.n == 18 == metrics.test_examples
    assert metrics.label_names == ["l0", "l1"] and metrics.languages == ["de", "en", "fr"]
    assert metrics.class_weights == old["class_weights"] and metrics.class_weights_mode == "per_language"

    distribution = legacy.read_distribution()
    assert isinstance(distribution, Distribution) and distribution.as_is and distribution.seed == 0
    assert distribution.counts["test"]["de"] == {"l0": 3, "l1": 3}
    assert distribution.label_shares("test", ["l0", "l1"]) == {lang: [0.5, 0.5] for lang in ("de", "en", "fr")}

    identity = legacy.read_identity()
    assert isinstance(identity, Identity) and identity.recipe_sha256 == raw("identity.json")["recipe_sha256"]

    probe = legacy.read_probes()["test"]
    assert isinstance(probe, ProbeReport)
    assert probe.accuracy_mean == raw("probe_test.json")["accuracy_mean"] and probe.n_examples == 18
    assert probe.settings["C"] == 1.0 and probe.settings["folds"] == 2 and probe.base is None

    diff = legacy.read_shap_diff()
    assert isinstance(diff, ShapDiffReport) and diff.threshold == 0.01 and diff.label_names == ["l0", "l1"]


def test_a_legacy_file_rewritten_keeps_every_key_and_gains_the_version(legacy):
    for name, cls in (("metrics.json", RunMetrics), ("data/distribution.json", Distribution),
                      ("identity.json", Identity), ("probe_test.json", ProbeReport),
                      ("shap/manifest.json", ShapManifest), ("shap_diff.json", ShapDiffReport)):
        old = raw(name)
        new = cls.from_dict(old).to_dict()
        assert new[FORMAT_KEY] == 1, name
        old.pop("version", None)  # the probe's and the manifest's own version key, now format_version
        dropped_nulls = {k for k, v in old.items() if v is None}  # None and absent read the same
        assert set(new) - {FORMAT_KEY} == set(old) - dropped_nulls, name
        assert all(new[k] == old[k] for k in set(old) - dropped_nulls), name
        assert cls.from_dict(new).to_dict() == new, name  # the current format round-trips


def test_newer_or_damaged_versions_are_refused_by_name(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({**raw("metrics.json"), FORMAT_KEY: 99}))
    with pytest.raises(UserError, match=r"format_version 99, newer than this langtrainer reads \(1\)"):
        RunMetrics.read(path)
    path.write_text(json.dumps({**raw("metrics.json"), FORMAT_KEY: "one"}))
    with pytest.raises(UserError, match="not an integer"):
        RunMetrics.read(path)
    path.write_text("[1, 2]")
    with pytest.raises(UserError, match="is not a JSON object"):
        RunMetrics.read(path)
    path.write_text(json.dumps({"recipe": "x"}))
    with pytest.raises(UserError, match="has no 'test'"):
        RunMetrics.read(path)


def test_unknown_keys_survive_a_round_trip():
    data = {**raw("metrics.json"), "label_shares_future": {"de": [0.5, 0.5]}}
    data["test"] = {**data["test"], "a_future_statistic": 0.01}
    metrics = RunMetrics.from_dict(data)
    assert metrics.extra == {"label_shares_future": {"de": [0.5, 0.5]}}
    assert metrics.test.extra == {"a_future_statistic": 0.01}
    again = metrics.to_dict()
    assert again["label_shares_future"] == {"de": [0.5, 0.5]} and again["test"]["a_future_statistic"] == 0.01


def test_the_writers_stamp_format_version(legacy, tmp_path):
    written = tmp_path / "identity.json"
    Identity(recipe_sha256="ab", seed=3).write(written)
    assert json.loads(written.read_text()) == {FORMAT_KEY: 1, "recipe_sha256": "ab", "seed": 3}
    probe = legacy.read_probes()["test"]
    out = probe.to_dict()
    assert out["kind"] == "langtrainer.analysis.probe" and out[FORMAT_KEY] == 1
    assert out["accuracy_mean"] == probe.accuracy_mean and "block" not in out  # the probed model's block is flat


def test_a_legacy_run_still_reports_probes_and_explains(legacy, tmp_path):
    from langtrainer.analysis.shap import ShapOptions, load_shap_result, run_shap
    from langtrainer.analysis.shap.store import read_manifest
    from langtrainer.pipelines.probe import probe_and_write
    from langtrainer.analysis.probe import ProbeOptions
    from langtrainer.reporting.report import write_report

    old = load_shap_result(legacy.path)
    assert old.manifest.complete and len(old) == raw("shap/manifest.json")["n_examples"] == 18

    report, paths = probe_and_write(legacy.path, ProbeOptions(data="test", folds=2, C=1.0),
                                    out=tmp_path / "probe.json")
    assert report.accuracy_mean == pytest.approx(raw("probe_test.json")["accuracy_mean"])  # same model, texts, folds
    assert json.loads(paths["json"].read_text())[FORMAT_KEY] == 1

    out = run_shap(legacy.path, ShapOptions(subsample=4, max_evals=40), out=tmp_path / "shap")
    assert read_manifest(out).complete and json.loads((out / "manifest.json").read_text())[FORMAT_KEY] == 1

    report_md = write_report([legacy.path], tmp_path / "report")
    text = report_md.read_text(encoding="utf-8")
    assert "legacy" in text or "as-is" in text
    summary = json.loads((tmp_path / "report" / "report.json").read_text())
    assert summary["roles"]["as-is+cw"]["accuracy"][0] == pytest.approx(raw("metrics.json")["test"]["accuracy"])
