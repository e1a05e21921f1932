"""CLI: shap commands (not implemented yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered until the shap issue lands."""
