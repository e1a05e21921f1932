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
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from langtrainer.errors import UserError

log = logging.getLogger(__name__)

ROW_SUM_TOLERANCE = 0.5  # percentage points: Table 1a's 6.6/13.3/20/26.7/33.3 sums to 99.9
COLUMN_TOLERANCE = 0.5  # percentage points between a label's mean share and 100/C
SUBSET_SPLITS = ("train_balanced", "train_imbalanced", "validation_balanced", "validation_imbalanced", "test")


# ------------------------------------------------------------------ counts

def balanced_counts(n_per_language: int, n_languages: int, n_labels: int) -> np.ndarray:
    """[L, C] uniform counts; the remainder goes round-robin so label totals differ by at most 1."""
    base, remainder = divmod(int(n_per_language), n_labels)
    counts = np.full((n_languages, n_labels), base, dtype=np.int64)
    for lang in range(n_languages):
        counts[lang, (lang * remainder + np.arange(remainder)) % n_labels] += 1
    return counts


def distribution_table(
    languages: Sequence[str],
    n_labels: int,
    distribution: Mapping[str, Sequence[float]],
    groups: Mapping[str, Sequence[str]] | None = None,
) -> np.ndarray:
    """[L, C] percentages, one row per language, from rows keyed by language or group.

    A row keyed by the language itself wins over its group's row. Rows must
    have `n_labels` entries and sum to 100 (+/- 0.5).
    """
    group_of = {lang: group for group, langs in (groups or {}).items() for lang in langs}
    known = set(languages) | set(groups or {})
    for key, row in distribution.items():
        if key not in known:
            raise UserError(f"imbalance.distribution: '{key}' is neither a language nor a group")
        if len(row) != n_labels:
            raise UserError(
                f"imbalance.distribution.{key} has {len(row)} entries, expected one per label ({n_labels})"
            )
        total = float(np.sum(np.asarray(row, dtype=float)))
        if abs(total - 100.0) > ROW_SUM_TOLERANCE:
            raise UserError(f"imbalance.distribution.{key} sums to {total:g}%, expected 100% (+/- {ROW_SUM_TOLERANCE})")
        if any(float(v) < 0 for v in row):
            raise UserError(f"imbalance.distribution.{key} has a negative percentage")
    table = np.zeros((len(languages), n_labels))
    for i, lang in enumerate(languages):
        key = lang if lang in distribution else group_of.get(lang)
        if key is None or key not in distribution:
            raise UserError(
                f"imbalance.distribution has no row for language '{lang}'"
                f"{f' (or its group {group_of[lang]!r})' if lang in group_of else ''}"
            )
        table[i] = np.asarray(distribution[key], dtype=float)
    return table


def _fit_margins(shares: np.ndarray, column_totals: np.ndarray) -> np.ndarray:
    """Iterative proportional fitting: rows sum to 1, columns to `column_totals`.

    Table 1a as printed (rows 99.9%) has columns 119.7/120/120/120/119.7 over
    six languages; IPF moves it to the nearest table (in KL) whose label
    marginals are exactly uniform, changing 6.6% to 6.62% and 33.3% to 33.38%.
    """
    fitted = shares / shares.sum(axis=1, keepdims=True)
    for _ in range(10_000):
        col = fitted.sum(axis=0)
        fitted = fitted * np.divide(column_totals, col, out=np.ones_like(col), where=col > 0)
        fitted = fitted / fitted.sum(axis=1, keepdims=True)
        if np.abs(fitted.sum(axis=0) - column_totals).max() < 1e-13:
            break
    return fitted


