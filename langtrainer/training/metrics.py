"""Classification metrics per language (and per language group).

Shaped like fairlearn's MetricFrame: overall numbers plus a `by_group` view.
Computed with numpy/sklearn so nothing is fetched from the Hub.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


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
    """How much predictions follow each group's training skew, for any number of groups.

    For each group g, the share of its predictions in the labels its training
    data over-represents (F_g) minus the mean share of the other groups'
    predictions in F_g; the index is the mean over groups. Shared bias (all
    languages leaning the same way) cancels: 0 means no language-driven skew,
    positive means predictions follow the training skew. With two groups whose
    favoured labels split the label set it equals share_A(F_A) + share_B(F_B) − 1.
    """
    predictions = np.asarray(predictions)
    languages = np.asarray(languages)
    masks = {}
    for group, members in groups.items():
        mask = np.isin(languages, list(members))
        if not mask.any():
            return float("nan")
        masks[group] = mask
    if len(masks) < 2:
        return float("nan")
    terms = []
    for group, mask in masks.items():
        labels = list(favoured[group])
        own = float(np.isin(predictions[mask], labels).mean())
        others = [float(np.isin(predictions[m], labels).mean()) for g, m in masks.items() if g != group]
        terms.append(own - float(np.mean(others)))
    return float(np.mean(terms))
