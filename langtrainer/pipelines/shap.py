"""`shap-diff` end to end: check the arguments, compute Figure 1's tables, write them and the figure."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Sequence

from langtrainer.analysis.shap_diff import ShapDiffResult, compute_shap_diff, prepare_shap_diff, write_shap_diff
from langtrainer.defaults import SHAP_THRESHOLD
from langtrainer.reporting.plots import plot_shap_diff, save_figure
from langtrainer.rundir import RunDir

FIGURE = "shap_diff.png"


def write_shap_diff_outputs(result: ShapDiffResult, out: str | os.PathLike) -> dict[str, Path]:
    """The tables (analysis.shap_diff.write_shap_diff) and Figure 1 as shap_diff.png."""
    paths = write_shap_diff(result, out)
    paths["png"] = save_figure(plot_shap_diff(result), Path(out).expanduser() / FIGURE, dpi=110)
    return paths


def run_shap_diff(
    bal: str | os.PathLike,
    imbal: str | os.PathLike,
    threshold: float = SHAP_THRESHOLD,
    group_options: Sequence[str] = (),
    out: str | os.PathLike | None = None,
    averaging: str = "masked",
    special_tokens: bool = True,
) -> tuple[ShapDiffResult, dict[str, Path]]:
    """Cumulative SHAP difference of two SHAP results; every argument checked before any work."""
    job = prepare_shap_diff(bal, imbal, group_options, out, threshold)
    with contextlib.ExitStack() as locks:  # no finetune rewrites either run while it is read (or written into)
        for folder in {job.bal.parent, job.imbal.parent}:
            if RunDir(folder).has_model():
                locks.enter_context(RunDir(folder).read_lock())
        result = compute_shap_diff(job.bal, job.imbal, threshold=threshold, groups=job.groups, averaging=averaging,
                                   special_tokens=special_tokens)
        return result, write_shap_diff_outputs(result, job.out)
