"""CLI: demo commands (not implemented yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered until the demo issue lands."""
