"""The report: the paper's Tables 2-4 and Figure 1, rebuilt from run outputs.

`collect(dirs)` finds what finished runs left behind (metrics.json, probe
JSONs, shap_diff.json), `summarise` turns it into tables with mean +- std over
seeds, and `write_report` writes report.md with the PNGs it embeds. Verdicts
are stated only as far as the numbers carry them: a difference smaller than
its uncertainty is reported as "not shown".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from langtrainer import atomic
from langtrainer.errors import UserError
from langtrainer.analysis.matching import match_labels, match_languages
from langtrainer.reporting.markdown import md_list, md_text
from langtrainer.reporting.tables import INTERVALS, TRUE_PREFIX, MetricTable, metric_table, share_note, to_markdown
from langtrainer.rundir import DemoDir, RunDir

ROLE_ORDER = ["pretrained", "balanced", "imbalanced", "imbalanced+cw"]
ROLE_TITLES = {
    "pretrained": "pretrained (no fine-tuning)",
    "balanced": "balanced",
    "imbalanced": "imbalanced",
    "imbalanced+cw": "imbalanced + per-language weights",
    "as-is": "as-is",
}
# Parts of a role name after its training subset (see role_of).
PART_TITLES = {"cw": "per-language weights", "global-cw": "global weights", "sampler": "balanced sampler",
               "mie": "entropy term"}
BASE_ORDER = {"pretrained": 0, "balanced": 1, "imbalanced": 2, "as-is": 3}


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
# Runs written before recipes had `paper_analogue`: the shipped recipes' names.
ANALOGUE_BY_NAME = (("demo", "amazon"), ("amazon", "amazon"), ("xnli", "xnli"))


def role_title(role: str) -> str:
    """A role's name for tables and questions, e.g. 'imbalanced + per-language weights + entropy term'."""
    if role in ROLE_TITLES:
        return ROLE_TITLES[role]
    base, *parts = role.split("+")
    return " + ".join([ROLE_TITLES.get(base, base)] + [PART_TITLES.get(p, p) for p in parts])


def role_sort_key(role: str) -> tuple:
    base, *parts = role.split("+")
    known = ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)
    return (BASE_ORDER.get(base, 9), known, len(parts), role)


@dataclass
class Run:
    """One fine-tuned model and what was measured on it."""

    path: Path
    role: str
    name: str
    seed: int
    metrics: dict[str, Any]
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Collected:
    runs: list[Run]
    pretrained_probes: dict[int, dict[str, dict[str, Any]]]  # seed -> data -> probe.json
    shap_diffs: dict[tuple[int, str], dict[str, Any]]  # (seed, name) -> shap_diff.json
    shap_figures: dict[tuple[int, str], Path]
    groups: dict[str, list[str]] | None
    favoured: dict[str, list[int]] | None
    label_names: list[str]
    paper: str | None = None  # the paper experiment every run stands in for (PAPER's keys), if any
    languages: list[str] = field(default_factory=list)
    test_label_shares: dict[str, list[float]] | None = None  # language -> label shares of the test set
    # "group": favoured labels from the recipe's skew design; "language": as-is data, each language's
    # favoured labels from its training rows (the languages then stand in for the groups)
    favoured_by: str = "group"
    small_samples: list[str] = field(default_factory=list)  # data.small_samples' lines, over all runs


def role_of(metrics: dict[str, Any], recipe: dict[str, Any] | None = None) -> str:
    """The training setup as a role: subset, then +cw / +global-cw / +sampler / +mie.

    'balanced', 'imbalanced', 'imbalanced+cw' are the paper's three; a
    balanced run keeps its name whatever its weights (eq. 2 weights are 1 on
    a balanced subset).
    """
    recipe = recipe or {}
    subset = metrics.get("subset") or (recipe.get("imbalance") or {}).get("subset")
    base = {"balanced": "balanced", "imbalanced": "imbalanced"}.get(subset, "as-is")
    parts = [base]
    mode = metrics.get("class_weights_mode") or (recipe.get("loss") or {}).get("class_weights") or "none"
    if base != "balanced" and mode != "none":
        parts.append("cw" if mode == "per_language" else "global-cw")
    if metrics.get("sampler") or (recipe.get("data") or {}).get("sampler"):
        parts.append("sampler")
    if float((recipe.get("loss") or {}).get("mask_entropy") or 0.0) > 0:
        parts.append("mie")
    return "+".join(parts)


def paper_analogue_of(run_dir: Path, metrics: dict[str, Any], recipe: dict[str, Any] | None) -> str | None:
    """The recipe's `paper_analogue`; for runs from before that field, the shipped recipes' names."""
    if recipe is not None and "paper_analogue" in recipe:
        value = recipe.get("paper_analogue")
        return value if value in PAPER else None
    name = str(metrics.get("recipe") or "")
    for prefix, analogue in ANALOGUE_BY_NAME:
        if name == prefix or name.startswith(prefix + "_"):
            return analogue
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read '{path}': {exc}") from None


def _test_label_shares(run_dir: Path, label_names: list[str]) -> dict[str, list[float]] | None:
    """Per language, the test set's label shares (from data/distribution.json), or None."""
    counts = (RunDir(run_dir).read_distribution().get("counts") or {}).get("test")
    if not isinstance(counts, dict) or not counts:
        return None
    shares = {}
    for lang, per_label in counts.items():
        if not isinstance(per_label, dict):
            return None
        total = sum(int(v) for v in per_label.values())
        if total <= 0:
            continue
        shares[str(lang)] = [int(per_label.get(name, 0)) / total for name in label_names]
    return shares or None


def _check_same_names(first: Run, run: Run) -> None:
    """Runs combined in one report have the same labels and languages, by name (their order may differ:
    the report reads every per-label and per-language number by name)."""
    sides = (f"run '{first.path}'", f"run '{run.path}'")
    for key, match in (("label_names", match_labels), ("languages", match_languages)):
        a, b = first.metrics.get(key), run.metrics.get(key)
        if a and b:
            match(a, b, sides=sides)


