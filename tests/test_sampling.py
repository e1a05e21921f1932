"""The subset sampler: counts, Table 1, nesting/overlap, determinism, errors, `data build`."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from langtrainer.data.counts import balanced_counts, imbalanced_counts
from langtrainer.data.sampling import build_subsets
from langtrainer.errors import UserError

SIX = ["de", "en", "es", "fr", "ja", "zh"]
TABLE_1A = {"A": [6.6, 13.3, 20.0, 26.7, 33.3], "B": [33.3, 26.7, 20.0, 13.3, 6.6]}
GROUPS_1A = {"A": ["fr", "es", "ja"], "B": ["de", "en", "zh"]}
TABLE_1B = {"fr": [50, 33.33, 16.67], "en": [16.67, 33.33, 50]}


def make_pool(cell_sizes: dict, prefix: str) -> pd.DataFrame:
    """A pool with exactly cell_sizes[(language, label)] rows per cell."""
    rows = []
    for (lang, label), size in cell_sizes.items():
        for i in range(size):
            rows.append({"id": f"{prefix}-{lang}-{label}-{i}", "text": f"{lang} text {label} {i}",
                         "label": label, "language": lang})
    return pd.DataFrame(rows)


def uniform_pools(languages, n_labels, train, validation, test):
    cells = lambda n: {(lang, c): n for lang in languages for c in range(n_labels)}  # noqa: E731
    return {"train": make_pool(cells(train), "tr"), "validation": make_pool(cells(validation), "va"),
            "test": make_pool(cells(test), "te")}


def cell_table(dataset, languages, n_labels) -> np.ndarray:
    """Counts per (language, label) measured on the built dataset itself."""
    frame = dataset.to_pandas()
    table = np.zeros((len(languages), n_labels), dtype=int)
    for lang, label in zip(frame["language"], frame["label"]):
        table[languages.index(lang), label] += 1
    return table


# ------------------------------------------------------------------ counts

def test_balanced_counts_spreads_remainder_over_labels():
    counts = balanced_counts(7, 6, 5)
    assert counts.sum(axis=1).tolist() == [7] * 6
    assert sorted(counts.sum(axis=0).tolist()) == [8, 8, 8, 9, 9]  # 42 over 5 labels
    assert counts.min() == 1 and counts.max() == 2
    assert balanced_counts(240, 6, 4).tolist() == [[60] * 4] * 6


def test_table_1a_counts_exact_marginals():
    counts = imbalanced_counts(240, SIX, 5, TABLE_1A, GROUPS_1A)
    low_first = [16, 32, 48, 64, 80]
    for i, lang in enumerate(SIX):
        assert counts[i].tolist() == (low_first if lang in GROUPS_1A["A"] else low_first[::-1]), lang
    assert counts.sum(axis=0).tolist() == [288] * 5
    # Large n: the printed rows sum to 99.9% and its label columns to 119.7/120/120/120/119.7 over six
    # languages; fitting it to uniform label marginals scales 6.6 and 33.3 by 40/39.9 (by symmetry),
    # i.e. targets 661.65/1330/2000/2670/3338.35 per 10,000, each count within one of them.
    big = imbalanced_counts(10_000, SIX, 5, TABLE_1A, GROUPS_1A)
    assert big.sum(axis=1).tolist() == [10_000] * 6
    assert big.sum(axis=0).tolist() == [12_000] * 5
    assert big[SIX.index("fr")].tolist() == [662, 1330, 2000, 2670, 3338]
    assert big[SIX.index("en")].tolist() == [3338, 2670, 2000, 1330, 662]


def test_table_1b_counts():
    counts = imbalanced_counts(1000, ["fr", "en"], 3, TABLE_1B)
    assert counts.tolist() == [[500, 333, 167], [167, 333, 500]]
    assert counts.sum(axis=0).tolist() == [667, 666, 667]
    assert imbalanced_counts(600, ["fr", "en"], 3, TABLE_1B).tolist() == [[300, 200, 100], [100, 200, 300]]


def test_rounding_with_awkward_sizes_stays_within_one():
    for n in (7, 13, 101, 333):
        counts = imbalanced_counts(n, SIX, 5, TABLE_1A, GROUPS_1A)
        assert counts.sum(axis=1).tolist() == [n] * 6
        col = counts.sum(axis=0)
        assert col.max() - col.min() <= 1, (n, col)
        shares = np.array([TABLE_1A["B" if lang in GROUPS_1A["B"] else "A"] for lang in SIX]) / 99.9
        assert np.abs(counts - shares * n).max() <= 1.0 + 0.002 * n, n


def test_non_uniform_columns_name_the_label():
    # column means: 20%, 35%, 45% against 33.33%: 'neg' is furthest off
    with pytest.raises(UserError, match=r"label 'neg' \(column 1\) averages 20.00%"):
        imbalanced_counts(90, ["fr", "en"], 3, {"fr": [10, 40, 50], "en": [30, 30, 40]},
                          label_names=["neg", "neu", "pos"])


def test_exact_ties_round_up_the_larger_target():
    # 2 x (75, 25)% = 1.5, 0.5: both remainders are .5; the larger target wins, so the skew is kept
    counts = imbalanced_counts(2, ["fr", "en"], 2, {"fr": [75, 25], "en": [25, 75]})
    assert counts.tolist() == [[2, 0], [0, 2]]


@pytest.mark.parametrize(
    "distribution, groups, words",
    [
        ({"A": [10, 20, 30, 41], "B": [40, 30, 20, 10]}, {"A": ["fr"], "B": ["en"]}, ["A", "sums to 101"]),
        ({"A": [10, 20, 70], "B": [40, 30, 20, 10]}, {"A": ["fr"], "B": ["en"]}, ["A", "3 entries", "4"]),
        ({"A": [10, 20, 30, 40], "B": [10, 20, 30, 40]}, {"A": ["fr"], "B": ["en"]}, ["label 0 (column 1)", "10.00%", "25.00%"]),
        ({"A": [10, 20, 30, 40]}, {"A": ["fr"], "B": ["en"]}, ["no row", "'en'"]),
        ({"fr": [25] * 4, "xx": [25] * 4, "en": [25] * 4}, None, ["'xx'"]),
    ],
)
def test_distribution_errors_name_the_row(distribution, groups, words):
    with pytest.raises(UserError) as err:
        imbalanced_counts(100, ["fr", "en"], 4, distribution, groups)
    for word in words:
        assert word in str(err.value)


# ------------------------------------------------------------------ build_subsets

def test_crafted_pool_every_cell_and_marginal():
    languages, n_labels = ["en", "fr"], 3
    pools = uniform_pools(languages, n_labels, train=40, validation=12, test=6)
    subsets, report = build_subsets(pools, languages, n_labels, 30, 9, 4, TABLE_1B, None, seed=3,
                                    label_names=["ent", "neu", "con"])
    assert list(subsets) == ["train_balanced", "train_imbalanced", "validation_balanced",
                             "validation_imbalanced", "test"]
    expected = {
        "train_balanced": [[10, 10, 10], [10, 10, 10]],
        "train_imbalanced": [[5, 10, 15], [15, 10, 5]],  # en is 16.67/33.33/50
        "validation_balanced": [[3, 3, 3], [3, 3, 3]],
        # 9 x (50, 33.33, 16.67)% = 4.4997, 2.9997, 1.5003 (fitted to uniform columns: 4.4997, 3.0, 1.5003)
        "validation_imbalanced": [[2, 3, 4], [4, 3, 2]],
        "test": [[4, 4, 4], [4, 4, 4]],
    }
    for split, table in expected.items():
        measured = cell_table(subsets[split], languages, n_labels)
        assert measured.tolist() == table, split
        assert report["counts"][split]["en"] == dict(zip(["ent", "neu", "con"], table[0]))
    # marginals: languages and labels uniform in both training subsets
    for split in ("train_balanced", "train_imbalanced"):
        table = cell_table(subsets[split], languages, n_labels)
        assert table.sum(axis=1).tolist() == [30, 30] and table.sum(axis=0).tolist() == [20, 20, 20]
    # overlap = sum of min per cell = (5+10+10) * 2 / 60
    assert report["overlap"]["train"] == pytest.approx(50 / 60)
    assert report["overlap"]["validation"] == pytest.approx(16 / 18)
    assert report["available"]["train"]["fr"]["con"] == 40
    assert subsets["train_balanced"].features["label"].names == ["ent", "neu", "con"]
    assert len(set(subsets["train_imbalanced"]["id"])) == 60


def test_nesting_smaller_cell_is_subset_of_larger():
    languages = ["en", "fr"]
    pools = uniform_pools(languages, 3, train=40, validation=12, test=6)
    subsets, _ = build_subsets(pools, languages, 3, 30, 9, 4, TABLE_1B, None, seed=11)
    bal, imb = subsets["train_balanced"].to_pandas(), subsets["train_imbalanced"].to_pandas()
    for lang in languages:
        for label in range(3):
            a = set(bal[(bal.language == lang) & (bal.label == label)]["id"])
            b = set(imb[(imb.language == lang) & (imb.label == label)]["id"])
            assert a <= b or b <= a, (lang, label)


def test_overlap_is_maximal_against_brute_force():
    """Enumerate every possible pair of subsets with the required cell counts; none shares more."""
    languages = ["en", "fr"]
    pools = uniform_pools(languages, 2, train=4, validation=2, test=1)
    distribution = {"en": [25, 75], "fr": [75, 25]}
    subsets, report = build_subsets(pools, languages, 2, 4, 2, 1, distribution, None, seed=0)
    bal_ids = set(subsets["train_balanced"]["id"])
    imb_ids = set(subsets["train_imbalanced"]["id"])
    ours = len(bal_ids & imb_ids)
    best = 0
    # per cell: balanced takes 2 of 4, imbalanced takes 1 or 3 of 4; cells are independent
    for lang in languages:
        for label in range(2):
            need_imb = 1 if (lang == "en") == (label == 0) else 3
            members = range(4)
            best += max(len(set(a) & set(b)) for a in itertools.combinations(members, 2)
                        for b in itertools.combinations(members, need_imb))
    assert ours == best == 6
    assert report["overlap"]["train"] == pytest.approx(best / len(bal_ids))


def test_table_1a_on_synthetic_pool_and_row_mixing():
    rng = np.random.default_rng(0)
    n = 12_000
    pool = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "text": "x",
                         "label": rng.integers(0, 5, n), "language": rng.choice(SIX, n)})
    pools = {"train": pool, "validation": pool.assign(id=pool.id + "v"), "test": pool.assign(id=pool.id + "t")}
    subsets, report = build_subsets(pools, SIX, 5, 240, 60, 10, TABLE_1A, GROUPS_1A, seed=0)
    imb = cell_table(subsets["train_imbalanced"], SIX, 5)
    assert imb[SIX.index("fr")].tolist() == [16, 32, 48, 64, 80]
    assert imb[SIX.index("zh")].tolist() == [80, 64, 48, 32, 16]
    assert imb.sum(axis=0).tolist() == [288] * 5
    val = cell_table(subsets["validation_imbalanced"], SIX, 5)
    assert val[SIX.index("ja")].tolist() == [4, 8, 12, 16, 20] and val.sum(axis=0).tolist() == [72] * 5
    assert cell_table(subsets["test"], SIX, 5).tolist() == [[10] * 5] * 6
    # overlap: per language 16+32+48+48+48 = 192 of 240
    assert report["overlap"]["train"] == pytest.approx(192 / 240)
    # rows are shuffled, not grouped by language
    first = subsets["train_balanced"]["language"][:30]
    assert len(set(first)) >= 4


def test_same_seed_same_subsets_other_seed_differs():
    languages = ["en", "fr"]
    pools = uniform_pools(languages, 3, train=40, validation=12, test=6)
    first, _ = build_subsets(pools, languages, 3, 30, 9, 4, TABLE_1B, None, seed=5)
    again, _ = build_subsets(pools, languages, 3, 30, 9, 4, TABLE_1B, None, seed=5)
    other, _ = build_subsets(pools, languages, 3, 30, 9, 4, TABLE_1B, None, seed=6)
    for split in first:
        assert first[split]["id"] == again[split]["id"], split
    assert first["train_imbalanced"]["id"] != other["train_imbalanced"]["id"]
    assert set(first["train_imbalanced"]["id"]) != set(other["train_imbalanced"]["id"])


def test_too_few_examples_names_split_language_label_counts():
    languages = ["en", "fr"]
    pools = uniform_pools(languages, 3, train=40, validation=12, test=6)
    pools["train"] = pools["train"][~((pools["train"].language == "fr")
                                      & (pools["train"].label == 0)
                                      & (pools["train"].index % 4 != 0))]  # fr/0 keeps 10 rows
    with pytest.raises(UserError) as err:
        build_subsets(pools, languages, 3, 30, 9, 4, TABLE_1B, None, seed=0, label_names=["ent", "neu", "con"])
    # 30 per language at fr's 50% needs 15 fr/ent rows; 21 is the largest size whose fr/ent cell is 10
    # (imbalanced_counts(21) gives fr [10, 7, 4], imbalanced_counts(22) fr [11, 7, 4])
    assert str(err.value) == ("not enough examples for the subset design in 1 cell(s): train fr/ent needs 15 has 10; "
                              "largest feasible: data.train_per_language=21; lower these sizes or add data")


# ------------------------------------------------------------------ recipe adapter and CLI

RECIPE = """
name: sampling_test
seed: 4
data:
  source: {source}
  languages: [en, fr]
  labels: [neg, neu, pos]
  train_per_language: 30
  validation_per_language: 9
  test_per_cell: 4
