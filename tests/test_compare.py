"""`langtrainer compare`: bad input (exit 2, one line, disk unchanged) and a tiny end-to-end compare that is
killed, continued, rerun without retraining, and whose compare.json is recomputed from the run folders."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fault_helpers import cli_command, cli_env, error_line, run_cli, tree, write_dataset, write_recipe
from langtrainer.cli.main import app

# Small enough for a few seconds per run; a learning rate at which the tiny model moves.
EXTRA = """analysis:
  probe: {folds: 2, C: 1.0, per_language: 12}
  shap: {subsample: 6, max_evals: 32}
"""
TRAINING = "  learning_rate: 0.003\n"


@pytest.fixture
def setup(tmp_path, tiny_model_dir):
    data = write_dataset(tmp_path / "ds")
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_model_dir, data, extra=EXTRA, training=TRAINING)
    return tmp_path, recipe


def fails(folder: Path, *args) -> str:
    before = tree(folder)
    result = CliRunner().invoke(app, ["compare", *map(str, args)])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    line = error_line(result.stderr)
    assert line.startswith("error: ") and result.stdout == ""
    assert tree(folder) == before, "the refused compare left files behind"
    return line


def test_unknown_mitigation_is_refused_naming_the_valid_ones(setup):
    root, recipe = setup
    line = fails(root, recipe, "--mitigations", "none,reweighting", "-o", root / "cmp")
    assert "unknown mitigation 'reweighting'" in line and "class_weights" in line and "sampler" in line


def test_zero_seeds_is_refused(setup):
    root, recipe = setup
    assert "--seeds must be at least 1" in fails(root, recipe, "--seeds", "0", "-o", root / "cmp")


def test_a_mitigation_needing_languages_the_data_lacks_is_refused(setup):
    root, recipe = setup
    one = root / "one.yaml"
    one.write_text(recipe.read_text().replace("languages: [de, en, fr]", "languages: [de]")
                   .replace("groups: {A: [de, fr], B: [en]}", "groups: {A: [de]}")
                   .replace("distribution: {A: [50, 25, 25], B: [0, 50, 50]}", "distribution: {A: [50, 25, 25]}"))
    line = fails(root, one, "--mitigations", "none,adversarial", "-o", root / "cmp")
    assert "'adversarial' needs at least 2 languages" in line and "(de)" in line


def test_a_set_on_a_mitigation_key_is_refused_naming_both(setup):
    root, recipe = setup
    line = fails(root, recipe, "--mitigations", "none,class_weights", "--set", "loss.class_weights=global",
                 "-o", root / "cmp")
    assert "loss.class_weights" in line and "'none'" in line


def test_an_output_folder_holding_another_compare_is_refused(setup):
    from langtrainer.compare import plan_compare
    from langtrainer.compare.folder import CompareDir

    root, recipe = setup
    out = root / "cmp"
    plan = plan_compare(recipe, ["none", "class_weights"], seeds=1, out=out)
    CompareDir(out).write_identity(plan.identity)
    line = fails(root, recipe, "--mitigations", "none,class_weights", "--set", "training.learning_rate=0.001",
                 "-o", out)
    assert "holds a compare of another recipe" in line
    line = fails(root, recipe, "--mitigations", "none,sampler", "-o", out)
    assert "another mitigations (none, class_weights there, none, sampler now)" in line
    (root / "other").mkdir()
    (root / "other" / "notes.txt").write_text("mine")
    assert "holds no compare" in fails(root, recipe, "-o", root / "other")


def test_the_balanced_reference_needs_the_skew_design(setup):
    root, recipe = setup
    as_is = root / "asis.yaml"
    text = recipe.read_text()
    as_is.write_text(text[:text.index("imbalance:")] + text[text.index("training:"):])
    line = fails(root, as_is, "--mitigations", "none,balanced", "-o", root / "cmp")
    assert "'balanced' needs the paper's skew design" in line


# ----------------------------------------------------------------------------- end to end
def _kill_after_first_run(args, cwd: Path, first: Path, timeout: float = 600) -> None:
    """Start the compare, SIGKILL it (its whole process group) once `first` (a run's metrics.json) exists."""
    proc = subprocess.Popen(cli_command(*args), cwd=cwd, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not first.exists():
            assert proc.poll() is None, "the compare ended before its first run finished"
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_compare_end_to_end_killed_continued_rerun_and_recomputed(setup):
    from langtrainer.rundir import RunDir

    root, recipe = setup
    out = root / "cmp"
    args = ["compare", recipe, "--mitigations", "none,class_weights", "--seeds", "2", "-o", out, "--quiet"]
    first = out / "none-seed0" / "metrics.json"
    _kill_after_first_run(args, root, first)
    assert not (out / "compare.json").exists()
    first_written = first.stat().st_mtime_ns

    done = run_cli(*args, cwd=root, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    stdout = " ".join(done.stdout.split())
    trained = int(stdout.split("run(s) trained now")[0].rsplit("(", 1)[1])
    assert 1 <= trained <= 3  # the first run was finished before the kill: never trained again
    assert first.stat().st_mtime_ns == first_written
    again = run_cli(*args, cwd=root, timeout=300)
    stdout = " ".join(again.stdout.split())
    assert again.returncode == 0 and "(0 run(s) trained now)" in stdout
    assert "compare plan: 4 runs" in stdout

    result = json.loads((out / "compare.json").read_text())
    assert result["format_version"] == 1 and result["kind"] == "langtrainer.compare.result"
    # Every run trained and tested on the same split: the same test rows, matched by id.
    predictions = {(m, s): RunDir(out / f"{m}-seed{s}").read_predictions() for m in ("none", "class_weights")
                   for s in (0, 1)}
    ids = sorted(predictions[("none", 0)]["id"])
    assert all(sorted(p["id"]) == ids for p in predictions.values())
    _recompute(result, out, predictions)
    md = (out / "compare.md").read_text()
    assert "## Recommendation" in md and "Rule: among mitigations" in md
    assert (out / "compare_forest.png").stat().st_size > 5_000
    assert (out / "token_view_class_weights.html").is_file()
    assert (out / "shap_diff" / "class_weights-seed1" / "shap_diff.json").is_file()
    # SHAP explained the same rows in every run
    from langtrainer.analysis.shap import load_shap_result

    explained = {tuple(sorted(load_shap_result(out / f"{m}-seed{s}" / "shap").examples["id"]))
                 for m in ("none", "class_weights") for s in (0, 1)}
    assert len(explained) == 1

    # The same folder with one seed: no training; intervals from a paired bootstrap over the test rows, labelled.
    one = run_cli("compare", recipe, "--mitigations", "none,class_weights", "--seeds", "1", "-o", out, "--quiet",
                  cwd=root, timeout=300)
    assert one.returncode == 0 and "(0 run(s) trained now)" in " ".join(one.stdout.split())
    single = json.loads((out / "compare.json").read_text())
    c = single["metrics"]["accuracy"]["by_mitigation"]["class_weights"]
    assert c["se"] is None and c["interval"]["kind"] == "95 % paired bootstrap over test rows"
    assert c["interval"]["low"] <= c["difference_mean"] <= c["interval"]["high"]
    excludes_zero = c["interval"]["low"] > 0 or c["interval"]["high"] < 0
    assert (c["verdict"] != "within the noise") == excludes_zero
    assert "(bootstrap over test rows)" in (out / "compare.md").read_text()


def _recompute(result: dict, out: Path, predictions: dict) -> None:
    """Every number in compare.json from the runs' predictions.parquet, metrics.json and probe JSONs."""
    from scipy.stats import t as scipy_t

    from langtrainer.compare.folder import CompareDir

    from langtrainer.rundir import RunDir
    from langtrainer.training.language_dependence import language_prediction_cmi
    from langtrainer.training.metrics import metric_frame

    def from_run(m: str, seed: int) -> dict[str, float]:
        p = predictions[(m, seed)].sort_values("id")
        names = p.attrs["label_names"]
        frame = metric_frame([names.index(x) for x in p["predicted"]], [names.index(x) for x in p["label"]],
                             p["language"].tolist(), names)
        run = RunDir(out / f"{m}-seed{seed}")
        metrics = run.read_metrics().test
        assert frame["accuracy"] == pytest.approx(metrics.accuracy)
        values = {"accuracy": frame["accuracy"], "macro_f1": frame["macro_f1"],
                  "worst_language_macro_f1": min(r["macro_f1"] for r in frame["by_language"].values()),
                  "language_prediction_cmi": language_prediction_cmi(p["predicted"], p["label"], p["language"])}
        assert values["language_prediction_cmi"] == pytest.approx(metrics.language_prediction_cmi)
        if metrics.skew_index is not None:
            values["skew_index"] = metrics.skew_index
        for data in ("test", "external"):
            values[f"probe_{data}"] = run.read_probes()[data].accuracy_mean
        return values

    def at_chance(report) -> bool:  # within 2 fold standard deviations of the commonest language's share
        return report.accuracy_mean <= report.block.result["chance_accuracy"] + 2 * report.accuracy_std

    def probe_difference_measured(data: str, m: str, seeds) -> bool:
        """Not when the pretrained model's probe is at chance, nor when both runs' are in one seed."""
        def chance(name: str, seed: str) -> bool:
            return at_chance(RunDir(out / f"{name}-seed{seed}").read_probes()[data])

        if at_chance(CompareDir(out).pretrained.read_probes()[data]):
            return False
        return not any(chance(m, s) and chance(result["baseline"], s) for s in seeds)

    seen = 0
    for key, block in result["metrics"].items():
        for m, c in block["by_mitigation"].items():
            for seed_text, value in c["values"].items():
                expected = from_run(m, int(seed_text)).get(key)
                if expected is not None:
                    assert value == pytest.approx(expected, abs=1e-12), (key, m, seed_text)
                    seen += 1
            values = np.array(list(c["values"].values()))
            assert c["mean"] == pytest.approx(values.mean())
            assert c["se"] == pytest.approx(values.std(ddof=1) / math.sqrt(len(values)))
            if m == result["baseline"]:
                assert c["differences"] == {} and c["verdict"] == ""
                continue
            base = block["by_mitigation"][result["baseline"]]["values"]
            d = np.array([c["values"][s] - base[s] for s in c["values"]])
            assert list(c["differences"].values()) == pytest.approx(list(d))
            se = d.std(ddof=1) / math.sqrt(len(d))
            assert c["difference_mean"] == pytest.approx(d.mean()) and c["difference_se"] == pytest.approx(se)
            t = scipy_t.ppf(0.975, len(d) - 1)  # the paired t test's 95 % threshold
            assert c["interval"]["low"] == pytest.approx(d.mean() - t * se)
            assert c["interval"]["high"] == pytest.approx(d.mean() + t * se)
            good = d.mean() if block["higher_is_better"] else -d.mean()
            expected = "better" if good > t * se else "worse" if good < -t * se else "within the noise"
            if key.startswith("probe_") and not probe_difference_measured(key.removeprefix("probe_"), m, c["values"]):
                expected = "not decided (probes at chance)"
            assert c["verdict"] == expected, (key, m)
    assert seen >= 2 * 2 * 6


def test_split_seed_pins_the_split_while_the_seed_varies(setup):
    from langtrainer.data.sampling import build_from_recipe
    from langtrainer.recipe import load_recipe

    _, recipe = setup
    ids = {}
    for sets in ([], ["seed=1", "data.split_seed=0"], ["seed=1"]):
        subsets, report = build_from_recipe(load_recipe(recipe, sets))
        ids[tuple(sets)] = {name: list(subsets[name]["id"]) for name in subsets}
        assert report["seed"] == (1 if sets == ["seed=1"] else 0)
    assert ids[("seed=1", "data.split_seed=0")] == ids[()]
    assert ids[("seed=1",)] != ids[()]  # without the pin, another seed draws another split


def test_as_is_recipe_progress_estimate_and_pretrained_probe_languages(setup, tiny_model_dir):
    """A recipe that names no languages (the data as it is). Event.remaining_s: unknown until one run's
    probes and SHAP were timed, then the training left plus one measured analysis per run still to
    analyse; 0 when only the outputs are left. The pretrained model is probed on the split's languages,
    as every run is, not on every language of the external corpus."""
    from langtrainer.compare import compare
    from langtrainer.compare.folder import CompareDir
    from langtrainer.rundir import RunDir

    root, _ = setup
    recipe = root / "as_is.yaml"
    recipe.write_text(f"""name: as_is
seed: 0
model: {{name_or_path: "{tiny_model_dir}", max_length: 32}}
data:
  source: "{root / 'ds'}"
training:
  num_train_epochs: 2
  per_device_train_batch_size: 4
  per_device_eval_batch_size: 16
  logging_steps: 1
  dataloader_num_workers: 0
{TRAINING}{EXTRA}""", encoding="utf-8")
    events = []
    out = root / "eta"
    compare(recipe, ["none", "class_weights"], seeds=1, out=out, progress=events.append)
    pretrained = CompareDir(out).pretrained.read_probes()
    run = RunDir(out / "none-seed0").read_probes()
    assert pretrained["external"].languages == run["external"].languages == ["de", "en", "fr"]
    assert pretrained["test"].languages == ["de", "en", "fr"]
    # The data has no skew (12 rows per language and label): per-language weights are all 1, so
    # class_weights trains the model `none` trains. That is a result (no difference), not an error.
    result = json.loads((out / "compare.json").read_text())
    c = result["metrics"]["accuracy"]["by_mitigation"]["class_weights"]
    assert c["difference_mean"] == 0 and c["verdict"] == "within the noise"
    # A probe at chance is named in the limits; with the pretrained model's at chance, or both runs', no probe
    # verdict is made (here the pretrained tiny model's test-split probe is at chance, no external one is).
    from langtrainer.analysis.probe import block_at_chance

    markdown = (out / "compare.md").read_text()
    for data, where in (("test", "test-split"), ("external", "external-corpus")):
        flagged = ["the pretrained model"] if block_at_chance(pretrained[data]) else []
        flagged += [f"{m} seed 0" for m in ("none", "class_weights")
                    if block_at_chance(RunDir(out / f"{m}-seed0").read_probes()[data])]
        line = next((x for x in markdown.splitlines() if f"the {where} language-ID probe is at chance" in x), None)
        assert (line is not None) == bool(flagged), (data, flagged)
        if flagged:
            assert f" texts) for {', '.join(flagged)}: at C = 1 " in line
        verdict = result["metrics"][f"probe_{data}"]["by_mitigation"]["class_weights"]["verdict"]
        undecidable = "the pretrained model" in flagged or {"none seed 0", "class_weights seed 0"} <= set(flagged)
        assert (verdict == "not decided (probes at chance)") == undecidable, (data, flagged, verdict)
    diff = json.loads((out / "shap_diff" / "class_weights-seed0" / "shap_diff.json").read_text())
    means = [cell["mean"] for by_lang in diff["by_language"].values() for by_cat in by_lang.values()
             for cell in by_cat.values() if cell.get("mean") is not None]
    assert means and all(m == 0 for m in means)
    first = [e for e in events if e.stage.startswith("none seed 0")]
    second = [e for e in events if e.stage.startswith("class_weights seed 0")]
    assert first and second
    # The first run's analysis is not timed before it ends: no estimate of the whole yet.
    assert all(e.remaining_s is None for e in first)
    training = [e for e in second if e.stage.endswith(": train") and e.estimate_s is not None]
    assert training, "the second run's training was never timed"
    # One analysis left (the second run's), timed on the first: the whole is the training left plus it.
    assert all(e.remaining_s > e.estimate_s for e in training)
    analysis = {round(e.remaining_s - e.estimate_s, 9) for e in training}
    assert len(analysis) == 1
    assert events[-1].stage.startswith("compare.json") and events[-1].remaining_s == 0


def test_remaining_seconds_worked_example():
    from langtrainer.compare.orchestrate import remaining_seconds

    assert remaining_seconds(0.5, 100, 30.0, 2) == 110.0
    assert remaining_seconds(None, 100, 30.0, 2) is None  # training left, speed not measured
    assert remaining_seconds(0.5, 100, None, 2) is None  # analyses left, none timed
    assert remaining_seconds(None, 0, 30.0, 1) == 30.0  # nothing left to train: its speed is not needed
    assert remaining_seconds(None, 0, None, 0) == 0.0
