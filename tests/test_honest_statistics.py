"""Statistics that stay honest on natural splits: label shares, the language-prediction CMI with its
permutation test, Wilson and bootstrap intervals, favoured labels of as-is data (worked numbers)."""

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, mutual_info_score

from langtrainer.training.evaluation import favoured_labels_from_training
from langtrainer.training.intervals import bootstrap_macro_f1_interval, macro_f1_per_row_set, wilson_interval
from langtrainer.training.language_dependence import language_prediction_cmi, language_prediction_cmi_test
from langtrainer.training.metrics import metric_frame


def test_cmi_hand_computed():
    # label 0: language a always predicts 0, b always 1 -> I = log 2; label 1: prediction independent of
    # language -> 0; each label holds half the rows -> CMI = log(2) / 2
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    languages = ["a", "a", "b", "b", "a", "a", "b", "b"]
    predictions = [0, 0, 1, 1, 0, 1, 0, 1]
    assert language_prediction_cmi(predictions, labels, languages) == pytest.approx(math.log(2) / 2)
    # one label, language x prediction counts [[2, 1], [1, 2]]:
    # I = 2 * 2/6 * log((2/6) / (1/4)) + 2 * 1/6 * log((1/6) / (1/4)) = 2/3 log(4/3) + 1/3 log(2/3)
    value = language_prediction_cmi([0, 0, 1, 0, 1, 1], [5] * 6, ["a", "a", "a", "b", "b", "b"])
    assert value == pytest.approx(2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3))
    assert value == pytest.approx(0.0566330, abs=1e-6)


def test_cmi_is_zero_when_predictions_follow_only_the_label_mix():
    # a perfect classifier on languages with very different label mixes: prediction shares differ by
    # language (70/30 against 10/90), yet given the true label the language tells nothing
    labels = [0] * 7 + [1] * 3 + [0] * 1 + [1] * 9
    languages = ["en"] * 10 + ["ja"] * 10
    frame = metric_frame(labels, labels, languages, ["x", "y"])
    assert frame["by_language"]["en"]["prediction_shares"] == {"x": 0.7, "y": pytest.approx(0.3)}
    assert frame["by_language"]["ja"]["label_shares"] == frame["by_language"]["ja"]["prediction_shares"]
    assert frame["language_prediction_cmi"] == 0.0
    # the same holds for a classifier whose errors do not depend on the language within a label
    predictions = [0, 1] * 10
    rows = list(zip(labels, languages, predictions))
    swapped = [(y, "ja" if lang == "en" else "en", p) for y, lang, p in rows]  # languages relabelled
    assert language_prediction_cmi(*zip(*[(p, y, lang) for y, lang, p in rows])) == pytest.approx(
        language_prediction_cmi(*zip(*[(p, y, lang) for y, lang, p in swapped])))


def test_cmi_equals_sklearn_mutual_information_per_stratum():
    rng = np.random.default_rng(3)
    n = 600
    labels = rng.integers(0, 3, n)
    languages = rng.choice(["de", "en", "fr", "ja"], n)
    lang_code = np.searchsorted(["de", "en", "fr", "ja"], languages)
    predictions = np.where(rng.random(n) < 0.5, labels, (labels + lang_code) % 3)
    expected = sum((labels == y).mean() * mutual_info_score(languages[labels == y], predictions[labels == y])
                   for y in range(3))
    assert language_prediction_cmi(predictions, labels, languages) == pytest.approx(expected, rel=1e-12)


def test_permutation_p_value_separates_dependence_from_noise():
    rng = np.random.default_rng(0)
    n = 400
    labels = rng.integers(0, 2, n)
    languages = rng.choice(["en", "fr"], n)
    independent = np.where(rng.random(n) < 0.7, labels, 1 - labels)
    dependent = np.where(languages == "en", labels, 1 - labels)
    noise = language_prediction_cmi_test(independent, labels, languages, permutations=200, seed=1)
    signal = language_prediction_cmi_test(dependent, labels, languages, permutations=200, seed=1)
    assert noise["cmi"] > 0 and noise["p_value"] > 0.05  # the plug-in estimate's small-sample bias
    assert signal["p_value"] == pytest.approx(1 / 201) and signal["cmi"] == pytest.approx(math.log(2), abs=0.01)
    assert noise == language_prediction_cmi_test(independent, labels, languages, permutations=200, seed=1)
    assert noise["permutations"] == 200 and noise["seed"] == 1


