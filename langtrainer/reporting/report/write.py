"""`report` end to end: collect, summarise, draw, write report.md / report.json, token views and the
runs' refreshed model cards (the only module of the report with side effects)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from langtrainer import atomic
from langtrainer.errors import UserError, setting_error
from langtrainer.artifacts import ProbeModelBlock
from langtrainer.reporting.report.collect import Collected, Run, collect
from langtrainer.reporting.report.paper import PAPER
from langtrainer.reporting.report.sections import render_markdown
from langtrainer.reporting.report.setups import role_sort_key, role_title
from langtrainer.reporting.report.statistics import by_role, summarise
from langtrainer.rundir import RunDir


PROBE_DATA = (("test", "test set"), ("external", "external corpus"))


def _probe_sets(runs: dict[str, list[Run]], pretrained: dict[int, dict[str, ProbeModelBlock]]) -> dict[str, list[dict]]:
    """Model title -> its probe results (one per seed and data, as the probe JSON holds them), the
    pretrained model first."""
    sets: dict[str, list[dict]] = {}
    if pretrained:
        sets[role_title("pretrained")] = [dict(p[data].to_dict(), data=data) for p in pretrained.values()
                                          for data, _ in PROBE_DATA if data in p]
    for role in sorted(runs, key=role_sort_key):
        sets[role_title(role)] = [dict(r.probes[data].to_dict(), data=data) for r in runs[role]
                                  for data, _ in PROBE_DATA if data in r.probes]
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


def accuracy_probe_figure(runs: dict[str, list[Run]], pretrained: dict[int, dict[str, ProbeModelBlock]], out: Path,
                          paper: str | None = None) -> Path:
    """accuracy_probe.png (reporting.plots.plot_accuracy_and_probe) from the runs' numbers.

    The probe panel shows the C where the models separate most (from the probes' C sweeps), not the
    paper's C where every model may sit at chance, and marks each data set's chance level (always
    guessing its commonest language).
    """
    from langtrainer.reporting.plots import plot_accuracy_and_probe, save_figure

    roles = sorted(runs, key=role_sort_key)
    accuracy = {role_title(r): [run.metrics.test.accuracy for run in runs[r]] for r in roles}
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
    own = sorted({float((p.get("settings") or {}).get("C")) for found in sets.values() for p in found
                  if (p.get("settings") or {}).get("C") is not None})
    where = (f"C = {c:g}, where the models differ most" if c is not None else
             f"C = {', '.join(f'{v:g}' for v in own) or '?'} (no C sweep)")
    numbers = PAPER.get(paper) if paper else None
    reference = {role_title(r): v for r, v in numbers.accuracy.items()} if numbers else None
    ax = plot_accuracy_and_probe(accuracy, probes, reference=reference,
                                 reference_label=f"paper (mBERT, {numbers.dataset})" if numbers else "paper",
                                 analogue=numbers is not None, chance=chance, probe_note=where)
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


REPORT_MARKERS = ("report.md", "report.json")


def check_report_target(out: Path) -> None:
    """`out` is replaced whole by the new report: refuse a folder that holds anything but an earlier report."""
    if out.is_dir() and any(out.iterdir()) and not any((out / name).is_file() for name in REPORT_MARKERS):
        raise setting_error(f"{{out}} '{out}' exists and is not a report folder (no report.md); it would be replaced: "
                            "give a new folder", "out")


def _cards_to_refresh(collected: Collected) -> list[RunDir]:
    return [RunDir(run.path) for run in collected.runs
            if RunDir(run.path).has_model() or RunDir(run.path).model_card_path.exists()]


def _check_cards_writable(folders: list[RunDir]) -> None:
    import os

    for folder in folders:
        card = folder.model_card_path
        if not os.access(folder.path, os.W_OK | os.X_OK) or (card.exists() and not os.access(card, os.W_OK)):
            raise setting_error(f"cannot refresh the model card '{card}': the run folder is not writable; make it "
                                "writable or pass {model_cards=False}", "model_cards=False")


def write_report(dirs: Iterable[str | Path], out: str | Path, model_cards: bool = True) -> Path:
    """Collect, summarise, plot, and write out/report.md (+ report.json, PNGs, token views); refresh model cards.

    The report is built in a temporary folder beside `out` and replaces it
    whole when complete (an interrupted report leaves the old one, or none);
    the run folders are read under their shared lock, so no finetune writes
    them meanwhile. `model_cards=False` leaves the runs' README.md alone.
    """
    import contextlib
    import shutil

    from langtrainer.preflight import UNLOCKED_TEMP_AGE_S, check_output_folder, remove_stale_temporaries

    out = check_output_folder(out, "out")
    check_report_target(out)
    collected = collect(list(dirs))  # before anything is made: a report on nothing leaves no folder
    _check_cards_writable(_cards_to_refresh(collected) if model_cards else [])
    with contextlib.ExitStack() as locks:
        for run in collected.runs:
            locks.enter_context(RunDir(run.path).read_lock())
        collected = collect(list(dirs))  # again under the locks: what was read before a lock may have changed
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out.parent, UNLOCKED_TEMP_AGE_S, name=out.name)  # a killed report's folder
        with atomic.atomic_dir(out) as tmp:
            summary = summarise(collected)
            accuracy_probe_figure(by_role(collected.runs), collected.pretrained_probes, tmp, paper=collected.paper)
            figures = {"accuracy_probe": out / "accuracy_probe.png"}
            for (seed, name), png in sorted(collected.shap_figures.items()):
                target = tmp / f"shap_diff_{name}_seed{seed}.png"
                shutil.copyfile(png, target)
                figures[f"shap_diff_{name}_seed{seed}"] = out / target.name
            links = {title: out / Path(path).name for title, path in _write_token_views(collected, tmp).items()}
            atomic.write_json(tmp / "report.json", summary.to_dict())
            atomic.write_text(tmp / "report.md", render_markdown(collected, summary, figures, out, links))
        if model_cards:
            _refresh_model_cards(collected)
    return out / "report.md"
