"""What a compare writes: compare.json (CompareResult, typed and versioned), compare.md, the forest plot,
the token views (baseline vs each mitigation, on the first seed's shared SHAP subsample)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from langtrainer import atomic
from langtrainer.artifacts import Artifact
from langtrainer.compare.folder import CompareDir
from langtrainer.compare.plan import FORMAT_VERSION
from langtrainer.compare.verdicts import seeds_to_decide
from langtrainer.training.intervals import seed_threshold

if TYPE_CHECKING:
    from langtrainer.artifacts import ProbeReport
    from langtrainer.compare.plan import ComparePlan
    from langtrainer.compare.results import Comparison, RunValues
    from langtrainer.compare.verdicts import Recommendation

KIND = "langtrainer.compare.result"


@dataclass
class CompareResult(Artifact):
    """compare.json: every number of compare.md, with where it comes from (the run folders).

    metrics: metric key -> {title, higher_is_better, unit, by_mitigation: mitigation -> {values, n (per seed),
    mean, se, differences (per seed), difference_mean, difference_se, interval {low, high, kind}, verdict,
    seeds_needed}}; runs: one entry per run folder (its values and sample sizes).
    """

    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    HEADER: ClassVar[dict[str, Any]] = {"kind": KIND}

    recipe: str
    baseline: str
    seeds: list[int]
    split_seed: int
    mitigations: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    metrics: dict[str, dict[str, Any]]
    recommendation: dict[str, Any]
    pretrained_probe: dict[str, float | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    shap_diff: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def build(cls, plan: "ComparePlan", per_run: dict[tuple[str, int], "RunValues"],
              comparisons: dict[str, dict[str, "Comparison"]], recommendation: "Recommendation",
              pretrained_probes: dict[str, "ProbeReport"]) -> "CompareResult":
        """`pretrained_probes`: the pretrained model's probe reports by data ('test', 'external')."""
        from langtrainer.compare.results import METRIC_BY_KEY

        folder = CompareDir(plan.out)
        metrics = {}
        for key, by_mitigation in comparisons.items():
            metric = METRIC_BY_KEY[key]
            metrics[key] = {"title": metric.title, "higher_is_better": metric.higher_is_better, "unit": metric.unit,
                            "by_mitigation": {m: _comparison_dict(c) for m, c in by_mitigation.items()}}
        runs = [{"mitigation": v.mitigation, "seed": v.seed, "folder": Path(v.folder).name, "values": v.values,
                 "n": v.n, "worst_language": v.worst_language, "probe_chance": v.chance,
                 "probe_at_chance": v.at_chance}
                for v in per_run.values()]
        diffs = {m: {str(s): str(folder.shap_diff_dir(m, s).relative_to(folder.path)) for s in plan.seeds}
                 for m in plan.names if m != plan.baseline}
        return cls(
            recipe=plan.base.name, baseline=plan.baseline, seeds=list(plan.seeds), split_seed=plan.split_seed,
            mitigations=[{"name": m.name, "what": m.what, "overlay": m.overrides} for m in plan.mitigations],
            runs=runs, metrics=metrics, recommendation=dataclasses.asdict(recommendation),
            pretrained_probe={data: pretrained_probes[data].accuracy_mean if data in pretrained_probes else None
                              for data in ("test", "external")},
            warnings=warnings_for(plan, per_run, pretrained_probes), shap_diff=diffs)


def _comparison_dict(c: "Comparison") -> dict[str, Any]:
    return {
        "values": {str(s): v for s, v in c.values.items()},
        "n": {str(s): v for s, v in c.n.items()},
        "mean": c.mean,
        "se": c.se,
        "differences": {str(s): v for s, v in c.differences.items()},
        "difference_mean": c.difference_mean if c.differences else None,
        "difference_se": c.difference_se,
        "interval": dataclasses.asdict(c.interval) if c.interval is not None else None,
        "verdict": c.verdict,
        "seeds_needed": c.seeds_needed,
    }


