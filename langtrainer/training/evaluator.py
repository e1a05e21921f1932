"""`Evaluator`: a metric computed inside `LangTrainer.evaluate()`, before the Trainer logs.

Metrics a callback adds in `on_evaluate` never reach the loggers (it runs
after they logged); an evaluator's keys are added to the evaluation's metrics
(prefixed `eval_`), so they are logged by every logger and can select the best
checkpoint. The probe (`analysis.probe.ProbeEvaluator`) and the SHAP summary
(`analysis.shap.ShapEvaluator`) are evaluators; pass any to
`LangTrainer(evaluators=[...])`.
"""

from __future__ import annotations

import abc
from typing import Any


class Evaluator(abc.ABC):
    """Numbers of the model being trained, computed at every evaluation on the main process."""

    @abc.abstractmethod
    def compute_eval_metrics(self, model: Any, tokenizer: Any) -> dict[str, float]:
        """Metric name (without the eval_ prefix) -> value; the model is in eval mode, unwrapped."""
