"""Who may build a converted model folder, and what a dead build left behind.

A conversion is built in a hidden temporary sibling of its folder and renamed
into place (`langtrainer.atomic.atomic_dir`), so a killed `model prepare`
leaves that sibling (tens of MB) behind. Conversions hold an exclusive lock
on the parent folder while they run; whoever holds the lock therefore knows
that every temporary sibling of the target belongs to a dead process and
removes it. The lock is an `flock` on the folder itself, so no lock file is
left behind and the kernel releases it when its holder dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # not POSIX: conversions run unlocked and leftovers stay
    fcntl = None

log = logging.getLogger(__name__)


@contextlib.contextmanager
def conversion_lock(folder: Path, wait: bool = True) -> Iterator[bool]:
    """Hold the lock that converting into `folder` needs; yields whether it is held.

    With `wait=False` it yields False at once when another process holds it.
    It also yields False where the file system cannot lock (conversion
    still works there; only the clean-up of leftovers is skipped).
    """
    parent = Path(folder).parent
    parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield False
        return
    fd = os.open(parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            held = True
        except OSError:  # held elsewhere (wait=False), or no locks on this file system
            held = False
        yield held
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def stale_siblings(folder: Path) -> list[Path]:
    """The temporary siblings of `folder` that `atomic_dir` makes while replacing it."""
    name = re.escape(Path(folder).name)
    # atomic_dir's names: mkdtemp(prefix=".NAME.", suffix=".tmp") and ".NAME.old-PID"
    pattern = re.compile(rf"\.{name}\.(?:[a-z0-9_]{{8}}\.tmp|old-\d+)")
    parent = Path(folder).parent
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def remove_stale_conversions(folder: Path, locked: bool) -> list[Path]:
    """Delete the leftovers of dead conversions of `folder` (only while `locked`); return them."""
    if not locked:
        return []
    removed = stale_siblings(folder)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left by an interrupted conversion", path)
    return removed
