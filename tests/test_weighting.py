"""Per-language class weights (eq. 2) and the other schemes."""

import logging

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from langtrainer.errors import UserError
from langtrainer.training.weighting import cell_counts, class_weight_table, sample_weights

LANGS = ["de", "en", "fr"]


def skewed_sample(seed=0):
    """Labels whose distribution differs by language (every cell non-empty)."""
    rng = np.random.default_rng(seed)
    probs = {"de": [0.6, 0.3, 0.1], "en": [0.2, 0.2, 0.6], "fr": [1 / 3, 1 / 3, 1 / 3]}
    languages, labels = [], []
    for lang, p in probs.items():
        n = {"de": 200, "en": 150, "fr": 90}[lang]
        labels += rng.choice(3, size=n, p=p).tolist()
        languages += [lang] * n
    return np.array(labels), np.array(languages)


def test_inverse_equals_sklearn_balanced_per_language():
    labels, languages = skewed_sample()
    table = class_weight_table(labels, languages, 3, LANGS)
    for i, lang in enumerate(LANGS):
        mine = labels[languages == lang]
        expected = compute_class_weight("balanced", classes=np.arange(3), y=mine)
        np.testing.assert_allclose(table[i], expected, rtol=1e-12)


def test_eq2_worked_example():
    # de: labels 0,0,0,1 -> n_l = 4, C = 2: w_0 = 4 / (2 * 3) = 2/3, w_1 = 4 / (2 * 1) = 2
    # en: labels 1,1 + 0 -> w_0 = 3 / (2 * 1) = 1.5, w_1 = 3 / (2 * 2) = 0.75
    labels = [0, 0, 0, 1, 1, 1, 0]
    languages = ["de", "de", "de", "de", "en", "en", "en"]
    table = class_weight_table(labels, languages, 2, ["de", "en"])
    np.testing.assert_allclose(table, [[2 / 3, 2.0], [1.5, 0.75]])
    np.testing.assert_allclose(sample_weights(table, labels, languages, ["de", "en"]),
                               [2 / 3, 2 / 3, 2 / 3, 2.0, 0.75, 0.75, 1.5])
    # global: 4 zeros and 3 ones over 7 -> 7 / (2 * 4), 7 / (2 * 3), same row for every language
    glob = class_weight_table(labels, languages, 2, ["de", "en"], per_language=False)
    np.testing.assert_allclose(glob, [[7 / 8, 7 / 6], [7 / 8, 7 / 6]])


def test_global_equals_sklearn_on_pooled_labels():
    labels, languages = skewed_sample(1)
    glob = class_weight_table(labels, languages, 3, LANGS, per_language=False)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    for row in glob:
        np.testing.assert_allclose(row, expected, rtol=1e-12)


@pytest.mark.parametrize("scheme", ["inverse", "sqrt_inverse", "effective_number"])
def test_every_scheme_averages_one_over_a_languages_samples(scheme):
    labels, languages = skewed_sample(2)
    table = class_weight_table(labels, languages, 3, LANGS, scheme=scheme, beta=0.99)
    w = sample_weights(table, labels, languages, LANGS)
    for lang in LANGS:
        assert w[languages == lang].mean() == pytest.approx(1.0, rel=1e-12)


def test_sqrt_and_effective_number_values():
    # one language, counts 1 and 4
    labels, languages = [0, 1, 1, 1, 1], ["en"] * 5
    # sqrt: raw 1, 1/2; scale s with 1*s + 4*(s/2) = 5 -> s = 5/3
    sqrt = class_weight_table(labels, languages, 2, ["en"], scheme="sqrt_inverse")
    np.testing.assert_allclose(sqrt, [[5 / 3, 5 / 6]])
    # effective number, beta = 0.5: raw (1-.5)/(1-.5) = 1 and .5/(1-.0625) = 8/15
    # scale: 1*s + 4*(8/15)s = 5 -> s = 5 / (1 + 32/15) = 75/47
    eff = class_weight_table(labels, languages, 2, ["en"], scheme="effective_number", beta=0.5)
    np.testing.assert_allclose(eff, [[75 / 47, 75 / 47 * 8 / 15]])
    # beta -> 0 gives equal raw weights: no reweighting at all
    flat = class_weight_table(labels, languages, 2, ["en"], scheme="effective_number", beta=1e-9)
    np.testing.assert_allclose(flat, [[1.0, 1.0]], rtol=1e-6)


def test_empty_cell_gets_zero_and_is_logged(caplog):
    labels = [0, 0, 1, 0, 1, 2]
    languages = ["de", "de", "de", "en", "en", "en"]
    with caplog.at_level(logging.WARNING, logger="langtrainer.training.weighting"):
        table = class_weight_table(labels, languages, 3, ["de", "en"])
    assert table[0, 2] == 0.0
    np.testing.assert_allclose(table[0, :2], [3 / (3 * 2), 3 / (3 * 1)])
    assert "label 2" in caplog.text and "'de'" in caplog.text
    assert np.isfinite(table).all()


def test_cell_counts_and_errors():
    counts = cell_counts([0, 1, 1, 2], np.array(["fr", "fr", "en", "fr"]), 3, ["en", "fr"])
    assert counts.tolist() == [[0, 1, 0], [1, 1, 1]]
    with pytest.raises(UserError, match="'xx'"):
        cell_counts([0], ["xx"], 3, ["en", "fr"])
    with pytest.raises(UserError, match="0..2"):
        cell_counts([3], ["en"], 3, ["en", "fr"])
    with pytest.raises(UserError, match="unknown weight scheme"):
        class_weight_table([0], ["en"], 1, ["en"], scheme="focal")


def test_a_million_samples_equal_eq2_on_their_counts():
    import pandas as pd

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 1_000_000)
    names = ["de", "en", "es", "fr", "ja", "zh"]
    languages = np.array(names)[rng.integers(0, 6, 1_000_000)]
    table = class_weight_table(labels, languages, 5, names)
    counts = pd.crosstab(languages, labels).loc[names].to_numpy()
    expected = counts.sum(axis=1, keepdims=True) / (5 * counts)
    np.testing.assert_allclose(table, expected, rtol=1e-12)
