"""Per-language class weights (paper Section 2.4, eq. 2).

    w_{c,l} = n_l / (C * n_{c,l})

n_l is the number of samples in language l, n_{c,l} those of label c in
language l, C the number of classes. Within one language this is exactly
scikit-learn's `compute_class_weight("balanced")`; with `per_language=False`
it is the ordinary (global) class weight, one row repeated per language.

Normalisation of the other schemes: eq. 2 makes the weights of a language
average to 1 over that language's samples (sum_c n_{c,l} w_{c,l} = n_l when
every label occurs). `sqrt_inverse` (1/sqrt(n_{c,l})) and `effective_number`
((1 - beta) / (1 - beta^n_{c,l}), Cui et al. 2019) are scaled per language to
the same property, so switching scheme does not change the loss scale.
A (language, label) cell with no samples gets weight 0: no sample uses it.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from langtrainer.errors import UserError

log = logging.getLogger(__name__)

SCHEMES = ("inverse", "sqrt_inverse", "effective_number")


def cell_counts(labels: Sequence[int], languages: Sequence[str], n_labels: int,
                language_order: Sequence[str]) -> np.ndarray:
    """[L, C] number of samples per (language, label), vectorised."""
    labels = np.asarray(labels, dtype=np.int64)
    languages = np.asarray(languages, dtype=object)
    if labels.shape != languages.shape:
        raise ValueError(f"{len(labels)} labels but {len(languages)} languages")
    order = list(language_order)
    lookup = {lang: i for i, lang in enumerate(order)}
    unique, inverse = np.unique(languages.astype(str), return_inverse=True)
    unknown = [lang for lang in unique if lang not in lookup]
    if unknown:
        raise UserError(f"language '{unknown[0]}' is not one of {', '.join(order)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_labels):
        raise UserError(f"labels must be in 0..{n_labels - 1}, found {labels.min()}..{labels.max()}")
    lang_idx = np.array([lookup[lang] for lang in unique], dtype=np.int64)[inverse]
    flat = np.bincount(lang_idx * n_labels + labels, minlength=len(order) * n_labels)
    return flat.reshape(len(order), n_labels)


def weights_from_counts(counts: np.ndarray, scheme: str = "inverse", beta: float = 0.999) -> np.ndarray:
    """[L, C] weights from [L, C] counts (each row weighted on its own)."""
    if scheme not in SCHEMES:
        raise UserError(f"unknown weight scheme '{scheme}' (choose from {', '.join(SCHEMES)})")
    counts = np.asarray(counts, dtype=np.float64)
    n_labels = counts.shape[1]
    present = counts > 0
    safe = np.where(present, counts, 1.0)
    n_lang = counts.sum(axis=1, keepdims=True)
    if scheme == "inverse":
        weights = n_lang / (n_labels * safe)
    else:
        if scheme == "sqrt_inverse":
            raw = 1.0 / np.sqrt(safe)
        else:
            if not 0.0 < beta < 1.0:
                raise UserError(f"effective_number_beta must be in (0, 1), got {beta}")
            raw = (1.0 - beta) / (1.0 - np.power(beta, safe))
        raw = np.where(present, raw, 0.0)
        mass = (counts * raw).sum(axis=1, keepdims=True)
        weights = raw * np.divide(n_lang, mass, out=np.zeros_like(mass), where=mass > 0)
    return np.where(present, weights, 0.0)


def class_weight_table(
    labels: Sequence[int],
    languages: Sequence[str],
    n_labels: int,
    language_order: Sequence[str],
    scheme: str = "inverse",
    beta: float = 0.999,
    per_language: bool = True,
) -> np.ndarray:
    """[n_languages, n_labels] weights; row l, column c is w_{c,l} (eq. 2 for "inverse").

    per_language=False pools all languages (the traditional class weights)
    and repeats that row for every language.
    """
    counts = cell_counts(labels, languages, n_labels, language_order)
    if per_language:
        weights = weights_from_counts(counts, scheme, beta)
    else:
        weights = np.repeat(weights_from_counts(counts.sum(axis=0, keepdims=True), scheme, beta), len(counts), axis=0)
        counts = np.repeat(counts.sum(axis=0, keepdims=True), len(counts), axis=0)
    empty = np.argwhere((counts == 0) & (counts.sum(axis=1, keepdims=True) > 0))
    for lang, label in empty:
        log.warning("no samples of label %d in language '%s': its class weight is 0", label, language_order[lang])
    return weights


def sample_weights(table: np.ndarray, labels: Sequence[int], languages: Sequence[str],
                   language_order: Sequence[str]) -> np.ndarray:
    """Per-sample weights w_{label_i, language_i} looked up in `table`."""
    lookup = {lang: i for i, lang in enumerate(language_order)}
    unique, inverse = np.unique(np.asarray(languages, dtype=object).astype(str), return_inverse=True)
    missing = [lang for lang in unique if lang not in lookup]
    if missing:
        raise UserError(f"language '{missing[0]}' is not one of {', '.join(language_order)}")
    lang_idx = np.array([lookup[lang] for lang in unique], dtype=np.int64)[inverse]
    return table[lang_idx, np.asarray(labels, dtype=np.int64)]
