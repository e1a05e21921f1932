"""The numbers the report states: means over seeds, standard errors, paired differences and the
typed summary (report.json)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from langtrainer.analysis.probe.core import block_at_chance, difference_measured
from langtrainer.artifacts import ShapDiffReport
from langtrainer.reporting.report.collect import Collected, Run
from langtrainer.reporting.report.setups import role_sort_key, role_title
from langtrainer.reporting.tables import INTERVALS, TRUE_PREFIX, MetricTable, metric_table
from langtrainer.training.intervals import seed_threshold


def mean_std(values: list[float]) -> tuple[float, float, int]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan"), 0
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else float("nan"), len(arr)


def binomial_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


SINGLE_SEED_THRESHOLD = 2.0  # SEs, for one seed's measurement error (many rows: the normal 1.96, rounded up)


def difference_verdict(a: list[float], b: list[float], single_seed_se: float) -> tuple[float, float, bool]:
    """Mean of a - b, its standard error, and whether |diff| exceeds the threshold.

    With several seeds the SE comes from the spread of the K paired
    differences, and the threshold is Student's t with K − 1 degrees of
    freedom (`training.intervals.seed_threshold`: 4.30 SE at 3 seeds). With
    one seed the SE is `single_seed_se` (the measurement error of that one
    difference: binomial for accuracies, fold spread for probes), estimated
    from many rows, and the threshold is 2 SE.
    """
    diffs = [x - y for x, y in zip(a, b)]
    mean = float(np.mean(diffs))
    if len(diffs) > 1:
        se = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs)))
        return mean, se, abs(mean) > seed_threshold(len(diffs)) * se
    se = float(single_seed_se)
    return mean, se, abs(mean) > SINGLE_SEED_THRESHOLD * se


def group_table(run: Run, collected: "Collected") -> MetricTable | None:
    """The run's test metrics by language group (MetricFrame.by_group shape), or None without groups."""
    if not collected.groups:
        return None
    return metric_table(run.metrics.test, collected.label_names, "group", list(collected.groups))


def language_table(run: Run, collected: "Collected") -> MetricTable | None:
    languages = collected.languages or list(run.metrics.languages)
    return metric_table(run.metrics.test, collected.label_names, "language", languages)


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
    test = run.metrics.test
    if metric == "accuracy":
        return binomial_se(test.accuracy, n_test)
    if metric == "skew_index":
        # index = mean over groups g of share_g(F_g) − mean over h ≠ g of share_h(F_g); shares are
        # proportions over each group's test examples, taken as independent
        favoured = run.metrics.favoured_labels or {}
        names = run.metrics.label_names
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
    probe = run.probes.get(metric.removeprefix("probe_"))
    if probe is None:
        return float("nan")
    folds = len((probe.block.result or {}).get("fold_accuracies") or [1]) or 1
    return float(probe.accuracy_std if probe.accuracy_std is not None else float("nan")) / math.sqrt(folds)


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
    """(a, b) role pairs the report compares: balanced vs imbalanced, each mitigation vs both, and on as-is
    data each mitigation vs training without one."""
    roles = sorted(set(roles), key=role_sort_key)
    pairs = []
    if "balanced" in roles and "imbalanced" in roles:
        pairs.append(("balanced", "imbalanced"))
    pairs += [(role, "as-is") for role in roles if role.startswith("as-is+") and "as-is" in roles]
    for role in roles:
        if role.startswith("imbalanced+"):
            if "imbalanced" in roles:
                pairs.append((role, "imbalanced"))
            if "balanced" in roles:
                pairs.append(("balanced", role))
    return pairs


def probe_accuracy(run: Run, data: str) -> float | None:
    probe = run.probes.get(data)
    return None if probe is None else float(probe.accuracy_mean)


def probe_at_chance(run: Run, data: str) -> bool:
    """Whether the run's probe on `data` is at chance (`analysis.probe.at_chance`); False when there is none."""
    probe = run.probes.get(data)
    return probe is not None and block_at_chance(probe)


def reference_at_chance(collected: "Collected", data: str) -> bool:
    """Whether the pretrained model's probe on `data` is at chance in some seed: then the probe cannot see
    language at all at this C on this many texts (`analysis.probe.difference_measured`)."""
    return any(data in probes and block_at_chance(probes[data]) for probes in collected.pretrained_probes.values())


