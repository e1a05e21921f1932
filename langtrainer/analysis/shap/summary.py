"""Summary numbers of SHAP values: per-language tables and training-time metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from langtrainer.defaults import SHAP_THRESHOLD

if TYPE_CHECKING:
    import pandas as pd

    from langtrainer.analysis.shap.engine import TokenAttribution
    from langtrainer.analysis.shap.store import ShapResult


def language_summary(result: "ShapResult") -> "pd.DataFrame":
    """One row per language: examples, mean tokens per example, mean |SHAP| over (token, class) values."""
    import pandas as pd

    rows = []
    for language, group in result.examples.groupby("language"):
        n_tokens = [len(t) for t in group["token_ids"]]
        n_values = sum(v.size for v in group["values"])
        mean_abs = sum(float(np.abs(v).sum()) for v in group["values"]) / max(n_values, 1)
        rows.append({"language": str(language), "examples": len(group),
                     "mean_tokens": sum(n_tokens) / len(n_tokens), "mean_abs_shap": mean_abs})
    return pd.DataFrame(rows, columns=["language", "examples", "mean_tokens", "mean_abs_shap"])


def shap_summary_metrics(
    attributions: Sequence[TokenAttribution], languages: Sequence[str], threshold: float = SHAP_THRESHOLD, prefix: str = "shap"
) -> dict[str, float]:
    """Mean |SHAP| of neutral token values per language and the mean base-value spread."""
    metrics: dict[str, float] = {}
    for language in sorted(set(languages)):
        values = np.concatenate(
            [a.values.reshape(-1) for a, lang in zip(attributions, languages) if lang == language]
        )
        neutral = np.abs(values[np.abs(values) <= threshold])
        metrics[f"{prefix}_neutral_abs_{language}"] = float(neutral.mean()) if neutral.size else 0.0
    spreads = [float(a.base_values.max() - a.base_values.min()) for a in attributions]
    metrics[f"{prefix}_base_value_spread"] = float(np.mean(spreads))
    return metrics
