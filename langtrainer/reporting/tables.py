"""Per-language and per-group metric tables from metrics.json, in fairlearn's `MetricFrame.by_group` shape.

Rows are the languages (or language groups), columns the metrics: n,
accuracy, macro-F1 and the share of predictions per label; `difference`
is max − min of each metric over the rows (what `MetricFrame.difference()`
reports). The reader takes metrics.json's tidy `test` block (`by_language`,
`by_group`, `difference`) and, for runs written before that shape, the flat
Trainer keys (`accuracy_<lang>`, `pred_<lang>_<label>`), where n and
macro-F1 are unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd
from langtrainer.reporting.markdown import md_list, md_text

METRICS = ("n", "accuracy", "macro_f1")
SHARE_PREFIX = "share: "


@dataclass
class MetricTable:
    """One run's metrics by language or by group (`kind`)."""

    kind: str
    frame: pd.DataFrame  # index: the languages / groups; columns: METRICS + one "share: <label>" per label
    label_names: list[str]
    difference: dict[str, float] = field(default_factory=dict)

    def shares(self, unit: str) -> list[float]:
        """The unit's prediction shares in label order (NaN where unknown)."""
        return [float(self.frame.at[unit, SHARE_PREFIX + name]) for name in self.label_names]


def _flat_units(test: Mapping[str, Any], candidates: Sequence[str]) -> list[str]:
    return [unit for unit in candidates
            if f"accuracy_{unit}" in test or any(key.startswith(f"pred_{unit}_") for key in test)]


def metric_table(test: Mapping[str, Any], label_names: Sequence[str], kind: str = "language",
                 units: Sequence[str] | None = None) -> MetricTable | None:
    """The `test` (or `validation`) block of metrics.json as a MetricTable; None when it has no such rows.

    kind: "language" or "group". `units` orders the rows (and is needed to find
    them in the flat shape); rows in the tidy block but not in `units` follow.
    """
    if kind not in ("language", "group"):
        raise ValueError(f"kind must be 'language' or 'group', not {kind!r}")
    label_names = [str(name) for name in label_names]
    tidy = test.get(f"by_{kind}")
    rows: dict[str, dict[str, float]] = {}
    if isinstance(tidy, Mapping) and tidy:
        order = [u for u in (units or []) if u in tidy] + [u for u in tidy if u not in (units or [])]
        for unit in order:
            block = tidy[unit] or {}
            shares = block.get("prediction_shares") or {}
            rows[str(unit)] = {
                "n": _number(block.get("n")),
                "accuracy": _number(block.get("accuracy")),
                "macro_f1": _number(block.get("macro_f1")),
                **{SHARE_PREFIX + name: _number(shares.get(name)) for name in label_names},
            }
    else:
        for unit in _flat_units(test, units or []):
            rows[str(unit)] = {
                "n": math.nan,
                "accuracy": _number(test.get(f"accuracy_{unit}")),
                "macro_f1": math.nan,
                **{SHARE_PREFIX + name: _number(test.get(f"pred_{unit}_{name}")) for name in label_names},
            }
    if not rows:
        return None
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = kind
    difference = {}
    given = test.get("difference") if kind == "language" else None
    for metric in ("accuracy", "macro_f1"):
        if isinstance(given, Mapping) and metric in given:
            difference[metric] = _number(given[metric])
        else:
            values = frame[metric].dropna()
            difference[metric] = float(values.max() - values.min()) if len(values) else math.nan
    return MetricTable(kind=kind, frame=frame, label_names=label_names, difference=difference)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _cell(value: float, fmt: str) -> str:
    return "–" if value is None or math.isnan(value) else format(value, fmt)


def to_markdown(table: MetricTable, favoured: Mapping[str, Sequence[int]] | None = None,
                members: Mapping[str, Sequence[str]] | None = None) -> str:
    """A markdown table: one row per unit, then the max − min difference row.

    Shares are percentages; with `favoured` (unit -> label indices) those
    shares are bold; `members` (group -> languages) is shown after a group's name.
    """
    header = [table.kind, "n", "accuracy", "macro-F1"] + [f"predicted {md_text(name)} %" for name in table.label_names]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for unit, row in table.frame.iterrows():
        name = (f"{md_text(unit)} ({md_list(members[unit], ',')})" if members and unit in members
                else md_text(unit))
        bold = set((favoured or {}).get(unit, []))
        shares = []
        for c, label in enumerate(table.label_names):
            text = _cell(100 * row[SHARE_PREFIX + label], ".1f")
            shares.append(f"**{text}**" if c in bold and text != "–" else text)
        n = "–" if math.isnan(row["n"]) else str(int(row["n"]))
        lines.append("| " + " | ".join([name, n, _cell(row["accuracy"], ".3f"), _cell(row["macro_f1"], ".3f")]
                                       + shares) + " |")
    diff = ["max − min", "", _cell(table.difference.get("accuracy", math.nan), ".3f"),
            _cell(table.difference.get("macro_f1", math.nan), ".3f")]
    share_diff = []
    for label in table.label_names:
        values = table.frame[SHARE_PREFIX + label].dropna()
        share_diff.append(_cell(100 * float(values.max() - values.min()), ".1f") if len(values) else "–")
    lines.append("| " + " | ".join(diff + share_diff) + " |")
    return "\n".join(lines)
