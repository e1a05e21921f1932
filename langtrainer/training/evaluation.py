"""The metrics of a recipe's run: the tidy metric frame plus the skew index, and the Trainer's compute_metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from langtrainer.defaults import FAVOURED_LABEL_RATIO
from langtrainer.training.metrics import flat_metrics, metric_frame, skew_index

if TYPE_CHECKING:
    from langtrainer.recipe import Recipe


def favoured_labels(recipe: Recipe, n_labels: int) -> dict[str, list[int]] | None:
    """Per group, the labels its designed imbalanced distribution over-represents (share above
    uniform); None without a skew design (as-is data: `favoured_labels_from_training`)."""
    imb = recipe.imbalance
    if not imb.groups or not imb.distribution:
        return None
    out = {}
    for group, langs in imb.groups.items():
        row = imb.distribution.get(group) or imb.distribution.get(langs[0])
        if row is None or len(row) != n_labels:
            return None
        out[group] = [c for c, p in enumerate(row) if p > 100.0 / n_labels + 1e-9]
    return out


def favoured_labels_from_training(labels, languages, n_labels: int,
                                  ratio: float = FAVOURED_LABEL_RATIO) -> dict[str, list[int]]:
    """Per language, the labels its training rows over-represent: label c is favoured by language l
    when share_l(c) >= ratio * share(c), share(c) being c's share of all training rows (labels absent
    from the training split are nobody's). With the paper's designs (uniform overall mix) and the
    default 1.2 this gives the same labels as the designed rule (share above uniform)."""
    labels = np.asarray(labels, dtype=np.int64)
    languages = np.asarray([str(lang) for lang in languages])
    overall = np.bincount(labels, minlength=n_labels) / max(len(labels), 1)
    out = {}
    for lang in sorted(set(languages.tolist())):
        own = np.bincount(labels[languages == lang], minlength=n_labels) / max(int((languages == lang).sum()), 1)
        out[lang] = [c for c in range(n_labels) if overall[c] > 0 and own[c] >= ratio * overall[c] - 1e-12]
    return out


def evaluate_predictions(logits: np.ndarray, dataset, label_names: list[str], recipe: "Recipe",
                         uncertainty: bool = False) -> dict[str, Any]:
    """metrics.json's tidy table of one split (training.metrics.metric_frame), with the skew index
    when the recipe has a skew design; `uncertainty` adds the intervals and the CMI's permutation
    p-value (seeded with the recipe's seed: the test block, not every evaluation during training)."""
    predictions = logits.argmax(-1)
    languages = dataset["language"]
    frame = metric_frame(predictions, dataset["label"], languages, label_names, recipe.imbalance.groups,
                         uncertainty_seed=recipe.seed if uncertainty else None)
    favoured = favoured_labels(recipe, len(label_names))
    if favoured:
        frame["skew_index"] = skew_index(predictions, languages, recipe.imbalance.groups, favoured)
    return frame


def prediction_table(logits: np.ndarray, rows, label_names: list[str]):
    """predictions.parquet's rows (rundir.RunDir.write_predictions): per test row its id, language,
    true and predicted label (names) and the softmax probability of each class."""
    import pandas as pd

    from langtrainer.rundir import probability_column

    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
    names = np.asarray(label_names, dtype=object)
    n = len(logits)
    ids = rows["id"] if "id" in rows.column_names else [f"test-{i}" for i in range(n)]
    table = pd.DataFrame({
        "id": [str(i) for i in ids],
        "language": [str(lang) for lang in rows["language"]],
        "label": names[np.asarray(rows["label"], dtype=np.int64)],
        "predicted": names[logits.argmax(-1)],
    })
    for c, name in enumerate(label_names):
        table[probability_column(name)] = probabilities[:, c]
    table.attrs["label_names"] = list(label_names)
    return table


def make_compute_metrics(eval_dataset, label_names: list[str], recipe: "Recipe"):
    """The Trainer's compute_metrics on `eval_dataset`'s untokenized rows: flat keys for its logs."""
    def compute(eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        frame = evaluate_predictions(np.asarray(logits), eval_dataset, label_names, recipe)
        flat = flat_metrics(frame)
        if "skew_index" in frame:
            flat["skew_index"] = frame["skew_index"]
        return flat

    return compute
