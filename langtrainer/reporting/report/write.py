"""`report` end to end: collect, summarise, draw, write report.md / report.json, token views and the
runs' refreshed model cards (the only module of the report with side effects)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from langtrainer import atomic
from langtrainer.errors import UserError
from langtrainer.artifacts import ProbeModelBlock
from langtrainer.reporting.report.collect import Collected, Run, collect
from langtrainer.reporting.report.paper import PAPER
from langtrainer.reporting.report.sections import render_markdown
from langtrainer.reporting.report.setups import role_sort_key, role_title
from langtrainer.reporting.report.statistics import by_role, probe_accuracy, summarise
from langtrainer.rundir import RunDir


def accuracy_probe_figure(runs: dict[str, list[Run]], pretrained: dict[int, dict[str, ProbeModelBlock]], out: Path,
                          paper: str | None = None) -> Path:
    """accuracy_probe.png (reporting.plots.plot_accuracy_and_probe) from the runs' numbers."""
    from langtrainer.reporting.plots import plot_accuracy_and_probe, save_figure

    roles = sorted(runs, key=role_sort_key)
    accuracy = {role_title(r): [run.metrics.test.accuracy for run in runs[r]] for r in roles}
    probes: dict[str, dict[str, list]] = {}
    if pretrained:
        probes[role_title("pretrained")] = {
            name: [p[data].accuracy_mean for p in pretrained.values() if data in p]
            for data, name in (("test", "test set"), ("external", "external corpus"))}
    for role in roles:
        probes[role_title(role)] = {name: [probe_accuracy(r, data) for r in runs[role]]
                                    for data, name in (("test", "test set"), ("external", "external corpus"))}
    numbers = PAPER.get(paper) if paper else None
    reference = {role_title(r): v for r, v in numbers.accuracy.items()} if numbers else None
    ax = plot_accuracy_and_probe(accuracy, probes, reference=reference,
                                 reference_label=f"paper (mBERT, {numbers.dataset})" if numbers else "paper",
                                 analogue=numbers is not None)
    return save_figure(ax, out / "accuracy_probe.png")


def _refresh_model_cards(collected: Collected) -> list[Path]:
    """Rewrite each run's README.md with its probes and the SHAP difference it was compared in."""
    from langtrainer.reporting.model_card import write_model_card

    written = []
    for run in collected.runs:
        folder = RunDir(run.path)
        if not (folder.has_model() or folder.model_card_path.exists()):
            continue
        diff = next((d for d in collected.shap_diffs.values()
                     if d.imbalanced and Path(d.imbalanced).resolve() in (folder.shap_dir.resolve(),
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
        bal, other = diff.balanced, diff.imbalanced
        if not bal or not other:
            continue
        try:
            a, b = load_shap_result(bal), load_shap_result(other)
        except UserError:
            continue
        title = f"{diff.comparison or name}, seed {seed}"
        links[title] = write_comparison_view(a, b, out / f"token_view_diff_{name}_seed{seed}.html", title=title,
                                             threshold=float(diff.threshold))
    return links


def write_report(dirs: Iterable[str | Path], out: str | Path) -> Path:
    """Collect, summarise, plot, and write out/report.md (+ report.json, PNGs, token views); refresh model cards."""
    import shutil

    from langtrainer.preflight import UNLOCKED_TEMP_AGE_S, check_output_folder, remove_stale_temporaries

    out = check_output_folder(out, "--out")
    collected = collect(list(dirs))  # before anything is made: a report on nothing leaves no folder
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, UNLOCKED_TEMP_AGE_S)  # half-written files of a killed report
    summary = summarise(collected)
    figures = {"accuracy_probe": accuracy_probe_figure(by_role(collected.runs), collected.pretrained_probes, out,
                                                       paper=collected.paper)}
    for (seed, name), png in sorted(collected.shap_figures.items()):
        target = out / f"shap_diff_{name}_seed{seed}.png"
        if png.resolve() != target.resolve():
            with atomic.atomic_path(target) as tmp:
                shutil.copyfile(png, tmp)
        figures[f"shap_diff_{name}_seed{seed}"] = target
    links = _write_token_views(collected, out)
    _refresh_model_cards(collected)
    atomic.write_json(out / "report.json", summary.to_dict())
    return atomic.write_text(out / "report.md", render_markdown(collected, summary, figures, out, links))
