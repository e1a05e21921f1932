"""Seeded subsamples of a table of examples, spread over languages and labels.

`stratified_subsample` picks SHAP's explained examples (round-robin over
(language, label) cells); `sample_per_language` caps a probe's texts per
language. Both are deterministic for a seed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from langtrainer.errors import UserError


def stratified_subsample(frame, n: int | None, seed: int = 0, by: Sequence[str] = ("language", "label")):
    """A seeded subsample spread evenly over the cells of `by` (round-robin over shuffled cells).

    Cells are visited language-first: with fewer rows than cells, every
    language still gets its share before any gets a second label.

    n=None or n >= len(frame) keeps every row. Rows come back in the order
    they were drawn.
    """
    if n is None or n >= len(frame):
        return frame.reset_index(drop=True)
    if n <= 0:
        raise UserError(f"subsample must be positive (got {n})")
    rng = np.random.default_rng(seed)
    by_first: dict[str, list[list]] = {}
    for key, cell in sorted(frame.groupby(list(by), sort=True), key=lambda kv: tuple(map(str, kv[0]))):
        positions = cell.index.to_numpy()
        by_first.setdefault(str(key[0]), []).append(list(positions[rng.permutation(len(positions))]))
    # interleave so that each round visits every language before a language's next cell
    width = max(len(v) for v in by_first.values())
    cells = [v[r] for r in range(width) for v in by_first.values() if r < len(v)]
    chosen: list = []
    depth = 0
    while len(chosen) < n:
        for cell in cells:
            if depth < len(cell) and len(chosen) < n:
                chosen.append(cell[depth])
        depth += 1
    return pd.DataFrame(frame.loc[chosen]).reset_index(drop=True)


def sample_per_language(
    frame: pd.DataFrame, per_language: int | None, seed: int, languages: Sequence[str] | None = None
) -> pd.DataFrame:
    """At most `per_language` rows per language, drawn without replacement with `seed`.

    Languages come out in `languages` order (else sorted), rows inside a
    language in their original order.
    """
    if per_language is not None and per_language < 1:
        raise UserError("per_language must be at least 1")
    wanted = list(languages) if languages is not None else sorted(frame["language"].astype(str).unique())
    rng = np.random.default_rng(seed)
    parts = []
    for lang in wanted:
        rows = frame[frame["language"].astype(str) == lang]
        if per_language is not None and len(rows) > per_language:
            keep = np.sort(rng.choice(len(rows), size=per_language, replace=False))
            rows = rows.iloc[keep]
        parts.append(rows)
    if not parts:
        return frame.iloc[:0]
    return pd.concat(parts, ignore_index=True)