def collect(dirs: Iterable[str | Path]) -> Collected:
    """Find runs, probes and SHAP diffs under the given directories."""
    runs: list[Run] = []
    pretrained: dict[int, dict[str, dict[str, Any]]] = {}
    diffs: dict[tuple[int, str], dict[str, Any]] = {}
    figures: dict[tuple[int, str], Path] = {}
    groups = favoured = None
    label_names: list[str] = []
    languages: list[str] = []
    analogues: set[str | None] = set()
    test_shares = None
    favoured_by = "group"
    small_samples: list[str] = []
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"'{root}' is not a directory")
        for metrics_path in sorted(root.rglob(RunDir.METRICS)):
            if any(part.startswith(".") for part in metrics_path.relative_to(root).parts):
                continue
            metrics = _read_json(metrics_path)
            if "test" not in metrics:
                continue
            recipe = RunDir(metrics_path.parent).raw_recipe()
            run = Run(
                path=metrics_path.parent,
                role=role_of(metrics, recipe),
                name=str(metrics.get("recipe", metrics_path.parent.name)),
                seed=int(metrics.get("seed", 0)),
                metrics=metrics,
            )
            for data, probe_path in RunDir(run.path).probe_paths().items():
                probe = _read_json(probe_path)
                run.probes[data] = probe
                if probe.get("base"):
                    pretrained.setdefault(run.seed, {}).setdefault(data, probe["base"])
            if runs:
                _check_same_names(runs[0], run)
            runs.append(run)
            analogues.add(paper_analogue_of(run.path, metrics, recipe))
            label_names = label_names or list(metrics.get("label_names", []))
            languages = languages or list(metrics.get("languages") or [])
            groups = groups or metrics.get("groups")
            if not favoured and metrics.get("favoured_labels"):
                favoured = metrics["favoured_labels"]
                favoured_by = str(metrics.get("favoured_labels_by") or "group")
            from langtrainer.reporting.model_card import run_small_sample_warnings

            small_samples += [line for line in run_small_sample_warnings(RunDir(run.path), metrics)
                              if line not in small_samples]
            if test_shares is None and label_names:
                test_shares = _test_label_shares(run.path, label_names)
        for folder in sorted(p for p in root.rglob(DemoDir.PRETRAINED) if p.is_dir()):
            seed = DemoDir.seed_of(folder) or 0
            for data, probe_path in RunDir(folder).probe_paths().items():
                pretrained.setdefault(seed, {})[data] = _read_json(probe_path)
        for diff_path in sorted(root.rglob(RunDir.SHAP_DIFF)):
            seed = DemoDir.seed_of(diff_path) or 0
            diff = _read_json(diff_path)
            if runs and runs[0].metrics.get("label_names") and diff.get("label_names") is not None:
                match_labels(runs[0].metrics["label_names"], diff.get("label_names") or [],
                             sides=(f"run '{runs[0].path}'", f"'{diff_path}'"))
            diffs[(seed, diff_path.parent.name)] = diff
            png = diff_path.with_suffix(".png")
            if png.exists():
                figures[(seed, diff_path.parent.name)] = png
    if not runs:
        raise UserError("no finished runs (metrics.json) found under " + ", ".join(str(d) for d in dirs))
    paper = next(iter(analogues)) if len(analogues) == 1 else None
    if not groups and favoured and favoured_by == "language":
        groups = {lang: [lang] for lang in favoured}  # as-is data: each language is its own group
    return Collected(runs, pretrained, diffs, figures, groups, favoured, label_names, paper=paper,
                     languages=languages, test_label_shares=test_shares, favoured_by=favoured_by,
                     small_samples=small_samples)


# ---------------------------------------------------------------- numbers


def mean_std(values: list[float]) -> tuple[float, float, int]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan"), 0
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else float("nan"), len(arr)


def fmt(mean: float, std: float = float("nan"), digits: int = 3) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def binomial_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


def difference_verdict(a: list[float], b: list[float], single_seed_se: float) -> tuple[float, float, bool]:
    """Mean of a - b, its standard error, and whether |diff| > 2 SE.

    With several seeds the SE comes from the spread of the paired differences;
    with one seed it is `single_seed_se` (the measurement error of that one
    difference: binomial for accuracies, fold spread for probes).
    """
    diffs = [x - y for x, y in zip(a, b)]
    mean = float(np.mean(diffs))
    se = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else float(single_seed_se)
    return mean, se, abs(mean) > 2 * se


def group_table(run: Run, collected: "Collected") -> MetricTable | None:
    """The run's test metrics by language group (MetricFrame.by_group shape), or None without groups."""
    if not collected.groups:
        return None
    return metric_table(run.metrics["test"], collected.label_names, "group", list(collected.groups))


def language_table(run: Run, collected: "Collected") -> MetricTable | None:
    languages = collected.languages or list(run.metrics.get("languages") or [])
    return metric_table(run.metrics["test"], collected.label_names, "language", languages)


def mean_table(tables: list[MetricTable]) -> MetricTable | None:
    """The seeds' tables averaged cell by cell; the difference row is that of the mean table."""
    tables = [t for t in tables if t is not None]
    if not tables:
        return None
    import pandas as pd

    frame = pd.concat([t.frame for t in tables]).groupby(level=0, sort=False).mean()
    if len(tables) > 1:  # one run's intervals; their mean is no interval of the seeds' mean
        frame[[c for c in INTERVALS if c in frame]] = np.nan
    difference = {}
    for metric in ("accuracy", "macro_f1"):
        values = frame[metric].dropna()
        difference[metric] = float(values.max() - values.min()) if len(values) else float("nan")
    return MetricTable(kind=tables[0].kind, frame=frame, label_names=tables[0].label_names, difference=difference)


