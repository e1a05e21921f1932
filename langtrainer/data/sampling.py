"""Balanced and imbalanced subsets with maximal overlap (paper Section 2.1, Table 1).

Both training subsets have the same size and uniform language and label
marginals; the balanced one has a uniform joint distribution, the imbalanced
one follows the recipe's percentage table (Table 1). Validation follows the
same two designs; the test set is balanced per (language, label) cell.

Nesting gives the maximal overlap: every (pool, language, label) cell is
ranked once by its own seeded permutation, and every subset takes a prefix of
that ranking. The smaller of the balanced/imbalanced cell is therefore a
subset of the larger, so the overlap is the sum over cells of
min(n_balanced, n_imbalanced), the largest any two samples with those counts
can share.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from langtrainer.data.counts import counts_dict
from langtrainer.data.design_plan import SIZE_FIELDS, DesignPlan, SubsetDesign, design_plan
from langtrainer.errors import UserError

log = logging.getLogger(__name__)

SUBSET_SPLITS = ("train_balanced", "train_imbalanced", "validation_balanced", "validation_imbalanced", "test")


# ------------------------------------------------------------------ sampling

def _cell_ranks(pool: pd.DataFrame, languages: Sequence[str], n_labels: int, seed: int, pool_name: str):
    """(cell index per row or -1, rank of the row in its cell's seeded permutation, counts [L, C]).

    One permutation per (pool, language, label) cell, seeded from the seed,
    the pool name, the language code and the label id, so a cell's order does
    not depend on the other cells.
    """
    n_rows = len(pool)
    codes, uniques = pd.factorize(pool["language"])  # hashing once beats Categorical on Arrow strings
    position = {lang: i for i, lang in enumerate(languages)}
    lookup = np.array([position.get(str(u), -1) for u in uniques] + [-1], dtype=np.int64)
    lang_idx = lookup[codes]  # code -1 (missing) hits the trailing -1
    label = pool["label"].to_numpy(dtype=np.int64)
    valid = (lang_idx >= 0) & (label >= 0) & (label < n_labels)
    cell = np.where(valid, lang_idx * n_labels + label, -1)
    n_cells = len(languages) * n_labels
    counts = np.bincount(cell[valid], minlength=n_cells)
    order = np.argsort(np.where(valid, cell, n_cells), kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    rank = np.full(n_rows, np.iinfo(np.int64).max, dtype=np.int64)
    pool_key = zlib.crc32(pool_name.encode())
    for k in range(n_cells):
        members = order[starts[k]:starts[k + 1]]
        if len(members) == 0:
            continue
        lang = languages[k // n_labels]
        rng = np.random.default_rng([seed % 2**32, pool_key, zlib.crc32(lang.encode()), k % n_labels])
        rank[members] = rng.permutation(len(members))
    return cell, rank, counts.reshape(len(languages), n_labels)


def _check_available(pool_name: str, needed: np.ndarray, available: np.ndarray,
                     languages: Sequence[str], label_names: Sequence[str]) -> None:
    short = np.argwhere(needed > available)
    if len(short) == 0:
        return
    gap = (needed - available)[tuple(short.T)]
    lang, label = short[int(np.argmax(gap))]
    more = f" (and {len(short) - 1} more cells)" if len(short) > 1 else ""
    raise UserError(
        f"not enough examples in the {pool_name} split for language '{languages[lang]}', "
        f"label '{label_names[label]}': needed {int(needed[lang, label])}, "
        f"available {int(available[lang, label])}{more}; lower the per-language counts or add data"
    )


def select_nested(
    pool: pd.DataFrame,
    languages: Sequence[str],
    n_labels: int,
    subsets: Mapping[str, np.ndarray],
    seed: int,
    pool_name: str,
    label_names: Sequence[str] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Row positions in `pool` for each subset ([L, C] counts each), plus the available counts.

    Every subset takes, in each cell, a prefix of that cell's one seeded
    permutation, so subsets of the same pool are nested cell by cell. The
    positions of each subset come back in a seeded shuffled order.
    """
    label_names = list(label_names) if label_names is not None else [str(i) for i in range(n_labels)]
    cell, rank, available = _cell_ranks(pool, languages, n_labels, seed, pool_name)
    needed = np.maximum.reduce([np.asarray(c) for c in subsets.values()])
    _check_available(pool_name, needed, available, languages, label_names)
    rows = {}
    for name, counts in subsets.items():
        quota = np.append(np.asarray(counts).ravel(), 0)  # cell -1 (other language/label) takes nothing
        chosen = np.flatnonzero(rank < quota[cell])
        rng = np.random.default_rng([seed % 2**32, zlib.crc32(name.encode())])
        rows[name] = chosen[rng.permutation(len(chosen))]
    return rows, available


def _features(pool: pd.DataFrame, label_names: Sequence[str]):
    """Arrow features for the subsets: strings, the label as a ClassLabel with its names."""
    import datasets

    inferred = datasets.Dataset.from_pandas(pool.head(100), preserve_index=False).features
    features = {}
    for column in pool.columns:
        if column == "label":
            features[column] = datasets.ClassLabel(names=list(label_names))
        elif column in ("id", "text", "text_pair", "language", "group"):
            features[column] = datasets.Value("string")
        else:
            features[column] = inferred[column]
    return datasets.Features(features)


def build_subsets(
    pools: Mapping[str, pd.DataFrame],
    languages: Sequence[str],
    n_labels: int,
    train_per_language: int,
    validation_per_language: int,
    test_per_cell: int,
    distribution: Mapping[str, Sequence[float]] | None,
    groups: Mapping[str, Sequence[str]] | None,
    seed: int,
    label_names: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
):
    """Draw the five subsets from the train/validation/test pools.

    Returns (datasets.DatasetDict with train_balanced, train_imbalanced,
    validation_balanced, validation_imbalanced, test; report dict with the
    counts per split x language x label, the overlap fractions and the
    available counts per pool). Rows of each subset come out in a seeded
    shuffled order so batches mix languages.
    """
    import datasets

    languages = list(languages)
    label_names = list(label_names) if label_names is not None else [str(i) for i in range(n_labels)]
    if len(label_names) != n_labels:
        raise ValueError(f"{len(label_names)} label names for {n_labels} labels")
    sizes = {"train_per_language": train_per_language, "validation_per_language": validation_per_language,
             "test_per_cell": test_per_cell}
    if not distribution:
        log.warning("no imbalance.distribution: the imbalanced subsets equal the balanced ones")
    # Every short cell of every split in one message, before any sampling.
    plan = design_plan(pools, languages, label_names, sizes, distribution, groups, with_largest=False)
    if plan.shortages():
        raise design_plan(pools, languages, label_names, sizes, distribution, groups).error()
    design = SubsetDesign(languages, n_labels, distribution, groups, label_names)
    design = {pool: design.subsets(pool, sizes[name]) for pool, name in SIZE_FIELDS.items()}

    selected: dict[str, pd.DataFrame] = {}
    report: dict[str, Any] = {"seed": seed, "languages": languages, "labels": label_names,
                              "counts": {}, "totals": {}, "available": {}, "overlap": {}}
    steps = len(design) + len(SUBSET_SPLITS)
    done = 0
    for pool_name, subsets in design.items():
        pool = pools[pool_name]
        rows, available = select_nested(pool, languages, n_labels, subsets, seed, pool_name, label_names)
        report["available"][pool_name] = counts_dict(available, languages, label_names)
        for split, counts in subsets.items():
            selected[split] = pool.iloc[rows[split]].reset_index(drop=True)
            report["counts"][split] = counts_dict(counts, languages, label_names)
            report["totals"][split] = int(len(rows[split]))
        if len(subsets) == 2:
            balanced, skewed = rows.values()
            shared = np.intersect1d(balanced, skewed, assume_unique=True)
            report["overlap"][pool_name] = float(len(shared) / max(len(balanced), 1))
        done += 1
        if progress:
            progress(done, steps)

    features = _features(pools["train"], label_names)
    out = {}
    for split in SUBSET_SPLITS:
        out[split] = datasets.Dataset.from_pandas(selected[split], features=features, preserve_index=False)
        done += 1
        if progress:
            progress(done, steps)
    return datasets.DatasetDict(out), report


AS_IS_SPLITS = ("train", "validation", "test")


def _cell_counts(pool: pd.DataFrame, languages: Sequence[str], n_labels: int) -> np.ndarray:
    """[L, C] rows per (language, label) of a pool."""
    position = {lang: i for i, lang in enumerate(languages)}
    lang_idx = pool["language"].map(position).to_numpy(dtype=np.int64)
    return np.bincount(lang_idx * n_labels + pool["label"].to_numpy(dtype=np.int64),
                       minlength=len(languages) * n_labels).reshape(len(languages), n_labels)


def build_as_is(
    pools: Mapping[str, pd.DataFrame],
    languages: Sequence[str],
    label_names: Sequence[str],
    seed: int,
    progress: Callable[[int, int], None] | None = None,
):
    """The data as it is: (DatasetDict train/validation/test with every pool row, report).

    No sampling: the splits are the source's (or carved by the loader), rows in
    source order. The report has build_subsets's shape (counts per split x
    language x label, totals, available = counts, overlap empty).
    """
    import datasets

    languages, label_names = list(languages), list(label_names)
    features = _features(pools["train"], label_names)
    report: dict[str, Any] = {"seed": seed, "languages": languages, "labels": label_names, "subset": "none",
                              "counts": {}, "totals": {}, "available": {}, "overlap": {}}
    out = {}
    for done, split in enumerate(AS_IS_SPLITS, start=1):
        pool = pools[split]
        counts = counts_dict(_cell_counts(pool, languages, len(label_names)), languages, label_names)
        report["counts"][split] = counts
        report["available"][split] = counts
        report["totals"][split] = int(len(pool))
        out[split] = datasets.Dataset.from_pandas(pool.reset_index(drop=True), features=features,
                                                  preserve_index=False)
        if progress:
            progress(done, len(AS_IS_SPLITS))
    return datasets.DatasetDict(out), report


def build_from_recipe(recipe: Any, progress: Callable[[int, int], None] | None = None):
    """Recipe -> (DatasetDict, distribution report).

    imbalance.subset "none": the data as it is, keys train/validation/test
    (`build_as_is`); "balanced"/"imbalanced": the five subsets of
    `build_subsets` (train_balanced, ..., test). Reads recipe.data.* and
    recipe.imbalance.*; the report adds the source's dropped-row counts.
    """
    from langtrainer.recipe import split_seed

    data, imbalance = recipe.data, recipe.imbalance
    pools, label_names, languages = recipe_pools(recipe)
    if imbalance.subset == "none":
        subsets, report = build_as_is(pools, languages, label_names, split_seed(recipe), progress=progress)
    else:
        subsets, report = build_subsets(
            pools,
            languages,
            len(label_names),
            data.train_per_language,
            data.validation_per_language,
            data.test_per_cell,
            imbalance.distribution,
            imbalance.groups,
            split_seed(recipe),
            label_names=label_names,
            progress=progress,
        )
    report["source"] = pools.report
    report["dropped_rows"] = {
        "empty_text": pools.report["dropped_empty_text"],
        "missing_label": pools.report["dropped_missing_label"],
    }
    report["distribution"] = {k: list(v) for k, v in (imbalance.distribution or {}).items()}
    report["groups"] = {k: list(v) for k, v in (imbalance.groups or {}).items()}
    return subsets, report


def recipe_pools(recipe: Any):
    """(pools, label names, languages) of the recipe's data block."""
    from langtrainer.data.sources import load_source
    from langtrainer.recipe import split_seed

    data = recipe.data
    pools, label_names = load_source(
        data.source,
        data.splits,
        data.columns,
        data.languages,
        data.labels,
        hub_configs=data.hub_configs,
        trust_remote_code=getattr(data, "trust_remote_code", False),
        seed=split_seed(recipe),
        validation_fraction=getattr(data, "validation_fraction", 0.1),
        test_fraction=getattr(data, "test_fraction", 0.1),
    )
    languages = list(data.languages) or sorted(pools["train"]["language"].unique())
    for group, members in (recipe.imbalance.groups or {}).items():
        absent = [lang for lang in members if lang not in languages]
        if absent:
            raise UserError(f"imbalance.groups.{group}: language(s) {', '.join(map(repr, absent))} are not in the data "
                            f"(languages present: {', '.join(languages)})")
    return pools, label_names, languages


def plan_from_recipe(recipe: Any) -> DesignPlan:
    """The recipe's data per (split, language, label) against its subset design, without sampling.

    For imbalance.subset none the plan only counts (every row is used); for
    balanced/imbalanced it also gives what each cell needs, the short cells
    and the largest data.* sizes that fit.
    """
    data, imbalance = recipe.data, recipe.imbalance
    pools, label_names, languages = recipe_pools(recipe)
    sizes = None if imbalance.subset == "none" else {name: getattr(data, name) for name in SIZE_FIELDS.values()}
    return design_plan(pools, languages, label_names, sizes, imbalance.distribution, imbalance.groups)