def group_distribution(run: Run, group: str, label_names: list[str], true: bool = False) -> list[float]:
    """The run's test predictions in `group`, % per label (Table 2's row); `true`: the true labels' shares
    of the group's test rows (NaN where the run did not record them)."""
    test = run.metrics.test
    table = metric_table(test, label_names, "group", [group])
    if (table is None or group not in table.frame.index) and group in test.by_language:
        table = metric_table(test, label_names, "language", [group])  # as-is data: the language is the group
    if table is None or group not in table.frame.index:
        return [float("nan")] * len(label_names)
    if true:
        return [100 * float(table.frame.at[group, TRUE_PREFIX + name]) for name in label_names]
    return [100 * v for v in table.shares(group)]


def neutral_shift(diff: ShapDiffReport, groups: dict[str, list[str]], favoured: dict[str, list[int]],
                  label_names: list[str]) -> dict[str, float]:
    """Mean neutral-token cumulative SHAP difference, per group, on its favoured labels.

    Reads shap_diff.json's by_language[label][language]["neutral"]["mean"].
    """
    by_language = diff.by_language
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


def mean_abs_base_difference(diff: ShapDiffReport) -> float:
    """Mean over labels and languages of |base-value difference| (shap_diff.json's "base" category)."""
    values = [abs(cells["base"]["mean"]) for per_language in diff.by_language.values()
              for cells in per_language.values() if "base" in cells and cells["base"].get("mean") is not None]
    return float(np.mean(values)) if values else float("nan")


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


Estimate = tuple  # (mean, std, n) over seeds, as `mean_std` gives it; NaN where there is no number
NOTHING: Estimate = (float("nan"), float("nan"), 0)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


@dataclass
class RoleSummary:
    """One training setup's numbers over seeds (a summary's `roles` entry); the pretrained model's has
    only its title and probes."""

    title: str
    names: list[str] | None = None
    accuracy: Estimate | None = None
    macro_f1: Estimate | None = None
    skew_index: Estimate | None = None
    language_prediction_cmi: Estimate | None = None  # nats; training.language_dependence
    language_prediction_cmi_p_value: list[float | None] | None = None  # the permutation p of each seed
    probe_test: Estimate = NOTHING
    probe_external: Estimate = NOTHING
    per_seed_accuracy: dict[int, float] | None = None
    shared_bias: tuple[str, float] | None = None  # (label, share) every group gives that label at least

    def to_dict(self) -> dict[str, Any]:
        keys = ("title", "names", "accuracy", "macro_f1", "skew_index", "language_prediction_cmi",
                "language_prediction_cmi_p_value", "probe_test", "probe_external", "per_seed_accuracy", "shared_bias")
        if self.names is None:  # the pretrained model
            keys = ("title", "probe_test", "probe_external")
        return {key: getattr(self, key) for key in keys}


@dataclass
class Comparison:
    """A paired difference a − b of one metric over the seeds both setups have."""

    mean: float
    se: float
    clear: bool  # |mean| > 2 se
    n_seeds: int

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "se": self.se, "clear": self.clear, "n_seeds": self.n_seeds}


@dataclass
class Summary:
    """All numbers the report states (report.json is `to_dict()`)."""

    seeds: list[int]
    n_test: int
    roles: dict[str, RoleSummary]
    paper_analogue: str | None
    label_names: list[str]
    comparisons: dict[str, Comparison] = field(default_factory=dict)  # "metric:a-b" -> a − b
    favoured_labels_by: str = "group"  # Collected.favoured_by
    small_samples: list[str] = field(default_factory=list)
    shap_neutral_shift: dict[str, dict[str, Estimate]] | None = None  # comparison -> group -> estimate
    shap_base_difference: dict[str, Estimate] | None = None  # comparison -> mean |base-value difference|

    def to_dict(self) -> dict[str, Any]:
        out = {"seeds": self.seeds, "n_test": self.n_test, "roles": {k: v.to_dict() for k, v in self.roles.items()},
               "paper_analogue": self.paper_analogue, "label_names": self.label_names,
               "comparisons": {k: v.to_dict() for k, v in self.comparisons.items()},
               "favoured_labels_by": self.favoured_labels_by, "small_samples": list(self.small_samples)}
        if self.shap_neutral_shift is not None:
            out["shap_neutral_shift"] = self.shap_neutral_shift
        if self.shap_base_difference is not None:
            out["shap_base_difference"] = self.shap_base_difference
        return out


