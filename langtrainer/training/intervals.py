"""95 % intervals for the per-language numbers a user decides on.

Accuracy is a binomial proportion: its interval is Wilson's score interval,
which stays inside [0, 1] and keeps close to its nominal coverage down to a
handful of rows, where the normal (Wald) interval collapses to a point at
0 % or 100 %. Macro-F1 has no closed form: its interval is a percentile
bootstrap over the slice's test rows (rows drawn with replacement, a fixed
seed, `BOOTSTRAP_RESAMPLES` draws), with the macro average taken, as in
`training.metrics`, over the labels each resample has or predicts.

A mean over a few seeds (compare's paired differences, the report's seed
means) has a standard error estimated from those seeds alone: K seeds give
K − 1 degrees of freedom, and the 95 % threshold is Student's t quantile,
not 2. At 2 seeds it is 12.71 SE, at 3 seeds 4.30, at 5 seeds 2.78, and near
2 only from about 60 seeds on; with 2 SE a difference of zero would be called
real 30 % of the time at 2 seeds and 18 % at 3.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from langtrainer.defaults import BOOTSTRAP_RESAMPLES, CONFIDENCE

Z_95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def seed_threshold(n_seeds: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided threshold, in standard errors, for the mean of `n_seeds` paired differences.

    t_{(1 + confidence) / 2, n_seeds - 1}: Student's t with n_seeds − 1
    degrees of freedom (12.706 at 2 seeds, 4.303 at 3, 2.776 at 5). A mean
    beyond it is distinguishable from 0 at that confidence; |mean| / SE is
    then a paired t statistic. Needs at least 2 seeds (one has no SE).
    """
    from scipy.stats import t

    if n_seeds < 2:
        raise ValueError(f"a threshold over seeds needs at least 2 seeds, got {n_seeds}")
    return float(t.ppf((1 + confidence) / 2, n_seeds - 1))


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval of the proportion successes / n; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 or n successes one bound is exactly 0 or 1 (centre and half agree up to rounding).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def macro_f1_per_row_set(labels: np.ndarray, predictions: np.ndarray, n_labels: int) -> np.ndarray:
    """Macro-F1 of each row of the [B, n] label / prediction matrices (one resample per row), over the
    labels that resample has or predicts; F1 of a label with no true positive is 0 (sklearn's
    zero_division=0)."""
    b = labels.shape[0]
    offsets = (np.arange(b) * n_labels)[:, None]

    def counts(values: np.ndarray) -> np.ndarray:
        return np.bincount((values + offsets).ravel(), minlength=b * n_labels).reshape(b, n_labels)

    hit = labels == predictions
    true_positive = np.bincount((labels + offsets)[hit], minlength=b * n_labels).reshape(b, n_labels)
    support = counts(labels)
    predicted = counts(predictions)
    denominator = support + predicted  # 2 tp + fp + fn
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros((b, n_labels)), where=denominator > 0)
    present = denominator > 0
    return np.where(present.any(axis=1), (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1), 0.0)


def bootstrap_macro_f1_interval(
    labels: Sequence[int],
    predictions: Sequence[int],
    n_labels: int,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap interval of macro-F1 over the rows (module docstring); (0, 1) without rows."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    n = len(labels)
    if n == 0:
        return 0.0, 1.0
    rng = np.random.default_rng(seed)
    values = []
    chunk = max(1, 2_000_000 // n)  # resamples per batch: bounded memory for large test splits
    for start in range(0, resamples, chunk):
        index = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        values.append(macro_f1_per_row_set(labels[index], predictions[index], n_labels))
    scores = np.concatenate(values)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(scores, [tail, 1.0 - tail])
    return float(low), float(high)
