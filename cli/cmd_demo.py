"""CLI: `langtrainer demo` and `langtrainer report`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from langtrainer.cli.common import options, console, make_progress, setup_logging, user_errors
from langtrainer.cli.cmd_recipe import SET_HELP


def demo_command(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Output directory (re-running continues it)."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Number of seeds (0, 1, ...): 3 gives mean ± std."),
    quick: bool = typer.Option(False, "--quick", help="Less data, fewer epochs and SHAP examples (a few minutes)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Reproduce the paper's findings offline: train bal / imbal / imbal+weights, probe, SHAP, report."""
    _demo(out, seeds, quick, set_ or [], options.quiet, options.verbose)


@user_errors
def _demo(out, seeds, quick, overrides, quiet, verbose):
    from langtrainer.pipelines.demo import plan_demo, run_demo

    setup_logging(verbose)
    plan = plan_demo(out, seeds=seeds, quick=quick, overrides=overrides)
    started = time.perf_counter()
    with make_progress(quiet) as progress:
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


def report_command(
    run_dirs: List[Path] = typer.Argument(..., help="Run directories or a demo output directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Where report.md and its figures go."),
) -> None:
    """Write report.md (accuracy, predictions per language and group, probe, SHAP difference, token views)
    with plain-language verdicts; refresh each run's model card (README.md)."""
    _report(run_dirs, out)


@user_errors
def _report(run_dirs, out):
    from langtrainer.reporting.report import write_report

    setup_logging(False)
    path = write_report(run_dirs, out)
    console.print(f"[bold green]report:[/] {path}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
    app.command("report")(report_command)
