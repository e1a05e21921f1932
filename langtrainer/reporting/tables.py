"""Per-language and per-group metric tables from metrics.json, in fairlearn's `MetricFrame.by_group` shape.

Rows are the languages (or language groups), columns the metrics: n,
accuracy and macro-F1 with their 95 % intervals, and per label the true
share of the unit's test rows beside the share of its predictions;
`difference` is max − min of each metric over the rows (what
`MetricFrame.difference()` reports). On a natural split each language has its
own label mix, so the table's last row gives, per label, the spread of the
true shares beside that of the predicted ones: prediction shares that differ
by language mean a language cue only beyond what the true mix explains. The
reader takes metrics.json's tidy `test` block (`by_language`,
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
TRUE_PREFIX = "true: "
INTERVALS = ("accuracy_low", "accuracy_high", "macro_f1_low", "macro_f1_high")


@dataclass
class MetricTable:
    """One run's metrics by language or by group (`kind`)."""

    kind: str
    # index: the languages / groups; columns: METRICS, INTERVALS, one "share: <label>" (predicted) and one
    # "true: <label>" per label; NaN where a run's metrics.json lacks the number
    frame: pd.DataFrame
    label_names: list[str]
    difference: dict[str, float] = field(default_factory=dict)

    def shares(self, unit: str) -> list[float]:
        """The unit's prediction shares in label order (NaN where unknown)."""
        return [float(self.frame.at[unit, SHARE_PREFIX + name]) for name in self.label_names]

    def has_true_shares(self) -> bool:
        columns = [TRUE_PREFIX + name for name in self.label_names]
        return all(c in self.frame for c in columns) and bool(self.frame[columns].notna().all(axis=None))

    def has_intervals(self) -> bool:
        return all(c in self.frame for c in INTERVALS) and bool(self.frame[list(INTERVALS)].notna().any(axis=None))

    def spread(self, label: str, true: bool = False) -> float:
        """max − min over the units of `label`'s predicted (or, with `true`, true) share."""
        values = self.frame[(TRUE_PREFIX if true else SHARE_PREFIX) + label].dropna()
        return float(values.max() - values.min()) if len(values) else math.nan


def _flat_units(test: Mapping[str, Any], candidates: Sequence[str]) -> list[str]:
    return [unit for unit in candidates
            if f"accuracy_{unit}" in test or any(key.startswith(f"pred_{unit}_") for key in test)]


