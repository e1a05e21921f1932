"""Cumulative difference in SHAP values between two models (paper Section 2.3, Figure 1).

For each example and class c, the tokens are split by the balanced model's
value S_bal(t, c): positive (> threshold), negative (< -threshold), neutral
(otherwise). For each set T the cumulative difference is
sum_{t in T} S_imbal(t, c) - S_bal(t, c); the base-value difference is
b_imbal(c) - b_bal(c). These are averaged per language (and per language
group), as in Figure 1. Every token the explainer attributes counts,
special tokens included (they take part in eq. 1's additivity).
Annex A.4 picked 0.01 because it gives a ~20/60/20 neg./neutral/pos. split;
`token_split` reports that split at 0.01, 0.001 and 0.05.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from langtrainer.analysis.attribution import ShapResult, find_shap_dir, load_shap_result
from langtrainer.atomic import write_bytes, write_json, write_text
from langtrainer.errors import UserError

log = logging.getLogger(__name__)

CATEGORIES = ("negative", "neutral", "positive")
BASE = "base"
SPLIT_THRESHOLDS = (0.001, 0.01, 0.05)


@dataclass
class ShapDiffResult:
    """Tidy tables of the cumulative SHAP difference.

    per_example: id, language, group, label, class, class_name, category
      (negative / neutral / positive / base), n_tokens, difference.
    by_language: class, class_name, language, group, category, mean, std, n.
    by_group: class, class_name, group, category, mean, std, n (empty without groups).
    token_split: threshold -> {negative, neutral, positive} proportions of the
      balanced model's (token, class) values.
    """

    per_example: pd.DataFrame
    by_language: pd.DataFrame
    by_group: pd.DataFrame
    token_split: dict[float, dict[str, float]]
    threshold: float
    label_names: list[str]
    groups: dict[str, list[str]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _as_result(obj: ShapResult | str | os.PathLike) -> ShapResult:
    return obj if isinstance(obj, ShapResult) else load_shap_result(obj)


def _check_match(bal: ShapResult, imbal: ShapResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both results explain the same examples with the same tokens; return them aligned by id."""
    if bal.n_classes != imbal.n_classes:
        raise UserError(f"the balanced results have {bal.n_classes} classes, the imbalanced {imbal.n_classes}")
    a = bal.examples.set_index("id", drop=False)
    b = imbal.examples.set_index("id", drop=False)
    for example_id in a.index:
        if example_id not in b.index:
            raise UserError(f"example {example_id!r} is in the balanced results but not in the imbalanced ones")
        if not np.array_equal(a.at[example_id, "token_ids"], b.at[example_id, "token_ids"]):
            raise UserError(f"example {example_id!r} has different token ids in the two results (another tokenizer?)")
    for example_id in b.index:
        if example_id not in a.index:
            raise UserError(f"example {example_id!r} is in the imbalanced results but not in the balanced ones")
    return a, b.loc[a.index]


def _group_of(groups: Mapping[str, Sequence[str]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, languages in (groups or {}).items():
        for language in languages:
            if language in out:
                raise UserError(f"language {language!r} is in groups {out[language]!r} and {name!r}")
            out[str(language)] = str(name)
    return out


def token_split(values: Sequence[np.ndarray], threshold: float) -> dict[str, float]:
    """Proportions of negative / neutral / positive entries over all (token, class) values."""
    flat = np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in values]) if values else np.zeros(0)
    if flat.size == 0:
        return {c: 0.0 for c in CATEGORIES}
    return {
        "negative": float(np.mean(flat < -threshold)),
        "neutral": float(np.mean(np.abs(flat) <= threshold)),
        "positive": float(np.mean(flat > threshold)),
    }


