"""`ProbeEvaluator`: language-identification accuracy as an evaluation metric while fine-tuning."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from langtrainer import defaults
from langtrainer.errors import UserError

from langtrainer.analysis.embeddings import FEATURES, extract_embeddings
from langtrainer.analysis.probe.core import PAPER_C, _check_inputs, probe_language
from langtrainer.analysis.probe.texts import _clean_frame
from langtrainer.data.stratified import sample_per_language
from langtrainer.training.evaluator import Evaluator



class ProbeEvaluator(Evaluator):
    """Language-identification accuracy as an evaluation metric during fine-tuning.

    LangTrainer calls `compute_eval_metrics` inside `evaluate()` and logs the
    returned keys with the `eval_` prefix (eval_lid_accuracy,
    eval_lid_accuracy_std), so the probe is logged like any other metric.
    The sample (texts, languages) is fixed at construction so that numbers
    are comparable across evaluations.
    """

    def __init__(
        self,
        texts: Sequence[str],
        languages: Sequence[str],
        text_pairs: Sequence[str] | None = None,
        C: float = PAPER_C,
        folds: int = 5,
        seed: int = 0,
        feature: str = "first-token",
        layer: int = -1,
        batch_size: int = 64,
        max_length: int = 512,
        max_iter: int = defaults.PROBE_MAX_ITER,
        standardize: bool = False,
        metric_prefix: str = "lid",
    ):
        self.texts = [str(t) for t in texts]
        self.languages = [str(lang) for lang in languages]
        self.text_pairs = [str(t) for t in text_pairs] if text_pairs is not None else None
        if len(self.texts) != len(self.languages):
            raise UserError(f"{len(self.texts)} texts but {len(self.languages)} languages")
        _check_inputs(np.zeros((len(self.texts), 1)), self.languages, folds)
        if feature not in FEATURES:
            raise UserError(f"unknown feature {feature!r}; choose one of {', '.join(FEATURES)}")
        self.C, self.folds, self.seed = C, folds, seed
        self.feature, self.layer = feature, int(layer)
        self.batch_size, self.max_length = batch_size, max_length
        self.max_iter, self.standardize = max_iter, standardize
        self.metric_prefix = metric_prefix

    @classmethod
    def from_frame(cls, frame, per_language: int = 200, seed: int = 0, **kwargs) -> "ProbeEvaluator":
        """A callback on up to `per_language` rows per language of a DataFrame or datasets.Dataset."""
        if not isinstance(frame, pd.DataFrame):
            frame = frame.to_pandas()
        sample = sample_per_language(_clean_frame(frame, "probe sample"), per_language, seed)
        pairs = sample["text_pair"].tolist() if "text_pair" in sample.columns else None
        return cls(sample["text"].tolist(), sample["language"].tolist(), text_pairs=pairs, seed=seed, **kwargs)

    def compute_eval_metrics(self, model, tokenizer) -> dict[str, float]:
        if tokenizer is None:
            raise UserError("ProbeEvaluator needs the tokenizer (pass processing_class to the trainer)")
        was_training = model.training
        try:
            features = extract_embeddings(
                model,
                tokenizer,
                self.texts,
                text_pairs=self.text_pairs,
                layers=[self.layer],
                feature=self.feature,  # type: ignore[arg-type]
                batch_size=self.batch_size,
                max_length=self.max_length,
                fast=False,  # the weights change between evaluations: an export each time would cost more
            )[self.layer]
        finally:
            model.train(was_training)
        result = probe_language(
            features,
            self.languages,
            C=self.C,
            folds=self.folds,
            seed=self.seed,
            max_iter=self.max_iter,
            standardize=self.standardize,
        )
        return {
            f"{self.metric_prefix}_accuracy": result.accuracy_mean,
            f"{self.metric_prefix}_accuracy_std": result.accuracy_std,
        }
