"""The paper's numbers (Tables 2-4, mBERT), shown only beside runs whose recipe names the experiment
they stand in for (`paper_analogue`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langtrainer.artifacts import RunMetrics


@dataclass(frozen=True)
class PaperNumbers:
    """The paper's mBERT numbers for one data set: shown only beside runs whose recipe names it."""

    dataset: str
    accuracy: dict[str, float]  # Table 3
    probe: dict[str, tuple[float, float]]  # Table 4: (original test set, Wikipedia)
    table2: dict[str, list[float]]  # Table 2: the imbalanced model's test predictions per group (%)
    table2_labels: str


PAPER = {
    "amazon": PaperNumbers(
        dataset="Amazon reviews",
        accuracy={"balanced": 0.580, "imbalanced": 0.556, "imbalanced+cw": 0.569},
        probe={"balanced": (0.613, 0.480), "imbalanced": (0.847, 0.646), "imbalanced+cw": (0.709, 0.569)},
        table2={"FR,ES,JA": [13.9, 20.6, 20.1, 19.6, 25.8], "DE,EN,ZH": [27.3, 20.7, 16.9, 20.4, 14.7]},
        table2_labels="stars 1–5",
    ),
    "xnli": PaperNumbers(
        dataset="XNLI",
        accuracy={"balanced": 0.810, "imbalanced": 0.783, "imbalanced+cw": 0.795},
        probe={"balanced": (0.615, 0.614), "imbalanced": (0.928, 0.899), "imbalanced+cw": (0.585, 0.679)},
        table2={"FR": [32.8, 39.0, 28.1], "EN": [23.1, 35.8, 41.1]},
        table2_labels="entailment / neutral / contradiction",
    ),
}


ANALOGUE_BY_NAME = (("demo", "amazon"), ("amazon", "amazon"), ("xnli", "xnli"))


def paper_analogue_of(metrics: RunMetrics, recipe: dict[str, Any] | None) -> str | None:
    """The recipe's `paper_analogue`; for runs from before that field, the shipped recipes' names."""
    if recipe is not None and "paper_analogue" in recipe:
        value = recipe.get("paper_analogue")
        return value if value in PAPER else None
    name = str(metrics.recipe or "")
    for prefix, analogue in ANALOGUE_BY_NAME:
        if name == prefix or name.startswith(prefix + "_"):
            return analogue
    return None
