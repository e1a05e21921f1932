"""Cumulative SHAP difference on hand-made values (paper Section 2.3)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from langtrainer.analysis.shap import ShapResult
from langtrainer.errors import UserError
from langtrainer.analysis.shap_diff import compute_shap_diff, parse_group_options, token_split
from langtrainer.pipelines.shap import write_shap_diff_outputs

BAL = {
    "e1": ("en", [[0.05, -0.02], [0.005, 0.0], [-0.03, 0.2]], [0.5, 0.5]),
    "e2": ("en", [[0.01, 0.011], [-0.01, -0.5]], [0.4, 0.6]),  # +-0.01 exactly: neutral
    "e3": ("fr", [[0.3, -0.3]], [0.5, 0.5]),
    "e4": ("de", [[-0.2, 0.002]], [0.5, 0.5]),
}
IMBAL = {
    "e1": [[0.01, -0.01], [0.02, 0.0], [-0.01, 0.1]],
    "e2": [[0.03, 0.0], [0.0, -0.4]],
    "e3": [[0.1, -0.1]],
    "e4": [[-0.1, 0.05]],
}
IMBAL_BASE = {"e1": [0.6, 0.4], "e2": [0.4, 0.6], "e3": [0.7, 0.3], "e4": [0.5, 0.5]}


def _result(values: dict, base: dict, token_ids: dict | None = None) -> ShapResult:
    rows = []
    for example_id, (language, _, _) in BAL.items():
        v = np.asarray(values[example_id], dtype=np.float32)
        rows.append(
            {
                "id": example_id,
                "language": language,
                "label": 0,
                "token_ids": np.asarray((token_ids or {}).get(example_id, range(len(v))), dtype=np.int64),
                "values": v,
                "base_values": np.asarray(base[example_id], dtype=np.float32),
            }
        )
    return ShapResult(examples=pd.DataFrame(rows), label_names=["neg", "pos"])


@pytest.fixture()
def bal():
    return _result({k: v[1] for k, v in BAL.items()}, {k: v[2] for k, v in BAL.items()})


@pytest.fixture()
def imbal():
    return _result(IMBAL, IMBAL_BASE)


def _cell(table, class_, key, value, category):
    row = table[(table["class"] == class_) & (table[key] == value) & (table["category"] == category)]
    assert len(row) == 1
    return float(row["mean"].iloc[0])


# The numbers of the tests below are the zero-filled mean with every token counted: the
# project's averaging before the released code's masked mean became the default.
OLD = dict(averaging="zero", special_tokens=True)


def test_per_example_sums_by_hand(bal, imbal):
    result = compute_shap_diff(bal, imbal, threshold=0.01, **OLD)
    ex = result.per_example.set_index(["id", "class", "category"])["difference"]
    # e1, class 0: pos {t0}: 0.01-0.05, neutral {t1}: 0.02-0.005, neg {t2}: -0.01+0.03
    assert ex[("e1", 0, "positive")] == pytest.approx(-0.04, abs=1e-7)
    assert ex[("e1", 0, "neutral")] == pytest.approx(0.015, abs=1e-7)
    assert ex[("e1", 0, "negative")] == pytest.approx(0.02, abs=1e-7)
    # e1, class 1: neg {t0}: -0.01+0.02, neutral {t1}: 0, pos {t2}: 0.1-0.2
    assert ex[("e1", 1, "negative")] == pytest.approx(0.01, abs=1e-7)
    assert ex[("e1", 1, "neutral")] == pytest.approx(0.0, abs=1e-7)
    assert ex[("e1", 1, "positive")] == pytest.approx(-0.1, abs=1e-7)
    # e2, class 0: both tokens at exactly +-0.01 are neutral: 0.02 + 0.01; empty sets sum to 0
    assert ex[("e2", 0, "neutral")] == pytest.approx(0.03, abs=1e-7)
    assert ex[("e2", 0, "positive")] == 0.0 and ex[("e2", 0, "negative")] == 0.0
    # e2, class 1: pos {t0}: -0.011, neg {t1}: 0.1
    assert ex[("e2", 1, "positive")] == pytest.approx(-0.011, abs=1e-7)
    assert ex[("e2", 1, "negative")] == pytest.approx(0.1, abs=1e-6)
    # base-value differences
    assert ex[("e1", 0, "base")] == pytest.approx(0.1, abs=1e-7)
    assert ex[("e1", 1, "base")] == pytest.approx(-0.1, abs=1e-7)
    counts = result.per_example.set_index(["id", "class", "category"])["n_tokens"]
    assert counts[("e2", 0, "neutral")] == 2 and counts[("e1", 1, "positive")] == 1


def test_language_and_group_means(bal, imbal):
    result = compute_shap_diff(bal, imbal, threshold=0.01, groups={"A": ["fr"], "B": ["en", "de"]}, **OLD)
    by_lang = result.by_language
    assert _cell(by_lang, 0, "language", "en", "positive") == pytest.approx((-0.04 + 0.0) / 2, abs=1e-7)
    assert _cell(by_lang, 0, "language", "en", "neutral") == pytest.approx((0.015 + 0.03) / 2, abs=1e-7)
    assert _cell(by_lang, 0, "language", "en", "negative") == pytest.approx((0.02 + 0.0) / 2, abs=1e-7)
    assert _cell(by_lang, 0, "language", "en", "base") == pytest.approx((0.1 + 0.0) / 2, abs=1e-7)
    assert _cell(by_lang, 0, "language", "fr", "positive") == pytest.approx(-0.2, abs=1e-7)
    assert _cell(by_lang, 1, "language", "de", "neutral") == pytest.approx(0.048, abs=1e-7)
    by_group = result.by_group
    # group B = en (e1, e2) + de (e4): class 0 negative: (0.02 + 0 + 0.1) / 3
    assert _cell(by_group, 0, "group", "B", "negative") == pytest.approx(0.12 / 3, abs=1e-7)
    assert _cell(by_group, 0, "group", "A", "base") == pytest.approx(0.2, abs=1e-7)
    assert int(by_group[(by_group["group"] == "B") & (by_group["class"] == 0)]["n"].iloc[0]) == 3


def test_token_split_by_hand(bal, imbal):
    result = compute_shap_diff(bal, imbal, threshold=0.01, **OLD)
    # balanced values: 14 entries; < -0.01: -0.02, -0.03, -0.5, -0.3, -0.2 (5);
    # > 0.01: 0.05, 0.2, 0.011, 0.3 (4); the other 5 are neutral
    assert result.token_split[0.01] == pytest.approx({"negative": 5 / 14, "neutral": 5 / 14, "positive": 4 / 14})
    assert set(result.token_split) == {0.001, 0.01, 0.05}
    assert token_split([np.array([[0.0, 0.04]])], 0.05) == {"negative": 0.0, "neutral": 1.0, "positive": 0.0}


def test_mismatched_examples_are_user_errors(bal):
    other_tokens = _result(IMBAL, IMBAL_BASE, token_ids={"e2": [7, 8]})
    with pytest.raises(UserError, match="'e2'"):
        compute_shap_diff(bal, other_tokens)
    missing = _result(IMBAL, IMBAL_BASE)
    missing.examples = missing.examples[missing.examples["id"] != "e3"]
    with pytest.raises(UserError, match="'e3'"):
        compute_shap_diff(bal, missing)
    with pytest.raises(UserError, match="'e3'"):
        compute_shap_diff(missing, bal)


def test_outputs_written(bal, imbal, tmp_path):
    result = compute_shap_diff(bal, imbal, threshold=0.01, groups={"A": ["fr"], "B": ["en", "de"]}, **OLD)
    paths = write_shap_diff_outputs(result, tmp_path)
    table = pd.read_csv(paths["csv"])
    assert len(table) == 2 * 3 * 4  # classes x languages x (3 categories + base)
    report = json.loads(paths["json"].read_text())
    assert report["by_group"]["neg"]["B"]["negative"]["mean"] == pytest.approx(0.04, abs=1e-7)
    assert report["token_split"]["0.01"]["neutral"] == pytest.approx(5 / 14)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_group_options():
    assert parse_group_options(["A=fr,es, ja", "B=de"]) == {"A": ["fr", "es", "ja"], "B": ["de"]}
    assert parse_group_options([]) is None
    with pytest.raises(UserError):
        parse_group_options(["A"])
    with pytest.raises(UserError, match="'fr'"):
        compute_shap_diff(
            _result({k: v[1] for k, v in BAL.items()}, {k: v[2] for k, v in BAL.items()}),
            _result(IMBAL, IMBAL_BASE),
            groups={"A": ["fr"], "B": ["fr"]},
        )


# --------------------------------------------------------------------------- averaging and special tokens
# Two English examples, 2 classes, [CLS] ... [SEP] marked special (always kept by the masker).
SPECIAL_BAL = {
    "x1": [[0.0, 0.0], [0.05, -0.05], [0.002, 0.02], [0.0, 0.0]],
    "x2": [[0.0, 0.0], [0.004, -0.3], [0.0, 0.0]],
}
SPECIAL_IMBAL = {
    "x1": [[0.0, 0.0], [0.03, -0.01], [0.012, 0.05], [0.0, 0.0]],
    "x2": [[0.0, 0.0], [0.024, -0.2], [0.0, 0.0]],
}


def _special_result(values: dict) -> ShapResult:
    rows = []
    for example_id, v in values.items():
        v = np.asarray(v, dtype=np.float32)
        special = np.zeros(len(v), dtype=bool)
        special[[0, -1]] = True
        rows.append({"id": example_id, "language": "en", "label": 0, "token_ids": np.arange(len(v)),
                     "special": special, "values": v, "base_values": np.asarray([0.5, 0.5], np.float32)})
    return ShapResult(examples=pd.DataFrame(rows), label_names=["neg", "pos"])


def _mean_n(result, class_, category):
    table = result.by_language
    row = table[(table["class"] == class_) & (table["category"] == category)]
    return float(row["mean"].iloc[0]), int(row["n"].iloc[0])


def test_masked_and_zero_averaging_by_hand():
    bal, imbal = _special_result(SPECIAL_BAL), _special_result(SPECIAL_IMBAL)
    # [CLS]/[SEP] left out (--no-special-tokens), so that empty categories occur
    masked = compute_shap_diff(bal, imbal, threshold=0.01, special_tokens=False)
    zero = compute_shap_diff(bal, imbal, threshold=0.01, averaging="zero", special_tokens=False)
    # class 0: x1 pos {a}: 0.03-0.05 = -0.02, neutral {b}: 0.01, no neg; x2: neutral {c}: 0.02 only
    assert _mean_n(masked, 0, "positive") == (pytest.approx(-0.02, abs=1e-7), 1)
    assert _mean_n(zero, 0, "positive") == (pytest.approx(-0.01, abs=1e-7), 2)
    assert _mean_n(masked, 0, "neutral") == (pytest.approx(0.015, abs=1e-7), 2)
    assert _mean_n(zero, 0, "neutral") == (pytest.approx(0.015, abs=1e-7), 2)
    mean, n = _mean_n(masked, 0, "negative")
    assert np.isnan(mean) and n == 0
    assert _mean_n(zero, 0, "negative") == (0.0, 2)
    # class 1: x1 neg {a}: 0.04, pos {b}: 0.03; x2 neg {c}: 0.1; no real neutral token anywhere
    assert _mean_n(masked, 1, "negative") == (pytest.approx(0.07, abs=1e-7), 2)
    assert _mean_n(masked, 1, "positive") == (pytest.approx(0.03, abs=1e-7), 1)
    assert _mean_n(zero, 1, "positive") == (pytest.approx(0.015, abs=1e-7), 2)
    assert _mean_n(masked, 1, "neutral")[1] == 0
    # counting [CLS]/[SEP] (bal value 0: neutral; the default) makes every neutral set non-empty, as in the
    # released code
    with_special = compute_shap_diff(bal, imbal, threshold=0.01)
    assert _mean_n(with_special, 1, "neutral") == (0.0, 2)
    counts = with_special.per_example.set_index(["id", "class", "category"])["n_tokens"]
    assert counts[("x1", 0, "neutral")] == 3 and counts[("x1", 1, "neutral")] == 2


def test_special_tokens_left_out_of_the_token_split():
    bal, imbal = _special_result(SPECIAL_BAL), _special_result(SPECIAL_IMBAL)
    # --no-special-tokens: 6 real (token, class) values: neg -0.05, -0.3; pos 0.05, 0.02; neutral 0.002, 0.004
    assert compute_shap_diff(bal, imbal, special_tokens=False).token_split[0.01] == pytest.approx(
        {"negative": 1 / 3, "neutral": 1 / 3, "positive": 1 / 3})
    # the default, with the 8 special-token zeros: 14 values, 10 neutral
    assert compute_shap_diff(bal, imbal).token_split[0.01] == pytest.approx(
        {"negative": 2 / 14, "neutral": 10 / 14, "positive": 2 / 14})


def test_masked_mean_equals_the_released_code(bal, imbal):
    """scripts/plot_cumulative_diff_shap.py: np.ma masked sums per example and class, then np.nanmean."""
    threshold = 0.01
    result = compute_shap_diff(bal, imbal, threshold=threshold, special_tokens=True)
    for language in ("en", "fr", "de"):
        ids = [k for k, v in BAL.items() if v[0] == language]
        for c in range(2):
            sums = {"positive": [], "neutral": [], "negative": []}
            for k in ids:
                mask = np.asarray(BAL[k][1], dtype=np.float32)
                diff = np.asarray(IMBAL[k], dtype=np.float32) - mask
                for category, keep in (("positive", mask > threshold), ("neutral", np.abs(mask) <= threshold),
                                       ("negative", mask < -threshold)):
                    total = np.ma.masked_array(diff, mask=~keep).sum(axis=0)[c]
                    sums[category].append(np.nan if total is np.ma.masked else float(total))
            for category, values in sums.items():
                expected = np.nanmean(values) if not np.all(np.isnan(values)) else np.nan
                got = _cell_or_nan(result.by_language, c, language, category)
                assert (np.isnan(expected) and np.isnan(got)) or got == pytest.approx(expected, abs=1e-7)


def _cell_or_nan(table, class_, language, category):
    row = table[(table["class"] == class_) & (table["language"] == language) & (table["category"] == category)]
    return float(row["mean"].iloc[0])


def test_bad_threshold_and_unknown_group_languages_are_refused(bal, imbal):
    for bad in (float("nan"), float("inf"), -0.1):
        with pytest.raises(UserError, match="threshold"):
            compute_shap_diff(bal, imbal, threshold=bad)
    with pytest.raises(UserError, match="'xx'|xx"):
        compute_shap_diff(bal, imbal, groups={"A": ["fr", "xx"]})
    with pytest.raises(UserError, match="averaging"):
        compute_shap_diff(bal, imbal, averaging="mean")


def test_json_report_says_what_the_columns_are(bal, imbal, tmp_path):
    result = compute_shap_diff(bal, imbal, threshold=0.01)
    report = json.loads(write_shap_diff_outputs(result, tmp_path)["json"].read_text())
    assert report["averaging"] == "masked" and "not labels" in report["categories_note"]
    # en class 0 positive: e1 only (e2 has no positive token): n = 1
    assert report["by_language"]["neg"]["en"]["positive"] == {"mean": pytest.approx(-0.04, abs=1e-7), "std": 0.0, "n": 1}


def test_figure_labels_each_bar_with_its_n(bal, imbal):
    from langtrainer.reporting.plots import new_axes, plot_shap_diff

    result = compute_shap_diff(bal, imbal, threshold=0.01)
    ax = plot_shap_diff(result, ax=new_axes(), label=0)
    labels = [t.get_text() for t in ax.texts]
    table = result.by_language[result.by_language["class"] == 0]
    expected = sorted(str(int(n)) for n in table["n"] if n > 0)  # no bar where no example has a token
    assert expected and sorted(x for x in labels if x) == expected


def released_figure_1(bal_values: dict, imbal_values: dict, languages: dict, threshold: float) -> dict:
    """scripts/plot_cumulative_diff_shap.py on plain arrays: per example, np.ma sums of S_imbal - S_bal over the
    tokens split by S_bal (every token, [CLS]/[SEP] included), a masked sum becoming None; then np.nanmean per
    (language, class, category). Returns {(language, class, category): mean}."""
    rows = []
    for k, mask in bal_values.items():
        # the stored values are float32; shap's Explanation holds float64: the same numbers
        mask = np.asarray(mask, dtype=np.float32).astype(np.float64)
        diff = np.asarray(imbal_values[k], dtype=np.float32).astype(np.float64) - mask
        sums = {"positive": np.ma.masked_array(diff, mask=~(mask > threshold)).sum(axis=0),
                "neutral": np.ma.masked_array(diff, mask=~(np.abs(mask) <= threshold)).sum(axis=0),
                "negative": np.ma.masked_array(diff, mask=~(mask < -threshold)).sum(axis=0)}
        for category, values in sums.items():
            for c in range(mask.shape[1]):
                value = values[c]
                rows.append((languages[k], c, category,
                             None if isinstance(value, np.ma.core.MaskedConstant) else float(value)))
    out = {}
    for key in {r[:3] for r in rows}:
        values = np.array([np.nan if r[3] is None else r[3] for r in rows if r[:3] == key], dtype=float)
        out[key] = np.nan if np.isnan(values).all() else float(np.nanmean(values))
    return out


# [CLS] and [SEP] get small non-zero values, as shap's explainer gives them (up to ~1e-4).
FIG1_BAL = {
    "y1": [[8e-5, -2e-5], [0.05, -0.05], [0.002, 0.02], [-1e-4, 3e-5]],
    "y2": [[1e-5, 0.0], [0.004, -0.3], [0.03, 0.0], [2e-5, -6e-5]],
    "y3": [[0.0, 4e-5], [-0.2, 0.2], [5e-5, 1e-5]],
}
FIG1_IMBAL = {
    "y1": [[1e-4, -1e-4], [0.03, -0.01], [0.012, 0.05], [-3e-5, 9e-5]],
    "y2": [[-2e-5, 5e-5], [0.024, -0.2], [0.01, 0.02], [0.0, 1e-4]],
    "y3": [[3e-5, 0.0], [-0.1, 0.15], [-4e-5, 2e-5]],
}
FIG1_LANGUAGES = {"y1": "en", "y2": "en", "y3": "fr"}


def test_figure_1_default_is_the_released_formula_with_special_tokens():
    def result(values):
        rows = []
        for k, v in values.items():
            v = np.asarray(v, dtype=np.float32)
            special = np.zeros(len(v), dtype=bool)
            special[[0, -1]] = True
            rows.append({"id": k, "language": FIG1_LANGUAGES[k], "label": 0, "token_ids": np.arange(len(v)),
                         "special": special, "values": v, "base_values": np.asarray([0.5, 0.5], np.float32)})
        return ShapResult(examples=pd.DataFrame(rows), label_names=["neg", "pos"])

    default = compute_shap_diff(result(FIG1_BAL), result(FIG1_IMBAL))
    assert default.special_tokens is True and default.averaging == "masked"
    expected = released_figure_1(FIG1_BAL, FIG1_IMBAL, FIG1_LANGUAGES, 0.01)
    table = default.by_language[default.by_language["category"] != "base"]
    assert len(table) == len(expected) == 2 * 2 * 3
    for _, row in table.iterrows():
        want = expected[(row["language"], int(row["class"]), row["category"])]
        assert (np.isnan(want) and np.isnan(row["mean"])) or row["mean"] == want, (dict(row), want)
    # Leaving [CLS]/[SEP] out (the documented deviation) changes cells: the neutral sums lose their values.
    left_out = compute_shap_diff(result(FIG1_BAL), result(FIG1_IMBAL), special_tokens=False)
    merged = table.merge(left_out.by_language, on=["class", "language", "category"], suffixes=("", "_out"))
    differ = ~np.isclose(merged["mean"], merged["mean_out"], rtol=0, atol=1e-9, equal_nan=True)
    assert differ.sum() >= 4
