"""CLI: `langtrainer demo` and `langtrainer report`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from langtrainer.cli.common import console, make_progress, user_errors
from langtrainer.cli.cmd_recipe import SET_HELP


@user_errors
def demo_command(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Output directory (re-running continues it)."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Number of seeds (0, 1, ...): 3 gives mean ± std."),
    quick: bool = typer.Option(False, "--quick", help="Less data, fewer epochs and SHAP examples (a few minutes)."),
    mie: bool = typer.Option(
        False, "--mie", help="Also train bal / imbal with the masked-input entropy term (Annex A.3) and draw "
        "their cumulative SHAP difference (the paper's Figure 3)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Reproduce the paper's findings offline: train bal / imbal / imbal+weights, probe, SHAP, report."""
    from langtrainer.pipelines.demo import plan_demo, run_demo

    plan = plan_demo(out, seeds=seeds, quick=quick, overrides=set_ or [], mie=mie)
    started = time.perf_counter()
    with make_progress() as progress:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int, detail: str) -> None:
            if stage not in tasks:
                for task in progress.tasks:  # a new stage means the earlier ones finished
                    progress.update(task.id, completed=task.total or 1, total=task.total or 1)
                tasks[stage] = progress.add_task(stage, total=total or None, rate=detail)
            progress.update(tasks[stage], completed=done, total=total or None, rate=detail)

        result = run_demo(plan, progress=report)
    minutes = (time.perf_counter() - started) / 60
    console.print(f"[bold green]report:[/] {result['report']}  ({minutes:.1f} min)")


@user_errors
def report_command(
    run_dirs: List[Path] = typer.Argument(..., help="Run directories or a demo output directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Where report.md and its figures go (replaced whole)."),
    model_cards: bool = typer.Option(True, "--model-cards/--no-model-cards",
                                     help="Refresh each run's model card (README.md) with the report's numbers."),
) -> None:
    """Write report.md (accuracy, predictions per language and group, probe, SHAP difference, token views)
    with plain-language verdicts; refresh each run's model card (README.md)."""
    from langtrainer.reporting.report import write_report

    path = write_report(run_dirs, out, model_cards=model_cards)
    console.print(f"[bold green]report:[/] {path}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
    app.command("report")(report_command)