def metric_table(test: Any, label_names: Sequence[str], kind: str = "language",
                 units: Sequence[str] | None = None) -> MetricTable | None:
    """The `test` (or `validation`) block of metrics.json as a MetricTable; None when it has no such rows.

    kind: "language" or "group". `units` orders the rows (and is needed to find
    them in the flat shape); rows in the tidy block but not in `units` follow.
    """
    if kind not in ("language", "group"):
        raise ValueError(f"kind must be 'language' or 'group', not {kind!r}")
    test = test.to_dict() if hasattr(test, "to_dict") else test  # an artifacts.MetricFrame: its JSON shape
    label_names = [str(name) for name in label_names]
    tidy = test.get(f"by_{kind}")
    rows: dict[str, dict[str, float]] = {}
    if isinstance(tidy, Mapping) and tidy:
        order = [u for u in (units or []) if u in tidy] + [u for u in tidy if u not in (units or [])]
        for unit in order:
            block = tidy[unit] or {}
            shares = block.get("prediction_shares") or {}
            true = block.get("label_shares") or {}
            accuracy_ci = block.get("accuracy_ci") or (None, None)
            macro_f1_ci = block.get("macro_f1_ci") or (None, None)
            rows[str(unit)] = {
                "n": _number(block.get("n")),
                "accuracy": _number(block.get("accuracy")),
                "macro_f1": _number(block.get("macro_f1")),
                "accuracy_low": _number(accuracy_ci[0]), "accuracy_high": _number(accuracy_ci[1]),
                "macro_f1_low": _number(macro_f1_ci[0]), "macro_f1_high": _number(macro_f1_ci[1]),
                **{SHARE_PREFIX + name: _number(shares.get(name)) for name in label_names},
                **{TRUE_PREFIX + name: _number(true.get(name)) for name in label_names},
            }
    else:
        for unit in _flat_units(test, units or []):
            rows[str(unit)] = {
                "n": math.nan,
                "accuracy": _number(test.get(f"accuracy_{unit}")),
                "macro_f1": math.nan,
                **{column: math.nan for column in INTERVALS},
                **{SHARE_PREFIX + name: _number(test.get(f"pred_{unit}_{name}")) for name in label_names},
                **{TRUE_PREFIX + name: math.nan for name in label_names},
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


def _with_interval(value: float, low: float, high: float) -> str:
    text = _cell(value, ".3f")
    if text == "–" or math.isnan(low) or math.isnan(high):
        return text
    return f"{text} [{low:.2f}, {high:.2f}]"


def to_markdown(table: MetricTable, favoured: Mapping[str, Sequence[int]] | None = None,
                members: Mapping[str, Sequence[str]] | None = None) -> str:
    """A markdown table: one row per unit, then the max − min row (`share_note` says how to read it).

    Accuracy and macro-F1 carry their 95 % interval where the run recorded one. Label cells are
    "true / predicted" shares in %, or the predicted share alone when the true one is unknown;
    with `favoured` (unit -> label indices) the predicted share is bold; `members` (group ->
    languages) is shown after a group's name.
    """
    true_known = table.has_true_shares()
    label_header = [f"{md_text(name)} % true / predicted" if true_known else f"predicted {md_text(name)} %"
                    for name in table.label_names]
    ci = " [95 % CI]" if table.has_intervals() else ""
    header = [table.kind, "n", f"accuracy{ci}", f"macro-F1{ci}"] + label_header
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for unit, row in table.frame.iterrows():
        name = (f"{md_text(unit)} ({md_list(members[unit], ',')})" if members and unit in members
                else md_text(unit))
        bold = set((favoured or {}).get(unit, []))
        shares = []
        for c, label in enumerate(table.label_names):
            text = _cell(100 * row[SHARE_PREFIX + label], ".1f")
            text = f"**{text}**" if c in bold and text != "–" else text
            shares.append(f"{_cell(100 * row[TRUE_PREFIX + label], '.1f')} / {text}" if true_known else text)
        n = "–" if math.isnan(row["n"]) else str(int(row["n"]))
        lines.append("| " + " | ".join([
            name, n,
            _with_interval(row["accuracy"], row.get("accuracy_low", math.nan), row.get("accuracy_high", math.nan)),
            _with_interval(row["macro_f1"], row.get("macro_f1_low", math.nan), row.get("macro_f1_high", math.nan)),
        ] + shares) + " |")
    diff = ["max − min", "", _cell(table.difference.get("accuracy", math.nan), ".3f"),
            _cell(table.difference.get("macro_f1", math.nan), ".3f")]
    share_diff = [(f"{_cell(100 * table.spread(label, true=True), '.1f')} / " if true_known else "")
                  + _cell(100 * table.spread(label), ".1f") for label in table.label_names]
    lines.append("| " + " | ".join(diff + share_diff) + " |")
    return "\n".join(lines)


def share_note(table: MetricTable) -> str:
    """The sentence that says how to read the table's label cells and last row, true for this table."""
    unit = "language" if table.kind == "language" else "group"
    if table.has_true_shares():
        return (f"Label cells: the true share of the {unit}'s test rows / the share of its predictions (%); the "
                f"last row gives the max − min over {unit}s of each. Each {unit} has its own label mix, so "
                f"prediction shares that differ between {unit}s mean a language cue only beyond what the true "
                "label mix explains; language_prediction_cmi measures that excess (0 for a model that ignores the "
                "language, and for one whose predictions, within each true label, are the same in every "
                "language).")
    return (f"Label cells: the share of the {unit}'s predictions (%); this run did not record its test rows' true "
            f"label shares, so prediction shares that differ between {unit}s may be no more than each {unit}'s own "
            "label mix. Last row: max − min over " + unit + "s.")


def cmi_sentence(test: Mapping[str, Any]) -> str | None:
    """metrics.json's language_prediction_cmi in words, with its permutation test where recorded."""
    value = test.get("language_prediction_cmi")
    if not isinstance(value, (int, float)):
        return None
    text = (f"Language dependence beyond the label mix: I(language; prediction | true label) = {value:.4f} nats "
            "(0 when, within each true label, every language gets the same prediction mix)")
    p = test.get("language_prediction_cmi_p_value")
    if not isinstance(p, (int, float)):
        return text + "."
    permutations = test.get("language_prediction_cmi_permutations")
    test_text = f"permutation p = {p:.3g}, {permutations} permutations of the languages within each true label"
    if p < 0.05:
        return f"{text}; {test_text}: the predictions depend on the language beyond each language's label mix."
    if value < 1e-12:
        return f"{text}: the predictions depend on the language only through the label mix."
    return f"{text}; {test_text}: not decided, no evidence of a dependence beyond the label mix."
