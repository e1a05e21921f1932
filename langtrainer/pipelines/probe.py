"""`probe` end to end: resolve the settings against the run's recipe, probe, write the JSON and the layer curve."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from langtrainer.analysis.probe import run_probe
from langtrainer.analysis.probe_options import ProbeOptions
from langtrainer.artifacts import ProbeReport
from langtrainer.errors import UserError
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
    from langtrainer.analysis.probe import check_probe_options
    from langtrainer.preflight import check_output_file

    check_probe_options(C=options.C, folds=options.folds, per_language=options.per_language,
                        batch_size=batch_size, seed=options.seed, ckpt=str(ckpt))
    local = Path(ckpt).expanduser()
    if not local.exists():
        from langtrainer.preflight import user_path

        user_path(local, "--ckpt")  # a quoted '$HOME/run' is named as such
    run = RunDir(local) if local.is_dir() else None
    if run is not None and run.has_model():
        from langtrainer.models import check_model_folder, load_tokenizer

        check_model_folder(local)  # whole weights, a tokenizer that fits them: before any data is read
        load_tokenizer(local)
    resolved, sources = options.resolve(run)
    check_probe_options(C=resolved.C, folds=resolved.folds, per_language=resolved.per_language,
                        batch_size=batch_size, seed=resolved.seed)
    if out is None:
        if run is None:
            raise UserError(f"--ckpt {ckpt} is not a local folder: give --out FILE")
        out = run.probe_path(data_label(resolved.data))
    out = check_output_file(out, "--out")
    if resolved.layer == "all":
        check_output_file(out.with_suffix(".png"), "--out (its .png)")
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
    """Probe `ckpt` with `options` (unset values from its recipe, else defaults); write probe JSON (+ PNG).

    The JSON holds run_probe's report plus `options` (every resolved value)
    and `sources` (each value's "cli" / "recipe" / "default"). out defaults
    to the run folder's probe_<data>.json; a layer curve (layer "all") is
    also drawn next to it as PNG.
    """
    resolved, sources, out = check_probe(ckpt, options, out, batch_size)
    with RunDir(Path(ckpt).expanduser()).read_lock():  # no finetune writes the run while it is probed
        return _probe_locked(ckpt, resolved, sources, out, compare_base, c_sweep, standardize, batch_size, progress)


def _probe_locked(ckpt, resolved: ProbeOptions, sources: dict[str, str], out: Path, compare_base, c_sweep,
                  standardize: bool, batch_size: int, progress) -> tuple[dict[str, Any], dict[str, Path]]:
    # The paper's code probes the whole test split; the recipe's per_language (its
    # "1000 articles per language") caps the external corpus and files unless given.
    per_language = resolved.per_language
    if resolved.data == "test" and sources["per_language"] != "cli":
        per_language = None
    report = run_probe(
        ckpt,
        data=resolved.data,
        layer=resolved.layer,
        feature=resolved.feature,
        folds=resolved.folds,
        per_language=per_language,
        C=float(resolved.C),
        languages=resolved.languages,
        compare_base=compare_base,
        seed=resolved.seed,
        progress=progress,
        c_sweep=c_sweep,
        standardize=standardize,
        batch_size=batch_size,
        max_length=resolved.max_length,
        external=resolved.external,
        external_configs=resolved.external_configs,
    )
    report.options = {name: _plain(value) for name, value in asdict(resolved).items()}
    report.sources = dict(sources)
    paths = {"json": report.write(Path(out))}
    if report.block.layers:
        paths["png"] = save_figure(plot_probe_layers(report), Path(out).with_suffix(".png"))
    return report, paths


def _plain(value: Any) -> Any:
    return dict(value) if hasattr(value, "items") else value
