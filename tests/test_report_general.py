"""report.md for a user's own data (3 labels, 3 languages, 3 groups): no paper text, the user's labels."""

import json
import re

import matplotlib

matplotlib.use("Agg")

import pytest

from langtrainer.reporting.report import collect, write_report
from results_fixtures import LABELS3, write_shap_folder, write_tidy_run

EVEN = {lang: [1 / 3, 1 / 3, 1 / 3] for lang in ("de", "pt", "sw")}
SKEWED = {"de": [0.5, 0.25, 0.25], "pt": [0.2, 0.6, 0.2], "sw": [0.1, 0.2, 0.7]}
# one label for half of every group: the skew index cannot see it
SHARED = {lang: [0.5, 0.25, 0.25] for lang in ("de", "pt", "sw")}


@pytest.fixture
def user_tree(tmp_path):
    root = tmp_path / "runs"
    write_tidy_run(root / "bal", "mine_bal", "balanced", "none", 0, {"de": .82, "pt": .80, "sw": .78}, EVEN, skew=0.01)
    write_tidy_run(root / "imbal", "mine_imbal", "imbalanced", "none", 0, {"de": .70, "pt": .66, "sw": .60}, SKEWED,
                   skew=0.35)
    write_tidy_run(root / "cw", "mine_cw", "imbalanced", "per_language", 0, {"de": .75, "pt": .72, "sw": .70},
                   SHARED, skew=0.006, recipe_extra={})
    # the test set's label mix, as data build writes it: 30 of each label in every language
    for run in ("bal", "imbal", "cw"):
        (root / run / "data").mkdir()
        counts = {lang: {name: 30 for name in LABELS3} for lang in ("de", "pt", "sw")}
        (root / run / "data" / "distribution.json").write_text(json.dumps({"counts": {"test": counts}}))
    return root


def test_user_report_speaks_of_the_users_labels_only(user_tree, tmp_path):
    collected = collect([user_tree])
    assert collected.paper is None
    text = write_report([user_tree], tmp_path / "report").read_text()
    for paper_text in ("paper", "mBERT", "Amazon", "Table 2", "Table 3", "Table 4", "stars", "25 %", "group A"):
        assert paper_text not in text, paper_text
    assert "Data: 3 labels (negative, neutral, positive), 3 languages (de, pt, sw)" in text
    assert "The test set is balanced (33 % of each of the 3 labels in every language)" in text
    assert "for each of the 3 language groups" in text  # the skew index for three groups
    assert "| model | group | negative % | neutral % | positive % |" in text
    assert "| imbalanced | south (pt) | 20.0 | **60.0** | 20.0 |" in text
    # per-language table per setup, MetricFrame shape with the max − min row
    assert "### imbalanced\n\n| language | n | accuracy | macro-F1 |" in text
    assert "| sw | 90 | 0.600 | 0.580 | 10.0 | 20.0 | 70.0 |" in text
    assert "| max − min |  | 0.100 | 0.100 | 40.0 | 40.0 | 50.0 |" in text
    # the setup's own name (mask_entropy 0.5 in the fixture) and the shared-bias warning beside the skew verdict
    verdict = next(line for line in text.splitlines() if "remove the prediction skew?" in line)
    assert verdict.startswith("- **Does training with per-language weights + entropy term remove the prediction skew?** Yes")
    assert ("'negative' takes at least 50 % of every group's predictions in the imbalanced + per-language "
            "weights + entropy term model") in verdict
    # the imbalanced model's skew is language-driven (no label takes 50 % of every group): no such note
    baseline = next(line for line in text.splitlines() if "follow each language's training skew?" in line)
    assert "every group shares" not in baseline
    # one seed: no error bars, the axis from 0
    assert "± std" not in text.split("## Task accuracy")[1].split("##")[0]


def test_paper_columns_for_a_paper_analogue_recipe(user_tree, tmp_path):
    for run in ("bal", "imbal", "cw"):
        recipe = user_tree / run / "recipe.yaml"
        recipe.write_text(recipe.read_text() + "paper_analogue: xnli\n")
    text = write_report([user_tree], tmp_path / "report").read_text()
    assert "paper (mBERT, XNLI)" in text and "| balanced | 0.800 | 0.780 | 0.010 | – | 0.810 |"  # no CMI in these runs in text
    assert "FR 32.8 / 39.0 / 28.1" in text


