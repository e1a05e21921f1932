"""A compare's numbers, collected from its run folders: per metric, per mitigation, per seed.

Everything here is read back from what the runs saved (metrics.json, the
probes' JSON, predictions.parquet), so compare.json can be recomputed from
the run folders alone (tests/test_compare.py does).

Metrics (`METRICS`): each has a direction; "better" in a verdict means a
difference in that direction. Rates carry their sample size (test rows, the
worst language's rows, probe texts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from langtrainer.analysis.probe.core import block_at_chance, difference_measured
from langtrainer.compare import statistics as st
from langtrainer.compare.plan import ComparePlan
from langtrainer.rundir import RunDir

BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    higher_is_better: bool
    unit: str = ""
    row_level: bool = True  # recomputable from predictions.parquet (so bootstrappable over test rows)


METRICS: list[Metric] = [
    Metric("accuracy", "accuracy", True),
    Metric("macro_f1", "macro-F1", True),
    Metric("worst_language_macro_f1", "worst-language macro-F1", True),
    Metric("language_prediction_cmi", "language dependence I(language; prediction | label)", False, "nats"),
    Metric("skew_index", "skew index (designed skew)", False),  # bootstrappable: Rows knows the design
    Metric("probe_test", "language-ID probe, test split", False, row_level=False),
    Metric("probe_external", "language-ID probe, external corpus", False, row_level=False),
]
METRIC_BY_KEY = {m.key: m for m in METRICS}


# ----------------------------------------------------------------------------- row-level metrics
def macro_f1(labels: np.ndarray, predicted: np.ndarray, n_labels: int) -> float:
    """Macro-F1 over the labels the rows have or are predicted (training.metrics' definition), numpy only."""
    if len(labels) == 0:
        return 0.0
    confusion = np.bincount(labels * n_labels + predicted, minlength=n_labels * n_labels).reshape(n_labels, n_labels)
    tp = np.diag(confusion).astype(np.float64)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    present = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(f1[present].mean()) if present.any() else 0.0


@dataclass
class Rows:
    """One run's test predictions as index arrays, aligned to the baseline's row order by id."""

    labels: np.ndarray
    predicted: np.ndarray
    languages: np.ndarray
    n_labels: int
    groups: dict[str, list[str]] | None = None  # the skew design, for the skew index
    favoured: dict[str, list[int]] | None = None

    def score(self, key: str, idx: np.ndarray | None = None) -> float:
        labels, predicted, languages = self.labels, self.predicted, self.languages
        if idx is not None:
            labels, predicted, languages = labels[idx], predicted[idx], languages[idx]
        if key == "accuracy":
            return float(np.mean(labels == predicted)) if len(labels) else float("nan")
        if key == "macro_f1":
            return macro_f1(labels, predicted, self.n_labels)
        if key == "worst_language_macro_f1":
            return min(macro_f1(labels[languages == lang], predicted[languages == lang], self.n_labels)
                       for lang in np.unique(languages))
        if key == "language_prediction_cmi":
            from langtrainer.training.language_dependence import language_prediction_cmi

            return language_prediction_cmi(predicted, labels, languages)
        if key == "skew_index" and self.groups and self.favoured:
            from langtrainer.training.metrics import skew_index

            return skew_index(predicted, languages, self.groups, self.favoured)
        raise KeyError(key)


def aligned_rows(run: RunDir, ids: list[str] | None = None, label_names: list[str] | None = None) -> Rows:
    """The run's predictions.parquet as Rows, in the order of `ids` (matched by id, never by position)."""
    from langtrainer.errors import UserError

    frame = run.read_predictions()
    names = label_names or list(frame.attrs.get("label_names") or [])
    index = {name: i for i, name in enumerate(names)}
    frame = frame.set_index("id", drop=False)
    if ids is not None:
        missing = [i for i in ids if i not in frame.index]
        if missing or len(frame) != len(ids):
            raise UserError(f"'{run.path}' predicted other test rows than the baseline (e.g. id {missing[:1]}): "
                            "the runs do not share their test split")
        frame = frame.loc[ids]
    unknown = sorted(set(frame["label"]) - set(index) | set(frame["predicted"]) - set(index))
    if unknown:
        raise UserError(f"'{run.path}' has labels {unknown} that the baseline's model does not know")
    return Rows(frame["label"].map(index).to_numpy(np.int64), frame["predicted"].map(index).to_numpy(np.int64),
                frame["language"].astype(str).to_numpy(), len(names))


# ----------------------------------------------------------------------------- per-run values
@dataclass
class RunValues:
    mitigation: str
    seed: int
    folder: str
    values: dict[str, float | None]
    n: dict[str, int | None]
    worst_language: str | None
    chance: dict[str, float | None] = field(default_factory=dict)
    at_chance: dict[str, bool] = field(default_factory=dict)  # probe metric -> analysis.probe.at_chance


def run_values(mitigation: str, seed: int, run: RunDir) -> RunValues:
    """The metrics of one finished run, from its metrics.json and probe JSONs."""
    test = run.read_metrics().test
    by_language = test.by_language
    worst = min(by_language, key=lambda lang: (by_language[lang].macro_f1, lang)) if by_language else None
    values: dict[str, float | None] = {
        "accuracy": test.accuracy,
        "macro_f1": test.macro_f1,
        "worst_language_macro_f1": by_language[worst].macro_f1 if worst else None,
        "language_prediction_cmi": test.language_prediction_cmi,
        "skew_index": test.skew_index,
    }
    n = {"accuracy": test.n, "macro_f1": test.n, "worst_language_macro_f1": by_language[worst].n if worst else None,
         "language_prediction_cmi": test.n, "skew_index": test.n}
    chance: dict[str, float | None] = {}
    at_chance: dict[str, bool] = {}
    probes = run.read_probes()
    for data in ("test", "external"):
        probe = probes.get(data)
        values[f"probe_{data}"] = probe.accuracy_mean if probe is not None else None
        n[f"probe_{data}"] = probe.n_examples if probe is not None else None
        chance[f"probe_{data}"] = (probe.block.result or {}).get("chance_accuracy") if probe is not None else None
        at_chance[f"probe_{data}"] = probe is not None and block_at_chance(probe)
    return RunValues(mitigation, seed, str(run.path), values, n, worst, chance, at_chance)


# ----------------------------------------------------------------------------- comparisons
@dataclass
class Comparison:
    """One metric, one mitigation against the baseline."""

    metric: str
    mitigation: str
    values: dict[int, float]
    n: dict[int, int | None]
    mean: float
    se: float | None
    differences: dict[int, float]
    difference_mean: float
    difference_se: float | None
    interval: st.Interval | None
    verdict: str
    seeds_needed: int | None = None


def compare_metric(metric: Metric, mitigation: str, values: dict[int, RunValues], baseline: dict[int, RunValues],
                   rows: dict[tuple[str, int], Rows], baseline_name: str, bootstrap_seed: int,
                   reference_at_chance: bool = False) -> Comparison | None:
    """One metric of one mitigation against the baseline, paired by seed. `reference_at_chance`: the pretrained
    model's probe of this metric is at chance (`analysis.probe.difference_measured`)."""
    mine = {s: v.values.get(metric.key) for s, v in values.items()}
    mine = {s: float(x) for s, x in mine.items() if x is not None and math.isfinite(x)}
    theirs = {s: float(v.values[metric.key]) for s, v in baseline.items()
              if v.values.get(metric.key) is not None and math.isfinite(v.values[metric.key])}
    if not mine:
        return None
    summary = st.mean_se(list(mine.values()))
    differences = st.paired_differences(mine, theirs) if mitigation != baseline_name else {}
    d = st.mean_se(list(differences.values()))
    interval = st.seed_interval(d)
    if mitigation != baseline_name and len(differences) == 1 and metric.row_level:
        seed = next(iter(differences))
        a, b = rows.get((baseline_name, seed)), rows.get((mitigation, seed))
        if a is not None and b is not None:
            _, interval, _ = st.paired_bootstrap(lambda idx: a.score(metric.key, idx),
                                                 lambda idx: b.score(metric.key, idx), len(a.labels),
                                                 resamples=BOOTSTRAP_RESAMPLES, seed=bootstrap_seed)
    verdict = st.verdict(d.mean, d.se, metric.higher_is_better, interval, d.n) if differences else ""
    if differences and metric.key.startswith("probe_") and not difference_measured(
            ((values[s].at_chance.get(metric.key, False), baseline[s].at_chance.get(metric.key, False))
             for s in differences), reference_at_chance):
        verdict = st.AT_CHANCE
    sd = d.se * math.sqrt(d.n) if d.se is not None else None
    needed = st.seeds_needed(d.mean, sd, d.n) if verdict == st.NOISE else None
    return Comparison(metric.key, mitigation, mine, {s: values[s].n.get(metric.key) for s in mine},
                      summary.mean, summary.se, differences, d.mean, d.se, interval, verdict, needed)


def collect(plan: ComparePlan):
    """The CompareResult of a finished plan (every run folder finished)."""
    from langtrainer.compare.outputs import CompareResult
    from langtrainer.compare.verdicts import recommend

    per_run = {(r.mitigation, r.seed): run_values(r.mitigation, r.seed, RunDir(r.folder))
               for r in plan.ordered_runs()}
    rows = _rows(plan) if len(plan.seeds) == 1 else {}
    probes = plan.folder.pretrained.read_probes()
    reference = {f"probe_{data}": block_at_chance(report) for data, report in probes.items()}
    comparisons: dict[str, dict[str, Comparison]] = {}
    for metric in METRICS:
        for m in plan.names:
            found = compare_metric(metric, m, {s: per_run[(m, s)] for s in plan.seeds},
                                   {s: per_run[(plan.baseline, s)] for s in plan.seeds}, rows, plan.baseline,
                                   plan.split_seed, reference.get(metric.key, False))
            if found is not None:
                comparisons.setdefault(metric.key, {})[m] = found
    return CompareResult.build(plan, per_run, comparisons, recommend(plan, comparisons), probes)


def _rows(plan: ComparePlan) -> dict[tuple[str, int], Rows]:
    """Every run's predictions aligned to the baseline's (for the one-seed bootstrap)."""
    from langtrainer.training.evaluation import favoured_labels

    seed = plan.seeds[0]
    base_run = RunDir(plan.runs[(plan.baseline, seed)].folder)
    frame = base_run.read_predictions()
    ids, names = frame["id"].astype(str).tolist(), list(frame.attrs.get("label_names") or [])
    out = {}
    for m in plan.names:
        rows = aligned_rows(RunDir(plan.runs[(m, seed)].folder), ids, names)
        rows.groups = plan.base.imbalance.groups
        rows.favoured = favoured_labels(plan.runs[(m, seed)].recipe, len(names))
        out[(m, seed)] = rows
    return out


__all__ = ["METRICS", "Comparison", "Metric", "Rows", "RunValues", "aligned_rows", "collect", "compare_metric",
           "macro_f1", "run_values"]

