"""The texts a probe reads: an external corpus (the paper's Wikipedia column) or a table of texts.

Every source goes through `langtrainer.data.sources.load_examples`, so the
probe reads what `finetune` and `data` read: a jsonl/json/csv/parquet file, a
folder of split files, a `save_to_disk` folder, a `builtin:` corpus, a Hub id
or a Hub-shaped local folder (`datasets.load_dataset(folder, config)`).

A corpus with one config per language (`wikimedia/wikipedia`, config
`20231101.<lang>`, no language column) is named by `configs`: a mapping
language -> config, or a template with `{lang}`. Its articles are drawn per
language with the seed before anything is converted, so a 6-million-article
dump costs its index, not its text. The released code takes 1,000 random
articles per language (shuffle with the seed, first 1,000) and cuts each to
its first 512 tokens; here the cut is the tokenizer's truncation at the run's
`model.max_length` (512 in the paper recipes).
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from langtrainer.errors import UserError, setting_error

logger = logging.getLogger(__name__)

# The split of a per-language dump (Wikipedia has only this one).
CORPUS_SPLIT = "train"


def config_of(configs: Mapping[str, str] | str, language: str) -> str:
    """The corpus config that holds `language` ('20231101.{lang}' -> '20231101.fr')."""
    if isinstance(configs, str):
        if "{lang}" not in configs:
            raise UserError(f"analysis.probe.external_configs {configs!r}: a template must contain '{{lang}}'")
        return configs.replace("{lang}", language)
    if language not in configs:
        raise UserError(
            f"analysis.probe.external_configs has no config for language {language!r} "
            f"(it has: {', '.join(sorted(configs))})"
        )
    return str(configs[language])


def _draw(n: int, per_language: int | None, seed: int, language: str) -> np.ndarray:
    """Sorted row positions: at most `per_language` of n, drawn with (seed, language)."""
    if per_language is None or n <= per_language:
        return np.arange(n)
    rng = np.random.default_rng([seed % 2**32, zlib.crc32(language.encode("utf-8"))])
    return np.sort(rng.choice(n, size=per_language, replace=False))


def _split_for(source: str, config: str | None = None) -> str | None:
    """The split of a table source to read: its only one, else 'test' (a run's saved subsets).

    A single table (a file, a builtin corpus) is read whole.
    """
    from pathlib import Path

    from langtrainer.data.source_tables import split_names

    if source.startswith("builtin:") or Path(source).expanduser().is_file():
        return None
    names = split_names(source, config)
    if not names or len(names) == 1:
        return None
    if "test" in names:
        return "test"
    raise UserError(f"'{source}' has several splits ({', '.join(names)}) and no 'test' split: give one file")


def load_table_texts(source: str) -> pd.DataFrame:
    """A table with text and language columns (optionally text_pair), as a DataFrame."""
    from langtrainer.data.sources import load_examples

    dataset = load_examples(source, _split_for(source), require=("text", "language"))
    return dataset.to_pandas()


def load_config_corpus(
    source: str,
    configs: Mapping[str, str] | str,
    languages: Sequence[str],
    per_language: int | None,
    seed: int,
) -> pd.DataFrame:
    """`per_language` texts of each language from a corpus with one config per language."""
    from langtrainer.data.sources import load_examples

    if not languages:
        raise setting_error(f"{source}: name the languages to probe ({{languages}}) for a corpus with per-language configs", "languages")
    parts = []
    for language in languages:
        config = config_of(configs, language)
        dataset = load_examples(source, CORPUS_SPLIT, config=config, require=("text",))
        chosen = _draw(len(dataset), per_language, seed, language)
        frame = dataset.select(chosen.tolist()).to_pandas()
        frame["language"] = language
        if len(frame) < (per_language or 0):
            logger.warning("%s (%s) has %d texts, fewer than %d", source, config, len(frame), per_language)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def describe_source(source: str, configs: Mapping[str, Any] | str | None) -> str:
    if configs is None:
        return source
    shown = configs if isinstance(configs, str) else ", ".join(f"{k}={v}" for k, v in sorted(configs.items()))
    return f"{source} [{shown}]"
