"""CLI: `langtrainer recipe show|check`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.syntax import Syntax

from langtrainer.cli.common import console, user_errors
from langtrainer.recipe import describe_language_adversary, dump_recipe, load_recipe

recipe_app = typer.Typer(help="Inspect and validate recipes.", no_args_is_help=True)

SET_HELP = "Override a recipe field, e.g. --set training.num_train_epochs=1 (repeatable)."


@recipe_app.command("show")
@user_errors
def show(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Print the resolved recipe (extends merged, overrides applied, defaults filled)."""
    resolved = load_recipe(recipe, set_ or [])
    console.print(Syntax(dump_recipe(resolved), "yaml", theme="ansi_dark", background_color="default"))


@recipe_app.command("check")
@user_errors
def check(
    recipes: List[Path] = typer.Argument(..., help="Recipe YAML files."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP + " Applied to every recipe."),
) -> None:
    """Validate recipes (with the overrides): exit 2 with one line on the first problem."""
    for path in recipes:
        recipe = load_recipe(path, set_ or [])
        console.print(f"[green]ok[/] {path}")
        if recipe.loss.language_adversary is not None:
            console.print(f"   {describe_language_adversary(recipe.loss.language_adversary)}")


def register(app: typer.Typer) -> None:
    app.add_typer(recipe_app, name="recipe")
