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
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Open the data and plan the subsets, print rows per split and cell, optimizer "
        "steps, evaluations, checkpoints, tokens per epoch, the analysis workload and the device; load no "
        "weights, train nothing, write nothing."),
) -> None:
    """Fine-tune a classifier on the recipe's data as it is, or its balanced or imbalanced subset."""
    from langtrainer.errors import UserError
    from langtrainer.pipelines.finetune import check_run, finetune, prepare
    from langtrainer.rundir import RunDir
    from langtrainer.training import distributed as launch

    if dry_run:
        from langtrainer.pipelines.dry_run import dry_run_file

        for item in render_dry_run(dry_run_file(recipe, list(set_ or []), subset, processes=num_processes or 1)):
            console.print(item)
        return
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


def render_dry_run(plan) -> list:
    """The dry-run plan: rows per split and cell, then the training schedule, tokens, workload and device."""
    out = [f"[bold]{plan.recipe}[/] ({plan.subset} subset, seed {plan.seed}): {plan.model}, max_length "
           f"{plan.max_length}, data {plan.source} (dry run: no weights loaded, nothing written)"]
    for role, counts in plan.rows.items():
        total = sum(map(sum, counts))
        table = Table(title=f"{role}: {plan.split_names[role]} ({total} rows)")
        table.add_column("language")
        for name in plan.label_names:
            table.add_column(name, justify="right")
        table.add_column("total", justify="right", style="bold")
        for lang, row in zip(plan.languages, counts):
            table.add_row(lang, *map(str, row), str(sum(row)))
        table.add_row("total", *[str(sum(col)) for col in zip(*counts)], str(total), style="bold")
        out.append(table)
    schedule = Table(title="training", show_header=False)
    schedule.add_column("what")
    schedule.add_column("value", justify="right")

    def every(strategy: str, steps) -> str:
        return f"every {steps} steps" if strategy == "steps" else strategy

    for what, value in (
        ("training rows", f"{plan.train_examples}"),
        ("batch", f"{plan.per_device_train_batch_size} x accumulation {plan.gradient_accumulation_steps} x "
                  f"{plan.processes} process(es) = {plan.effective_batch}"),
        ("batches per epoch", f"{plan.batches_per_epoch}"),
        ("optimizer steps", f"{plan.optimizer_steps} ({plan.steps_per_epoch} per epoch x {plan.epochs:g} epochs)"),
        ("evaluations", f"{plan.evaluations} ({every(plan.eval_strategy, plan.eval_every_steps)})"),
        ("checkpoints", f"{plan.checkpoints} ({every(plan.save_strategy, plan.save_every_steps)}; "
                        f"at most {plan.save_total_limit} kept)"),
        ("tokens per epoch", f"{plan.tokens_per_epoch:,} ({plan.mean_tokens_per_row:.1f} per row, "
                             f"{100 * plan.truncated_share:.1f}% of rows cut at {plan.max_length})"),
        ("device", f"{plan.device}, " + ("fp16" if plan.fp16 else "full precision")),
    ):
        schedule.add_row(what, value)
    out.append(schedule)
    out.append(f"tokens per epoch: {plan.tokens_method}")
    work = Table(title="forward passes (rows through the model)")
    for column in ("work", "rows", "how"):
        work.add_column(column, justify="right" if column == "rows" else "left")
    for item in plan.workload:
        work.add_row(item.what, f"{item.forward_passes:,}", item.detail)
    out.append(work)
    out.extend(f"[yellow]note:[/] {note}" for note in plan.notes)
    return out


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
