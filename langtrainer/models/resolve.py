"""A recipe's `model.name_or_path` -> what `from_pretrained` accepts."""

from __future__ import annotations

import os
from pathlib import Path

from langtrainer.errors import UserError
from langtrainer.references import is_local_reference
from langtrainer.models.conversion import Progress
from langtrainer.models.registry import prepare_builtin_model


def looks_like_local_path(name: str) -> bool:
    """A string the user meant as a folder, not a Hub id like 'org/model' (`references.is_local_reference`)."""
    return is_local_reference(name)


def resolve_model_path(name_or_path: str | os.PathLike, arch: str | None = None,
                       progress: Progress | None = None) -> str | Path:
    """Turn a recipe's model name into something `from_pretrained` accepts.

    `builtin:...` -> converted cache folder; an existing local folder -> its
    absolute Path; a local-looking path that does not exist -> UserError at
    once, without touching the Hub; anything else is returned unchanged as a
    Hub id.
    """
    name = os.fspath(name_or_path)
    if not name.strip():
        raise UserError("model name is empty; give a local folder, a Hub id or builtin:multilingual-e5-small")
    if name.startswith("builtin:"):
        return prepare_builtin_model(name, arch or "xlm-roberta", progress=progress)
    path = Path(name).expanduser()
    if path.is_dir():
        return path.absolute()  # stays valid if the caller changes directory
    if path.exists():
        raise UserError(f"model path '{name}' is a file; give the folder that holds config.json")
    if isinstance(name_or_path, os.PathLike) or looks_like_local_path(name):
        raise UserError(f"model path '{name}' does not exist")
    return name
