"""report.md from hand-made run outputs: numbers, uncertainty and verdicts."""

import json

import pytest

from langtrainer.reporting.report import collect, difference_verdict, summarise, write_report

LABELS = ["a", "b", "c", "d"]
GROUPS = {"A": ["fr", "es"], "B": ["de", "en"]}
FAVOURED = {"A": [2, 3], "B": [0, 1]}


def write_run(root, seed, variant, accuracy, skew, probe_test, pred_a):
    run = root / f"seed{seed}" / variant
    run.mkdir(parents=True)
    subset = "balanced" if variant.startswith("bal") else "imbalanced"
    test = {"accuracy": accuracy, "macro_f1": accuracy - 0.01, "skew_index": skew, "by_group": {
        g: {"prediction_shares": dict(zip(LABELS, dist))} for g, dist in (("A", pred_a), ("B", pred_a[::-1]))}}
    metrics = {
        "recipe": f"demo_{variant}", "subset": subset, "seed": seed,
        "class_weights_mode": "per_language" if variant == "imbal_cw" else "none",
        "label_names": LABELS, "groups": GROUPS, "favoured_labels": FAVOURED, "test_examples": 720,
        "test": test, "train": {"steps": 100, "seconds": 60.0},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    sweep = [{"C": 1e-4, "accuracy_mean": probe_test}, {"C": 1.0, "accuracy_mean": min(1.0, probe_test + 0.05)}]
    for data, acc in (("test", probe_test), ("external", probe_test - 0.1)):
        (run / f"probe_{data}.json").write_text(json.dumps(
            {"accuracy_mean": acc, "accuracy_std": 0.01, "settings": {"C": 1e-4, "folds": 5},
             "feature": "first-token", "c_sweep": sweep}))
    return run


def write_diff(root, seed, name, neutral_a, neutral_b, runs=("bal", "imbal")):
    """shap_diff.json of runs[1] against runs[0] (both under seed<N>/), as `shap-diff` names them."""
    out = root / f"seed{seed}" / "shap_diff" / name
    out.mkdir(parents=True)
    by_language = {}
    for label in LABELS:
        by_language[label] = {}
        for lang in GROUPS["A"] + GROUPS["B"]:
            value = neutral_a if lang in GROUPS["A"] else neutral_b
            by_language[label][lang] = {"neutral": {"mean": value, "std": 0.0, "n": 10}}
    balanced, compared = (str(root / f"seed{seed}" / run / "shap") for run in runs)
    (out / "shap_diff.json").write_text(json.dumps({"by_language": by_language, "threshold": 0.01,
                                                    "balanced": balanced, "imbalanced": compared}))


@pytest.fixture
def demo_tree(tmp_path):
    root = tmp_path / "demo"
    for seed, (bal, imbal, cw) in enumerate([(0.80, 0.70, 0.76), (0.82, 0.71, 0.75), (0.81, 0.69, 0.77)]):
        write_run(root, seed, "bal", bal, 0.01, 0.60, [0.25, 0.25, 0.25, 0.25])
        write_run(root, seed, "imbal", imbal, 0.30, 0.90, [0.10, 0.15, 0.35, 0.40])
        write_run(root, seed, "imbal_cw", cw, 0.05, 0.70, [0.22, 0.24, 0.26, 0.28])
        write_diff(root, seed, "imbal_vs_bal", 0.02 + seed * 0.001, 0.03)
    return root


def test_summary_numbers(demo_tree):
    summary = summarise(collect([demo_tree]))
    roles = summary.roles
    assert summary.seeds == [0, 1, 2]
    assert roles["balanced"].accuracy[0] == pytest.approx(0.81)
    assert roles["balanced"].accuracy[1] == pytest.approx(0.01)  # sample std of .80/.82/.81
    assert roles["imbalanced"].skew_index[0] == pytest.approx(0.30)
    assert roles["imbalanced+cw"].probe_test[0] == pytest.approx(0.70)
    comp = summary.comparisons["accuracy:balanced-imbalanced"]
    assert comp.mean == pytest.approx(0.11) and comp.clear is True
    shift = summary.shap_neutral_shift["imbal_vs_bal"]
    assert shift["A"][0] == pytest.approx(0.021) and shift["B"][0] == pytest.approx(0.03)


def test_difference_verdict_uses_binomial_error_for_one_seed():
    se1 = ((0.75 * 0.25 + 0.73 * 0.27) / 720) ** 0.5
    mean, se, clear = difference_verdict([0.75], [0.73], se1)
    assert mean == pytest.approx(0.02) and se == pytest.approx(se1)
    assert clear is False  # 2 points on 720 examples is within 2 SE (~0.046)
    assert difference_verdict([0.80], [0.70], se1)[2] is True
    # several seeds: the SE is that of the paired differences
    mean, se, clear = difference_verdict([0.80, 0.82, 0.81], [0.70, 0.71, 0.69], 1.0)
    assert mean == pytest.approx(0.11) and se == pytest.approx(0.01 / 3**0.5) and clear


def test_report_markdown(demo_tree, tmp_path):
    path = write_report([demo_tree], tmp_path / "report")
    text = path.read_text()
    assert "**Does the imbalance hurt accuracy?** Yes: balanced − imbalanced accuracy (+0.110 ± 0.006 SE, 3 seeds)" in text
    assert "exceeds t·SE, t being Student's 95 % two-sided quantile with seeds − 1 degrees of freedom (a paired t " \
           "test: 4.30 SE at these 3 seeds)" in text  # the rule stands above the verdicts it made
    assert "**Are languages more identifiable in the imbalanced model (test set)?** Yes" in text
    assert "**Do per-language weights recover accuracy?** Yes" in text
    assert "Weights recover 55 % of the accuracy gap" in text
    assert "0.810 ± 0.010" in text and "0.700 ± 0.010" in text
    assert "| imbalanced | A (fr,es) | 10.0 | 15.0 | **35.0** | **40.0** |" in text
    assert "0.580" in text  # the paper's balanced accuracy for orientation
    # A's neutral shift is .020/.021/.022 (SE .00058, clear); B's .03 every seed (SE 0, clear)
    assert "(imbal_vs_bal)?** Yes, in every group (mean cumulative difference over 3 seeds; A: +0.0210 ± 0.0006 SE" in text
    assert (tmp_path / "report" / "accuracy_probe.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "report" / "report.json").read_text())["seeds"] == [0, 1, 2]


def test_shap_verdict_judges_each_group_by_its_seed_spread():
    from langtrainer.reporting.report.verdicts import _shap_verdict

    # The README demo's 3 seeds: B's +0.070 ± 0.026 SE is 2.7 SE, short of t(2 df) = 4.30
    line = _shap_verdict("imbal_vs_bal", {"A": (0.016, 0.039, 3), "B": (0.070, 0.045, 3)})
    assert "Not shown: within the noise in every group" in line and "A: +0.0160 ± 0.0225 SE" in line
    # The same means and spreads over 5 seeds: B 0.070 > 2.776 x 0.045 / sqrt(5) = 0.0559; A 0.016 < 0.0484
    line = _shap_verdict("imbal_vs_bal", {"A": (0.016, 0.039, 5), "B": (0.070, 0.045, 5)})
    assert "Only in group B; elsewhere within the noise" in line and "A: +0.0160 ± 0.0174 SE" in line
    line = _shap_verdict("x", {"A": (0.01, 0.039, 3), "B": (-0.02, 0.045, 3)})
    assert "Not shown: within the noise in every group" in line
    line = _shap_verdict("x", {"A": (0.01, float("nan"), 1), "B": (0.02, float("nan"), 1)})
    assert "positive (one seed, so no uncertainty attached" in line


def test_report_without_runs_is_a_user_error(tmp_path):
    from langtrainer.errors import UserError

    with pytest.raises(UserError, match="no finished runs"):
        write_report([tmp_path], tmp_path / "out")


def test_mie_runs_get_their_own_roles_and_base_value_table(demo_tree, tmp_path):
    import yaml

    for seed in range(3):
        for variant, accuracy, neutral in (("bal_mie", 0.80, None), ("imbal_mie", 0.70, None)):
            run = write_run(demo_tree, seed, variant, accuracy, 0.2, 0.8, [0.1, 0.2, 0.3, 0.4])
            (run / "recipe.yaml").write_text(yaml.safe_dump({"loss": {"mask_entropy": 1.0}}))
        write_diff(demo_tree, seed, "imbal_vs_bal_mie", 0.05, 0.04, runs=("bal_mie", "imbal_mie"))
    collected = collect([demo_tree])
    roles = {run.role for run in collected.runs}
    assert roles == {"balanced", "imbalanced", "imbalanced+cw", "balanced+mie", "imbalanced+mie"}
    summary = summarise(collected)
    assert summary.roles["imbalanced"].accuracy[0] == pytest.approx(0.70)  # mie runs not mixed in
    assert summary.shap_neutral_shift["imbal_vs_bal_mie"]["A"][0] == pytest.approx(0.05)
    # recognised from the two runs' recipes (loss.mask_entropy), whatever the comparison's name
    assert collected.entropy_comparisons == {"imbal_vs_bal_mie"}
    assert set(summary.shap_base_difference) == {"imbal_vs_bal", "imbal_vs_bal_mie"}
    report = write_report([demo_tree], tmp_path / "report").read_text()
    assert "imbalanced + entropy term" in report and "mean |base-value difference|" in report
    assert "| imbal_vs_bal_mie (entropy term) |" in report and "| imbal_vs_bal |" in report


def test_report_without_mie_has_no_base_value_table(demo_tree, tmp_path):
    report = write_report([demo_tree], tmp_path / "report").read_text()
    assert "base-value difference" not in report and "entropy term" not in report
