"""Skew audit: numbers against scipy/sklearn, verdicts, `data audit` CLI."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from scipy.stats.contingency import association
from sklearn.metrics import normalized_mutual_info_score

from langtrainer.data.audit import audit
from langtrainer.data.sampling import build_subsets
from langtrainer.errors import UserError

SIX = ["de", "en", "es", "fr", "ja", "zh"]
TABLE_1A = {"A": [6.6, 13.3, 20.0, 26.7, 33.3], "B": [33.3, 26.7, 20.0, 13.3, 6.6]}
GROUPS_1A = {"A": ["fr", "es", "ja"], "B": ["de", "en", "zh"]}


def frame_from_table(table, languages, label_values):
    rows = [(lang, label) for i, lang in enumerate(languages) for j, label in enumerate(label_values)
            for _ in range(table[i][j])]
    return pd.DataFrame(rows, columns=["language", "label"])


WORKED = [[30, 10, 5], [10, 25, 15], [12, 12, 20]]


def test_worked_example_matches_scipy_and_sklearn():
    df = frame_from_table(WORKED, ["de", "en", "fr"], [0, 1, 2])
    result = audit(df, label_names=["a", "b", "c"])
    assert result.counts.tolist() == WORKED
    np.testing.assert_allclose(result.row_percent[0], [100 * 30 / 45, 100 * 10 / 45, 100 * 5 / 45])
    chi2, p, dof, _ = chi2_contingency(np.array(WORKED), correction=False)
    assert result.chi2 == pytest.approx(chi2) and result.p_value == pytest.approx(p) and result.dof == dof == 4
    assert result.cramers_v == pytest.approx(association(np.array(WORKED), method="cramer"))
    assert result.nmi == pytest.approx(normalized_mutual_info_score(df["language"], df["label"]))
    # eq. 2 for 'de': 45 / (3 * [30, 10, 5])
    np.testing.assert_allclose(result.weights[0], [45 / 90, 45 / 30, 45 / 15])
    # hand check of chi2: expected counts from the margins
    table = np.array(WORKED, dtype=float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    assert result.chi2 == pytest.approx(((table - expected) ** 2 / expected).sum())
    assert result.cramers_v == pytest.approx(np.sqrt(result.chi2 / (table.sum() * 2)))


def test_string_labels_and_two_by_two_without_yates():
    df = frame_from_table([[40, 10], [10, 40]], ["en", "fr"], ["neg", "pos"])
    result = audit(df)
    assert result.label_names == ["neg", "pos"]
    # 2x2: phi = (40*40 - 10*10) / sqrt(50^4) = 0.6, chi2 = n * phi^2 = 36
    assert result.cramers_v == pytest.approx(0.6)
    assert result.chi2 == pytest.approx(36.0)
    assert result.strength == "strong"
    json.dumps(result.to_dict())
    assert result.to_dict()["counts"]["fr"] == {"neg": 10, "pos": 40}


def test_paper_tables_give_known_cramers_v():
    # Table 1a at 240 per language: V = 0.237 (hand: chi2/N = 6 * 30/36 * sum((q - 1/5)^2)), strong
    table = [[80, 64, 48, 32, 16] if lang in GROUPS_1A["B"] else [16, 32, 48, 64, 80] for lang in SIX]
    result = audit(frame_from_table(table, SIX, range(5)))
    q = np.array([16, 32, 48, 64, 80]) / 240
    assert result.cramers_v == pytest.approx(np.sqrt(6 * (1 / 6) * ((q - 0.2) ** 2 / 0.2).sum() / 4))
    assert result.cramers_v == pytest.approx(0.2357, abs=1e-4)
    assert result.strength == "strong"
    # Table 1b: V = sqrt(1/6) = 0.408
    result = audit(frame_from_table([[300, 200, 100], [100, 200, 300]], ["fr", "en"], range(3)))
    assert result.cramers_v == pytest.approx(np.sqrt(1 / 6))


def test_imbalanced_subset_strong_balanced_none():
    rng = np.random.default_rng(0)
    n = 12_000
    pool = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "text": "x",
                         "label": rng.integers(0, 5, n), "language": rng.choice(SIX, n)})
    pools = {"train": pool, "validation": pool, "test": pool}
    subsets, _ = build_subsets(pools, SIX, 5, 240, 60, 10, TABLE_1A, GROUPS_1A, seed=0)
    skewed = audit(subsets["train_imbalanced"])
    balanced = audit(subsets["train_balanced"])
    q = np.array([16, 32, 48, 64, 80]) / 240
    assert skewed.chi2 == pytest.approx(1440 * ((q - 0.2) ** 2 / 0.2).sum())  # = 320 on 20 dof
    assert skewed.strength == "strong" and skewed.p_value < 1e-50
    assert "strong" in skewed.verdict and "`compare` measures" in skewed.verdict
    assert balanced.strength == "none" and balanced.p_value == pytest.approx(1.0)
    assert balanced.cramers_v == pytest.approx(0.0, abs=1e-12) and balanced.nmi == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(balanced.weights, 1.0)


def test_random_labels_are_not_flagged():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"language": rng.choice(SIX, 3000), "label": rng.integers(0, 4, 3000)})
    result = audit(df)
    assert result.p_value > 0.05 and result.strength == "none"


def test_audit_errors():
    with pytest.raises(UserError, match="'label'.*columns present: language, text"):
        audit(pd.DataFrame({"language": ["en"], "text": ["x"]}))
    with pytest.raises(UserError, match="empty"):
        audit(pd.DataFrame({"language": [], "label": []}))
    single = audit(pd.DataFrame({"language": ["en"] * 4, "label": [0, 1, 0, 1]}))
    assert single.strength == "none" and single.p_value == 1.0


def test_cli_audit_saved_dataset_and_file(tmp_path):
    import datasets
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    df = frame_from_table([[40, 10], [10, 40]], ["en", "fr"], [0, 1])
    ds = datasets.Dataset.from_pandas(df).cast_column("label", datasets.ClassLabel(names=["neg", "pos"]))
    datasets.DatasetDict({"train_imbalanced": ds, "test": ds}).save_to_disk(str(tmp_path / "saved"))
    out = tmp_path / "audit.json"
    result = CliRunner().invoke(app, ["data", "audit", str(tmp_path / "saved"), "--split", "train_imbalanced",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "strong" in result.output and "neg" in result.output
    report = json.loads(out.read_text())
    assert list(report) == ["train_imbalanced"]
    assert report["train_imbalanced"]["cramers_v"] == pytest.approx(0.6)

    csv = tmp_path / "data.csv"
    df.assign(text="t", split="train").to_csv(csv, index=False)
    result = CliRunner().invoke(app, ["data", "audit", str(csv)])
    assert result.exit_code == 0, result.output
    assert "0.600" in result.output

    missing = CliRunner().invoke(app, ["data", "audit", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad_split = CliRunner().invoke(app, ["data", "audit", str(tmp_path / "saved"), "--split", "dev"])
    assert bad_split.exit_code == 2 and "no split 'dev'" in bad_split.output