def warnings_for(plan: "ComparePlan", per_run: dict[tuple[str, int], "RunValues"],
                 pretrained_probes: dict[str, "ProbeReport"]) -> list[str]:
    """One line per limit on what the compare can conclude (few seeds; data.small_samples' lines)."""
    from langtrainer.data.small_samples import small_sample_warnings
    from langtrainer.pipelines.finetune import training_subset_names
    from langtrainer.rundir import RunDir

    out = []
    if len(plan.seeds) == 1:
        out.append("one seed: intervals are a paired bootstrap over the test rows; they leave out the training's own "
                   "noise (another seed can move a number more), so a 'better' here is weaker than over seeds")
    elif len(plan.seeds) == 2:
        t2, t3, t5 = (seed_threshold(k) for k in (2, 3, 5))
        out.append(f"two seeds: each SE rests on one degree of freedom, so a difference must exceed {t2:.1f} SE to "
                   f"be called (Student's t); a third seed lowers that to {t3:.1f} SE, a fifth to {t5:.1f}")
    out += _probes_at_chance(plan, per_run, pretrained_probes)
    base = RunDir(per_run[(plan.baseline, plan.seeds[0])].folder)
    by_language = base.read_metrics().test.by_language
    train_name, _ = training_subset_names(plan.runs[(plan.baseline, plan.seeds[0])].recipe)
    distribution = base.read_distribution()
    train_counts = distribution.counts.get(train_name) if distribution is not None else None
    weights = {}
    for (m, seed), values in per_run.items():
        metrics = RunDir(values.folder).read_metrics()
        if seed == plan.seeds[0] and metrics.class_weights:
            weights = {lang: dict(zip(metrics.label_names, row))
                       for lang, row in zip(metrics.languages, metrics.class_weights)}
            break
    lines = small_sample_warnings(train_counts=train_counts, test_rows={k: v.n or 0 for k, v in by_language.items()},
                                  class_weights=weights)
    out += lines
    if lines:
        out.append("these limit the per-language numbers above: the worst-language macro-F1, and so the "
                   "recommendation that rests on it, is least certain where a language has few rows")
    return out


def _probes_at_chance(plan: "ComparePlan", per_run: dict[tuple[str, int], "RunValues"],
                      pretrained: dict[str, "ProbeReport"]) -> list[str]:
    """One line per probe (test split, external corpus) at chance in some run or in the pretrained model: which,
    and what that leaves decided (`analysis.probe.difference_measured`)."""
    from langtrainer.analysis.probe.core import block_at_chance

    c = plan.base.analysis.probe.C
    out = []
    for data, where in (("test", "test-split"), ("external", "external-corpus")):
        key = f"probe_{data}"
        runs = [v for v in per_run.values() if v.at_chance.get(key)]
        base = pretrained.get(data)
        base_at_chance = base is not None and block_at_chance(base)
        if not runs and not base_at_chance:
            continue
        names = (["the pretrained model"] if base_at_chance else []) + [f"{v.mitigation} seed {v.seed}" for v in runs]
        shown = runs[0] if runs else None
        chance = shown.chance.get(key) if shown is not None else (base.block.result or {}).get("chance_accuracy")
        n = shown.n.get(key) if shown is not None else base.n_examples
        line = (f"the {where} language-ID probe is at chance (it scores what always guessing the commonest language "
                f"scores, {chance:.3f} on {n} texts) for {', '.join(names)}")
        if base_at_chance:
            line += (f": at C = {c:g} on this many texts it cannot see language even in the pretrained model, so no "
                     "verdict rests on it; probe more texts or set analysis.probe.C higher (`langtrainer probe "
                     "--c-sweep` shows where models separate)")
        else:
            line += (f": at C = {c:g} their first tokens show no language the probe can use (a floor); a difference "
                     "to a model above chance is measured, one between two models at chance in the same seed is "
                     "not decided")
        out.append(line)
    return out


# ----------------------------------------------------------------------------- rendering
def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.{digits}f}"


def _mean_se(mean: float | None, se: float | None, signed: bool = False) -> str:
    text = _signed(mean) if signed else _num(mean)
    return text if se is None else f"{text} ± {se:.3f}"


def _threshold_text(n_seeds: int) -> str:
    if n_seeds < 2:
        return f"{seed_threshold(2):.2f} at 2 seeds, {seed_threshold(3):.2f} at 3"
    return f"t = {seed_threshold(n_seeds):.2f} at these {n_seeds} seeds"


def _interval(interval: dict[str, Any] | None) -> str:
    if not interval:
        return "–"
    return f"[{interval['low']:+.3f}, {interval['high']:+.3f}]"


SUMMARY_METRICS = ("accuracy", "worst_language_macro_f1", "language_prediction_cmi", "probe_test")


