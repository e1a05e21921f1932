"""The paper's subset counts (Section 2.1, Table 1): how many rows of each (language, label) cell a subset takes.

The balanced design is uniform per cell; the imbalanced one follows the
recipe's percentage table, rounded so that every label keeps the same total
(uniform label marginals). These are numbers only: `data.design_plan` checks
them against the data, `data.sampling` draws the rows.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from langtrainer.errors import UserError

ROW_SUM_TOLERANCE = 0.5  # percentage points: Table 1a's 6.6/13.3/20/26.7/33.3 sums to 99.9
COLUMN_TOLERANCE = 0.5  # percentage points between a label's mean share and 100/C


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


def round_matrix(targets: np.ndarray, n_per_row: int) -> np.ndarray:
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
    return round_matrix(cell_targets(shares, n_per_language), int(n_per_language))


def cell_targets(shares: np.ndarray, n_per_language: int) -> np.ndarray:
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


def counts_dict(counts: np.ndarray, languages: Sequence[str], label_names: Sequence[str]) -> dict:
    return {lang: {name: int(counts[i, j]) for j, name in enumerate(label_names)} for i, lang in enumerate(languages)}

