"""CLI: data commands (not implemented yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered until the data issue lands."""
