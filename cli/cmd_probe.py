"""CLI: probe commands (not implemented yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered until the probe issue lands."""
