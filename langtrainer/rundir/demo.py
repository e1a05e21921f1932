"""`DemoDir`: the demo's output folder (seed folders of run folders, shap-diff folders, timings, report)."""

from __future__ import annotations

import os
from pathlib import Path

from langtrainer import atomic
from langtrainer.rundir.run import RunDir, read_json


class DemoDir:
    """The demo's output folder: seed folders, timings and the report."""

    TIMINGS = "timings.json"
    REPORT = "report"
    PRETRAINED = "pretrained"
    SHAP_DIFF = "shap_diff"
    PRETRAINED_TEST = "test.parquet"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()

    def seed_dir(self, seed: int) -> Path:
        return self.path / f"seed{seed}"

    @staticmethod
    def seed_of(path: str | os.PathLike) -> int | None:
        """The seed of the innermost seed<N> folder on `path`, or None outside a demo's seed folder."""
        for part in reversed(Path(path).parts):
            if part.startswith("seed") and part[len("seed"):].isdigit():
                return int(part[len("seed"):])
        return None

    def seeds(self) -> list[int]:
        """The seeds whose folders exist, in order."""
        found = []
        for child in self.path.glob("seed*"):
            tail = child.name[len("seed"):]
            if child.is_dir() and tail.isdigit():
                found.append(int(tail))
        return sorted(found)

    def data_dir(self, seed: int) -> Path:
        """The seed's subsets, built once and copied into each variant's run folder."""
        return self.seed_dir(seed) / RunDir.DATA

    def run(self, seed: int, variant: str) -> RunDir:
        return RunDir(self.seed_dir(seed) / variant)

    def pretrained(self, seed: int) -> RunDir:
        """The pretrained model's probe folder (no model files, probes only)."""
        return RunDir(self.seed_dir(seed) / self.PRETRAINED)

    def pretrained_test_path(self, seed: int) -> Path:
        return self.pretrained(seed).path / self.PRETRAINED_TEST

    def shap_diff_dir(self, seed: int, name: str) -> Path:
        return self.seed_dir(seed) / self.SHAP_DIFF / name

    def has_shap_diff(self, seed: int, name: str) -> bool:
        """The seed's comparison `name` was written (its summary exists)."""
        return (self.shap_diff_dir(seed, name) / RunDir.SHAP_DIFF).is_file()

    @property
    def timings_path(self) -> Path:
        return self.path / self.TIMINGS

    @property
    def report_dir(self) -> Path:
        return self.path / self.REPORT

    def read_timings(self) -> dict[str, float]:
        return read_json(self.timings_path)

    def write_timings(self, timings: dict[str, float]) -> None:
        atomic.write_json(self.timings_path, timings)
