"""Checks of a command's inputs against the world, before any work is done.

Types and ranges of recipe values are checked when the recipe is read
(`langtrainer.recipe`); what needs the file system is checked here: that an
output path can be written as the kind of thing the command writes there,
that `model.max_length` fits the model's position embeddings, that numeric
command-line options are usable. Each check raises `UserError` and writes
nothing, so a failed command leaves no trace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from langtrainer.errors import UserError, setting_error

if TYPE_CHECKING:
    from langtrainer.recipe import Recipe

BUILTIN_MAX_POSITIONS = 512  # multilingual-e5-small (XLM-R positions 514, two taken by the padding offset)
# Position-embedding tables that start at padding_idx + 1 (the first two rows are not positions).
_OFFSET_MODEL_TYPES = ("xlm-roberta", "roberta", "camembert", "xlm-roberta-xl", "longformer")


# ------------------------------------------------------------------ output paths

def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _check_parent(path: Path, setting: str) -> None:
    existing = _nearest_existing(path.parent if not path.exists() else path)
    if existing != path and not existing.is_dir():
        raise setting_error(f"{{{setting}}} '{path}': '{existing}' is a file, so no folder can be made under it",
                            setting)
    target = existing if existing.is_dir() else existing.parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise setting_error(f"{{{setting}}} '{path}': '{target}' is not writable", setting)


_UNEXPANDED = re.compile(r"\$(\{?[A-Za-z_][A-Za-z0-9_]*\}?)")


def user_path(path: str | os.PathLike, setting: str = "out") -> Path:
    """A path as the user meant it: `~` expanded; a `$NAME` the shell left unexpanded (the path was quoted)
    refused, since `~` is expanded here and `$HOME` would otherwise become a folder literally named '$HOME'."""
    text = os.fspath(path)
    found = _UNEXPANDED.search(text)
    if found:
        raise setting_error(f"{{{setting}}} '{text}' holds '${found.group(1)}', which the shell did not expand "
                            "(a quoted path?): write the path without quotes, or spell it out", setting)
    return Path(text).expanduser()


def check_output_file(path: str | os.PathLike, setting: str = "out") -> Path:
    """`path` can be written as a file: not a folder, under a writable folder (made if missing). `setting`
    names the argument in an error (the CLI names its flag)."""
    path = user_path(path, setting)
    if path.is_dir():
        raise setting_error(f"{{{setting}}} '{path}' is a folder: give a file name", setting)
    _check_parent(path, setting)
    if path.exists() and not os.access(path, os.W_OK):
        raise setting_error(f"{{{setting}}} '{path}' is not writable", setting)
    return path


def check_output_folder(path: str | os.PathLike, setting: str = "out") -> Path:
    """`path` can be written as a folder: not a file, under a writable folder (made if missing)."""
    path = user_path(path, setting)
    if path.exists() and not path.is_dir():
        raise setting_error(f"{{{setting}}} '{path}' is a file: give a folder", setting)
    _check_parent(path, setting)
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise setting_error(f"{{{setting}}} '{path}' is not writable", setting)
    return path


# ------------------------------------------------------------------ leftovers of killed writers

def stale_temporaries(folder: str | os.PathLike, older_than_s: float = 0.0, name: str | None = None) -> list[Path]:
    """Hidden `.NAME.XXXX.tmp` / `.NAME.old-PID` entries that `langtrainer.atomic` leaves when killed
    (only those of `name` when given), last changed more than `older_than_s` seconds ago."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time()
    found = []
    for entry in folder.iterdir():
        entry_name = entry.name
        if not entry_name.startswith(f".{name}." if name else ".") or not (
                entry_name.endswith(".tmp") or ".old-" in entry_name):
            continue
        try:
            if now - entry.lstat().st_mtime < older_than_s:
                continue
        except OSError:
            continue
        found.append(entry)
    return sorted(found)


# A live atomic write in a folder no lock protects (data build --out's parent) is younger than this.
UNLOCKED_TEMP_AGE_S = 24 * 3600


def remove_stale_temporaries(folder: str | os.PathLike, older_than_s: float = 0.0,
                             name: str | None = None) -> list[Path]:
    """Delete what `stale_temporaries` finds; only call it while no other writer can use `folder`
    (under the run lock), or with an age that no live write reaches."""
    removed = []
    for entry in stale_temporaries(folder, older_than_s, name):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


# ------------------------------------------------------------------ the model

def max_positions(model_dir: str | os.PathLike) -> int | None:
    """Tokens a local model can take (its config's position table), or None when unknown."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or isinstance(positions, bool) or positions <= 0:
        return None
    if config.get("model_type") in _OFFSET_MODEL_TYPES:
        positions -= 2
    return positions


def check_model_max_length(recipe: "Recipe") -> None:
    """`model.max_length` fits the model: longer inputs would index past its position embeddings."""
    name = recipe.model.name_or_path
    if name.startswith("builtin:"):
        limit, what = BUILTIN_MAX_POSITIONS, name
    else:
        folder = Path(name).expanduser()
        if not folder.is_dir():
            return  # a Hub id: its config is read when the model is loaded
        limit, what = max_positions(folder), f"'{name}'"
        if limit is None:
            return
    if recipe.model.max_length > limit:
        raise UserError(f"model.max_length {recipe.model.max_length} is more than the {limit} positions of "
                        f"model {what}: set model.max_length <= {limit}")


# ------------------------------------------------------------------ what the machine bounds


def check_machine_bounds(recipe: "Recipe") -> None:
    """Recipe values that start one process or thread each are bounded by the machine's cores."""
    from langtrainer.training.distributed import available_workers

    workers = recipe.training.get("dataloader_num_workers")
    if isinstance(workers, int) and not isinstance(workers, bool) and workers > 0:
        cores, _ = available_workers(cuda_available=False)
        if workers > cores:
            raise UserError(f"training.dataloader_num_workers {workers} is more than the {cores} CPU core(s) "
                            f"available: give at most {cores}")
