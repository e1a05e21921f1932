"""`ShapEvaluator`: SHAP summary numbers as evaluation metrics while fine-tuning."""

from __future__ import annotations

from typing import Sequence

from langtrainer.analysis.shap.engine import explain
from langtrainer.analysis.shap.summary import shap_summary_metrics
from langtrainer.data.stratified import stratified_subsample
from langtrainer.defaults import SHAP_BATCH_SIZE, SHAP_THRESHOLD
from langtrainer.errors import UserError
from langtrainer.training.evaluator import Evaluator


class ShapEvaluator(Evaluator):
    """SHAP numbers as evaluation metrics during fine-tuning, on a small fixed sample.

    Reports `shap_neutral_abs_<lang>` (mean |SHAP| of the neutral token
    values, |S| <= threshold, of the model being trained: with no balanced
    reference at training time, neutral is judged by the model itself) and
    `shap_base_value_spread` (mean over examples of max - min over classes
    of the base value, which the masked-input entropy term of Annex A.3
    drives towards 0). LangTrainer logs them with the `eval_` prefix.
    """

    def __init__(
        self,
        texts: Sequence[str],
        languages: Sequence[str],
        text_pairs: Sequence[str] | None = None,
        max_evals: int = 64,
        batch_size: int = SHAP_BATCH_SIZE,
        threshold: float = SHAP_THRESHOLD,
        metric_prefix: str = "shap",
    ):
        if len(texts) != len(languages):
            raise UserError(f"{len(texts)} texts but {len(languages)} languages")
        if not texts:
            raise UserError("ShapEvaluator needs at least one text")
        self.texts = [str(t) for t in texts]
        self.languages = [str(x) for x in languages]
        self.text_pairs = [str(t) for t in text_pairs] if text_pairs is not None else None
        self.max_evals, self.batch_size, self.threshold = int(max_evals), int(batch_size), float(threshold)
        self.metric_prefix = metric_prefix

    @classmethod
    def from_frame(cls, frame, per_language: int = 4, seed: int = 0, **kwargs) -> "ShapEvaluator":
        """A callback on `per_language` rows per language (label-stratified) of a DataFrame or Dataset."""
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            frame = frame.to_pandas()
        n_languages = frame["language"].nunique()
        by = ("language", "label") if "label" in frame.columns else ("language",)
        sample = stratified_subsample(frame, per_language * n_languages, seed, by=by)
        pairs = sample["text_pair"].tolist() if "text_pair" in sample.columns else None
        return cls(sample["text"].tolist(), sample["language"].tolist(), text_pairs=pairs, **kwargs)

    def compute_eval_metrics(self, model, tokenizer) -> dict[str, float]:
        if tokenizer is None:
            raise UserError("ShapCallback needs the tokenizer (pass processing_class to the trainer)")
        # fast=False: the weights change between evaluations, an export per evaluation would cost more than it saves
        attributions = explain(
            model, tokenizer, self.texts, self.text_pairs, max_evals=self.max_evals, batch_size=self.batch_size,
            fast=False,
        )
        return shap_summary_metrics(attributions, self.languages, self.threshold, self.metric_prefix)