imbalance:
  groups: {{A: [fr], B: [en]}}
  distribution:
    A: [50, 33.33, 16.67]
    B: [16.67, 33.33, 50]
"""


def write_source(tmp_path):
    rows = []
    for split, per_cell in (("train", 40), ("validation", 12), ("test", 6)):
        for lang in ("en", "fr"):
            for label in ("neg", "neu", "pos"):
                for i in range(per_cell):
                    rows.append({"id": f"{split}-{lang}-{label}-{i}", "text": f"{lang} {label} {i}",
                                 "label": label, "language": lang, "split": split})
        rows.append({"id": f"{split}-blank", "text": "   ", "label": "neg", "language": "en", "split": split})
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(source=path), encoding="utf-8")
    return recipe


def test_build_from_recipe_reads_recipe_fields(tmp_path):
    from langtrainer.data.sampling import build_from_recipe
    from langtrainer.recipe import load_recipe

    recipe = load_recipe(write_source(tmp_path))
    subsets, report = build_from_recipe(recipe)
    assert report["labels"] == ["neg", "neu", "pos"]
    assert report["counts"]["train_imbalanced"]["fr"] == {"neg": 15, "neu": 10, "pos": 5}
    assert report["counts"]["train_imbalanced"]["en"] == {"neg": 5, "neu": 10, "pos": 15}
    assert report["dropped_rows"]["empty_text"] == {"train": 1, "validation": 1, "test": 1}
    assert report["seed"] == 4
    json.dumps(report)  # JSON-ready
    assert cell_table(subsets["train_imbalanced"], ["en", "fr"], 3).tolist() == [[5, 10, 15], [15, 10, 5]]


def test_cli_data_build_writes_dataset_and_distribution(tmp_path):
    import datasets
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    recipe = write_source(tmp_path)
    out = tmp_path / "subsets"
    result = CliRunner().invoke(app, ["data", "build", str(recipe), "--out", str(out), "--quiet",
                                      "--set", "data.train_per_language=24"])
    assert result.exit_code == 0, result.output
    loaded = datasets.load_from_disk(str(out))
    assert len(loaded["train_balanced"]) == 48 and len(loaded["test"]) == 24
    dist = json.loads((out / "distribution.json").read_text())
    assert dist["counts"]["train_imbalanced"]["fr"] == {"neg": 12, "neu": 8, "pos": 4}
    assert dist["overlap"]["train"] == pytest.approx(40 / 48)
    assert dist["dropped_rows"]["empty_text"]["train"] == 1

    bad = CliRunner().invoke(app, ["data", "build", str(recipe), "--out", str(out), "--quiet",
                                   "--set", "data.train_per_language=300"])
    assert bad.exit_code == 2
    # 300 per language: balanced cells need 100, the 50% cells of the imbalanced subset 150; 40 rows each
    assert bad.output.strip() == (
        "error: not enough examples for the subset design in 6 cell(s): train en/neg en/neu fr/neu fr/pos need 100 "
        "have 40; train en/pos fr/neg need 150 have 40; largest feasible: data.train_per_language=81; "
        "lower these sizes or add data")
