"""How much a model's predictions depend on the language beyond the true label.

`language_prediction_cmi` is the conditional mutual information
I(language; prediction | true label) in nats, the plug-in estimate over the
test rows:

    sum over y of p(y) * I(language; prediction | label = y)

with every probability a relative frequency. It is 0 exactly when, within
each true label, the prediction mix is the same in every language, i.e. when
predictions depend on the language only through the label mix of its rows.
That is what makes it usable on natural splits, where each language's test
rows carry their own label mix and differing prediction shares alone prove
nothing. The paper's skew index, by contrast, needs a designed skew.

The plug-in estimate is biased upwards on small samples (a finite sample
rarely has identical conditional mixes), so it comes with a permutation
p-value: the languages are shuffled among the rows of each true label
(keeping each language's label mix and each label's prediction mix), the
statistic recomputed `permutations` times with a fixed seed, and
p = (1 + #{permuted >= observed}) / (1 + permutations).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from langtrainer.defaults import CMI_PERMUTATIONS


def _codes(values: Sequence) -> tuple[np.ndarray, int]:
    _, codes = np.unique(np.asarray(values).astype(str), return_inverse=True)
    return codes.astype(np.int64).ravel(), int(codes.max()) + 1 if len(codes) else 0


def _cmi_from_counts(counts: np.ndarray) -> np.ndarray:
    """I(L; P | Y) in nats from joint counts shaped [..., Y, L, P] (leading axes: independent tables)."""
    n = counts.sum(axis=(-3, -2, -1), keepdims=True)
    n_y = counts.sum(axis=(-2, -1), keepdims=True)
    n_yl = counts.sum(axis=-1, keepdims=True)
    n_yp = counts.sum(axis=-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        # p(y,l,p) * log[ p(y,l,p) p(y) / (p(y,l) p(y,p)) ], the counts' n cancelling inside the log
        terms = counts / n * np.log(counts * n_y / (n_yl * n_yp))
    return np.where(counts > 0, terms, 0.0).sum(axis=(-3, -2, -1))


def _joint_counts(label: np.ndarray, language: np.ndarray, prediction: np.ndarray, shape: tuple[int, int, int],
                  batch: int = 1) -> np.ndarray:
    """[batch, Y, L, P] counts; `language` may be [batch, n] (one permutation per row)."""
    n_y, n_l, n_p = shape
    language = np.atleast_2d(language)
    cell = (label * n_l + language) * n_p + prediction  # broadcasts over the batch
    flat = (cell + (np.arange(language.shape[0]) * n_y * n_l * n_p)[:, None]).ravel()
    return np.bincount(flat, minlength=language.shape[0] * n_y * n_l * n_p).reshape(-1, n_y, n_l, n_p)


def language_prediction_cmi(predictions: Sequence, labels: Sequence, languages: Sequence) -> float:
    """I(language; prediction | true label) in nats, plug-in (module docstring); 0.0 without rows."""
    if len(labels) == 0:
        return 0.0
    y, n_y = _codes(labels)
    lang, n_l = _codes(languages)
    pred, n_p = _codes(predictions)
    return float(_cmi_from_counts(_joint_counts(y, lang, pred, (n_y, n_l, n_p)))[0])


def language_prediction_cmi_test(
    predictions: Sequence,
    labels: Sequence,
    languages: Sequence,
    permutations: int = CMI_PERMUTATIONS,
    seed: int = 0,
) -> dict[str, float | int]:
    """The statistic with its permutation p-value (languages permuted within each true label)."""
    observed = language_prediction_cmi(predictions, labels, languages)
    out: dict[str, float | int] = {"cmi": observed, "p_value": 1.0, "permutations": int(permutations), "seed": seed}
    if len(labels) == 0 or permutations <= 0:
        return out
    y, n_y = _codes(labels)
    lang, n_l = _codes(languages)
    pred, n_p = _codes(predictions)
    order = np.argsort(y, kind="stable")
    y, lang, pred = y[order], lang[order], pred[order]
    bounds = np.flatnonzero(np.diff(y)) + 1
    rng = np.random.default_rng(seed)
    exceed = 0
    chunk = max(1, 1_000_000 // max(len(y), 1))
    for start in range(0, permutations, chunk):
        size = min(chunk, permutations - start)
        shuffled = np.empty((size, len(y)), dtype=np.int64)
        for block in np.split(np.arange(len(y)), bounds):  # rows of one true label
            shuffled[:, block] = rng.permuted(np.broadcast_to(lang[block], (size, len(block))), axis=1)
        values = _cmi_from_counts(_joint_counts(y, shuffled, pred, (n_y, n_l, n_p)))
        exceed += int((values >= observed - 1e-12).sum())  # ties count against the observed value
    out["p_value"] = (1 + exceed) / (1 + permutations)
    return out
