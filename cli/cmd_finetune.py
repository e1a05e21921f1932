"""CLI: `langtrainer finetune RECIPE`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from langtrainer.artifacts import MetricRow, RunMetrics
from langtrainer.cli.common import console, err_console, make_progress, options, relaunch_args, user_errors
from langtrainer.cli.cmd_recipe import SET_HELP


def render_test_metrics(metrics: RunMetrics) -> Table:
    """metrics.json's test table: per language and group, accuracy (95 % interval) and, per label, the
    true share of the test rows beside the share of the predictions."""
    test = metrics.test
    names = metrics.label_names
    from rich import box

    # Compact cells and light borders: the table fits an 80-column terminal with four labels.
    table = Table(title=f"{metrics.recipe} ({metrics.subset} subset): test set", box=box.SIMPLE_HEAD,
                  caption="label columns: % of the language's test rows true / predicted")
    table.add_column("language")
    table.add_column("n", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("95 % CI", justify="right", no_wrap=True)
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)

    def add(unit: str, row: MetricRow, **style) -> None:
        shares, true = row.prediction_shares, row.label_shares
        ci = row.accuracy_ci
        interval = f"{ci[0]:.2f}–{ci[1]:.2f}" if ci else "–"
        cells = [(f"{100 * true.get(name, 0.0):.0f}/" if true else "") + f"{100 * shares.get(name, 0.0):.0f}"
                 for name in names]
        table.add_row(unit, str(row.n), f"{row.accuracy:.3f}", interval, *cells, **style)

    for unit, row in {**test.by_language, **(test.by_group or {})}.items():
        add(unit, row)
    add("all", test, style="bold")
    return table


@user_errors
def finetune_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file, e.g. recipes/demo_imbal.yaml."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Run directory (default runs/<name>-<subset>-<mitigations>-seed<seed>, "
                                              "mitigations none, cw, sampler, mie, adversary joined by +)."),
    subset: Optional[str] = typer.Option(None, "--subset", help="none (the data as it is) | balanced | imbalanced: "
                                         "overrides imbalance.subset."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    resume_inexact: bool = typer.Option(
        False, "--resume-inexact", help="Like --resume, also from a checkpoint without its random-number state "
        "(the result then differs from an uninterrupted run)."),
    num_processes: Optional[int] = typer.Option(
        None, "--num-processes", help="Train in N processes (DDP, one per GPU; gloo on CPU) via accelerate launch."
    ),
    accelerate_config: Optional[Path] = typer.Option(
        None, "--accelerate-config", help="accelerate config YAML (multi-GPU, multi-node, DeepSpeed, FSDP), "
        "e.g. langtrainer/configs/multi_gpu.yaml."
    ),
) -> None:
    """Fine-tune a classifier on the recipe's data as it is, or its balanced or imbalanced subset."""
    from langtrainer.errors import UserError
    from langtrainer.pipelines.finetune import check_run, finetune, prepare
    from langtrainer.rundir import RunDir
    from langtrainer.training import distributed as launch

    prepared = prepare(recipe, list(set_ or []), output_dir, subset)
    loaded, run_dir = prepared.recipe, prepared.run_dir
    quiet = options.quiet
    resume = resume or resume_inexact
    if launch.needs_launch(num_processes, accelerate_config):
        # Fail fast here, with exit 2, on what would fail in every process.
        check_run(loaded, RunDir(run_dir), resume, resume_inexact)
        # The launched processes get the user's command line; the folder is pinned (its default name
        # depends on nothing they could see differently, but one place decides it).
        args = relaunch_args([] if output_dir else ["--output-dir", str(run_dir)])
        if not quiet:
            how = f"{num_processes} processes" if num_processes else f"config {accelerate_config}"
            err_console.print(f"launching {loaded.name} through accelerate ({how})", highlight=False)
        raise typer.Exit(code=launch.relaunch(args, num_processes, accelerate_config))
    main_process = launch.is_main_process()
    quiet = quiet or not main_process  # one progress display, one table
    with make_progress(quiet) as progress:
        try:
            metrics = finetune(loaded, run_dir, resume=resume, progress=_training_progress(progress, loaded.name),
                               resume_inexact=resume_inexact, prepared=True)
        except UserError:
            launch.note_user_error()  # a launching `finetune --num-processes` then exits 2 too
            raise
    if not main_process:
        return
    console.print(render_test_metrics(metrics))
    from langtrainer.reporting.model_card import run_small_sample_warnings
    from langtrainer.reporting.tables import cmi_sentence

    console.print(cmi_sentence(metrics.test.to_dict()) or "", highlight=False)
    from langtrainer.cli.cmd_data import render_small_samples

    for line in render_small_samples(run_small_sample_warnings(RunDir(run_dir), metrics)):
        console.print(line)
    console.print(f"run directory: [bold]{run_dir}[/] (test accuracy {metrics.test.accuracy:.3f}, "
                  f"{metrics.train['steps_per_second']:.2f} steps/s)")


def _training_progress(progress, name: str):
    """finetune's progress callback: steps on the bar, the latest loss (or eval loss and accuracy) beside it."""
    task = progress.add_task(f"training {name}", total=None, rate="")

    def report(step: int, total: int, logs: dict) -> None:
        rate = f"loss {logs['loss']:.3f}" if "loss" in logs else progress.tasks[task].fields.get("rate", "")
        if "eval_loss" in logs:
            rate = f"eval_loss {logs['eval_loss']:.3f} acc {logs.get('eval_accuracy', float('nan')):.3f}"
        progress.update(task, completed=step, total=total or None, rate=rate)

    return report


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_command)
