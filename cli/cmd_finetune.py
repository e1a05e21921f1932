"""CLI: finetune commands (not implemented yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered until the finetune issue lands."""
