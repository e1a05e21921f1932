"""Classification metrics per language (and per language group).

Shaped like fairlearn's MetricFrame: overall numbers plus a `by_group` view.
Computed with numpy/sklearn so nothing is fetched from the Hub.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from langtrainer.errors import UserError


def prediction_distribution(predictions: np.ndarray, n_labels: int) -> list[float]:
    """Fraction of predictions per label (Table 2's rows)."""
    if len(predictions) == 0:
        return [0.0] * n_labels
    counts = np.bincount(np.asarray(predictions, dtype=np.int64), minlength=n_labels)
    return (counts / counts.sum()).tolist()


def classification_metrics(
    predictions: Sequence[int],
    labels: Sequence[int],
    languages: Sequence[str],
    label_names: Sequence[str],
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float]:
    """Flat metric dict (for the Trainer's logs): accuracy, macro-F1, per language and group.

    Keys: accuracy, macro_f1, accuracy_<lang>, pred_<lang>_<label> (share of
    predictions), and with groups accuracy_<group>, pred_<group>_<label>.
    """
    predictions = np.asarray(predictions, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    languages = np.asarray(languages)
    n_labels = len(label_names)
    out: dict[str, float] = {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", labels=list(range(n_labels)), zero_division=0)),
    }
    units: dict[str, np.ndarray] = {str(lang): languages == lang for lang in sorted(set(languages.tolist()))}
    for group, members in (groups or {}).items():
        units[str(group)] = np.isin(languages, list(members))
    for unit, mask in units.items():
        if not mask.any():
            continue
        out[f"accuracy_{unit}"] = float((predictions[mask] == labels[mask]).mean())
        for name, share in zip(label_names, prediction_distribution(predictions[mask], n_labels)):
            out[f"pred_{unit}_{name}"] = share
    return out


def skew_index(
    predictions: Sequence[int],
    languages: Sequence[str],
    groups: Mapping[str, Sequence[str]],
    favoured: Mapping[str, Sequence[int]],
) -> float:
    """How much predictions follow each group's training skew.

    For each of two groups, the share of its predictions that fall in the labels
    its training data over-represents; the index is the sum minus 1. Shared bias
    (all languages leaning the same way) cancels: 0 means no language-driven
    skew, positive means predictions follow the training skew.
    """
    predictions = np.asarray(predictions)
    languages = np.asarray(languages)
    total = 0.0
    for group, members in groups.items():
        mask = np.isin(languages, list(members))
        if not mask.any():
            return float("nan")
        total += float(np.isin(predictions[mask], list(favoured[group])).mean())
    return total - 1.0


def per_language_compute_metrics(
    eval_dataset: Any,
    label_names: Sequence[str],
    language_column: str = "language",
    groups: Mapping[str, Sequence[str]] | None = None,
) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` for any `Trainer`: overall and per-language numbers.

    Returns flat keys (the Trainer logs flat dicts, prefixed `eval_`):
    accuracy, macro_f1, and per language (and per group of `groups`)
    accuracy_<lang>, macro_f1_<lang>, pred_<lang>_<label> (share of that
    language's predictions in each label). Languages are read from
    `eval_dataset[language_column]` in dataset order, which is the order the
    Trainer's evaluation returns predictions in (sequential sampling, no
    length grouping of evaluation).
    """
    if language_column not in getattr(eval_dataset, "column_names", []):
        present = ", ".join(getattr(eval_dataset, "column_names", None) or [])
        raise UserError(f"the evaluation dataset has no '{language_column}' column (columns: {present})")
    languages = np.asarray([str(lang) for lang in eval_dataset[language_column]])
    n_labels = len(label_names)

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        logits = eval_pred.predictions
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        predictions = np.asarray(logits).argmax(axis=-1)
        labels = np.asarray(eval_pred.label_ids)
        if len(predictions) != len(languages):
            raise UserError(
                f"compute_metrics got {len(predictions)} predictions for an evaluation dataset of "
                f"{len(languages)} rows: pass the dataset the Trainer evaluates"
            )
        out = classification_metrics(predictions, labels, languages, label_names, groups)
        units = {str(lang): languages == lang for lang in sorted(set(languages.tolist()))}
        for group, members in (groups or {}).items():
            units[str(group)] = np.isin(languages, list(members))
        for unit, mask in units.items():
            if mask.any():
                out[f"macro_f1_{unit}"] = float(
                    f1_score(labels[mask], predictions[mask], average="macro", labels=list(range(n_labels)),
                             zero_division=0)
                )
        return out

    return compute_metrics
