"""CLI: model commands (not implemented yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered until the model issue lands."""
