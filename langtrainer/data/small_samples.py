"""Small-sample warnings: the per-language numbers that too few rows cannot decide.

One function, `small_sample_warnings`, says it the same way wherever counts
are shown (`data audit`, `data plan`, `report`, the model card, `compare`):
one line per finding, for

- a language with fewer than `MIN_TEST_ROWS_PER_LANGUAGE` test rows (its
  accuracy's 95 % interval is then wide; the line gives its half-width at
  the worst case, an accuracy of 0.5);
- a (language, label) cell with fewer than `MIN_TRAIN_ROWS_PER_CELL`
  training rows (what the model learns of that label in that language
  rests on a handful of texts);
- a class weight above `MAX_CLASS_WEIGHT` (a few rows then carry a large
  share of their language's loss; eq. 2 gives the cell weight n_l / (C n_lc)).

The thresholds live in defaults.py.
"""

from __future__ import annotations

from typing import Mapping

from langtrainer.defaults import MAX_CLASS_WEIGHT, MIN_TEST_ROWS_PER_LANGUAGE, MIN_TRAIN_ROWS_PER_CELL


def _half_width(n: int) -> float:
    from langtrainer.training.intervals import wilson_interval

    low, high = wilson_interval(n // 2, n) if n % 2 == 0 else wilson_interval((n - 1) // 2, n)
    return (high - low) / 2


def small_sample_warnings(
    train_counts: Mapping[str, Mapping[str, int]] | None = None,
    test_rows: Mapping[str, int] | None = None,
    class_weights: Mapping[str, Mapping[str, float]] | None = None,
    min_test_rows: int = MIN_TEST_ROWS_PER_LANGUAGE,
    min_train_rows: int = MIN_TRAIN_ROWS_PER_CELL,
    max_class_weight: float = MAX_CLASS_WEIGHT,
) -> list[str]:
    """One line per small sample (module docstring), languages and labels in the order given.

    train_counts: language -> label -> training rows (a cell of 0 rows is reported as such; a label
    with no rows in any language gets one line of its own);
    test_rows: language -> test rows; class_weights: language -> label -> weight.
    """
    lines = []
    for lang, n in (test_rows or {}).items():
        n = int(n)
        if n < min_test_rows:
            width = f"±{_half_width(n):.2f}" if n > 0 else "undefined"
            lines.append(f"{lang}: {n} test row{'' if n == 1 else 's'} (fewer than {min_test_rows}): its accuracy "
                         f"and macro-F1 decide little (95 % interval of an accuracy up to {width})")
    totals: dict[str, int] = {}
    for per_label in (train_counts or {}).values():
        for label, n in per_label.items():
            totals[label] = totals.get(label, 0) + int(n)
    for label, total in totals.items():
        if total == 0:  # one line for the label, not one per language
            lines.append(f"{label}: no training rows in any language: the model cannot learn it")
    for lang, per_label in (train_counts or {}).items():
        for label, n in per_label.items():
            n = int(n)
            if n < min_train_rows and totals.get(label):
                lines.append(f"{lang} / {label}: {n} training row{'' if n == 1 else 's'} (fewer than "
                             f"{min_train_rows}): what the model learns of '{label}' in {lang} rests on "
                             f"{'no' if n == 0 else 'a handful of'} text{'' if n == 1 else 's'}")
    for lang, per_label in (class_weights or {}).items():
        for label, weight in per_label.items():
            if float(weight) > max_class_weight:
                rows = (train_counts or {}).get(lang, {}).get(label)
                held = f" on {int(rows)} row{'' if rows == 1 else 's'}" if rows is not None else ""
                lines.append(f"{lang} / {label}: class weight {float(weight):.1f}{held} (above {max_class_weight:g}): "
                             "a few rows carry a large share of the language's loss")
    return lines


def counts_table(counts, languages, label_names) -> dict[str, dict[str, int]]:
    """A [languages x labels] array as the language -> label -> count mapping the warnings read."""
    return {str(lang): {str(name): int(counts[i][j]) for j, name in enumerate(label_names)}
            for i, lang in enumerate(languages)}


def plan_small_samples(plan) -> list[str]:
    """The warnings for a `data plan` (data.design_plan.DesignPlan): as-is, its training cells, eq. 2
    weights and test rows per language as the data has them; with a skew design, the test rows per
    language the design draws (its training cells are the design's shares of data.train_per_language)."""
    import numpy as np

    from langtrainer.training.weighting import weights_from_counts

    def rows(split: str) -> dict[str, int] | None:
        counts = plan.needed.get(split) if not plan.as_is else plan.available.get(split)
        if counts is None:
            return None
        if not plan.as_is:
            counts = np.minimum(counts, plan.available[split])
        return {lang: int(counts[i].sum()) for i, lang in enumerate(plan.languages)}

    train = plan.available.get("train") if plan.as_is else None
    train_counts = weights = None
    if train is not None:
        train_counts = counts_table(train, plan.languages, plan.label_names)
        table = weights_from_counts(train, "inverse")
        weights = {lang: {name: float(table[i, j]) for j, name in enumerate(plan.label_names)}
                   for i, lang in enumerate(plan.languages)}
    return small_sample_warnings(train_counts, rows("test"), weights)
