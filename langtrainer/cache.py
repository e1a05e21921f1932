"""Where langtrainer keeps caches (converted models, unpacked corpora)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache root: $LANGTRAINER_CACHE, else ~/.cache/langtrainer."""
    root = os.environ.get("LANGTRAINER_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "langtrainer"
