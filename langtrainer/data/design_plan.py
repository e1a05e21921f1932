"""What a recipe's subset design needs against what the data has (`data plan`), and the largest sizes that fit.

`SubsetDesign` is the one place the design is spelled (which subsets each
pool gives, as [L, C] counts, for any size); `design_plan` counts the data
per (split, language, label) cell against it and lists every shortage at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from langtrainer.data.counts import balanced_counts, cell_targets, counts_dict, imbalanced_shares, round_matrix
from langtrainer.errors import UserError

# Which recipe size fills which pool.
SIZE_FIELDS = {"train": "train_per_language", "validation": "validation_per_language", "test": "test_per_cell"}
MAX_LISTED_SHORTAGES = 12


class SubsetDesign:
    """The subsets each pool gives, as [L, C] counts, for any size: the one place the design is spelled."""

    def __init__(self, languages: Sequence[str], n_labels: int, distribution, groups, label_names):
        self.n_languages, self.n_labels = len(languages), n_labels
        self.shares = (imbalanced_shares(languages, n_labels, distribution, groups, label_names)
                       if distribution else None)

    def balanced(self, n: int) -> np.ndarray:
        return balanced_counts(n, self.n_languages, self.n_labels)

    def imbalanced(self, n: int) -> np.ndarray:
        if self.shares is None:
            return self.balanced(n)
        return round_matrix(cell_targets(self.shares, n), int(n))

    def subsets(self, pool: str, n: int) -> dict[str, np.ndarray]:
        if pool == "test":
            return {"test": np.full((self.n_languages, self.n_labels), int(n), dtype=np.int64)}
        return {f"{pool}_balanced": self.balanced(n), f"{pool}_imbalanced": self.imbalanced(n)}

    def needed(self, pool: str, n: int) -> np.ndarray:
        return np.maximum.reduce(list(self.subsets(pool, n).values()))

    def fits(self, pool: str, n: int, available: np.ndarray) -> bool:
        if pool == "test":
            return bool((available >= n).all())
        if not (self.balanced(n) <= available).all():
            return False
        if self.shares is None:
            return True
        targets = cell_targets(self.shares, n)
        if (np.floor(targets) > available).any():  # every cell is the floor or the ceiling of its target
            return False
        if (np.ceil(targets) <= available).all():
            return True
        return bool((self.imbalanced(n) <= available).all())

    def largest(self, pool: str, available: np.ndarray) -> int:
        """The largest size whose subsets this pool can fill (0 when none)."""
        if pool == "test":
            return int(available.min()) if available.size else 0
        # Necessary and monotone in n: no cell's floor(target) above what is there.
        shares = self.shares if self.shares is not None else np.full(available.shape, 1.0 / self.n_labels)
        lo, hi = 0, int(available.sum(axis=1).min()) if available.size else 0
        while lo < hi:
            mid = (lo + hi + 1) // 2
            floor_ok = (np.floor(cell_targets(shares, mid)) <= available).all()
            balanced_ok = mid // self.n_labels <= available.min()
            lo, hi = (mid, hi) if floor_ok and balanced_ok else (lo, mid - 1)
        for n in range(lo, 0, -1):
            if self.fits(pool, n, available):
                return n
        return 0


def available_counts(pool: pd.DataFrame, languages: Sequence[str], n_labels: int) -> np.ndarray:
    """[L, C] rows per (language, label) cell; rows of other languages or labels are not counted."""
    position = {lang: i for i, lang in enumerate(languages)}
    lang_idx = pool["language"].map(position).fillna(-1).to_numpy(dtype=np.int64)
    label = pool["label"].to_numpy(dtype=np.int64)
    valid = (lang_idx >= 0) & (label >= 0) & (label < n_labels)
    cells = (lang_idx * n_labels + label)[valid]
    return np.bincount(cells, minlength=len(languages) * n_labels).reshape(len(languages), n_labels)


@dataclass
class DesignPlan:
    """What the data has per (split, language, label) cell, what the recipe's design needs, and what would fit.

    `needed` is empty for as-is training (imbalance.subset none): every row is used.
    """

    languages: list[str]
    label_names: list[str]
    available: dict[str, np.ndarray]  # split -> [L, C]
    needed: dict[str, np.ndarray] = field(default_factory=dict)  # pool -> [L, C], the most any subset takes
    subsets: dict[str, np.ndarray] = field(default_factory=dict)  # train_balanced, ..., test -> [L, C] counts
    sizes: dict[str, int] = field(default_factory=dict)  # data.<field> -> the recipe's value
    largest: dict[str, int] = field(default_factory=dict)  # data.<field> -> the largest value that fits

    @property
    def as_is(self) -> bool:
        return not self.needed

    def shortages(self) -> list[tuple[str, str, str, int, int]]:
        """(split, language, label, needed, available) for every cell the data cannot fill."""
        out = []
        for split, needed in self.needed.items():
            available = self.available[split]
            for i, j in np.argwhere(needed > available):
                out.append((split, self.languages[i], self.label_names[j], int(needed[i, j]), int(available[i, j])))
        return out

    def short_fields(self) -> list[str]:
        return [SIZE_FIELDS[split] for split in self.needed if (self.needed[split] > self.available[split]).any()]

    def error(self) -> UserError | None:
        """One UserError listing every short cell of every split and the largest sizes that fit; None if none.

        Cells of a split short by the same counts share one entry ("test de/a en/a needs 5 has 3", or
        "test every cell ..."); at most MAX_LISTED_SHORTAGES cells are named, the rest counted.
        """
        short = self.shortages()
        if not short:
            return None
        entries: list[str] = []
        named = covered = 0  # cells named one by one (capped); cells named or covered by "every cell"
        n_cells = len(self.languages) * len(self.label_names)
        for split in self.needed:
            by_counts: dict[tuple[int, int], list[str]] = {}
            for s_split, lang, label, need, have in short:
                if s_split == split:
                    by_counts.setdefault((need, have), []).append(f"{lang}/{label}")
            for (need, have), cells in by_counts.items():
                if len(cells) == n_cells:
                    entries.append(f"{split} every cell needs {need} has {have}")
                    covered += n_cells
                    continue
                room = MAX_LISTED_SHORTAGES - named
                if room <= 0:
                    continue
                shown = cells[:room]
                named += len(shown)
                covered += len(shown)
                verbs = ("needs", "has") if len(shown) == 1 else ("need", "have")
                entries.append(f"{split} {' '.join(shown)} {verbs[0]} {need} {verbs[1]} {have}")
        more = f"; and {len(short) - covered} more cell(s)" if len(short) > covered else ""
        largest = " ".join(f"data.{name}={self.largest[name]}" for name in self.short_fields())
        return UserError(
            f"not enough examples for the subset design in {len(short)} cell(s): {'; '.join(entries)}{more}; "
            f"largest feasible: {largest}; lower these sizes or add data"
        )

    def to_dict(self) -> dict[str, Any]:
        cells = lambda a: counts_dict(a, self.languages, self.label_names)  # noqa: E731
        return {
            "languages": self.languages,
            "labels": self.label_names,
            "as_is": self.as_is,
            "available": {split: cells(a) for split, a in self.available.items()},
            "needed": {split: cells(a) for split, a in self.needed.items()},
            "sizes": dict(self.sizes),
            "largest": dict(self.largest),
            "shortages": [dict(zip(("split", "language", "label", "needed", "available"), s))
                          for s in self.shortages()],
        }


def design_plan(
    pools: Mapping[str, pd.DataFrame],
    languages: Sequence[str],
    label_names: Sequence[str],
    sizes: Mapping[str, int] | None,
    distribution: Mapping[str, Sequence[float]] | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    with_largest: bool = True,
) -> DesignPlan:
    """Counts per cell of each pool against the subset design for `sizes`
    ({train_per_language, validation_per_language, test_per_cell}); `sizes`
    None: as-is, nothing is needed beyond what is there. `with_largest`
    also searches the largest sizes that fit (a few roundings per pool)."""
    languages, label_names = list(languages), list(label_names)
    n_labels = len(label_names)
    available = {split: available_counts(pools[split], languages, n_labels) for split in SIZE_FIELDS if split in pools}
    plan = DesignPlan(languages, label_names, available)
    if sizes is None:
        return plan
    design = SubsetDesign(languages, n_labels, distribution, groups, label_names)
    for split, name in SIZE_FIELDS.items():
        if split not in pools:
            raise UserError(f"no '{split}' pool to sample from")
        plan.sizes[name] = int(sizes[name])
        counts = design.subsets(split, int(sizes[name]))
        plan.subsets.update(counts)
        plan.needed[split] = np.maximum.reduce(list(counts.values()))
        if with_largest:
            plan.largest[name] = design.largest(split, available[split])
    return plan
