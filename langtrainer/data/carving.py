"""Carving the splits a source lacks (validation, test) out of its train pool, seeded and stratified."""

from __future__ import annotations

import zlib
from typing import Mapping, Sequence

import numpy as np
import pandas as pd


def carve_sizes(n: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """[cells, splits] rows carved from cells of `n` rows: round(fraction * n), and at least one per split
    (with a non-zero fraction) where the cell keeps at least one row for train.

    A few-hundred-row dataset has cells of 3-10 rows, where 10 % rounds to 0:
    without the minimum, validation and test would miss those cells entirely.
    """
    n = np.asarray(n, dtype=np.int64)
    sizes = np.zeros((len(n), len(fractions)), dtype=np.int64)
    for j, fraction in enumerate(fractions):
        if fraction <= 0:
            continue
        want = np.floor(fraction * n + 0.5).astype(np.int64)
        room = n - 1 - sizes.sum(axis=1)  # leave train one row
        sizes[:, j] = np.clip(np.maximum(want, 1), 0, np.maximum(room, 0))
    return sizes


def carve(train: pd.DataFrame, fractions: Mapping[str, float], seed: int) -> dict[str, pd.DataFrame]:
    """Carve the splits in `fractions` (name -> share of rows) off the train pool, seeded.

    Stratified by (language, label): in each cell the rows are ranked by a
    seeded permutation; the first `carve_sizes` rows go to the first split,
    the next to the second, the rest stay in train. With a `group` column the
    groups are the units (translations stay together), stratified by the
    group's first label.
    """
    names = list(fractions)
    if len(train) == 0:
        return {name: train for name in (*names, "train")}
    rng = np.random.default_rng([seed % 2**32, zlib.crc32(b"carve")])
    if "group" in train.columns:
        groups = train.groupby("group", sort=True).agg(label=("label", "first"))
        unit_cell = pd.factorize(groups["label"])[0].astype(np.int64)
        unit_of_row = groups.index.get_indexer(train["group"])
    else:
        language = pd.factorize(train["language"])[0].astype(np.int64)
        unit_cell = language * (int(train["label"].max()) + 1) + train["label"].to_numpy()
        unit_of_row = np.arange(len(train))
    order = rng.permutation(len(unit_cell))
    rank = np.empty(len(unit_cell), dtype=np.int64)
    rank[order] = pd.Series(unit_cell[order]).groupby(unit_cell[order]).cumcount().to_numpy()
    cells, cell_index, cell_size = np.unique(unit_cell, return_inverse=True, return_counts=True)
    bounds = np.cumsum(carve_sizes(cell_size, [fractions[name] for name in names]), axis=1)[cell_index]
    # unit -> split position: 0..len(names)-1 carved, len(names) = train
    position = (rank[:, None] >= bounds).sum(axis=1)
    row_position = position[unit_of_row]
    out = {name: train[row_position == j].reset_index(drop=True) for j, name in enumerate(names)}
    out["train"] = train[row_position == len(names)].reset_index(drop=True)
    return out
