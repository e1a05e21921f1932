"""The probe's maths: a cross-validated logistic regression from features to languages (Section 2.2).

How identifiable is the input language from a model's sentence features? A
logistic regression predicts the language from first-token embeddings, scored
by stratified k-fold cross-validation. A model that learned "language =>
label" from language-specific class imbalance separates languages more.

Regularisation: the paper's text says "sklearn's default parameters"
(C = 1.0), but its released code fits `LogisticRegressionCV(Cs=1, cv=5,
max_iter=1000)`, and `Cs=1` means the single value C = 1e-4, a heavily
regularised probe. That is what produces its accuracies between 0.3 and 0.93;
with C = 1.0 the probe saturates near 1.0 even on a pretrained model and shows
no difference. So C defaults to 1e-4 here, and `probe_c_sweep` reports the
accuracy over a range of C so a user sees where two models differ.

Features are not standardised by default, as in the paper's code (with C this
small, standardising changes the result a lot, because the penalty then acts
on a different scale); `standardize=True` puts a StandardScaler, fitted on the
training folds only, in front of the regression.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from langtrainer import defaults
from langtrainer.errors import UserError, setting_error
from langtrainer.recipe import check_number

logger = logging.getLogger(__name__)

PAPER_C = defaults.PROBE_C
DEFAULT_C_SWEEP = defaults.PROBE_C_SWEEP


@dataclass
class ProbeResult:
    """Cross-validated language-identification scores for one feature matrix.

    accuracy_std is the population standard deviation over folds (as
    `cross_val_score(...).std()`). Recall and the confusion matrix pool the
    out-of-fold predictions; confusion rows are true languages, columns
    predicted, both in `languages` order. chance_accuracy is the share of the
    most frequent language (what a constant guess scores).
    """

    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: list[float]
    languages: list[str]
    n_per_language: dict[str, int]
    recall_per_language: dict[str, float]
    confusion: list[list[int]]
    chance_accuracy: float
    converged: bool
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def at_chance(accuracy_mean: float | None, accuracy_std: float | None, chance_accuracy: float | None) -> bool:
    """Whether a probe is at chance: its accuracy is within 2 fold standard deviations of always guessing the
    commonest language (`ProbeResult.chance_accuracy`). False when the chance level is unknown.

    At its C, the model's feature then shows no language signal the probe
    can use: a floor. What a difference to it means is `difference_measured`.
    """
    if accuracy_mean is None or chance_accuracy is None:
        return False
    return float(accuracy_mean) <= float(chance_accuracy) + 2 * float(accuracy_std or 0.0)


def difference_measured(at_chance_pairs: Iterable[tuple[bool, bool]], reference_at_chance: bool = False) -> bool:
    """Whether the difference between two models' probe accuracies measures anything.

    `at_chance_pairs`: per seed, whether each of the two models' probes is at
    chance; `reference_at_chance`: whether the pretrained model's is. A model
    at chance against one above it is a real difference (one feature shows
    language, the other none the probe can use). Two models at chance in the
    same seed compare two floors. And when the pretrained model, which holds
    its languages apart (0.99 on the external corpus), is at chance too, the
    probe cannot see language at this C on this many texts at all: a strong
    penalty on a few hundred uneven texts predicts the commonest language
    for every text, whatever the model. Neither decides anything.
    """
    return not reference_at_chance and not any(a and b for a, b in at_chance_pairs)


def block_at_chance(block: Any) -> bool:
    """`at_chance` of a probe report's model block (`artifacts.ProbeModelBlock`, or a `ProbeReport`)."""
    block = getattr(block, "block", block)
    return at_chance(block.accuracy_mean, block.accuracy_std, (block.result or {}).get("chance_accuracy"))


