"""Shortages all at once: every short cell of every split in one error, the largest sizes that fit, `data plan`."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from langtrainer.cli.main import app
from langtrainer.data.counts import balanced_counts, imbalanced_counts
from langtrainer.data.design_plan import design_plan
from langtrainer.data.sampling import build_subsets
from langtrainer.errors import UserError
from test_sampling import TABLE_1B, make_pool, write_source

LANGS = ["en", "fr"]
NAMES = ["ent", "neu", "con"]


def pools_with(train: dict, validation: int = 12, test: int = 6):
    """Train cells as given ((lang, label) -> rows, default 40); uniform validation and test."""
    cells = lambda n: {(lang, c): n for lang in LANGS for c in range(3)}  # noqa: E731
    return {"train": make_pool({**cells(40), **train}, "tr"), "validation": make_pool(cells(validation), "va"),
            "test": make_pool(cells(test), "te")}


def brute_force_largest(available: np.ndarray, distribution) -> int:
    """Every n from 0 to the smallest language total, checked with the counts build_subsets draws."""
    best = 0
    for n in range(int(available.sum(axis=1).min()) + 1):
        need = np.maximum(balanced_counts(n, 2, 3), imbalanced_counts(n, LANGS, 3, distribution))
        if (need <= available).all():
            best = n
    return best


@pytest.mark.parametrize("train", [
    {("fr", 0): 10},
    {("fr", 0): 10, ("en", 2): 7},
    {("en", 1): 3, ("fr", 2): 25, ("fr", 0): 17},
    {("en", 0): 0},
    {},
])
def test_largest_feasible_equals_brute_force(train):
    pools = pools_with(train)
    plan = design_plan(pools, LANGS, NAMES, {"train_per_language": 30, "validation_per_language": 9,
                                             "test_per_cell": 4}, TABLE_1B)
    available = plan.available["train"]
    assert plan.largest["train_per_language"] == brute_force_largest(available, TABLE_1B)
    assert plan.largest["test_per_cell"] == 6
    # the largest size builds; one more does not
    largest = plan.largest["train_per_language"]
    build_subsets(pools, LANGS, 3, largest, 9, 4, TABLE_1B, None, seed=0, label_names=NAMES)
    with pytest.raises(UserError, match="not enough examples"):
        build_subsets(pools, LANGS, 3, largest + 1, 9, 4, TABLE_1B, None, seed=0, label_names=NAMES)


def test_one_error_lists_every_split():
    pools = pools_with({("fr", 0): 10, ("en", 2): 7}, validation=2, test=3)
    with pytest.raises(UserError) as err:
        build_subsets(pools, LANGS, 3, 30, 9, 4, TABLE_1B, None, seed=0, label_names=NAMES)
    # train: fr/ent at 50% of 30 needs 15 (10 there), en/con likewise (7 there); validation: 9 per language
    # needs 3 per balanced cell and 4 in the imbalanced 50% cells (imbalanced_counts(9): en [2, 3, 4]), 2 there;
    # test needs 4 of 3 everywhere. Largest: validation 5 (imbalanced_counts(6) needs 3 in a cell of 2).
    assert str(err.value) == (
        "not enough examples for the subset design in 14 cell(s): train en/con needs 15 has 7; "
        "train fr/ent needs 15 has 10; validation en/ent en/neu fr/neu fr/con need 3 have 2; "
        "validation en/con fr/ent need 4 have 2; test every cell needs 4 has 3; "
        "largest feasible: data.train_per_language=15 data.validation_per_language=5 data.test_per_cell=3; "
        "lower these sizes or add data")


def test_long_lists_are_capped():
    languages = [f"l{i}" for i in range(8)]
    cells = {(lang, c): 2 + (i * 3 + c) % 5 for i, lang in enumerate(languages) for c in range(3)}
    pools = {"train": make_pool(cells, "tr"), "validation": make_pool(cells, "va"), "test": make_pool(cells, "te")}
    with pytest.raises(UserError) as err:
        build_subsets(pools, languages, 3, 30, 30, 5, None, None, seed=0)
    message = str(err.value)
    named = sum(len(part.split(" need")[0].split()) - 1 for part in message.split(": ", 1)[1].split("; ")
                if " need" in part and "every cell" not in part)
    assert named == 12
    total = int(message.split(" cell(s)")[0].split()[-1])
    assert f"; and {total - 12} more cell(s);" in message


def test_data_plan_cli(tmp_path):
    recipe = write_source(tmp_path)  # 40 train / 12 validation / 6 test rows per cell
    result = CliRunner().invoke(app, ["data", "plan", str(recipe), "--set", "data.train_per_language=300",
                                      "--json", str(tmp_path / "plan.json")])
    # The design does not fit: exit 2, one error line first, then the table (and the JSON) as usual.
    assert result.exit_code == 2, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("error: not enough examples for the subset design in 6 cell(s)"), first
    assert "Traceback" not in result.output
    assert "6 short cell(s); largest feasible: data.train_per_language=81 (recipe 300), " \
           "data.validation_per_language=24 (recipe 9), data.test_per_cell=6 (recipe 4)" in " ".join(result.output.split())
    fits = CliRunner().invoke(app, ["data", "plan", str(recipe), "--set", "data.train_per_language=81"])
    assert fits.exit_code == 0, fits.output
    assert "every cell can be filled" in fits.output
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["available"]["train"]["fr"] == {"neg": 40, "neu": 40, "pos": 40}
    assert plan["needed"]["train"]["fr"] == {"neg": 150, "neu": 100, "pos": 100}
    assert plan["largest"] == {"train_per_language": 81, "validation_per_language": 24, "test_per_cell": 6}
    assert len(plan["shortages"]) == 6

    as_is = CliRunner().invoke(app, ["data", "plan", str(recipe), "--subset", "none", "--json", str(tmp_path / "a.json")])
    assert as_is.exit_code == 0, as_is.output
    assert "every row of every split is used" in as_is.output
    plan = json.loads((tmp_path / "a.json").read_text())
    assert plan["as_is"] and plan["needed"] == {} and plan["available"]["test"]["en"]["pos"] == 6