def _round_matrix(targets: np.ndarray, n_per_row: int) -> np.ndarray:
    """Integer matrix, each cell floor or ceil of `targets`, rows summing to `n_per_row`,
    columns to floor/ceil of the target column sums; maximises the rounded-up fractions
    (largest remainder, jointly over rows and columns).

    A transportation problem (totally unimodular), solved exactly by HiGHS.
    Cells whose target is 0 stay 0; integral targets move only if forced.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    n_rows, n_cols = targets.shape
    floor = np.floor(targets).astype(np.int64)
    frac = targets - floor
    row_need = n_per_row - floor.sum(axis=1)
    col_total = targets.sum(axis=0)
    col_low = np.floor(col_total + 1e-9).astype(np.int64) - floor.sum(axis=0)
    col_high = np.ceil(col_total - 1e-9).astype(np.int64) - floor.sum(axis=0)
    # Ties (e.g. 4.5 and 1.5) round up the larger target: the skew is kept, deterministically.
    tie_break = 1e-6 * targets / max(float(targets.max()), 1.0)
    gain = (np.where(frac > 1e-9, frac, -1.0) + tie_break).ravel()
    upper = np.where(targets > 0, 1.0, 0.0).ravel()
    rows = np.kron(np.eye(n_rows), np.ones(n_cols))
    cols = np.kron(np.ones(n_rows), np.eye(n_cols))
    result = milp(
        c=-gain,
        constraints=[LinearConstraint(rows, row_need, row_need), LinearConstraint(cols, col_low, col_high)],
        integrality=np.ones(n_rows * n_cols),
        bounds=Bounds(np.zeros(n_rows * n_cols), upper),
    )
    if not result.success:
        raise UserError("imbalance.distribution cannot be rounded to counts with uniform label totals")
    return floor + np.rint(result.x).astype(np.int64).reshape(n_rows, n_cols)


def imbalanced_counts(
    n_per_language: int,
    languages: Sequence[str],
    n_labels: int,
    distribution: Mapping[str, Sequence[float]],
    groups: Mapping[str, Sequence[str]] | None = None,
    label_names: Sequence[str] | None = None,
) -> np.ndarray:
    """[L, C] counts following the percentage table with uniform marginals.

    Each row sums to `n_per_language` exactly; each label's total is
    n_per_language * L / C (within one when that is not an integer); each cell
    is within one example of the table (after fitting the table's label
    marginals to exactly uniform, see `_fit_margins`). A table whose label
    columns are not uniform cannot give uniform label marginals: UserError
    (naming the label from `label_names` when given).
    """
    shares = imbalanced_shares(languages, n_labels, distribution, groups, label_names)
    return _round_matrix(_targets(shares, n_per_language), int(n_per_language))


def _targets(shares: np.ndarray, n_per_language: int) -> np.ndarray:
    return np.round(shares * n_per_language, 9)


def imbalanced_shares(
    languages: Sequence[str],
    n_labels: int,
    distribution: Mapping[str, Sequence[float]],
    groups: Mapping[str, Sequence[str]] | None = None,
    label_names: Sequence[str] | None = None,
) -> np.ndarray:
    """[L, C] shares of each language's examples per label, label marginals fitted to uniform."""
    percent = distribution_table(languages, n_labels, distribution, groups)
    shares = percent / percent.sum(axis=1, keepdims=True)
    mean_share = 100.0 * shares.mean(axis=0)
    uniform = 100.0 / n_labels
    worst = int(np.argmax(np.abs(mean_share - uniform)))
    if abs(mean_share[worst] - uniform) > COLUMN_TOLERANCE:
        label = repr(label_names[worst]) if label_names is not None else str(worst)
        raise UserError(
            f"imbalance.distribution: label {label} (column {worst + 1}) averages {mean_share[worst]:.2f}% "
            f"over the languages, not {uniform:.2f}%: the label marginal would not be uniform; make every label's column "
            "average to 100/C"
        )
    return _fit_margins(shares, np.full(n_labels, len(languages) / n_labels))


# ------------------------------------------------------------------ design plan

# Which recipe size fills which pool.
SIZE_FIELDS = {"train": "train_per_language", "validation": "validation_per_language", "test": "test_per_cell"}
MAX_LISTED_SHORTAGES = 12


class _Design:
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
        return _round_matrix(_targets(self.shares, n), int(n))

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
        targets = _targets(self.shares, n)
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
            floor_ok = (np.floor(_targets(shares, mid)) <= available).all()
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
        cells = lambda a: _counts_dict(a, self.languages, self.label_names)  # noqa: E731
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
    design = _Design(languages, n_labels, distribution, groups, label_names)
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


def _counts_dict(counts: np.ndarray, languages: Sequence[str], label_names: Sequence[str]) -> dict:
    return {lang: {name: int(counts[i, j]) for j, name in enumerate(label_names)} for i, lang in enumerate(languages)}


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
    design = _Design(languages, n_labels, distribution, groups, label_names)
    design = {pool: design.subsets(pool, sizes[name]) for pool, name in SIZE_FIELDS.items()}

    selected: dict[str, pd.DataFrame] = {}
    report: dict[str, Any] = {"seed": seed, "languages": languages, "labels": label_names,
                              "counts": {}, "totals": {}, "available": {}, "overlap": {}}
    steps = len(design) + len(SUBSET_SPLITS)
    done = 0
    for pool_name, subsets in design.items():
        pool = pools[pool_name]
        rows, available = select_nested(pool, languages, n_labels, subsets, seed, pool_name, label_names)
        report["available"][pool_name] = _counts_dict(available, languages, label_names)
        for split, counts in subsets.items():
            selected[split] = pool.iloc[rows[split]].reset_index(drop=True)
            report["counts"][split] = _counts_dict(counts, languages, label_names)
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
        counts = _counts_dict(_cell_counts(pool, languages, len(label_names)), languages, label_names)
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