def _check_inputs(features: np.ndarray, languages: Sequence[str], folds: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2:
        raise UserError(f"features must be a 2-D array [n, hidden], got shape {X.shape}")
    labels = [str(lang) for lang in languages]
    if len(labels) != X.shape[0]:
        raise UserError(f"{X.shape[0]} feature rows but {len(labels)} languages")
    if not np.isfinite(X).all():
        raise UserError("features contain NaN or infinite values")
    names = sorted(set(labels))
    if len(names) < 2:
        raise UserError(f"the probe needs at least 2 languages, got {names}")
    check_number("analysis.probe.folds", folds, "folds")
    y = np.array([names.index(lang) for lang in labels])
    counts = np.bincount(y, minlength=len(names))
    if counts.min() < folds:
        short = names[int(counts.argmin())]
        raise setting_error(
            f"language {short!r} has {int(counts.min())} examples, fewer than folds={folds}: "
            "add examples or lower {folds}", "folds")
    return X, y, names


def _make_classifier(C: float, max_iter: int, standardize: bool, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regression = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    return make_pipeline(StandardScaler(), regression) if standardize else regression


def probe_language(
    features: np.ndarray,
    languages: Sequence[str],
    C: float = PAPER_C,
    folds: int = 5,
    seed: int = 0,
    max_iter: int = defaults.PROBE_MAX_ITER,
    standardize: bool = False,
    blas_threads: int | None = 1,
) -> ProbeResult:
    """Language-identification accuracy of a logistic regression under stratified k-fold CV.

    Folds are shuffled with `seed`, so the same inputs give the same numbers.
    The fits use `blas_threads` BLAS threads (None: the library's default):
    on these small matrices more threads only wait and contend, 3-10x slower
    on 2 cores (bench/bench_probe_blas.py).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    check_number("analysis.probe.C", C, "C")
    X, y, names = _check_inputs(features, languages, folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted = np.empty_like(y)
    fold_accuracies: list[float] = []
    converged = True
    with threadpool_limits(blas_threads, user_api="blas"):
        for train_idx, test_idx in splitter.split(X, y):
            classifier = _make_classifier(C, max_iter, standardize, seed)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                classifier.fit(X[train_idx], y[train_idx])
            if any(issubclass(w.category, ConvergenceWarning) for w in caught):
                converged = False
            predicted[test_idx] = classifier.predict(X[test_idx])
            fold_accuracies.append(float(np.mean(predicted[test_idx] == y[test_idx])))
    if not converged:
        logger.warning("logistic regression did not converge in %d iterations (C=%g)", max_iter, C)

    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    counts = confusion.sum(axis=1)
    return ProbeResult(
        accuracy_mean=float(np.mean(fold_accuracies)),
        accuracy_std=float(np.std(fold_accuracies)),
        fold_accuracies=fold_accuracies,
        languages=names,
        n_per_language={name: int(counts[i]) for i, name in enumerate(names)},
        recall_per_language={name: float(confusion[i, i] / counts[i]) for i, name in enumerate(names)},
        confusion=confusion.tolist(),
        chance_accuracy=float(counts.max() / counts.sum()),
        converged=converged,
        settings={
            "C": float(C),
            "folds": int(folds),
            "seed": int(seed),
            "max_iter": int(max_iter),
            "standardize": bool(standardize),
            "classifier": "sklearn LogisticRegression (lbfgs, multinomial)",
            "cv": "StratifiedKFold(shuffle=True, random_state=seed)",
        },
    )


def probe_c_sweep(
    features: np.ndarray,
    languages: Sequence[str],
    Cs: Sequence[float] = DEFAULT_C_SWEEP,
    folds: int = 5,
    seed: int = 0,
    max_iter: int = defaults.PROBE_MAX_ITER,
    standardize: bool = False,
) -> list[ProbeResult]:
    """`probe_language` at each C (same folds), to show where a probe saturates."""
    return [
        probe_language(features, languages, C=c, folds=folds, seed=seed, max_iter=max_iter, standardize=standardize)
        for c in Cs
    ]
