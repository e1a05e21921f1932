"""RUN/README.md: a Hub model card whose header parses and whose numbers are the run's."""

import json

import pytest

from langtrainer.errors import UserError
from langtrainer.reporting.model_card import read_card_metadata, write_model_card
from langtrainer.rundir import RunDir
from results_fixtures import LABELS3, LANGS3, write_tidy_run

ACC = {"de": 0.81, "pt": 0.64, "sw": 0.47}
SHARES = {"de": [0.5, 0.25, 0.25], "pt": [0.2, 0.6, 0.2], "sw": [0.1, 0.2, 0.7]}


@pytest.fixture
def run(tmp_path):
    return RunDir(write_tidy_run(tmp_path / "run", "mine_cw", "imbalanced", "per_language", 3, ACC, SHARES))


def test_card_header_parses_and_lists_per_language_accuracy(run):
    path = write_model_card(run)
    assert path == run.model_card_path and path.name == "README.md"
    meta = read_card_metadata(path)
    assert meta["language"] == LANGS3
    assert meta["library_name"] == "transformers"
    assert meta["base_model"] == "intfloat/multilingual-e5-small"  # the builtin's Hub original
    assert "datasets" not in meta  # a local file is no Hub dataset
    results = meta["model-index"][0]["results"][0]["metrics"]
    by_name = {m["name"]: m["value"] for m in results}
    assert by_name["test accuracy (de)"] == 0.81 and by_name["test accuracy (sw)"] == 0.47
    assert by_name["test accuracy"] == pytest.approx((0.81 + 0.64 + 0.47) / 3, abs=1e-4)

    text = path.read_text()
    # the per-language table: accuracy, macro-F1 and prediction shares (percent), then max − min
    assert "| language | n | accuracy | macro-F1 | predicted negative % | predicted neutral % | predicted positive % |" in text
    assert "| pt | 90 | 0.640 | 0.620 | 20.0 | 60.0 | 20.0 |" in text
    assert "| max − min |  | 0.340 | 0.340 | 40.0 | 40.0 | 50.0 |" in text
    # the group table bolds each group's favoured label
    assert "| south (pt) | 90 | 0.640 | 0.620 | 20.0 | **60.0** | 20.0 |" in text
    # the training setup says what a user of the model must know
    assert "| class weights | per_language (inverse, reduction mean) |" in text
    assert "| masked-input entropy term | coefficient 0.5 |" in text
    assert "| encoder learning rate | 3e-05 |" in text and "| head learning rate | 0.001 |" in text
    assert "| sw | 3.000 | 2.000 | 1.000 |" in text  # the class-weight table
    assert "Labels (id: name): 0: negative, 1: neutral, 2: positive." in text
    assert "Language identification probe" not in text and "SHAP difference" not in text


def test_card_adds_probe_and_shap_diff_when_present(run):
    (run.path / "probe_test.json").write_text(json.dumps(
        {"accuracy_mean": 0.734, "accuracy_std": 0.02, "settings": {"C": 0.0001, "folds": 5},
         "base": {"accuracy_mean": 0.512}}))
    by_group = {label: {g: {"neutral": {"mean": v, "std": 0.0, "n": 5}} for g, v in zip(("north", "south"), vals)}
                for label, vals in zip(LABELS3, ([0.0123, -0.002], [0.0, 0.004], [-0.01, 0.02]))}
    (run.shap_diff_path).write_text(json.dumps(
        {"comparison": "mine_cw − mine_bal", "threshold": 0.01, "by_group": by_group, "by_language": {}}))
    text = write_model_card(run).read_text()
    assert "| test | 0.734 ± 0.020 | – | 0.512 | 0.0001 | 5 |" in text  # no chance level recorded
    assert "shows no language the probe can use" not in text
    # 0.734 <= 0.70 + 2 x 0.02: the probe guesses the commonest language; the card says so
    (run.path / "probe_test.json").write_text(json.dumps(
        {"accuracy_mean": 0.734, "accuracy_std": 0.02, "settings": {"C": 0.0001, "folds": 5},
         "result": {"chance_accuracy": 0.70}, "base": {"accuracy_mean": 0.512}}))
    text = write_model_card(run).read_text()
    assert "| test | 0.734 ± 0.020 (at chance) | 0.700 | 0.512 | 0.0001 | 5 |" in text
    assert "at this C the model's first token shows no language the probe can use" in text
    assert "(mine_cw − mine_bal)" in text
    assert "| label | group north | group south |" in text and "| negative | 0.0123 | -0.0020 |" in text


