"""The `langtrainer` command: parse, call the library, render with rich."""

from __future__ import annotations

import os

import typer

from langtrainer.cli.common import GlobalFlagsGroup, set_global_options

app = typer.Typer(
    cls=GlobalFlagsGroup,
    callback=set_global_options,
    name="langtrainer",
    help="Fine-tune multilingual classifiers without learning 'language => label' "
    "(Jung & van der Plas, EACL Findings 2024).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each module adds its own commands or sub-groups to `app`.
    from langtrainer.cli import (cmd_compare, cmd_data, cmd_demo, cmd_finetune, cmd_model, cmd_probe, cmd_recipe,
                                 cmd_shap)

    for module in (cmd_model, cmd_recipe, cmd_data, cmd_finetune, cmd_probe, cmd_shap, cmd_demo, cmd_compare):
        module.register(app)


_register()


def main() -> None:
    from langtrainer.training.distributed import end_process_group

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    finally:
        end_process_group()  # a launched process's gloo group must not outlive the interpreter


if __name__ == "__main__":
    main()