def test_accuracy_figure_starts_at_zero_without_one_seed_error_bars():
    from langtrainer.reporting.plots import plot_accuracy, plot_probe

    ax = plot_accuracy({"balanced": [0.815], "imbalanced": [1.0]})
    assert ax.get_ylim()[0] == 0.0
    assert [round(p.get_height(), 3) for p in ax.patches] == [0.815, 1.0]
    assert not ax.containers[1:]  # the bars only: no error-bar container for one seed
    assert ax.get_legend() is None  # nothing to explain
    ax = plot_accuracy({"balanced": [0.8, 0.82], "imbalanced": [0.7]}, reference={"balanced": 0.58},
                       reference_label="paper")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["paper", "± std over seeds"]
    errorbars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(errorbars) == 1 and len(errorbars[0].lines[2][0].get_segments()) == 1  # balanced only

    ax = plot_probe({"balanced": {"test set": [0.6], "external corpus": [None]},
                     "imbalanced": {"test set": [0.9], "external corpus": [None]}})
    # no external numbers: no series, so no legend entry without bars
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["test set"]
    assert ax.get_ylim()[0] == 0.0
    import matplotlib.pyplot as plt

    plt.close("all")


def test_report_refreshes_model_cards_and_links_token_views(user_tree, tmp_path):
    from langtrainer.reporting.model_card import read_card_metadata

    # the two compared runs have SHAP results and a shap-diff written into the compared run
    examples = [{"id": "x1", "language": "de", "label": 0, "text": "gut", "tokens": ["<s>", "gut", "</s>"],
                 "values": [[0, 0, 0], [0.2, -0.1, -0.1], [0, 0, 0]], "base_values": [0.3, 0.3, 0.4]}]
    write_shap_folder(user_tree / "bal" / "shap", examples, LABELS3)
    changed = [dict(examples[0], values=[[0, 0, 0], [0.005, 0.1, -0.105], [0, 0, 0]])]
    write_shap_folder(user_tree / "imbal" / "shap", changed, LABELS3)
    (user_tree / "imbal" / "config.json").write_text("{}")  # a model is there: its card is refreshed
    diff = {"comparison": "mine_imbal − mine_bal", "threshold": 0.01,
            "balanced": str(user_tree / "bal" / "shap"), "imbalanced": str(user_tree / "imbal" / "shap"),
            "by_language": {"negative": {"de": {"neutral": {"mean": 0.0123, "std": 0, "n": 1}}}}, "by_group": {}}
    (user_tree / "imbal" / "shap_diff.json").write_text(json.dumps(diff))
    text = write_report([user_tree], tmp_path / "report").read_text()
    link = re.search(r"\[mine_imbal − mine_bal, seed 0\]\((token_view_diff_imbal_seed0\.html)\)", text)
    assert link and (tmp_path / "report" / link.group(1)).is_file()
    # and one view per run with SHAP results
    assert "[mine_bal (balanced), seed 0](token_view_run_bal_seed0.html)" in text
    assert "[mine_imbal (imbalanced), seed 0](token_view_run_imbal_seed0.html)" in text
    card = user_tree / "imbal" / "README.md"
    assert read_card_metadata(card)["language"] == ["de", "pt", "sw"]
    assert "| negative | 0.0123 |" in card.read_text()
    assert not (user_tree / "bal" / "README.md").exists()  # no model there (hand-made folder)


def test_a_probe_at_chance_is_called_so(user_tree, tmp_path):
    """Within 2 std of always guessing the commonest language: the report says the probe is at chance."""
    def probe(mean, std, chance):
        return {"accuracy_mean": mean, "accuracy_std": std, "settings": {"C": 1e-4, "folds": 5},
                "feature": "first-token", "result": {"chance_accuracy": chance}}

    (user_tree / "imbal" / "probe_test.json").write_text(json.dumps(probe(0.30, 0.02, 0.292)))  # 0.30 <= 0.332
    (user_tree / "bal" / "probe_test.json").write_text(json.dumps(probe(0.45, 0.02, 0.292)))   # 0.45 > 0.332
    text = write_report([user_tree], tmp_path / "report").read_text()
    assert ("The imbalanced probe on test is at chance in 1 of 1 run(s) (0.300; always guessing the commonest "
            "language scores 0.292)") in text
    assert "The balanced probe" not in text
    # one model above chance, one at it: a measured difference, so the verdict stands beside the note
    assert "a difference to a model above chance is measured" in text
    assert "`langtrainer probe --c-sweep` shows accuracy over C" in text  # no sweep in these probes
