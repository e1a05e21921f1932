"""CLI: `langtrainer finetune RECIPE`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from langtrainer.cli.common import options, console, err_console, make_progress, setup_logging, user_errors
from langtrainer.cli.cmd_recipe import SET_HELP


def render_test_metrics(metrics: dict) -> Table:
    test = metrics["test"]
    table = Table(title=f"{metrics['recipe']} ({metrics['subset']} subset): test set")
    table.add_column("language")
    table.add_column("accuracy", justify="right")
    for name in metrics["label_names"]:
        table.add_column(f"pred {name}", justify="right")
    units = list(metrics["languages"]) + [k[len("accuracy_"):] for k in test if k.startswith("accuracy_") and k[len("accuracy_"):] not in metrics["languages"]]
    for unit in units:
        if f"accuracy_{unit}" not in test:
            continue
        row = [unit, f"{test[f'accuracy_{unit}']:.3f}"]
        row += [f"{100 * test.get(f'pred_{unit}_{name}', 0.0):.1f}%" for name in metrics["label_names"]]
        table.add_row(*row)
    table.add_row("all", f"{test['accuracy']:.3f}", *[""] * len(metrics["label_names"]), style="bold")
    return table


def finetune_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file, e.g. recipes/demo_imbal.yaml."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Run directory (default runs/<name>-seed<seed>)."),
    subset: Optional[str] = typer.Option(None, "--subset", help="balanced | imbalanced: overrides imbalance.subset."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    num_processes: Optional[int] = typer.Option(
        None, "--num-processes", help="Train in N processes (DDP, one per GPU; gloo on CPU) via accelerate launch."
    ),
    accelerate_config: Optional[Path] = typer.Option(
        None, "--accelerate-config", help="accelerate config YAML (multi-GPU, multi-node, DeepSpeed, FSDP), "
        "e.g. langtrainer/configs/multi_gpu.yaml."
    ),
) -> None:
    """Fine-tune a classifier on the recipe's balanced or imbalanced subset."""
    _finetune(recipe, set_ or [], output_dir, subset, resume, options.quiet, options.verbose, num_processes,
              accelerate_config)


def launch_arguments(recipe_path, overrides, run_dir, subset, resume, quiet, verbose) -> list[str]:
    """The same `finetune` command for the launched processes, without the launch options."""
    args = ["finetune", str(recipe_path)]
    for item in overrides:
        args += ["--set", item]
    args += ["--output-dir", str(run_dir)]
    if subset is not None:
        args += ["--subset", subset]
    if resume:
        args.append("--resume")
    if quiet:
        args.append("--quiet")
    if verbose:
        args.append("--verbose")
    return args


@user_errors
def _finetune(recipe_path, overrides, output_dir, subset, resume, quiet, verbose, num_processes=None,
              accelerate_config=None):
    from langtrainer.training import distributed as launch
    from langtrainer.errors import UserError
    from langtrainer.pipelines.finetune import check_local_model, check_run_dir, check_same_recipe, finetune
    from langtrainer.preflight import check_model_max_length, check_output_folder
    from langtrainer.recipe import load_recipe

    setup_logging(verbose)
    given_overrides = list(overrides)
    if subset is not None:
        if subset not in ("balanced", "imbalanced"):
            raise UserError(f"--subset must be balanced or imbalanced, got {subset!r}")
        overrides = [*overrides, f"imbalance.subset={subset}"]
    recipe = load_recipe(recipe_path, overrides)
    check_local_model(recipe)  # before the slow imports: a typo in the model path fails in a second
    check_model_max_length(recipe)
    run_dir = output_dir or Path("runs") / f"{recipe.name}-seed{recipe.seed}"
    check_output_folder(run_dir, "--output-dir")
    if launch.needs_launch(num_processes, accelerate_config):
        # Fail fast here, with exit 2, on what would fail in every process.
        check_run_dir(run_dir, resume)
        check_same_recipe(recipe, Path(run_dir))
        args = launch_arguments(recipe_path, given_overrides, run_dir, subset, resume, quiet, verbose)
        if not quiet:
            how = f"{num_processes} processes" if num_processes else f"config {accelerate_config}"
            err_console.print(f"launching {recipe.name} through accelerate ({how})", highlight=False)
        raise typer.Exit(code=launch.relaunch(args, num_processes, accelerate_config))
    main_process = launch.is_main_process()
    quiet = quiet or not main_process  # one progress display, one table
    with make_progress(quiet) as progress:
        task = progress.add_task(f"training {recipe.name}", total=None, rate="")

        def report(step: int, total: int, logs: dict) -> None:
            rate = f"loss {logs['loss']:.3f}" if "loss" in logs else progress.tasks[task].fields.get("rate", "")
            if "eval_loss" in logs:
                rate = f"eval_loss {logs['eval_loss']:.3f} acc {logs.get('eval_accuracy', float('nan')):.3f}"
            progress.update(task, completed=step, total=total or None, rate=rate)

        try:
            metrics = finetune(recipe, run_dir, resume=resume, progress=report)
        except UserError:
            launch.note_user_error()  # a launching `finetune --num-processes` then exits 2 too
            raise
    if not main_process:
        return
    console.print(render_test_metrics(metrics))
    console.print(f"run directory: [bold]{run_dir}[/] (test accuracy {metrics['test']['accuracy']:.3f}, "
                  f"{metrics['train']['steps_per_second']:.2f} steps/s)")


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_command)