def test_wilson_interval_worked_values():
    assert wilson_interval(8, 10) == pytest.approx((0.4901625, 0.9433178), abs=1e-6)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775328), abs=1e-6)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_bootstrap_macro_f1_matches_sklearn_and_is_seeded():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, 80)
    predictions = np.where(rng.random(80) < 0.6, labels, rng.integers(0, 4, 80))
    index = rng.integers(0, 80, (40, 80))
    fast = macro_f1_per_row_set(labels[index], predictions[index], 4)
    slow = [f1_score(labels[i], predictions[i], average="macro", labels=np.union1d(labels[i], predictions[i]),
                     zero_division=0) for i in index]
    assert fast == pytest.approx(slow, abs=1e-12)
    low, high = bootstrap_macro_f1_interval(labels, predictions, 4, seed=7)
    point = f1_score(labels, predictions, average="macro", zero_division=0)
    assert low < point < high and high - low > 0.1
    assert (low, high) == bootstrap_macro_f1_interval(labels, predictions, 4, seed=7)
    assert bootstrap_macro_f1_interval(labels, labels, 4) == (1.0, 1.0)


def test_metric_frame_with_uncertainty_adds_intervals_and_the_permutation_test():
    labels = [0, 1, 0, 1, 1, 0, 0, 0, 1, 1]
    predictions = [0, 1, 1, 1, 1, 0, 0, 1, 1, 0]
    languages = ["en"] * 5 + ["fr"] * 5
    frame = metric_frame(predictions, labels, languages, ["x", "y"], uncertainty_seed=0)
    en = frame["by_language"]["en"]
    assert en["accuracy"] == 0.8 and en["accuracy_ci"] == pytest.approx(list(wilson_interval(4, 5)))
    assert en["label_shares"] == {"x": 0.4, "y": 0.6} and en["prediction_shares"] == {"x": 0.2, "y": 0.8}
    assert en["macro_f1_ci"][0] <= en["macro_f1"] <= en["macro_f1_ci"][1]
    assert frame["language_prediction_cmi_permutations"] == 1000
    assert 0 < frame["language_prediction_cmi_p_value"] <= 1
    plain = metric_frame(predictions, labels, languages, ["x", "y"])
    assert "accuracy_ci" not in plain["by_language"]["en"] and "language_prediction_cmi_p_value" not in plain
    assert plain["language_prediction_cmi"] == frame["language_prediction_cmi"]


def test_favoured_labels_of_as_is_data():
    # the paper's design: en 10/20/30/40, de 40/30/20/10 of 100 rows each; overall uniform 25 %
    labels = np.concatenate([np.repeat([0, 1, 2, 3], [10, 20, 30, 40]), np.repeat([0, 1, 2, 3], [40, 30, 20, 10])])
    languages = ["en"] * 100 + ["de"] * 100
    assert favoured_labels_from_training(labels, languages, 4) == {"de": [0, 1], "en": [2, 3]}
    # uneven overall mix (57 / 31 / 2 of 90 rows): fr's 7/10 of label 0 is 1.11 times 57/90 and en's
    # 30/80 of label 1 is 1.09 times 31/90, neither favoured; fr's 2/10 of label 2 is 9 times 2/90;
    # label 3 is absent from training, nobody's
    labels = np.concatenate([np.repeat([0, 1, 2], [50, 30, 0]), np.repeat([0, 1, 2], [7, 1, 2])])
    languages = ["en"] * 80 + ["fr"] * 10
    assert favoured_labels_from_training(labels, languages, 4) == {"en": [], "fr": [2]}
