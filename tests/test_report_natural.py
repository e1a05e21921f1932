"""report on as-is runs: true label shares, CMI beside the skew index, languages as groups, small samples,
and the probe figure's C where the models separate."""

import json

from langtrainer.reporting.report import separating_c, write_report
from test_model_card import natural_split_run


def test_report_of_a_natural_split(tmp_path):
    run = natural_split_run(tmp_path / "none")
    text = write_report([run.path], tmp_path / "report").read_text()
    summary = json.loads((tmp_path / "report" / "report.json").read_text())
    assert "language–prediction CMI (nats)" in text
    cmi = summary["roles"]["as-is+cw+mie"]["language_prediction_cmi"][0]
    p = summary["roles"]["as-is+cw+mie"]["language_prediction_cmi_p_value"][0]
    assert f"| – | {cmi:.4f} (p {p:.2g}) |" in text
    # the languages stand in for the groups: Table 2's rows, bold from each language's training rows
    assert summary["favoured_labels_by"] == "language"
    assert "As-is data: each language is its own group" in text and "| sw (sw) | 33.3 / 100.0 | 0.0 / 0.0 | 66.7 / **0.0** |" in text
    assert "| en | 10 | 1.000 [0.72, 1.00] | 1.000 [1.00, 1.00] | 60.0 / **60.0** |" in text
    assert "### Small samples" in text and "- sw / positive: class weight 6.5 on 6 rows (above 5)" in text


def test_separating_c_is_where_the_models_differ_most():
    def probe(points):
        return {"data": "test", "c_sweep": [{"C": c, "accuracy_mean": a} for c, a in points]}

    sets = {
        "pretrained": [probe([(1e-4, 0.34), (1e-2, 0.60), (1.0, 0.99)])],
        "imbalanced": [probe([(1e-4, 0.34), (1e-2, 0.90), (1.0, 1.00)]),
                       probe([(1e-4, 0.34), (1e-2, 0.80), (1.0, 1.00)])],
    }
    # spreads: 0 at 1e-4 (chance for all), 0.25 at 1e-2, 0.01 at 1
    assert separating_c(sets) == 1e-2
    assert separating_c({"pretrained": [probe([(1e-4, 0.3)])]}) is None  # one model: nothing to separate


def test_as_is_runs_without_and_with_weights_get_verdicts(tmp_path):
    import math

    natural_split_run(tmp_path / "cw")  # the run with weights (and the entropy term)
    without = natural_split_run(tmp_path / "none")
    recipe = (without.path / "recipe.yaml").read_text().replace("class_weights: per_language", "class_weights: none")
    (without.path / "recipe.yaml").write_text(recipe.replace("mask_entropy: 0.5", "mask_entropy: 0.0"))
    metrics = json.loads(without.metrics_path.read_text())
    metrics.update(class_weights_mode="none", class_weights=None)
    metrics["test"]["accuracy"] = 0.5  # cw: 11 of 13 right (0.846)
    without.metrics_path.write_text(json.dumps(metrics))
    text = write_report([tmp_path], tmp_path / "report").read_text()
    line = next(line for line in text.splitlines() if "change accuracy on this data?" in line)
    # one seed: SE from the two binomial errors on 13 rows, sqrt(0.846*0.154/13 + 0.5*0.5/13) = 0.171;
    # +0.346 is beyond 2 SE
    se = math.sqrt(11 / 13 * 2 / 13 / 13 + 0.25 / 13)
    assert line == ("- **Does training with per-language weights + entropy term change accuracy on this data?** Yes: "
                    "higher accuracy (as-is + per-language weights + entropy term − as-is) "
                    f"({11 / 13 - 0.5:+.3f} ± {se:.3f} SE, 1 seed).")  # the fixture's weighted run has the term


def test_no_probe_verdict_rests_on_a_probe_at_chance(tmp_path):
    natural_split_run(tmp_path / "cw")
    without = natural_split_run(tmp_path / "none")
    recipe = (without.path / "recipe.yaml").read_text().replace("class_weights: per_language", "class_weights: none")
    (without.path / "recipe.yaml").write_text(recipe.replace("mask_entropy: 0.5", "mask_entropy: 0.0"))

    def probe(folder, mean, std):
        (folder / "probe_test.json").write_text(json.dumps(
            {"accuracy_mean": mean, "accuracy_std": std, "settings": {"C": 0.0001, "folds": 5},
             "result": {"chance_accuracy": 0.345}}))

    probe(without.path, 0.393, 0.03)  # 0.393 <= 0.345 + 2 * 0.03: at chance
    probe(tmp_path / "cw" / "run", 0.345, 0.0)
    text = write_report([tmp_path], tmp_path / "report").read_text()
    # both at chance: two floors, no verdict
    assert "less identifiable (test set)?" not in text
    assert "probe on test is at chance in 1 of 1 run(s) (0.345; always guessing the commonest language scores 0.345)" \
        in text
    # above chance against a run at chance: the weighted model's first token lost the language, a measured difference
    probe(without.path, 0.50, 0.03)
    text = write_report([tmp_path], tmp_path / "report2").read_text()
    assert "make languages less identifiable (test set)?** Yes" in text and "(-0.155 ± " in text