def cell_text(c: dict[str, Any]) -> str:
    """'mean ± SE (Δ d ± SE, verdict)' of one metric and mitigation."""
    text = _mean_se(c["mean"], c["se"])
    if c["differences"]:
        text += f" (Δ {_mean_se(c['difference_mean'], c['difference_se'], signed=True)}, {c['verdict']})"
    return text


def summary_table(result: CompareResult, keys: tuple[str, ...] = SUMMARY_METRICS) -> str:
    """One row per mitigation: mean ± SE of the headline metrics with their verdict against the baseline."""
    keys = tuple(k for k in keys if k in result.metrics)
    header = "| mitigation | " + " | ".join(result.metrics[k]["title"] for k in keys) + " |"
    lines = [header, "|---|" + "---|" * len(keys)]
    for m in [x["name"] for x in result.mitigations]:
        cells = []
        for k in keys:
            c = result.metrics[k]["by_mitigation"].get(m)
            cells.append(cell_text(c) if c is not None else "–")
        lines.append(f"| {m}{' (baseline)' if m == result.baseline else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(result: CompareResult, paths: dict[str, Path]) -> str:
    rec = result.recommendation
    runs_n = len(result.runs)
    n_test = next((r["n"]["accuracy"] for r in result.runs), None)
    seeds = ", ".join(map(str, result.seeds))
    out = [f"# Compare: {result.recipe}", "",
           f"{len(result.mitigations)} mitigations × {len(result.seeds)} seeds ({seeds}) = {runs_n} runs, every one on "
           f"the same split (split seed {result.split_seed}, {n_test} test rows); the seed varies training only. "
           f"Differences are paired by seed against **{result.baseline}**.", "",
           "## Recommendation", "",
           f"**{rec['choice']}**{'' if rec['decided'] else ' (not decided)'}: {rec['reason']}.", "",
           f"Rule: {rec['rule']}.", ""]
    needed = {m: n for m, n in rec.get("undecided", {}).items()}
    if needed:
        out.append("Seeds the observed spread would need to decide worst-language macro-F1: " + ", ".join(
            f"{m}: {n if n is not None else 'cannot be estimated (one seed, or no difference at all)'}"
            for m, n in needed.items()) + ".")
        more = seeds_to_decide(needed)
        if more is not None:
            new = more - len(result.seeds)
            out.append(f"A compare of the same recipe into this folder with {more} seeds extends this one: the runs "
                       f"done are kept and only the {new} new seed{'s' if new > 1 else ''} per mitigation train. Were "
                       "the observed means and spreads to hold, that would decide it; more seeds also move them.")
        out.append("")
    out += ["## Summary (mean ± SE over seeds; Δ: paired difference to the baseline, mean ± SE)", "",
            summary_table(result), ""]
    if result.warnings:
        out += ["## What limits these conclusions", ""] + [f"- {w}" for w in result.warnings] + [""]
    out += [f"![paired differences]({paths['forest'].name})", ""] if "forest" in paths else []
    out += ["## Every metric", "",
            "Verdict: 'better' / 'worse' when the paired difference is beyond t·SE in the metric's good / bad "
            "direction, t being Student's 95 % two-sided quantile with seeds − 1 degrees of freedom (a paired t test: "
            f"{_threshold_text(len(result.seeds))}); one seed: when the 95 % paired bootstrap interval over test rows "
            "excludes 0. Otherwise 'within the noise'. Interval: the 95 % t interval (mean ± t·SE), or the bootstrap's. "
            "n: the rows (or probe texts) behind each rate, per seed.", ""]
    for key, block in result.metrics.items():
        direction = "higher is better" if block["higher_is_better"] else "lower is better"
        unit = f", {block['unit']}" if block["unit"] else ""
        out += [f"### {block['title']} ({direction}{unit})", "",
                "| mitigation | per seed | n | mean ± SE | Δ per seed | Δ mean ± SE | interval | verdict |",
                "|---|---|---|---|---|---|---|---|"]
        for m, c in block["by_mitigation"].items():
            per_seed = ", ".join(_num(v) for v in c["values"].values())
            ns = ", ".join("–" if v is None else str(v) for v in c["n"].values())
            deltas = ", ".join(_signed(v) for v in c["differences"].values()) or "–"
            interval = _interval(c["interval"])
            if c["interval"] and "bootstrap" in c["interval"]["kind"]:
                interval += " (bootstrap over test rows)"
            delta = _mean_se(c["difference_mean"], c["difference_se"], signed=True) if c["differences"] else "–"
            verdict = c["verdict"] or "(baseline)"
            if c.get("seeds_needed"):
                verdict += f"; ~{c['seeds_needed']} seeds to decide"
            out.append(f"| {m} | {per_seed} | {ns} | {_mean_se(c['mean'], c['se'])} | {deltas} | {delta} | "
                       f"{interval} | {verdict} |")
        out.append("")
    worst = {}
    for run in result.runs:
        worst.setdefault(run["mitigation"], []).append(f"{run['worst_language']} (seed {run['seed']})")
    out += ["Worst language per run: " + "; ".join(f"{m}: {', '.join(v)}" for m, v in worst.items()) + ".", ""]
    probe = result.pretrained_probe
    out += [f"Pretrained model's language-ID probe: test {_num(probe.get('test'))}, external "
            f"{_num(probe.get('external'))} (the fine-tuned runs' probes are in the tables above).", ""]
    views = [p for k, p in paths.items() if k.startswith("token_view:")]
    if views:
        out += ["## Token views (first seed, the shared SHAP subsample)", ""]
        out += [f"- [{p.stem.removeprefix('token_view_')} vs {result.baseline}]({p.name})" for p in views] + [""]
    out += ["## Runs", "", "Each is an ordinary run folder (`report`, `probe`, `shap` work on it): "
            + ", ".join(f"`{r['folder']}`" for r in result.runs) + ". SHAP differences against the baseline: "
            "`shap_diff/<mitigation>-seed<k>/`.", ""]
    return "\n".join(out)


def draw_forest(result: CompareResult):
    """One forest panel per metric with a difference; returns the first axes (its figure holds all)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from langtrainer.reporting.plots import plot_forest

    keys = [k for k, b in result.metrics.items() if any(c["differences"] for c in b["by_mitigation"].values())]
    others = [m["name"] for m in result.mitigations if m["name"] != result.baseline]
    height = 0.9 + 0.32 * len(others)
    fig, axes = plt.subplots(len(keys), 1, figsize=(6.5, max(height * len(keys), 2.0)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        block = result.metrics[key]
        rows = []
        for m in others:
            c = block["by_mitigation"].get(m)
            if c is None:
                continue
            interval = c["interval"] or {}
            rows.append({"name": m, "mean": c["difference_mean"], "low": interval.get("low"),
                         "high": interval.get("high"), "verdict": c["verdict"],
                         "points": list(c["differences"].values())})
        direction = "↑ better" if block["higher_is_better"] else "↓ better"
        kind = next((c["interval"]["kind"] for c in block["by_mitigation"].values() if c["interval"]), "")
        plot_forest(rows, ax=ax, title=f"{block['title']} ({direction})",
                    xlabel=f"− {result.baseline}; bars: {kind}" if kind else f"− {result.baseline}")
    return axes[0, 0]


def write_outputs(result: CompareResult, plan: "ComparePlan") -> dict[str, Path]:
    """compare.json, the forest plot, the token views, then compare.md (which links them)."""
    from langtrainer.reporting.plots import save_figure

    folder = CompareDir(plan.out)
    paths: dict[str, Path] = {}
    if any(b["by_mitigation"] for b in result.metrics.values()) and len(result.mitigations) > 1:
        paths["forest"] = save_figure(draw_forest(result), folder.forest_path)
    paths.update(_token_views(result, plan))
    paths["json"] = result.write(folder.json_path)
    paths["markdown"] = atomic.write_text(folder.markdown_path, render_markdown(result, paths))
    return paths


def _token_views(result: CompareResult, plan: "ComparePlan") -> dict[str, Path]:
    from langtrainer.analysis.shap import load_shap_result
    from langtrainer.reporting.token_view import write_comparison_view

    folder = CompareDir(plan.out)
    seed = plan.seeds[0]
    baseline = load_shap_result(folder.run(plan.baseline, seed).shap_dir)
    out = {}
    for m in plan.names:
        if m == plan.baseline:
            continue
        other = load_shap_result(folder.run(m, seed).shap_dir)
        out[f"token_view:{m}"] = write_comparison_view(
            baseline, other, folder.token_view_path(m), threshold=plan.base.analysis.shap.threshold,
            names=(plan.baseline, m), title=f"Token view: {m} vs {plan.baseline} (seed {seed})")
    return out


__all__ = ["CompareResult", "render_markdown", "summary_table", "write_outputs"]

