"""CLI: `langtrainer model prepare builtin:multilingual-e5-small`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from langtrainer.cli.common import console, make_progress, options, user_errors

model_app = typer.Typer(help="Prepare the models langtrainer can fine-tune offline.", no_args_is_help=True)


@model_app.command("prepare")
@user_errors
def prepare_command(
    name: str = typer.Argument("builtin:multilingual-e5-small", help="Builtin model to convert."),
    arch: str = typer.Option("xlm-roberta", "--arch", help="xlm-roberta (default) or bert: which HF class loads it."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: the langtrainer cache)."),
) -> None:
    """Convert a builtin model into a Hugging Face folder (once; later calls reuse it)."""
    from langtrainer.models import builtin_model_dir, count_parameters, is_prepared, prepare_builtin_model
    from langtrainer.preflight import check_output_folder

    folder = builtin_model_dir(name, arch)  # checks the name and the arch before anything is shown
    if out is not None:
        folder = out.expanduser()
        check_output_folder(folder, "out")
    reused = is_prepared(folder, arch)
    start = time.perf_counter()
    with make_progress(options.quiet or reused) as progress:
        task = progress.add_task(f"converting {name} ({arch})", total=None, rate="")

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        folder = prepare_builtin_model(name, arch=arch, out=out, progress=report)
    seconds = time.perf_counter() - start
    verb = "reused" if reused else "wrote"
    console.print(f"{verb} [bold]{folder}[/] ({count_parameters(folder):,} parameters, {arch}) "
                  f"in {seconds:.1f} s")


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