def summarise(collected: Collected) -> Summary:
    """All numbers the report states."""
    runs = by_role(collected.runs)
    n_test = max(int(r.metrics.test.n or r.metrics.test_examples or 0) for r in collected.runs)
    summary = Summary(seeds=sorted({r.seed for r in collected.runs}), n_test=n_test, roles={},
                      paper_analogue=collected.paper, label_names=collected.label_names)
    for role, role_runs in runs.items():
        summary.roles[role] = RoleSummary(
            title=role_title(role),
            names=sorted({r.name for r in role_runs}),
            accuracy=mean_std([r.metrics.test.accuracy for r in role_runs]),
            macro_f1=mean_std([r.metrics.test.macro_f1 for r in role_runs]),
            skew_index=mean_std([_nan(r.metrics.test.skew_index) for r in role_runs]),
            language_prediction_cmi=mean_std([_nan(r.metrics.test.language_prediction_cmi) for r in role_runs]),
            language_prediction_cmi_p_value=[r.metrics.test.language_prediction_cmi_p_value for r in role_runs],
            probe_test=mean_std([probe_accuracy(r, "test") for r in role_runs]),
            probe_external=mean_std([probe_accuracy(r, "external") for r in role_runs]),
            per_seed_accuracy={r.seed: r.metrics.test.accuracy for r in role_runs},
            shared_bias=_shared_bias([group_table(r, collected) for r in role_runs]),
        )
    if collected.pretrained_probes:
        probes = collected.pretrained_probes.values()
        summary.roles["pretrained"] = RoleSummary(
            title=role_title("pretrained"),
            probe_test=mean_std([p["test"].accuracy_mean for p in probes if "test" in p]),
            probe_external=mean_std([p["external"].accuracy_mean for p in probes if "external" in p]),
        )
    metric_keys = {
        "accuracy": lambda r: r.metrics.test.accuracy,
        "skew_index": lambda r: _nan(r.metrics.test.skew_index),
        "probe_test": lambda r: _nan(probe_accuracy(r, "test")),
        "probe_external": lambda r: _nan(probe_accuracy(r, "external")),
    }
    for a, b in comparison_pairs(runs):
        for metric, key in metric_keys.items():
            xs, ys = paired(runs, a, b, key)
            if not xs or any(v is None or math.isnan(v) for v in xs + ys):
                continue
            if metric.startswith("probe_"):
                data = metric.removeprefix("probe_")
                flags = paired(runs, a, b, lambda r: probe_at_chance(r, data))
                if not difference_measured(zip(*flags), reference_at_chance(collected, data)):
                    continue  # two floors, or a probe that sees no language even in the pretrained model
            single = math.sqrt(single_run_se(runs[a][0], metric, n_test) ** 2
                               + single_run_se(runs[b][0], metric, n_test) ** 2)
            mean, se, clear = difference_verdict(xs, ys, single)
            summary.comparisons[f"{metric}:{a}-{b}"] = Comparison(mean, se, bool(clear), len(xs))
    summary.favoured_labels_by = collected.favoured_by
    summary.small_samples = list(collected.small_samples)
    if collected.groups and collected.favoured and collected.label_names:
        shifts: dict[str, list[dict[str, float]]] = {}
        for (seed, name), diff in collected.shap_diffs.items():
            shifts.setdefault(name, []).append(neutral_shift(diff, collected.groups, collected.favoured, collected.label_names))
        summary.shap_neutral_shift = {
            name: {g: mean_std([v[g] for v in values]) for g in collected.groups} for name, values in shifts.items()
        }
    if collected.entropy_comparisons:
        # The base-value bias the entropy term removes (Annex A.3): its size with and without the term.
        bases: dict[str, list[float]] = {}
        for (seed, name), diff in collected.shap_diffs.items():
            bases.setdefault(name, []).append(mean_abs_base_difference(diff))
        summary.shap_base_difference = {name: mean_std(values) for name, values in bases.items()}
    return summary
