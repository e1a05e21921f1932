"""Cumulative SHAP difference on hand-made values (paper Section 2.3)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from langtrainer.analysis.attribution import ShapResult
from langtrainer.errors import UserError
from langtrainer.analysis.shap_diff import compute_shap_diff, parse_group_options, token_split, write_shap_diff

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


def test_per_example_sums_by_hand(bal, imbal):
    result = compute_shap_diff(bal, imbal, threshold=0.01)
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
    result = compute_shap_diff(bal, imbal, threshold=0.01, groups={"A": ["fr"], "B": ["en", "de"]})
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
    result = compute_shap_diff(bal, imbal, threshold=0.01)
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
    result = compute_shap_diff(bal, imbal, threshold=0.01, groups={"A": ["fr"], "B": ["en", "de"]})
    paths = write_shap_diff(result, tmp_path)
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
