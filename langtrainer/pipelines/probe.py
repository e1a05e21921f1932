"""`probe` end to end: resolve the settings against the run's recipe, probe, write the JSON and the layer curve."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from langtrainer.analysis.probe import ProbeOptions, probe_with_options
from langtrainer.analysis.probe.options import resolve_probe_options
from langtrainer.artifacts import ProbeReport
from langtrainer.errors import setting_error
from langtrainer.reporting.plots import plot_probe_layers, save_figure
from langtrainer.rundir import RunDir


def data_label(data: str) -> str:
    """'test', 'external', or a file's stem: the name of the probe's output."""
    return data if data in ("test", "external") else Path(data).stem


def check_probe(ckpt: str | os.PathLike, options: ProbeOptions, out: str | os.PathLike | None = None,
                batch_size: int = 64) -> tuple[ProbeOptions, dict[str, str], Path]:
    """Every check before a model is loaded: the checkpoint, the resolved numbers, the output path.

    Returns the resolved options, their sources and where the JSON goes
    (default: the run folder's probe_<data>.json).
    """
    from langtrainer.preflight import check_output_file

    local = Path(ckpt).expanduser()
    if not local.exists():
        from langtrainer.preflight import user_path

        user_path(local, "ckpt")  # a quoted '$HOME/run' is named as such
    resolved, sources, run = resolve_probe_options(ckpt, options, batch_size)
    if run is not None and run.has_model():
        from langtrainer.models import check_model_folder, load_tokenizer

        check_model_folder(local)  # whole weights, a tokenizer that fits them: before any data is read
        load_tokenizer(local)
    if out is None:
        if run is None:
            raise setting_error(f"{{ckpt}} {ckpt} is not a local folder: give {{out}} FILE", "ckpt", "out")
        out = run.probe_path(data_label(resolved.data))
    out = check_output_file(out, "out")
    if resolved.layer == "all":
        check_output_file(out.with_suffix(".png"), "out")
    return resolved, sources, out


def probe_and_write(
    ckpt: str | os.PathLike,
    options: ProbeOptions,
    out: str | os.PathLike | None = None,
    compare_base: str | None = None,
    c_sweep: Sequence[float] | None = None,
    standardize: bool = False,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[ProbeReport, dict[str, Path]]:
    """Probe `ckpt` (`analysis.probe.probe_with_options`), write the probe JSON (+ the layer curve as PNG).

    out defaults to the run folder's probe_<data>.json; a layer curve (layer
    "all") is also drawn next to it as PNG.
    """
    _, _, out = check_probe(ckpt, options, out, batch_size)
    with RunDir(Path(ckpt).expanduser()).read_lock():  # no finetune writes the run while it is probed
        report = probe_with_options(ckpt, options, compare_base=compare_base, c_sweep=c_sweep,
                                    standardize=standardize, batch_size=batch_size, progress=progress)
    paths = {"json": report.write(Path(out))}
    if report.block.layers:
        paths["png"] = save_figure(plot_probe_layers(report), Path(out).with_suffix(".png"))
    return report, paths