def compute_shap_diff(
    bal: ShapResult | str | os.PathLike,
    imbal: ShapResult | str | os.PathLike,
    threshold: float = 0.01,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> ShapDiffResult:
    """Cumulative SHAP difference (imbal - bal) per example, class and token category, averaged per language."""
    if threshold < 0:
        raise UserError(f"threshold must be >= 0 (got {threshold})")
    bal, imbal = _as_result(bal), _as_result(imbal)
    a, b = _check_match(bal, imbal)
    group_of = _group_of(groups)
    label_names = list(bal.label_names)
    records = []
    for example_id in a.index:
        s_bal = np.asarray(a.at[example_id, "values"], dtype=np.float64)
        s_imbal = np.asarray(b.at[example_id, "values"], dtype=np.float64)
        delta = s_imbal - s_bal
        base_delta = np.asarray(b.at[example_id, "base_values"], np.float64) - np.asarray(
            a.at[example_id, "base_values"], np.float64
        )
        language = str(a.at[example_id, "language"])
        common = {
            "id": example_id,
            "language": language,
            "group": group_of.get(language),
            "label": int(a.at[example_id, "label"]),
        }
        for c in range(s_bal.shape[1]):
            sets = {
                "negative": s_bal[:, c] < -threshold,
                "neutral": np.abs(s_bal[:, c]) <= threshold,
                "positive": s_bal[:, c] > threshold,
            }
            for category, members in sets.items():
                records.append(
                    {**common, "class": c, "class_name": label_names[c], "category": category,
                     "n_tokens": int(members.sum()), "difference": float(delta[members, c].sum())}
                )
            records.append(
                {**common, "class": c, "class_name": label_names[c], "category": BASE,
                 "n_tokens": int(len(s_bal)), "difference": float(base_delta[c])}
            )
    per_example = pd.DataFrame.from_records(
        records, columns=["id", "language", "group", "label", "class", "class_name", "category", "n_tokens", "difference"]
    )
    by_language = _average(per_example, ["class", "class_name", "language", "group", "category"])
    if group_of:
        known = per_example[per_example["group"].notna()]
        by_group = _average(known, ["class", "class_name", "group", "category"])
    else:
        by_group = pd.DataFrame(columns=["class", "class_name", "group", "category", "mean", "std", "n"])
    split_thresholds = sorted(set(SPLIT_THRESHOLDS) | {float(threshold)})
    split = {t: token_split(list(a["values"]), t) for t in split_thresholds}
    return ShapDiffResult(
        per_example=per_example,
        by_language=by_language,
        by_group=by_group,
        token_split=split,
        threshold=float(threshold),
        label_names=label_names,
        groups={k: list(v) for k, v in groups.items()} if groups else None,
        meta={
            "n_examples": int(len(a)),
            "balanced": str(bal.path) if bal.path else None,
            "imbalanced": str(imbal.path) if imbal.path else None,
        },
    )


def _average(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    category_order = {c: i for i, c in enumerate(CATEGORIES + (BASE,))}
    grouped = (
        frame.groupby(keys, dropna=False, sort=False)["difference"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
    )
    grouped["std"] = grouped["std"].fillna(0.0)
    grouped["_order"] = grouped["category"].map(category_order)
    sort_keys = [k for k in keys if k not in ("category", "class_name")] + ["_order"]
    return grouped.sort_values(sort_keys, kind="stable").drop(columns="_order").reset_index(drop=True)


# --------------------------------------------------------------------------- groups


def groups_from_run(path: str | os.PathLike) -> dict[str, list[str]] | None:
    """`imbalance.groups` from the recipe.yaml of a run dir (given it or its shap/ folder)."""
    import yaml

    path = Path(path).expanduser()
    for candidate in (path, path.parent):
        recipe = candidate / "recipe.yaml"
        if recipe.is_file():
            try:
                raw = yaml.safe_load(recipe.read_text(encoding="utf-8"))
            except yaml.YAMLError:
                return None
            groups = ((raw or {}).get("imbalance") or {}).get("groups")
            if isinstance(groups, dict) and groups:
                return {str(k): [str(x) for x in v] for k, v in groups.items()}
            return None
    return None


def parse_group_options(options: Sequence[str]) -> dict[str, list[str]] | None:
    """['A=fr,es,ja', 'B=de,en,zh'] -> {'A': [...], 'B': [...]}."""
    if not options:
        return None
    groups: dict[str, list[str]] = {}
    for option in options:
        name, sep, languages = option.partition("=")
        codes = [x.strip() for x in languages.split(",") if x.strip()]
        if not sep or not name.strip() or not codes:
            raise UserError(f"--groups {option!r}: write NAME=lang,lang (e.g. A=fr,es,ja)")
        groups[name.strip()] = codes
    return groups


# --------------------------------------------------------------------------- output


def write_shap_diff(result: ShapDiffResult, out: str | os.PathLike) -> dict[str, Path]:
    """shap_diff.csv (per language), shap_diff_examples.csv, shap_diff.json, shap_diff.png."""
    out = Path(out).expanduser()
    paths = {
        "csv": write_text(out / "shap_diff.csv", result.by_language.to_csv(index=False)),
        "examples_csv": write_text(out / "shap_diff_examples.csv", result.per_example.to_csv(index=False)),
        "json": write_json(out / "shap_diff.json", shap_diff_report(result)),
        "png": write_bytes(out / "shap_diff.png", plot_shap_diff(result)),
    }
    return paths


def shap_diff_report(result: ShapDiffResult) -> dict[str, Any]:
    def nested(frame: pd.DataFrame, key: str) -> dict:
        out: dict = {}
        for row in frame.itertuples(index=False):
            block = out.setdefault(row.class_name, {}).setdefault(str(getattr(row, key)), {})
            block[row.category] = {"mean": float(row.mean), "std": float(row.std), "n": int(row.n)}
        return out

    split = {f"{t:g}": v for t, v in result.token_split.items()}
    return {
        "threshold": result.threshold,
        "label_names": result.label_names,
        "groups": result.groups,
        "languages": sorted(result.per_example["language"].unique().tolist()),
        **result.meta,
        "token_split": split,
        "token_split_note": "share of the balanced model's (token, class) SHAP values below -t, within [-t, t], "
        "above t; the paper chose t = 0.01 for a ~20/60/20 split (Annex A.4)",
        "by_language": nested(result.by_language, "language"),
        "by_group": nested(result.by_group, "group") if len(result.by_group) else {},
    }


def plot_shap_diff(result: ShapDiffResult) -> bytes:
    """Figure 1: one panel per label, bars per token category and language (PNG bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = result.by_language
    group_of = _group_of(result.groups)
    languages = sorted(table["language"].unique(), key=lambda lang: (group_of.get(lang, "~"), lang))
    categories = list(CATEGORIES) + [BASE]
    n_panels = len(result.label_names)
    columns = min(n_panels, 3)
    rows = (n_panels + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4.8 * columns, 3.8 * rows), squeeze=False, sharey=True)
    colors = plt.get_cmap("tab10")
    hatches = {name: h for name, h in zip(sorted(set(group_of.values())), ["", "//", "..", "xx", "\\\\"])}
    width = 0.8 / max(len(languages), 1)
    for c, name in enumerate(result.label_names):
        ax = axes[c // columns][c % columns]
        panel = table[table["class"] == c]
        for j, language in enumerate(languages):
            rows_l = panel[panel["language"] == language].set_index("category")
            heights = [float(rows_l["mean"].get(cat, np.nan)) for cat in categories]
            errors = [float(rows_l["std"].get(cat, 0.0)) / max(np.sqrt(float(rows_l["n"].get(cat, 1))), 1.0)
                      for cat in categories]
            xs = np.arange(len(categories)) + (j - (len(languages) - 1) / 2) * width
            group = group_of.get(language)
            ax.bar(xs, heights, width, yerr=errors, capsize=2, color=colors(j % 10),
                   hatch=hatches.get(group, ""), edgecolor="black", linewidth=0.4,
                   label=f"{language} ({group})" if group else language)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.axvline(len(CATEGORIES) - 0.5, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xticks(np.arange(len(categories)))
        ax.set_xticklabels(["neg.", "neutral", "pos.", "base value"])
        ax.set_title(f"label: {name}")
        if c % columns == 0:
            ax.set_ylabel("cumulative SHAP difference\n(imbalanced − balanced)")
    for k in range(n_panels, rows * columns):
        axes[k // columns][k % columns].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(languages), 6), fontsize="small")
    fig.suptitle(f"Average cumulative difference in SHAP value by token category "
                 f"(threshold {result.threshold:g}; bars: mean ± s.e. over examples)")
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def resolve_inputs(bal: str | os.PathLike, imbal: str | os.PathLike) -> tuple[Path, Path]:
    """The shap folders behind two CLI arguments (shap dirs or run dirs)."""
    return find_shap_dir(bal), find_shap_dir(imbal)
