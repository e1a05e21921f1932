"""The probe's texts: a run's test split, an external corpus (builtin, a table, a Hub-shaped corpus with
one config per language) or a table, restricted to the fine-tuning languages and sampled per language."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from langtrainer import defaults
from langtrainer.errors import UserError, setting_error

from langtrainer.data.stratified import sample_per_language

logger = logging.getLogger(__name__)

EXTERNAL_SOURCE = defaults.EXTERNAL_CORPUS  # the builtin stand-in for Wikipedia


def _clean_frame(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in ("text", "language") if c not in frame.columns]
    if missing:
        raise UserError(
            f"{source} has no {' or '.join(repr(c) for c in missing)} column "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    columns = ["text", "language"] + (["text_pair"] if "text_pair" in frame.columns else [])
    frame = frame[columns].copy()
    frame = frame[frame["text"].notna() & (frame["text"].astype(str).str.strip() != "")]
    frame["text"] = frame["text"].astype(str)
    frame["language"] = frame["language"].astype(str)
    if "text_pair" in frame.columns:
        if frame["text_pair"].isna().all():
            frame = frame.drop(columns="text_pair")
        else:
            frame["text_pair"] = frame["text_pair"].fillna("").astype(str)
    return frame.reset_index(drop=True)


def run_dir_test_frame(model_dir: str | Path) -> pd.DataFrame | None:
    """The balanced test split that `finetune` saved in model_dir/data, or None."""
    data_dir = Path(model_dir) / "data"
    if not data_dir.is_dir():
        return None
    import datasets

    try:
        subsets = datasets.load_from_disk(str(data_dir))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(subsets, datasets.DatasetDict) or "test" not in subsets:
        return None
    return subsets["test"].to_pandas()


def run_languages(model_dir: str | Path) -> list[str] | None:
    """The languages a run was fine-tuned on: its recipe's data.languages, else its metrics', else its test split's."""
    from langtrainer.rundir import RunDir

    run = RunDir(model_dir)
    try:
        metrics = run.read_metrics()
    except UserError:  # a damaged metrics.json: the recipe or the test split still say
        metrics = None
    for value in (run.recipe_value("data", "languages"), metrics.languages if metrics else None):
        if isinstance(value, list) and value:
            return [str(lang) for lang in value]
    test = run_dir_test_frame(model_dir)
    if test is not None and "language" in test.columns:
        return sorted(test["language"].astype(str).unique())
    return None


def probe_texts(
    model_dir: str | Path,
    data: str,
    per_language: int | None,
    languages: Sequence[str] | None,
    seed: int,
    external: str = EXTERNAL_SOURCE,
    external_configs: Mapping[str, str] | str | None = None,
) -> tuple[pd.DataFrame, str]:
    """The texts to probe on and a description of where they came from.

    data "test": the run directory's test split; "external": the corpus
    `external` (with `external_configs`, one config per language, e.g.
    wikimedia/wikipedia's 20231101.<lang>); else a table of texts (any format
    `load_examples` reads). `languages` None means the run's fine-tuning
    languages (those the data has); languages that are asked for must all be
    there. `per_language` caps every source.
    """
    asked = [str(lang) for lang in languages] if languages is not None else None
    wanted = asked
    if data != "test" and wanted is None:
        wanted = run_languages(model_dir)
        if wanted is not None:
            logger.info("probe restricted to the fine-tuning languages %s", wanted)
    if data == "external" and external_configs and wanted is None and isinstance(external_configs, Mapping):
        wanted = sorted(external_configs)
    frame, source = _read_probe_source(model_dir, data, external, external_configs, wanted, per_language, seed)
    frame = _clean_frame(frame, source)
    wanted = _check_probe_languages(frame, source, asked, wanted)
    frame = sample_per_language(frame, per_language, seed, asked if asked is not None else wanted)
    if per_language is not None and data == "external":
        counts = frame["language"].value_counts()
        short = {lang: int(n) for lang, n in counts.items() if n < per_language}
        if short:
            logger.warning("fewer than %d external texts for %s", per_language, short)
    return frame, source


def _read_probe_source(model_dir, data: str, external: str, external_configs, wanted: list[str] | None,
                       per_language: int | None, seed: int) -> tuple[pd.DataFrame, str]:
    """The raw texts of `data` (see probe_texts) and a description of their source."""
    from langtrainer.analysis.probe.corpus import (
        describe_source,
        load_config_corpus,
        load_table_texts,
    )

    if data == "test":
        frame = run_dir_test_frame(model_dir)
        if frame is None:
            raise setting_error(
                f"{{data}} test needs a run directory with a saved test split ({model_dir}/data); "
                "use {data} external or a file", "data")
        return frame, f"{Path(model_dir) / 'data'} [test]"
    if data != "external":
        return load_table_texts(data), str(data)
    if not external_configs:
        return load_table_texts(external), external
    if external.startswith("builtin:") or Path(external).is_file():
        raise UserError(
            f"external_configs names per-language configs of a Hub id or Hub-shaped folder, but {external} is "
            "one table: set analysis.probe.external_configs to null"
        )
    return load_config_corpus(external, external_configs, wanted or [], per_language, seed), \
        describe_source(external, external_configs)


def _check_probe_languages(frame: pd.DataFrame, source: str, asked: list[str] | None,
                           wanted: list[str] | None) -> list[str] | None:
    """Languages asked for must all be there; of the fine-tuning languages, those that are (at least one)."""
    available = sorted(frame["language"].unique())
    if asked is not None:
        absent = [lang for lang in asked if lang not in available]
        if absent:
            raise UserError(f"{source} has no text in {', '.join(absent)} (it has: {', '.join(available)})")
        return wanted
    if wanted is None:
        return None
    absent = [lang for lang in wanted if lang not in available]
    if absent:
        logger.warning("%s has no text in the fine-tuning language(s) %s", source, ", ".join(absent))
    wanted = [lang for lang in wanted if lang in available]
    if not wanted:
        raise setting_error(
            f"{source} has none of the fine-tuning languages (it has: {', '.join(available)}); "
            "choose some with {languages}", "languages")
    return wanted
