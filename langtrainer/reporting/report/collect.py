"""Finding what finished runs left behind: metrics, probes, SHAP differences and their figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from langtrainer.analysis.matching import match_labels, match_languages
from langtrainer.artifacts import ProbeModelBlock, ProbeReport, RunMetrics, ShapDiffReport
from langtrainer.errors import UserError
from langtrainer.reporting.report.paper import paper_analogue_of
from langtrainer.reporting.report.setups import Setup, role_of
from langtrainer.rundir import DemoDir, RunDir


@dataclass
class Run:
    """One fine-tuned model and what was measured on it."""

    path: Path
    role: str
    name: str
    seed: int
    metrics: RunMetrics
    probes: dict[str, ProbeReport] = field(default_factory=dict)


@dataclass
class Collected:
    runs: list[Run]
    pretrained_probes: dict[int, dict[str, ProbeModelBlock]]  # seed -> data -> the pretrained model's probe
    shap_diffs: dict[tuple[int, str], ShapDiffReport]  # (seed, name) -> shap_diff.json
    shap_figures: dict[tuple[int, str], Path]
    groups: dict[str, list[str]] | None
    favoured: dict[str, list[int]] | None
    label_names: list[str]
    paper: str | None = None  # the paper experiment every run stands in for (PAPER's keys), if any
    languages: list[str] = field(default_factory=list)
    test_label_shares: dict[str, list[float]] | None = None  # language -> label shares of the test set
    entropy_comparisons: set[str] = field(default_factory=set)  # shap-diff names whose two runs used eq. 3
    # "group": favoured labels from the recipe's skew design; "language": as-is data, each language's
    # favoured labels from its training rows (the languages then stand in for the groups)
    favoured_by: str = "group"
    small_samples: list[str] = field(default_factory=list)  # data.small_samples' lines, over all runs


def _test_label_shares(run_dir: Path, label_names: list[str]) -> dict[str, list[float]] | None:
    """Per language, the test set's label shares (from data/distribution.json), or None."""
    distribution = RunDir(run_dir).read_distribution()
    return None if distribution is None else distribution.label_shares("test", label_names)


def _run_folder(shap_path: str | None) -> RunDir | None:
    """The run folder behind a SHAP result's path (a run folder or its shap/), None when it is not one."""
    if not shap_path:
        return None
    path = Path(shap_path)
    for folder in (path, path.parent):
        if RunDir(folder).has_recipe():
            return RunDir(folder)
    return None


def _uses_entropy_term(diff: ShapDiffReport) -> bool:
    """Both compared models were trained with the masked-input entropy term (their recipes say so)."""
    folders = [_run_folder(diff.balanced), _run_folder(diff.imbalanced)]
    return all(f is not None and Setup.of(None, f.raw_recipe()).entropy_term > 0 for f in folders)


def _check_same_names(first: Run, run: Run) -> None:
    """Runs combined in one report have the same labels and languages, by name (their order may differ:
    the report reads every per-label and per-language number by name)."""
    sides = (f"run '{first.path}'", f"run '{run.path}'")
    for a, b, match in ((first.metrics.label_names, run.metrics.label_names, match_labels),
                        (first.metrics.languages, run.metrics.languages, match_languages)):
        if a and b:
            match(list(a), list(b), sides=sides)


def collect(dirs: Iterable[str | Path]) -> Collected:
    """Find runs, probes and SHAP diffs under the given directories."""
    runs: list[Run] = []
    pretrained: dict[int, dict[str, ProbeModelBlock]] = {}
    diffs: dict[tuple[int, str], ShapDiffReport] = {}
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
            folder = RunDir(metrics_path.parent)
            metrics = folder.read_metrics()
            if metrics is None:
                continue
            recipe = folder.raw_recipe()
            run = Run(path=folder.path, role=role_of(metrics, recipe), name=str(metrics.recipe or folder.path.name),
                      seed=int(metrics.seed or 0), metrics=metrics, probes=folder.read_probes())
            for data, probe in run.probes.items():
                if probe.base is not None:
                    pretrained.setdefault(run.seed, {}).setdefault(data, probe.base)
            if runs:
                _check_same_names(runs[0], run)
            runs.append(run)
            analogues.add(paper_analogue_of(metrics, recipe))
            label_names = label_names or list(metrics.label_names)
            languages = languages or list(metrics.languages)
            groups = groups or metrics.groups
            if not favoured and metrics.favoured_labels:
                favoured = metrics.favoured_labels
                favoured_by = str(metrics.favoured_labels_by or "group")
            from langtrainer.reporting.model_card import run_small_sample_warnings

            small_samples += [line for line in run_small_sample_warnings(folder, metrics) if line not in small_samples]
            if test_shares is None and label_names:
                test_shares = _test_label_shares(run.path, label_names)
        for folder in sorted(p for p in root.rglob(DemoDir.PRETRAINED) if p.is_dir()):
            seed = DemoDir.seed_of(folder) or 0
            for data, probe in RunDir(folder).read_probes().items():
                pretrained.setdefault(seed, {})[data] = probe.block
        for diff_path in sorted(root.rglob(RunDir.SHAP_DIFF)):
            seed = DemoDir.seed_of(diff_path) or 0
            diff = ShapDiffReport.read(diff_path)
            if runs and runs[0].metrics.label_names and diff.label_names:
                match_labels(runs[0].metrics.label_names, diff.label_names,
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
    entropy = {name for (_, name), diff in diffs.items() if _uses_entropy_term(diff)}
    return Collected(runs, pretrained, diffs, figures, groups, favoured, label_names, paper=paper,
                     languages=languages, test_label_shares=test_shares, entropy_comparisons=entropy,
                     favoured_by=favoured_by, small_samples=small_samples)