def test_card_of_an_unfinished_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no finished run"):
        write_model_card(tmp_path)


def test_header_without_yaml_is_a_user_error(tmp_path):
    card = tmp_path / "README.md"
    card.write_text("# no header\n")
    with pytest.raises(UserError, match="no YAML header"):
        read_card_metadata(card)


def natural_split_run(tmp_path, data_name=None):
    """An as-is run whose test languages have their own label mix: en 6 x negative / 4 x positive,
    sw 1 / 2; a (de-less) model right on en, and predicting negative for every sw row."""
    import numpy as np

    from langtrainer.training.metrics import metric_frame

    labels = [0] * 6 + [2] * 4 + [0] + [2] * 2
    predictions = labels[:10] + [0, 0, 0]
    languages = ["en"] * 10 + ["sw"] * 3
    test = metric_frame(np.array(predictions), np.array(labels), languages, LABELS3, uncertainty_seed=0)
    path = write_tidy_run(tmp_path / "run", "mine", "none", "per_language", 0, ACC, SHARES, groups=None, skew=None,
                          recipe_extra={"data": {"source": "/home/me/secret/reviews.csv", "languages": ["en", "sw"],
                                                 "labels": LABELS3, **({"name": data_name} if data_name else {})},
                                        "imbalance": {"subset": "none"}})
    metrics = json.loads((path / "metrics.json").read_text())
    metrics.update(languages=["en", "sw"], test=test, favoured_labels={"en": [0], "sw": [2]},
                   favoured_labels_by="language", class_weights=[[0.8, 0.0, 1.4], [2.0, 0.0, 6.5]])
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "data").mkdir()
    (path / "data" / "distribution.json").write_text(json.dumps({"counts": {
        "train": {"en": {"negative": 60, "neutral": 0, "positive": 40}, "sw": {"negative": 20, "neutral": 0,
                                                                             "positive": 6}},
        "test": {"en": {"negative": 6, "neutral": 0, "positive": 4}, "sw": {"negative": 1, "neutral": 0,
                                                                           "positive": 2}}}}))
    return RunDir(path)


def test_card_on_a_natural_split_shows_true_shares_intervals_and_limitations(tmp_path):
    run = natural_split_run(tmp_path)
    text = write_model_card(run).read_text()
    assert "/home/me" not in text  # the dataset is named by its file, never by a local path
    assert "| data | reviews.csv |" in text and "name: reviews.csv" in text
    header = ("| language | n | accuracy [95 % CI] | macro-F1 [95 % CI] | negative % true / predicted | "
              "neutral % true / predicted | positive % true / predicted |")
    assert header in text
    # en: 10 of 10 right, Wilson (0.72, 1); true and predicted shares equal; favoured label bold
    assert "| en | 10 | 1.000 [0.72, 1.00] | 1.000 [1.00, 1.00] | 60.0 / **60.0** | 0.0 / 0.0 | 40.0 / 40.0 |" in text
    # sw: 1 of 3 right (Wilson 0.06-0.79); every row predicted negative
    assert "| sw | 3 | 0.333 [0.06, 0.79] |" in text and "33.3 / 100.0 | 0.0 / 0.0 | 66.7 / **0.0** |" in text
    # last row: spread of the true / of the predicted shares per label (negative: 60 vs 33.3 true,
    # 60 vs 100 predicted)
    assert "| max − min |  | 0.667 | " in text and "| 26.7 / 40.0 | 0.0 / 0.0 | 26.7 / 40.0 |" in text
    assert "only beyond what the true label mix explains" in text
    assert "I(language; prediction | true label) = " in text and "1000 permutations" in text
    limitations = text[text.index("## Limitations"):text.index("## How to use")]
    # en's interval (0.72-1) and sw's (0.06-0.79) overlap: no difference shown on 13 rows
    assert ("- Lowest accuracy: sw, 0.333 (95 % interval 0.06–0.79) on 3 test rows (its interval overlaps the best "
            "language's, so this test split does not show that accuracy differs by language)") in limitations
    assert "- Small samples" in limitations
    assert "  - sw: 3 test rows (fewer than 30)" in limitations
    assert "  - sw / positive: 6 training rows (fewer than 10)" in limitations
    assert "  - sw / positive: class weight 6.5 on 6 rows (above 5)" in limitations
    assert "## Intended use" in text and "texts like those of reviews.csv" in text


def test_card_uses_the_recipes_dataset_name(tmp_path):
    text = write_model_card(natural_split_run(tmp_path, data_name="Shop reviews 2024")).read_text()
    assert "| data | Shop reviews 2024 |" in text and "reviews.csv" not in text
