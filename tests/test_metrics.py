"""Per-language metrics and the skew index on hand-made predictions."""

import pytest

from langtrainer.training.metrics import (classification_metrics, flat_metrics, metric_frame, prediction_distribution,
                                         skew_index)

LABELS = ["a", "b", "c", "d"]


def test_classification_metrics_by_language_and_group():
    predictions = [0, 0, 1, 3, 2, 2, 3, 3]
    labels = [0, 1, 1, 3, 2, 3, 3, 0]
    languages = ["en", "en", "en", "en", "fr", "fr", "fr", "fr"]
    m = classification_metrics(predictions, labels, languages, LABELS, groups={"G": ["fr"]})
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["accuracy_en"] == pytest.approx(3 / 4) and m["accuracy_fr"] == pytest.approx(2 / 4)
    assert [m[f"pred_en_{x}"] for x in LABELS] == [0.5, 0.25, 0.0, 0.25]
    assert [m[f"pred_G_{x}"] for x in LABELS] == [0.0, 0.0, 0.5, 0.5]
    # macro-F1 by hand: a: P=1/2 R=1/2; b: 1, 1/2; c: 1/2, 1; d: 2/3, 2/3
    f1 = [0.5, 2 / 3, 2 / 3, 2 / 3]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 4)


def test_metric_frame_is_tidy_per_language_and_group():
    predictions = [0, 0, 1, 3, 2, 2, 3, 3]
    labels = [0, 1, 1, 3, 2, 3, 3, 0]
    languages = ["en", "en", "en", "en", "fr", "fr", "fr", "fr"]
    frame = metric_frame(predictions, labels, languages, LABELS, groups={"G": ["fr"], "empty": ["ja"]})
    assert frame["n"] == 8 and frame["accuracy"] == pytest.approx(5 / 8)
    assert set(frame["by_language"]) == {"en", "fr"} and set(frame["by_group"]) == {"G"}
    en, fr = frame["by_language"]["en"], frame["by_language"]["fr"]
    assert (en["n"], en["accuracy"], fr["accuracy"]) == (4, 0.75, 0.5)
    assert en["prediction_shares"] == {"a": 0.5, "b": 0.25, "c": 0.0, "d": 0.25}
    assert frame["prediction_shares"] == {"a": 0.25, "b": 0.125, "c": 0.25, "d": 0.375}
    # fr: c predicted twice (right once), d twice (right once): F1 c = 2/3, d = 1/2 (P 1/2, R 1/2), a = 0;
    # b is neither in fr's rows nor predicted for them, so it is not in fr's average
    assert fr["macro_f1"] == pytest.approx((0 + 2 / 3 + 0.5) / 3)
    assert frame["difference"]["accuracy"] == pytest.approx(0.25)
    assert frame["difference"]["macro_f1"] == pytest.approx(abs(en["macro_f1"] - fr["macro_f1"]))
    flat = flat_metrics(frame)
    assert flat["macro_f1_fr"] == pytest.approx(fr["macro_f1"]) and flat["pred_G_c"] == 0.5
    assert "accuracy_empty" not in flat


def test_prediction_distribution():
    assert prediction_distribution([3, 3, 1], 4) == pytest.approx([0, 1 / 3, 0, 2 / 3])
    assert prediction_distribution([], 2) == [0.0, 0.0]


def test_skew_index():
    groups = {"A": ["fr"], "B": ["en"]}
    favoured = {"A": [2, 3], "B": [0, 1]}
    languages = ["fr"] * 4 + ["en"] * 4
    # fr predicts its favoured labels 3/4 of the time, en 4/4: 0.75 + 1.0 - 1
    assert skew_index([2, 3, 3, 0, 0, 1, 1, 0], languages, groups, favoured) == pytest.approx(0.75)
    # the same distribution in both groups (shared bias) gives 0
    assert skew_index([0, 1, 2, 3, 0, 1, 2, 3], languages, groups, favoured) == pytest.approx(0.0)
    # predictions that run against the training skew give a negative index
    assert skew_index([0, 0, 1, 1, 2, 2, 3, 3], languages, groups, favoured) == pytest.approx(-1.0)


def test_skew_index_with_three_groups():
    # three groups, one language each, each favouring its own label of three
    groups = {"n": ["de"], "s": ["pt"], "e": ["sw"]}
    favoured = {"n": [0], "s": [1], "e": [2]}
    languages = ["de"] * 4 + ["pt"] * 4 + ["sw"] * 4
    # every group predicts its favoured label only: own share 1, others' 0
    assert skew_index([0] * 4 + [1] * 4 + [2] * 4, languages, groups, favoured) == pytest.approx(1.0)
    # one label for everything (the same in every group): no language-driven skew
    assert skew_index([1] * 12, languages, groups, favoured) == pytest.approx(0.0)
    # de: 3/4 its favoured label; pt, sw: a quarter in their own
    preds = [0, 0, 0, 2] + [1, 2, 2, 2] + [2, 1, 1, 1]
    # n: 0.75 - mean(0, 0); s: 0.25 - mean(0, 0.75); e: 0.25 - mean(0.25, 0.75)
    assert skew_index(preds, languages, groups, favoured) == pytest.approx((0.75 - 0.125 - 0.25) / 3)
