"""Local path or Hub id? The one rule for recipes, data sources, models and probe corpora.

A Hub id is 'name' or 'org/name'. Anything that cannot be one, or that exists
on disk, is a local reference: a missing local file is then reported where it
was looked for, instead of after 30 s of Hub retries.
"""

from __future__ import annotations

import os
from pathlib import Path

# The table files langtrainer reads (data.sources.read_table); a new format is added here once.
TABLE_SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".csv", ".parquet")
# Files that name local data whatever else they look like: tables and Arrow files (save_to_disk).
LOCAL_SUFFIXES: tuple[str, ...] = TABLE_SUFFIXES + (".arrow",)


def is_local_reference(value: str, base: str | os.PathLike | None = None) -> bool:
    """True when `value` names a local file or folder rather than a Hub id.

    Local: it exists (relative to `base`, default the working directory); it is
    absolute or starts with '.', '/' or '~'; it holds a backslash, more than one
    '/', or ends with a separator; it ends with a data-file suffix; or its first
    component exists under `base` (`runs/typo` when `runs/` exists: a Hub id
    whose organisation is also a local folder is read as the local folder, as
    `from_pretrained` does too). `builtin:` names are not local.
    """
    if not isinstance(value, str) or not value.strip() or value.startswith("builtin:"):
        return False
    root = Path(base) if base is not None else Path.cwd()
    path = Path(value).expanduser()
    if path.is_absolute() or value.startswith((".", "/", "~")):
        return True
    if (root / path).exists():
        return True
    if "\\" in value or value.count("/") > 1 or value.endswith(("/", os.sep)):
        return True
    if path.suffix.lower() in LOCAL_SUFFIXES:
        return True
    return "/" in value and (root / value.split("/", 1)[0]).exists()
