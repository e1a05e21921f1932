"""A compare's output folder: the only code that knows its file names.

    DIR/
      compare_identity.json   recipe hash, data fingerprint, mitigations: what the folder belongs to
      data/                   the split every run trains and tests on (built once, copied into each run)
      pretrained/             the pretrained model's probes (probe_test.json, probe_external.json) + test.parquet
      <mitigation>-seed<k>/   an ordinary run folder per (mitigation, seed) (rundir.RunDir)
      shap_diff/<mitigation>-seed<k>/   the SHAP difference of that run against the baseline's run of seed k
      compare.json            the typed result (compare.outputs.CompareResult), written last
      compare.md, compare_forest.png, token_view_<mitigation>.html
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

from langtrainer import atomic
from langtrainer.errors import UserError, setting_error
from langtrainer.rundir import RunDir
from langtrainer.rundir.run import read_json


def slug(mitigation: str) -> str:
    """A mitigation's name as a folder name ('class_weights:sqrt_inverse' -> 'class_weights-sqrt_inverse')."""
    return mitigation.replace(":", "-")


class CompareDir:
    IDENTITY = "compare_identity.json"
    DATA = "data"
    PRETRAINED = "pretrained"
    PRETRAINED_TEST = "test.parquet"
    SHAP_DIFF = "shap_diff"
    JSON = "compare.json"
    MARKDOWN = "compare.md"
    FOREST = "compare_forest.png"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()

    @property
    def identity_path(self) -> Path:
        return self.path / self.IDENTITY

    @property
    def data_dir(self) -> Path:
        return self.path / self.DATA

    @property
    def pretrained(self) -> RunDir:
        """The pretrained model's probe folder (probes only, no model)."""
        return RunDir(self.path / self.PRETRAINED)

    @property
    def pretrained_test_path(self) -> Path:
        return self.pretrained.path / self.PRETRAINED_TEST

    def run(self, mitigation: str, seed: int) -> RunDir:
        return RunDir(self.path / f"{slug(mitigation)}-seed{seed}")

    def shap_diff_dir(self, mitigation: str, seed: int) -> Path:
        return self.path / self.SHAP_DIFF / f"{slug(mitigation)}-seed{seed}"

    def has_shap_diff(self, mitigation: str, seed: int) -> bool:
        return (self.shap_diff_dir(mitigation, seed) / RunDir.SHAP_DIFF).is_file()

    @property
    def json_path(self) -> Path:
        return self.path / self.JSON

    @property
    def markdown_path(self) -> Path:
        return self.path / self.MARKDOWN

    @property
    def forest_path(self) -> Path:
        return self.path / self.FOREST

    def token_view_path(self, mitigation: str) -> Path:
        return self.path / f"token_view_{slug(mitigation)}.html"

    # -- identity ------------------------------------------------------------------
    def read_identity(self) -> dict[str, Any] | None:
        if not self.identity_path.exists():
            return None
        identity = read_json(self.identity_path)
        if not identity.get("recipe_sha256"):
            raise UserError(f"'{self.identity_path}' is damaged: delete the folder or give another -o")
        return identity

    def check_identity(self, identity: dict[str, Any]) -> None:
        """UserError when the folder holds another compare, or something that is no compare at all."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"-o '{self.path}' is a file: give a new or empty folder")
        old = self.read_identity()
        if old is None:
            if self.path.is_dir() and any(p for p in self.path.iterdir() if not p.name.startswith(".")):
                raise setting_error(f"{{out}} '{self.path}' is not empty and holds no compare: give a new or empty folder",
                                    "out")
            return
        for key, what in (("recipe_sha256", "recipe (with its overrides)"), ("data_sha256", "data split"),
                          ("mitigations", "mitigations"), ("baseline", "baseline")):
            if old.get(key) != identity.get(key):
                shown = (f" ({', '.join(old[key])} there, {', '.join(identity[key])} now)"
                         if key == "mitigations" else "")
                raise UserError(f"-o '{self.path}' holds a compare of another {what}{shown}: give another -o, "
                                "or delete the folder")

    def write_identity(self, identity: dict[str, Any]) -> None:
        if not self.identity_path.exists():
            atomic.write_json(self.identity_path, identity)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on the folder (flock of the folder itself) for the compare's lifetime."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"'{self.path}' is in use by another compare: wait for it or give another -o") \
                    from None
            yield
        finally:
            os.close(fd)
