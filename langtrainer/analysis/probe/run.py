"""`run_probe`: embed a model's texts and probe them (one model, or beside a base model); the ProbeReport."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from langtrainer import defaults
from langtrainer.errors import UserError, setting_error

from langtrainer.analysis.embeddings import (
    FEATURES,
    extract_embeddings,
    num_hidden_layers,
)
from langtrainer.analysis.probe.core import (
    PAPER_C,
    ProbeResult,
    _check_inputs,
    probe_c_sweep,
    probe_language,
)
from langtrainer.analysis.probe.options import ProbeOptions, resolve_probe_options
from langtrainer.analysis.probe.texts import EXTERNAL_SOURCE, probe_texts
from langtrainer.artifacts import ProbeModelBlock, ProbeReport
from langtrainer.models.encoder import load_encoder, resolve_model



def _recipe_max_length(model_dir: str | Path) -> int | None:
    """The run's training max length (its recipe's model.max_length), None for a folder without a recipe."""
    from langtrainer.rundir import RunDir

    value = RunDir(model_dir).recipe_value("model", "max_length")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _summary(result: ProbeResult) -> dict[str, Any]:
    return {
        "accuracy_mean": result.accuracy_mean,
        "accuracy_std": result.accuracy_std,
        "fold_accuracies": result.fold_accuracies,
        "converged": result.converged,
    }


def _probe_model(
    name: str,
    frame: pd.DataFrame,
    layer: int | str,
    feature: str,
    probe_kwargs: dict[str, Any],
    c_sweep: Sequence[float] | None,
    batch_size: int,
    max_length: int | None,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    """Embed `frame` with one model and probe it; the per-model block of probe.json."""
    model_dir = resolve_model(name)
    model, tokenizer, pooler_trained = load_encoder(model_dir)
    if feature == "pooler" and not pooler_trained:
        raise setting_error(
            f"{name} has no trained pooler (its pooler weights are not in the checkpoint): "
            "use {feature} first-token or mean", "feature")
    if max_length is None:
        max_length = _recipe_max_length(model_dir) or 512
    n_layers = num_hidden_layers(model)
    layers: list[int] | str = "all" if layer == "all" else [int(layer)]
    started = time.perf_counter()
    embeddings = extract_embeddings(
        model,
        tokenizer,
        frame["text"].tolist(),
        text_pairs=frame["text_pair"].tolist() if "text_pair" in frame.columns else None,
        layers=layers,
        feature=feature,  # type: ignore[arg-type]
        batch_size=batch_size,
        max_length=max_length,
        progress=(lambda done, total: progress(done)) if progress is not None else None,
    )
    embedding_s = time.perf_counter() - started
    del model

    languages = frame["language"].tolist()
    started = time.perf_counter()
    per_layer = {key: probe_language(matrix, languages, **probe_kwargs) for key, matrix in embeddings.items()}
    primary_key = n_layers if layer == "all" else int(layer)
    primary = per_layer[primary_key]
    sweep = None
    if c_sweep:
        kwargs = {k: v for k, v in probe_kwargs.items() if k != "C"}
        # The headline C is already fitted (same folds, same seed): not twice.
        others = [c for c in c_sweep if c != primary.settings["C"]]
        fitted = {r.settings["C"]: r for r in probe_c_sweep(embeddings[primary_key], languages, Cs=others, **kwargs)}
        fitted[primary.settings["C"]] = primary
        sweep = [{"C": float(c), **_summary(fitted[float(c)])} for c in c_sweep]
    probe_s = time.perf_counter() - started
    return {
        "model": str(name),
        "model_path": str(model_dir),
        "num_hidden_layers": n_layers,
        "max_length": max_length,
        "layer": primary_key,
        "accuracy_mean": primary.accuracy_mean,
        "accuracy_std": primary.accuracy_std,
        "result": primary.to_dict(),
        "layers": [{"layer": key, **_summary(r)} for key, r in per_layer.items()] if layer == "all" else None,
        "c_sweep": sweep,
        "seconds": {"embedding": round(embedding_s, 3), "probe": round(probe_s, 3)},
    }


def run_probe(
    model_path: str | Path,
    data: str = "test",
    layer: int | str = -1,
    feature: str = "first-token",
    folds: int = 5,
    per_language: int | None = 1000,
    C: float = PAPER_C,
    languages: Sequence[str] | None = None,
    compare_base: str | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    c_sweep: Sequence[float] | None = None,
    standardize: bool = False,
    max_iter: int = defaults.PROBE_MAX_ITER,
    batch_size: int = 64,
    max_length: int | None = None,
    external: str = EXTERNAL_SOURCE,
    external_configs: Mapping[str, str] | str | None = None,
) -> ProbeReport:
    """Probe a fine-tuned run (or any encoder) for language identifiability; the probe JSON's object.

    data: "test" (the run's balanced test split), "external" (the corpus
    `external`, by default the builtin Debian Reference paragraphs, in the
    fine-tuning languages: the paper's "Wikipedia" column; a Hub id or
    Hub-shaped folder with `external_configs` reads one config per language)
    or a path to a table of texts. layer: an index into the hidden states
    (-1 = last) or "all" for the layer-by-layer curve (headline numbers are
    then the last layer's). compare_base: a base model probed on the same
    texts with the same settings, reported under "base". c_sweep: Cs for an
    accuracy-over-C table at the headline layer. progress(done, total) counts
    embedded examples over all models.
    """
    if feature not in FEATURES:
        raise UserError(f"unknown feature {feature!r}; choose one of {', '.join(FEATURES)}")
    if layer != "all":
        try:
            layer = int(layer)
        except (TypeError, ValueError):
            raise UserError(f"layer must be an integer or 'all', got {layer!r}") from None
    model_dir = resolve_model(model_path)
    frame, source = probe_texts(model_dir, str(data), per_language, languages, seed, external=external,
                                external_configs=external_configs)
    n_models = 2 if compare_base else 1
    total = len(frame) * n_models
    probe_kwargs = {"C": C, "folds": folds, "seed": seed, "max_iter": max_iter, "standardize": standardize}
    # Fail on bad probe inputs (too few examples per language) before any embedding.
    _check_inputs(np.zeros((len(frame), 1)), frame["language"].tolist(), folds)

    def step(offset: int) -> Callable[[int], None] | None:
        if progress is None:
            return None
        return lambda done: progress(offset + done, total)

    block = _probe_model(
        str(model_path), frame, layer, feature, probe_kwargs, c_sweep, batch_size, max_length, step(0)
    )
    base_block = None
    if compare_base:
        base_block = _probe_model(
            compare_base, frame, layer, feature, probe_kwargs, c_sweep, batch_size, max_length, step(len(frame))
        )
    counts = frame["language"].value_counts()
    return ProbeReport(
        data=str(data),
        data_source=source,
        feature=feature,
        layer_requested=layer,
        settings={**probe_kwargs, "per_language": per_language, "batch_size": batch_size},
        languages=sorted(counts.index.tolist()),
        n_examples=int(len(frame)),
        n_per_language={lang: int(counts[lang]) for lang in sorted(counts.index)},
        block=ProbeModelBlock.from_dict(block),
        base=None if base_block is None else ProbeModelBlock.from_dict(base_block),
    )


def probe_with_options(
    ckpt: str | os.PathLike,
    options: ProbeOptions,
    compare_base: str | None = None,
    c_sweep: Sequence[float] | None = None,
    standardize: bool = False,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> ProbeReport:
    """Probe `ckpt` with `options` (unset values from its recipe, else the defaults): `run_probe`'s
    report plus `options` (every resolved value) and `sources` (each value's cli / recipe / default)."""
    resolved, sources, _ = resolve_probe_options(ckpt, options, batch_size)
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
    report.options = {name: dict(value) if hasattr(value, "items") else value
                      for name, value in asdict(resolved).items()}
    report.sources = dict(sources)
    return report