def single_run_se(run: Run, metric: str, n_test: int, collected: "Collected | None" = None) -> float:
    """Measurement error of one run's number."""
    test = run.metrics["test"]
    if metric == "accuracy":
        return binomial_se(test["accuracy"], n_test)
    if metric == "skew_index":
        # index = mean over groups g of share_g(F_g) − mean over h ≠ g of share_h(F_g); shares are
        # proportions over each group's test examples, taken as independent
        favoured = run.metrics.get("favoured_labels") or {}
        names = run.metrics.get("label_names") or []
        groups = list(favoured)
        table = metric_table(test, names, "group", groups)
        if table is None or len(groups) < 2:
            return float("nan")
        var = 0.0
        for g in groups:
            for h in groups:
                n = table.frame.at[h, "n"] if h in table.frame.index else math.nan
                n = int(n) if not math.isnan(n) else max(1, n_test // len(groups))
                share = sum(table.frame.at[h, f"share: {names[c]}"] for c in favoured[g]) if h in table.frame.index else 0.0
                weight = 1.0 if h == g else 1.0 / (len(groups) - 1)
                var += (weight * binomial_se(float(share), n)) ** 2
        return math.sqrt(var) / len(groups)
    probe = run.probes.get(metric.removeprefix("probe_"), {})
    folds = len(probe.get("fold_accuracies") or probe.get("result", {}).get("fold_accuracies", []) or [1]) or 1
    return float(probe.get("accuracy_std", float("nan"))) / math.sqrt(folds)


def by_role(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (role_sort_key(r.role), r.seed)):
        out.setdefault(run.role, []).append(run)
    return out


def paired(runs: dict[str, list[Run]], role_a: str, role_b: str, key) -> tuple[list[float], list[float]]:
    """Values of key(run) for the seeds both roles have, in seed order."""
    a = {r.seed: key(r) for r in runs.get(role_a, [])}
    b = {r.seed: key(r) for r in runs.get(role_b, [])}
    seeds = sorted(set(a) & set(b))
    return [a[s] for s in seeds], [b[s] for s in seeds]


def comparison_pairs(roles: Iterable[str]) -> list[tuple[str, str]]:
    """(a, b) role pairs the report compares: balanced vs imbalanced, and each mitigation vs both."""
    roles = sorted(set(roles), key=role_sort_key)
    pairs = []
    if "balanced" in roles and "imbalanced" in roles:
        pairs.append(("balanced", "imbalanced"))
    for role in roles:
        if role.startswith("imbalanced+"):
            if "imbalanced" in roles:
                pairs.append((role, "imbalanced"))
            if "balanced" in roles:
                pairs.append(("balanced", role))
    return pairs


def probe_accuracy(run: Run, data: str) -> float | None:
    probe = run.probes.get(data)
    return None if probe is None else float(probe["accuracy_mean"])


def group_distribution(run: Run, group: str, label_names: list[str], true: bool = False) -> list[float]:
    """The run's test predictions in `group`, % per label (Table 2's row); `true`: the true labels' shares
    of the group's test rows (NaN where the run did not record them)."""
    test = run.metrics["test"]
    table = metric_table(test, label_names, "group", [group])
    if (table is None or group not in table.frame.index) and group in (test.get("by_language") or {}):
        table = metric_table(test, label_names, "language", [group])  # as-is data: the language is the group
    if table is None or group not in table.frame.index:
        return [float("nan")] * len(label_names)
    if true:
        return [100 * float(table.frame.at[group, TRUE_PREFIX + name]) for name in label_names]
    return [100 * v for v in table.shares(group)]


def neutral_shift(diff: dict[str, Any], groups: dict[str, list[str]], favoured: dict[str, list[int]],
                  label_names: list[str]) -> dict[str, float]:
    """Mean neutral-token cumulative SHAP difference, per group, on its favoured labels.

    Reads shap_diff.json's by_language[label][language]["neutral"]["mean"].
    """
    by_language = diff.get("by_language", {})
    out = {}
    for group, langs in groups.items():
        values = [
            by_language[label_names[c]][lang]["neutral"]["mean"]
            for c in favoured.get(group, [])
            for lang in langs
            if lang in by_language.get(label_names[c], {}) and "neutral" in by_language[label_names[c]][lang]
            and by_language[label_names[c]][lang]["neutral"]["mean"] is not None
        ]
        out[group] = float(np.mean(values)) if values else float("nan")
    return out


def mean_abs_base_difference(diff: dict[str, Any]) -> float:
    """Mean over labels and languages of |base-value difference| (shap_diff.json's "base" category)."""
    values = [abs(cells["base"]["mean"]) for per_language in diff.get("by_language", {}).values()
              for cells in per_language.values() if "base" in cells and cells["base"].get("mean") is not None]
    return float(np.mean(values)) if values else float("nan")


# ---------------------------------------------------------------- figures


PROBE_DATA = (("test", "test set"), ("external", "external corpus"))


def _probe_sets(runs: dict[str, list[Run]], pretrained: dict[int, dict[str, dict]]) -> dict[str, list[dict]]:
    """Model title -> its probe results (one per seed and data), the pretrained model first."""
    sets: dict[str, list[dict]] = {}
    if pretrained:
        sets[role_title("pretrained")] = [dict(p[data], data=data) for p in pretrained.values()
                                          for data, _ in PROBE_DATA if data in p]
    for role in sorted(runs, key=role_sort_key):
        sets[role_title(role)] = [dict(r.probes[data], data=data) for r in runs[role] for data, _ in PROBE_DATA
                                  if data in r.probes]
    return sets


def separating_c(sets: dict[str, list[dict]]) -> float | None:
    """The C of the probes' sweeps where the models' mean probe accuracies differ most (test set first,
    else the external corpus), the smaller C on ties; None without a sweep over two or more models."""
    for data, _ in PROBE_DATA:
        by_c: dict[float, dict[str, list[float]]] = {}
        for model, probes in sets.items():
            for probe in probes:
                if probe["data"] == data:
                    for point in probe.get("c_sweep") or []:
                        by_c.setdefault(float(point["C"]), {}).setdefault(model, []).append(
                            float(point["accuracy_mean"]))
        spreads = {c: max(map(np.mean, cells.values())) - min(map(np.mean, cells.values()))
                   for c, cells in by_c.items() if len(cells) >= 2}
        if spreads:
            return min(spreads, key=lambda c: (-round(spreads[c], 12), c))
    return None


def _probe_value(probe: dict, c: float | None) -> float | None:
    """The probe's accuracy at C = c (from its sweep), or at its own C when c is None or not swept."""
    if c is not None:
        for point in probe.get("c_sweep") or []:
            if float(point["C"]) == c:
                return float(point["accuracy_mean"])
        return None
    return float(probe["accuracy_mean"]) if "accuracy_mean" in probe else None


def plot_accuracy_and_probe(runs: dict[str, list[Run]], pretrained: dict[int, dict[str, dict]], out: Path,
                            paper: str | None = None) -> Path:
    """accuracy_probe.png: test accuracy per setup and, when probed, language-ID accuracy per model.

    The probe panel shows the C where the models separate most (from the probes' C sweeps), not the
    paper's C where every model may sit at chance, and marks each data set's chance level (always
    guessing its commonest language).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from langtrainer.reporting.plots import plot_accuracy, plot_probe, save_figure

    roles = sorted(runs, key=role_sort_key)
    accuracy = {role_title(r): [run.metrics["test"]["accuracy"] for run in runs[r]] for r in roles}
    sets = _probe_sets(runs, pretrained)
    c = separating_c(sets)
    probes = {model: {name: [_probe_value(p, c) for p in found if p["data"] == data] for data, name in PROBE_DATA}
              for model, found in sets.items()}
    chance = {}
    for data, name in PROBE_DATA:
        levels = [float((p.get("result") or {}).get("chance_accuracy")) for found in sets.values() for p in found
                  if p["data"] == data and (p.get("result") or {}).get("chance_accuracy") is not None]
        if levels:
            chance[name] = max(levels)
    has_probe = any(v is not None for per_data in probes.values() for values in per_data.values() for v in values)
    fig, axes = plt.subplots(1, 2 if has_probe else 1, figsize=(10, 3.8) if has_probe else (5.5, 3.8), squeeze=False)
    numbers = PAPER.get(paper) if paper else None
    reference = {role_title(r): v for r, v in numbers.accuracy.items()} if numbers else None
    plot_accuracy(accuracy, ax=axes[0][0], reference=reference,
                  reference_label=f"paper (mBERT, {numbers.dataset})" if numbers else "paper")
    axes[0][0].set_title("Task accuracy" + (" (Table 3 analogue)" if numbers else ""))
    if has_probe:
        plot_probe(probes, ax=axes[0][1], chance=chance)
        own = sorted({float((p.get("settings") or {}).get("C")) for found in sets.values() for p in found
                      if (p.get("settings") or {}).get("C") is not None})
        where = (f"C = {c:g}, where the models differ most" if c is not None else
                 f"C = {', '.join(f'{v:g}' for v in own) or '?'} (no C sweep)")
        axes[0][1].set_title("Language identifiability" + (" (Table 4 analogue)" if numbers else "") + f"\n{where}",
                             fontsize=10)
    return save_figure(axes[0][0], out / "accuracy_probe.png")


# ---------------------------------------------------------------- markdown


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _shared_bias(tables: list[MetricTable | None]) -> tuple[str, float] | None:
    """(label, share): the label with the largest share that every group gives it (the minimum over groups).

    The skew index cancels such a bias; the report names it beside the index.
    """
    table = mean_table([t for t in tables if t is not None])
    if table is None or len(table.frame.index) < 2:
        return None
    best = None
    for c, label in enumerate(table.label_names):
        shares = [table.shares(unit)[c] for unit in table.frame.index]
        if any(math.isnan(v) for v in shares):
            continue
        if best is None or min(shares) > best[1]:
            best = (label, float(min(shares)))
    return best


def summarise(collected: Collected) -> dict[str, Any]:
    """All numbers the report states, as JSON-ready data (report.json)."""
    runs = by_role(collected.runs)
    n_test = max(int(r.metrics["test"].get("n") or r.metrics.get("test_examples", 0)) for r in collected.runs)
    summary: dict[str, Any] = {"seeds": sorted({r.seed for r in collected.runs}), "n_test": n_test, "roles": {},
                               "paper_analogue": collected.paper, "label_names": collected.label_names}
    for role, role_runs in runs.items():
        summary["roles"][role] = {
            "title": role_title(role),
            "names": sorted({r.name for r in role_runs}),
            "accuracy": mean_std([r.metrics["test"]["accuracy"] for r in role_runs]),
            "macro_f1": mean_std([r.metrics["test"]["macro_f1"] for r in role_runs]),
            "skew_index": mean_std([r.metrics["test"].get("skew_index", float("nan")) for r in role_runs]),
            "language_prediction_cmi": mean_std([r.metrics["test"].get("language_prediction_cmi", float("nan"))
                                                 for r in role_runs]),
            "language_prediction_cmi_p_value": [r.metrics["test"].get("language_prediction_cmi_p_value")
                                                for r in role_runs],
            "probe_test": mean_std([probe_accuracy(r, "test") for r in role_runs]),
            "probe_external": mean_std([probe_accuracy(r, "external") for r in role_runs]),
            "per_seed_accuracy": {r.seed: r.metrics["test"]["accuracy"] for r in role_runs},
            "shared_bias": _shared_bias([group_table(r, collected) for r in role_runs]),
        }
    if collected.pretrained_probes:
        summary["roles"]["pretrained"] = {
            "title": role_title("pretrained"),
            "probe_test": mean_std([p["test"]["accuracy_mean"] for p in collected.pretrained_probes.values() if "test" in p]),
            "probe_external": mean_std(
                [p["external"]["accuracy_mean"] for p in collected.pretrained_probes.values() if "external" in p]
            ),
        }
    comparisons = {}
    metric_keys = {
        "accuracy": lambda r: r.metrics["test"]["accuracy"],
        "skew_index": lambda r: r.metrics["test"].get("skew_index", float("nan")),
        "probe_test": lambda r: probe_accuracy(r, "test"),
        "probe_external": lambda r: probe_accuracy(r, "external"),
    }
    for a, b in comparison_pairs(runs):
        for metric, key in metric_keys.items():
            xs, ys = paired(runs, a, b, key)
            if not xs or any(v is None or math.isnan(v) for v in xs + ys):
                continue
            single = math.sqrt(single_run_se(runs[a][0], metric, n_test) ** 2
                               + single_run_se(runs[b][0], metric, n_test) ** 2)
            mean, se, clear = difference_verdict(xs, ys, single)
            comparisons[f"{metric}:{a}-{b}"] = {"mean": mean, "se": se, "clear": bool(clear), "n_seeds": len(xs)}
    summary["comparisons"] = comparisons
    summary["favoured_labels_by"] = collected.favoured_by
    summary["small_samples"] = list(collected.small_samples)
    if collected.groups and collected.favoured and collected.label_names:
        shifts = {}
        for (seed, name), diff in collected.shap_diffs.items():
            shifts.setdefault(name, []).append(neutral_shift(diff, collected.groups, collected.favoured, collected.label_names))
        summary["shap_neutral_shift"] = {
            name: {g: mean_std([v[g] for v in values]) for g in collected.groups} for name, values in shifts.items()
        }
    if any(name.endswith("_mie") for _, name in collected.shap_diffs):
        # The base-value bias the entropy term removes (Annex A.3): its size with and without the term.
        bases: dict[str, list[float]] = {}
        for (seed, name), diff in collected.shap_diffs.items():
            bases.setdefault(name, []).append(mean_abs_base_difference(diff))
        summary["shap_base_difference"] = {name: mean_std(values) for name, values in bases.items()}
    return summary


def _mitigation_phrases(role: str) -> tuple[str, str]:
    """(question subject with its verb, short name) for a mitigated role, e.g. ('Do per-language weights', 'weights')."""
    if role == "imbalanced+cw":
        return "Do per-language weights", "Weights"
    phrase = role_title(role).removeprefix("imbalanced + ")
    return f"Does training with {phrase}", f"Training with {phrase}"


def _judge(comp: dict[str, Any], question: str, key: str, expected_sign: int, yes: str, opposite: str) -> str | None:
    """A verdict line on comparison `key`: 'yes' only when the difference exceeds 2 standard errors."""
    c = comp.get(key)
    if c is None:
        return None
    diff = expected_sign * c["mean"]
    detail = f"({c['mean']:+.3f} ± {c['se']:.3f} SE, {c['n_seeds']} seed{'s' if c['n_seeds'] > 1 else ''})"
    if c["clear"] and diff > 0:
        return f"**{question}** Yes: {yes} {detail}."
    if c["clear"] and diff < 0:
        return f"**{question}** No, the opposite: {opposite} {detail}."
    return f"**{question}** Not shown: the difference is within the noise {detail}."


def _shared_bias_note(summary: dict[str, Any], role: str) -> str:
    """The skew index cannot see one label taking much of every group: say so beside it."""
    n_labels = max(len(summary.get("label_names") or []), 1)
    shared = (summary["roles"].get(role) or {}).get("shared_bias")
    if not shared or shared[1] < 1.5 / n_labels:
        return ""
    label, share = shared
    amount = "all" if share >= 0.995 else f"at least {100 * share:.0f} %"
    return (f" The skew index does not see a bias that every group shares: '{md_text(label)}' takes {amount} "
            f"of every group's predictions in the {role_title(role)} model (see the prediction table).")


def _mitigation_verdicts(summary: dict[str, Any], role: str) -> list[str | None]:
    """Does a mitigation (an imbalanced+... setup) undo what the imbalance did?"""
    comp = summary["comparisons"]
    subject, short = _mitigation_phrases(role)
    name = role_title(role)
    skew = _judge(comp, f"{subject} remove the prediction skew?", f"skew_index:{role}-imbalanced", -1,
                  f"{name} − imbalanced skew index", "it increases the skew")
    lines = [
        _judge(comp, f"{subject} recover accuracy?", f"accuracy:{role}-imbalanced", +1,
               f"{name} − imbalanced accuracy", "it lowers accuracy"),
        skew + _shared_bias_note(summary, role) if skew else None,
        _judge(comp, f"{subject} make languages less identifiable (test set)?", f"probe_test:{role}-imbalanced", -1,
               f"{name} − imbalanced probe accuracy", "languages become more separable"),
        _judge(comp, f"{subject} make languages less identifiable (external corpus)?",
               f"probe_external:{role}-imbalanced", -1, f"{name} − imbalanced probe accuracy",
               "languages become more separable"),
    ]
    gap, recovered = comp.get("accuracy:balanced-imbalanced"), comp.get(f"accuracy:{role}-imbalanced")
    if gap and recovered and gap["clear"] and gap["mean"] > 0:
        lines.append(f"{short} recover{'' if short == 'Weights' else 's'} "
                     f"{100 * recovered['mean'] / gap['mean']:.0f} % of the accuracy gap (point estimate).")
    return lines


def _verdicts(summary: dict[str, Any]) -> list[str]:
    """One line per finding, then per mitigation, then per SHAP comparison."""
    comp = summary["comparisons"]
    skew = _judge(comp, "Do the imbalanced model's predictions follow each language's training skew?",
                  "skew_index:balanced-imbalanced", -1, "balanced − imbalanced skew index",
                  "the balanced model is more skewed")
    lines = [
        _judge(comp, "Does the imbalance hurt accuracy?", "accuracy:balanced-imbalanced", +1,
               "balanced − imbalanced accuracy", "the imbalanced model is more accurate"),
        skew + _shared_bias_note(summary, "imbalanced") if skew else None,
        _judge(comp, "Are languages more identifiable in the imbalanced model (test set)?",
               "probe_test:balanced-imbalanced", -1, "balanced − imbalanced probe accuracy",
               "the balanced model is more language-separable"),
        _judge(comp, "Are languages more identifiable in the imbalanced model (external corpus)?",
               "probe_external:balanced-imbalanced", -1,
               "balanced − imbalanced probe accuracy", "the balanced model is more language-separable"),
    ]
    for role in sorted(summary["roles"], key=role_sort_key):
        if role.startswith("imbalanced+"):
            lines += _mitigation_verdicts(summary, role)
    for name, shift in sorted(summary.get("shap_neutral_shift", {}).items()):
        lines.append(_shap_verdict(name, shift))
    return [line for line in lines if line]


def _shap_verdict(name: str, shift: dict[str, tuple[float, float, int]]) -> str | None:
    """Per group, the mean neutral-token shift; with several seeds 'yes' only beyond 2 SE of the seed mean."""
    values = {g: v for g, v in shift.items() if not math.isnan(v[0])}
    if not values:
        return None
    question = (f"**Do neutral tokens of over-represented languages gain SHAP for their favoured labels "
                f"({name})?**")
    if all(n >= 2 and not math.isnan(std) for _, std, n in values.values()):
        se = {g: std / math.sqrt(n) for g, (_, std, n) in values.items()}
        detail = ", ".join(f"{md_text(g)}: {mean:+.4f} ± {se[g]:.4f} SE" for g, (mean, _, _) in values.items())
        clear = [g for g, (mean, _, _) in values.items() if mean > 2 * se[g]]
        n_seeds = min(n for _, _, n in values.values())
        if len(clear) == len(values):
            answer = "Yes, in every group"
        elif clear:
            answer = f"Only in group {md_list(clear)}; elsewhere within the noise"
        else:
            answer = "Not shown: within the noise in every group"
        return f"{question} {answer} (mean cumulative difference over {n_seeds} seeds; {detail})."
    detail = ", ".join(f"{md_text(g)}: {mean:+.4f}" for g, (mean, _, _) in values.items())
    direction = "positive" if all(v[0] > 0 for v in values.values()) else "not positive in every group"
    return (f"{question} Mean cumulative difference {detail}: {direction} "
            "(one seed, so no uncertainty attached; see the figure).")


def _chance_notes(collected: Collected) -> list[str]:
    """A probe within 2 standard deviations of always guessing the commonest language measured nothing."""
    notes = []
    for run in collected.runs:
        for data, probe in sorted(run.probes.items()):
            chance = (probe.get("result") or {}).get("chance_accuracy")
            mean, std = probe.get("accuracy_mean"), probe.get("accuracy_std") or 0.0
            if chance is not None and mean is not None and mean <= chance + 2 * std:
                notes.append(f"The {role_title(run.role)} probe on {data} ({mean:.3f}) is at chance ({chance:.3f}, "
                             "always the commonest language): at this C and this many texts it measures nothing.")
    return ["", *notes] if notes else []


def _c_sweep_rows(collected: Collected) -> list[tuple[float, dict[str, str]]]:
    """Per C: 'test | external' probe accuracy (mean over seeds) for each role."""
    values: dict[float, dict[str, dict[str, list[float]]]] = {}

    def add(role: str, data: str, probe: dict[str, Any]) -> None:
        for point in probe.get("c_sweep") or []:
            values.setdefault(float(point["C"]), {}).setdefault(role, {}).setdefault(data, []).append(
                float(point["accuracy_mean"]))

    for run in collected.runs:
        for data, probe in run.probes.items():
            add(run.role, data, probe)
    for probes in collected.pretrained_probes.values():
        for data, probe in probes.items():
            add("pretrained", data, probe)
    rows = []
    for c in sorted(values):
        cells = {}
        for role, by_data in values[c].items():
            parts = [f"{np.mean(by_data[d]):.3f}" if d in by_data else "–" for d in ("test", "external")]
            cells[role] = " \\| ".join(parts)
        rows.append((c, cells))
    return rows


def _test_mix_sentence(collected: Collected) -> str:
    """What a model that ignores language would predict, from the test set's own label mix."""
    n = len(collected.label_names)
    shares = collected.test_label_shares
    if not shares:
        return ("If the test set has the same label mix in every language, a model that ignores language predicts "
                "the same distribution in every group.")
    rows = [np.asarray(v) for v in shares.values()]
    same = all(np.allclose(r, rows[0], atol=0.005) for r in rows)
    if same and np.allclose(rows[0], 1.0 / n, atol=0.005):
        return (f"The test set is balanced ({100 / n:.0f} % of each of the {n} labels in every language), so a model "
                "that ignores language predicts the same distribution in every group.")
    if same:
        mix = " / ".join(f"{100 * v:.1f}" for v in rows[0])
        return (f"The test set has the same label mix in every language ({mix} %), so a model that ignores "
                "language predicts the same distribution in every group.")
    return ("The test set's label mix differs between languages, so the groups' predictions differ even for a "
            "model that ignores language: compare them with each group's own label mix.")


def _skew_sentence(collected: Collected) -> str:
    groups = list(collected.groups or {})
    if len(groups) == 2:
        how = (f"the share of group {md_text(groups[0])}'s predictions in the labels its training data "
               f"over-represents + the same share of group {md_text(groups[1])} − 1")
    else:
        how = (f"for each of the {len(groups)} language groups, the share of its predictions in the labels its "
               "training data over-represents minus the other groups' share in those labels, averaged over groups")
    return (f"Skew index: {how} (0: predictions do not depend on the language group; > 0: they follow the "
            "training skew). A bias that every group shares (one label predicted for much of every group) "
            "leaves it at 0: read it with the prediction table.")


def _diff_titles(collected: Collected) -> dict[str, str]:
    """Diff folder name -> 'compared − balanced' as shap_diff.json names the two runs."""
    titles = {}
    for (_, name), diff in sorted(collected.shap_diffs.items()):
        titles.setdefault(name, str(diff.get("comparison") or name))
    return titles


@dataclass
class _Page:
    """What every section of report.md reads."""

    collected: Collected
    summary: dict[str, Any]
    figures: dict[str, Path]
    out: Path
    links: dict[str, Path]
    roles: dict[str, list[Run]]
    order: list[str]
    numbers: Any
    names: list[str]

    def table_ref(self, ref: str) -> str:
        """' (Table N)' beside a heading, only where the runs are the paper's analogue."""
        return f" ({ref})" if self.numbers else ""


def _intro_section(page: "_Page") -> list[str]:
    """Title, seeds, the data's labels, languages and groups, and the verdicts."""
    collected, summary, numbers = page.collected, page.summary, page.numbers
    seeds = summary["seeds"]
    intro = f"Seeds: {', '.join(map(str, seeds))}. Numbers are mean ± std over seeds where there are several."
    if numbers:
        intro += (f" The paper's numbers (mBERT, {numbers.dataset}: the closest analogue) are shown for "
                  "orientation only: different data, model and size.")
    md = ["# langtrainer report", "", intro, ""]
    names = page.names
    facts = [f"{len(names)} labels ({md_list(names)})"]
    if collected.languages:
        facts.append(f"{len(collected.languages)} languages ({md_list(collected.languages)})")
    if collected.groups and collected.favoured_by != "language":
        facts.append("language groups " + "; ".join(f"{md_text(g)}: {md_list(l, ',')}"
                                                    for g, l in collected.groups.items()))
    md += ["Data: " + ", ".join(facts) + ".", "", "## Verdicts", ""]
    verdicts = _verdicts(summary)
    md += [f"- {line}" for line in verdicts] or [
        "- No verdicts: they compare a balanced run with an imbalanced one (and mitigations with the imbalanced "
        "one) of the same data, and these runs hold no such pair."]
    return md


def _accuracy_section(page: "_Page") -> list[str]:
    """Table 3: accuracy, macro-F1 and skew index per training setup."""
    collected, summary, figures = page.collected, page.summary, page.figures
    out, order, numbers = page.out, page.order, page.numbers
    md: list[str] = ["", f"## Task accuracy{page.table_ref('Table 3')}", ""]
    rows = []
    for role in order:
        r = summary["roles"][role]
        row = [role_title(role), fmt(*r["accuracy"][:2]), fmt(*r["macro_f1"][:2]), fmt(*r["skew_index"][:2]),
               fmt(*r["language_prediction_cmi"][:2], digits=4) + _p_values(r["language_prediction_cmi_p_value"])]
        if numbers:
            paper = numbers.accuracy.get(role)
            row.append("–" if paper is None else f"{paper:.3f}")
        rows.append(row)
    header = ["training setup", "accuracy", "macro-F1", "skew index", "language–prediction CMI (nats)"]
    md.append(_table(header + ([f"paper (mBERT, {numbers.dataset})"] if numbers else []), rows))
    if collected.groups and any(not math.isnan(summary["roles"][r]["skew_index"][0]) for r in order):
        md += ["", _skew_sentence(collected)]
    else:
        md += ["", "Skew index –: it measures how far predictions follow each language group's training skew, "
               "so it needs a recipe with a skew design (imbalance.groups and imbalance.distribution). On any "
               "data the language–prediction CMI measures the language-driven lean instead."]
    md += ["", CMI_SENTENCE]
    md += [""]
    if "accuracy_probe" in figures:
        md += [f"![accuracy and probe]({figures['accuracy_probe'].relative_to(out)})", ""]
    return md


CMI_SENTENCE = (
    "Language–prediction CMI: I(language; prediction | true label) in nats over the test split (plug-in "
    "estimate), with its permutation p-value in brackets (languages shuffled within each true label, "
    "seeded; one p per seed). It is 0 when, within each true label, every language gets the same "
    "prediction mix, so it needs no skew design and is not fooled by languages whose test rows have "
    "different label mixes; on few rows the plug-in estimate is above 0 by chance, which the p-value "
    "accounts for.")


def _p_values(values: list[Any]) -> str:
    """' (p 0.003, 0.04)': the CMI's permutation p-value of each seed, where recorded."""
    found = [f"{v:.2g}" for v in values if isinstance(v, (int, float))]
    return f" (p {', '.join(found)})" if found else ""


def _predictions_section(page: "_Page") -> list[str]:
    """Table 2: test-set prediction shares per language group."""
    collected, roles, order, numbers, names = page.collected, page.roles, page.order, page.numbers, page.names
    md: list[str] = []
    if collected.groups and names:
        md += [f"## Test-set predictions per language group{page.table_ref('Table 2')}", ""]
        runs = [r for role in order for r in roles[role]]
        with_true = all(not np.isnan(group_distribution(r, g, names, true=True)).any()
                        for r in runs for g in collected.groups)
        header = ["model", "group"] + [f"{md_text(name)} % true / predicted" if with_true else f"{md_text(name)} %"
                                       for name in names]
        rows = []
        for role in order:
            for group, langs in collected.groups.items():
                dists = np.array([group_distribution(r, group, names) for r in roles[role]])
                if not len(dists) or np.isnan(dists).all():
                    continue
                true = np.array([group_distribution(r, group, names, true=True) for r in roles[role]]).mean(axis=0)
                fav = set((collected.favoured or {}).get(group, []))
                cells = [("–" if math.isnan(v) else (f"**{v:.1f}**" if c in fav else f"{v:.1f}"))
                         for c, v in enumerate(dists.mean(axis=0))]
                if with_true:
                    cells = [f"{t:.1f} / {cell}" for t, cell in zip(true, cells)]
                rows.append([role_title(role), f"{md_text(group)} ({md_list(langs, ',')})"] + cells)
        md.append(_table(header, rows))
        md += ["", _favoured_sentence(collected) + " " + _test_mix_sentence(collected)]
        if numbers:
            paper_rows = "; ".join(f"{g} " + " / ".join(f"{v}" for v in vals) for g, vals in numbers.table2.items())
            md += [f"Paper, Table 2 (imbalanced mBERT, {numbers.dataset}, {numbers.table2_labels}): {paper_rows}."]
        md += [""]
    return md


def _favoured_sentence(collected: Collected) -> str:
    if collected.favoured_by == "language":
        from langtrainer.defaults import FAVOURED_LABEL_RATIO

        return (f"As-is data: each language is its own group. Bold: the labels the language's training rows "
                f"over-represent (a share at least {FAVOURED_LABEL_RATIO:g} times the label's share of all "
                "training rows).")
    return "Bold: the labels the group's imbalanced training data over-represents."


def _languages_section(page: "_Page") -> list[str]:
    """Per-language tables (MetricFrame.by_group shape) per training setup."""
    collected, roles, order = page.collected, page.roles, page.order
    md: list[str] = []
    language_tables = {role: mean_table([language_table(r, collected) for r in roles[role]]) for role in order}
    if any(t is not None for t in language_tables.values()):
        first = next(t for t in language_tables.values() if t is not None)
        md += ["## Per-language results", "",
               "One row per language (fairlearn's MetricFrame.by_group shape): n, accuracy and macro-F1 (with one "
               "run's 95 % intervals: Wilson for accuracy, a bootstrap over the language's test rows for macro-F1), "
               "and per label the shares. " + share_note(first) + " Mean over seeds where there are several (the "
               "intervals are then left out: the spread over seeds is in the tables above).", ""]
        favoured = collected.favoured if collected.favoured_by == "language" else None
        for role, table in language_tables.items():
            if table is not None:
                md += [f"### {role_title(role)}", "", to_markdown(table, favoured=favoured), ""]
        if collected.small_samples:
            md += ["### Small samples", "",
                   "Each line limits the per-language numbers it names (thresholds in langtrainer/defaults.py):", ""]
            md += [f"- {md_text(line)}" for line in collected.small_samples] + [""]
    return md


def _probe_section(page: "_Page") -> list[str]:
    """Table 4: the language-identification probe and its C sweep."""
    collected, summary, order, numbers = page.collected, page.summary, page.order, page.numbers
    md: list[str] = []
    probe_roles = (["pretrained"] if "pretrained" in summary["roles"] else []) + order
    has_probe = any(not math.isnan(summary["roles"][r]["probe_test"][0])
                    or not math.isnan(summary["roles"][r]["probe_external"][0]) for r in probe_roles)
    if has_probe:
        md += [f"## Language identification probe{page.table_ref('Table 4')}", ""]
        rows = []
        for role in probe_roles:
            r = summary["roles"][role]
            row = [role_title(role), fmt(*r["probe_test"][:2]), fmt(*r["probe_external"][:2])]
            if numbers:
                paper = numbers.probe.get(role)
                row.append(f"{paper[0]:.3f} / {paper[1]:.3f}" if paper else "–")
            rows.append(row)
        md.append(_table(["model", "test set", "external corpus"]
                         + (["paper (original / Wikipedia)"] if numbers else []), rows))
        any_probe = next((p for r in collected.runs for p in r.probes.values()), None)
        if any_probe:
            s = any_probe.get("settings", {})
            md += ["", f"Logistic regression on {any_probe.get('feature', 'first-token')} embeddings of the last "
                   f"layer, C = {s.get('C')}, {s.get('folds')}-fold CV. C = 1e-4 is the paper code's setting; so "
                   "strong a penalty needs many texts (with a few hundred, even the pretrained model can score near "
                   "chance), and a large C saturates near 1.0 and hides the difference"
                   + (": the sweep below shows both." if _c_sweep_rows(collected) else
                      "; `langtrainer probe --c-sweep` shows accuracy over C.")]
            md += _chance_notes(collected)
        sweep_rows = _c_sweep_rows(collected)
        if sweep_rows:
            present = {role for _, cells in sweep_rows for role in cells}
            roles_present = [r for r in probe_roles if r in present]
            md += ["", "Probe accuracy over the regularisation strength C (test set | external corpus): where the "
                   "models separate, if anywhere.", ""]
            md.append(_table(["C"] + [role_title(r) for r in roles_present],
                             [[f"{c:g}"] + [cells.get(r, "–") for r in roles_present] for c, cells in sweep_rows]))
        md += [""]
    return md


def _shap_section(page: "_Page") -> list[str]:
    """Figure 1: the cumulative SHAP difference, its neutral-token summary and figures."""
    collected, summary, figures, out = page.collected, page.summary, page.figures, page.out
    md: list[str] = []
    if collected.shap_diffs:
        titles = _diff_titles(collected)
        md += [f"## Cumulative SHAP difference{page.table_ref('Figure 1')}", ""]
        shift = summary.get("shap_neutral_shift", {})
        if shift:
            rows = [[name if titles.get(name, name) == name else f"{titles[name]} ({name})"] + [fmt(*v[g][:2], digits=4) for g in collected.groups]
                    for name, v in sorted(shift.items())]
            md.append(_table(["comparison"] + [f"group {md_text(g)}: neutral tokens, favoured labels"
                                               for g in collected.groups], rows))
            md += ["", "Mean cumulative SHAP difference of neutral tokens (|S_bal| ≤ threshold) on the labels each "
                   + ("language's training rows over-represent (as-is data: each language is its own group)."
                      if collected.favoured_by == "language" else "group's imbalanced data over-represents.")
                   + " The paper finds this positive: uninformative tokens of an over-represented language come "
                   "to push towards that label.", ""]
        base = summary.get("shap_base_difference")
        if base:
            md.append(_table(["comparison", "mean |base-value difference|"],
                             [[name, fmt(*v[:2], digits=4)] for name, v in sorted(base.items())]))
            md += ["", "`_mie` comparisons: both models trained with the masked-input entropy term (Annex A.3, the "
                   "paper's Figure 3), which pulls their all-[MASK] outputs, the SHAP base values, together. A "
                   "token-level shift hidden by base-value differences shows there.", ""]
        md += ["In the figures and in shap_diff.csv, negative / neutral / positive are SHAP token categories "
               "(tokens split by the balanced model's value at ± the threshold) and base is the base value: they "
               "are not labels. Each panel is one label.", ""]
        for key, path in sorted(figures.items()):
            if key.startswith("shap_diff"):
                name = key.removeprefix("shap_diff_").rpartition("_seed")[0]
                md += [f"![{key}]({path.relative_to(out)})", "",
                       f"{titles.get(name, name)}, seed {key.rpartition('_seed')[2]}.", ""]
    return md


def _token_views_section(page: "_Page") -> list[str]:
    """Links to the token-view pages."""
    out, links = page.out, page.links
    md: list[str] = []
    if links:
        compared = any(path.name.startswith("token_view_diff_") for path in links.values())
        layout = ("per comparison the balanced model beside the compared one, examples with the largest "
                  "neutral-token shift first; per run" if compared else "one page per run,")
        md += ["## Token views", "",
               "Each explained example's tokens coloured by SHAP value for the predicted and the true label: "
               f"{layout} every explained example (self-contained HTML, opens offline).", ""]
        md += [f"- [{name}]({path.relative_to(out)})" for name, path in sorted(links.items())] + [""]
    return md


def _runs_section(page: "_Page") -> list[str]:
    """Every run folder with its seed, accuracy and training size."""
    collected, = page.collected,
    md: list[str] = ["## Runs", ""]
    md.append(_table(["run", "setup", "seed", "test accuracy", "steps", "train s"],
                     [[str(r.path), role_title(r.role), str(r.seed), f"{r.metrics['test']['accuracy']:.3f}",
                       str(r.metrics['train']['steps']), f"{r.metrics['train']['seconds']:.0f}"]
                      for r in sorted(collected.runs, key=lambda r: (r.seed, role_sort_key(r.role)))]))
    return md


def render_markdown(collected: Collected, summary: dict[str, Any], figures: dict[str, Path], out: Path,
                    links: dict[str, Path] | None = None) -> str:
    """report.md: one section after another, each skipped when the runs hold nothing for it."""
    roles = by_role(collected.runs)
    page = _Page(collected, summary, figures, out, links or {}, roles, sorted(roles, key=role_sort_key),
                 PAPER.get(collected.paper) if collected.paper else None, collected.label_names)
    md: list[str] = []
    for section in (_intro_section, _accuracy_section, _predictions_section, _languages_section, _probe_section,
                    _shap_section, _token_views_section, _runs_section):
        md += section(page)
    return "\n".join(md) + "\n"


def _refresh_model_cards(collected: Collected) -> list[Path]:
    """Rewrite each run's README.md with its probes and the SHAP difference it was compared in."""
    from langtrainer.reporting.model_card import write_model_card

    written = []
    for run in collected.runs:
        folder = RunDir(run.path)
        if not (folder.has_model() or folder.model_card_path.exists()):
            continue
        diff = next((d for d in collected.shap_diffs.values()
                     if d.get("imbalanced") and Path(d["imbalanced"]).resolve() in (folder.shap_dir.resolve(),
                                                                                   folder.path.resolve())), None)
        written.append(write_model_card(folder, shap_diff=diff))
    return written


def _write_token_views(collected: Collected, out: Path) -> dict[str, Path]:
    """A token view per run with SHAP results, and one per SHAP comparison whose two SHAP folders are there."""
    from langtrainer.analysis.shap import load_shap_result
    from langtrainer.reporting.token_view import write_comparison_view, write_run_view

    links = {}
    for run in sorted(collected.runs, key=lambda r: (r.seed, role_sort_key(r.role))):
        try:
            result = load_shap_result(run.path)
        except UserError:
            continue
        title = f"{run.name} ({role_title(run.role)}), seed {run.seed}"
        links[title] = write_run_view(result, out / f"token_view_run_{run.path.name}_seed{run.seed}.html",
                                      title=f"Token view: {title}")
    for (seed, name), diff in sorted(collected.shap_diffs.items()):
        bal, other = diff.get("balanced"), diff.get("imbalanced")
        if not bal or not other:
            continue
        try:
            a, b = load_shap_result(bal), load_shap_result(other)
        except UserError:
            continue
        title = f"{diff.get('comparison') or name}, seed {seed}"
        links[title] = write_comparison_view(a, b, out / f"token_view_diff_{name}_seed{seed}.html", title=title,
                                             threshold=float(diff.get("threshold", 0.01)))
    return links


REPORT_MARKERS = ("report.md", "report.json")


def check_report_target(out: Path) -> None:
    """--out is replaced whole by the new report: refuse a folder that holds anything but an earlier report."""
    if out.is_dir() and any(out.iterdir()) and not any((out / name).is_file() for name in REPORT_MARKERS):
        raise UserError(f"--out '{out}' exists and is not a report folder (no report.md); it would be replaced: "
                        "give a new folder")


def _cards_to_refresh(collected: Collected) -> list[RunDir]:
    return [RunDir(run.path) for run in collected.runs
            if RunDir(run.path).has_model() or RunDir(run.path).model_card_path.exists()]


def _check_cards_writable(folders: list[RunDir]) -> None:
    import os

    for folder in folders:
        card = folder.model_card_path
        if not os.access(folder.path, os.W_OK | os.X_OK) or (card.exists() and not os.access(card, os.W_OK)):
            raise UserError(f"cannot refresh the model card '{card}': the run folder is not writable; make it "
                            "writable or pass --no-model-cards")


def write_report(dirs: Iterable[str | Path], out: str | Path, model_cards: bool = True) -> Path:
    """Collect, summarise, plot, and write out/report.md (+ report.json, PNGs, token views); refresh model cards.

    The report is built in a temporary folder beside --out and replaces it
    whole when complete (an interrupted report leaves the old one, or none);
    the run folders are read under their shared lock, so no finetune writes
    them meanwhile. `model_cards=False` leaves the runs' README.md alone.
    """
    import contextlib
    import shutil

    from langtrainer.preflight import UNLOCKED_TEMP_AGE_S, check_output_folder, remove_stale_temporaries

    out = check_output_folder(out, "--out")
    check_report_target(out)
    collected = collect(list(dirs))  # before anything is made: a report on nothing leaves no folder
    cards = _cards_to_refresh(collected) if model_cards else []
    _check_cards_writable(cards)
    with contextlib.ExitStack() as locks:
        for run in collected.runs:
            locks.enter_context(RunDir(run.path).read_lock())
        collected = collect(list(dirs))  # again under the locks: what was read before a lock may have changed
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out.parent, UNLOCKED_TEMP_AGE_S, name=out.name)  # a killed report's folder
        with atomic.atomic_dir(out) as tmp:
            summary = summarise(collected)
            figures = {"accuracy_probe": plot_accuracy_and_probe(by_role(collected.runs), collected.pretrained_probes,
                                                                 tmp, paper=collected.paper)}
            for (seed, name), png in sorted(collected.shap_figures.items()):
                target = tmp / f"shap_diff_{name}_seed{seed}.png"
                shutil.copyfile(png, target)
                figures[f"shap_diff_{name}_seed{seed}"] = out / target.name
            figures = {key: out / Path(path).name for key, path in figures.items()}
            links = {title: out / Path(path).name for title, path in _write_token_views(collected, tmp).items()}
            atomic.write_json(tmp / "report.json", summary)
            atomic.write_text(tmp / "report.md", render_markdown(collected, summary, figures, out, links))
        if model_cards:
            _refresh_model_cards(collected)
    return out / "report.md"
