"""Classification metrics per language (and per language group).

`metric_frame` is the tidy table that metrics.json holds, shaped like
fairlearn's MetricFrame: overall numbers, `by_language` and `by_group` rows,
and the max-min `difference` over languages. Each row holds the true labels'
shares (`label_shares`) beside the predicted ones: on a natural split each
language's test rows have their own label mix, so prediction shares that
differ by language show a language cue only beyond what the label shares
explain; `language_prediction_cmi` (training.language_dependence) measures
that excess. With `uncertainty_seed` the frame adds 95 % intervals per row
(training.intervals) and the permutation p-value of the CMI. `flat_metrics` is the same
numbers as the flat keys a Trainer logs (accuracy_<lang>, pred_<lang>_<label>).
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


def _row(predictions: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
         uncertainty_seed: int | None = None) -> dict[str, Any]:
    """n, accuracy, macro-F1, true label shares and prediction shares of one slice of the rows; with
    `uncertainty_seed`, 95 % intervals of accuracy (Wilson) and macro-F1 (bootstrap, that seed).

    Macro-F1 averages over the labels the slice has or predicts: a label that
    a language's test rows lack and the model never predicts for them is no
    error of the model, and counting it as F1 = 0 would sink that language.
    """
    present = np.union1d(labels, predictions).tolist()
    row = {
        "n": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predictions)) if len(labels) else 0.0,
        "macro_f1": float(f1_score(labels, predictions, average="macro", labels=present, zero_division=0))
        if present else 0.0,
        "label_shares": dict(zip(label_names, prediction_distribution(labels, len(label_names)))),
        "prediction_shares": dict(zip(label_names, prediction_distribution(predictions, len(label_names)))),
    }
    if uncertainty_seed is not None:
        from langtrainer.training.intervals import bootstrap_macro_f1_interval, wilson_interval

        row["accuracy_ci"] = list(wilson_interval(int((labels == predictions).sum()), len(labels)))
        row["macro_f1_ci"] = list(bootstrap_macro_f1_interval(labels, predictions, len(label_names),
                                                              seed=uncertainty_seed))
    return row


def metric_frame(
    predictions: Sequence[int],
    labels: Sequence[int],
    languages: Sequence[str],
    label_names: Sequence[str],
    groups: Mapping[str, Sequence[str]] | None = None,
    uncertainty_seed: int | None = None,
) -> dict[str, Any]:
    """The tidy per-language table of metrics.json (module docstring)."""
    from langtrainer.training.language_dependence import language_prediction_cmi, language_prediction_cmi_test

    predictions = np.asarray(predictions, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    languages = np.asarray([str(lang) for lang in languages])
    seed = uncertainty_seed
    frame = _row(predictions, labels, label_names, seed)
    by_language = {}
    for lang in sorted(set(languages.tolist())):
        mask = languages == lang
        by_language[str(lang)] = _row(predictions[mask], labels[mask], label_names, seed)
    frame["by_language"] = by_language
    if groups:
        by_group = {}
        for group, members in groups.items():
            mask = np.isin(languages, list(members))
            if mask.any():
                by_group[str(group)] = _row(predictions[mask], labels[mask], label_names, seed)
        frame["by_group"] = by_group
    if seed is None:
        frame["language_prediction_cmi"] = language_prediction_cmi(predictions, labels, languages)
    else:
        test = language_prediction_cmi_test(predictions, labels, languages, seed=seed)
        frame["language_prediction_cmi"] = test["cmi"]
        frame["language_prediction_cmi_p_value"] = test["p_value"]
        frame["language_prediction_cmi_permutations"] = test["permutations"]
    frame["difference"] = {
        metric: (max(row[metric] for row in by_language.values()) - min(row[metric] for row in by_language.values()))
        if by_language else 0.0
        for metric in ("accuracy", "macro_f1")
    }
    return frame


def flat_metrics(frame: Mapping[str, Any]) -> dict[str, float]:
    """The Trainer's log keys for a metric frame: accuracy, macro_f1 and, per language and
    group, accuracy_<unit>, macro_f1_<unit> and pred_<unit>_<label> (share of predictions)."""
    out = {"accuracy": frame["accuracy"], "macro_f1": frame["macro_f1"]}
    if "language_prediction_cmi" in frame:
        out["language_prediction_cmi"] = frame["language_prediction_cmi"]
    units = {**frame.get("by_language", {}), **frame.get("by_group", {})}
    for unit, row in units.items():
        out[f"accuracy_{unit}"] = row["accuracy"]
        out[f"macro_f1_{unit}"] = row["macro_f1"]
        for name, share in row["prediction_shares"].items():
            out[f"pred_{unit}_{name}"] = share
    return out


def classification_metrics(
    predictions: Sequence[int],
    labels: Sequence[int],
    languages: Sequence[str],
    label_names: Sequence[str],
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float]:
    """Flat metric dict (for the Trainer's logs): `flat_metrics(metric_frame(...))`."""
    return flat_metrics(metric_frame(predictions, labels, languages, label_names, groups))


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
        return classification_metrics(predictions, labels, languages, label_names, groups)

    return compute_metrics
