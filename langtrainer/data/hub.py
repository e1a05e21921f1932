"""Sources only the `datasets` library reads: `save_to_disk` folders, Hub ids and Hub-shaped local folders.

A Hub-shaped folder is a local copy of a Hub dataset (a dataset card with
configs, nested data files); it is read with `datasets.load_dataset` as the
Hub id would be. With `hub_configs` (one config per language, as XNLI and
Amazon reviews are published) each config is loaded and its rows get that
language. What these loaders cannot read is a one-line `UserError`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from langtrainer.errors import UserError

log = logging.getLogger(__name__)

SAVED_MARKERS = ("dataset_dict.json", "state.json")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def is_saved_dataset(path: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return path.is_dir() and any((path / marker).is_file() for marker in SAVED_MARKERS)


def load_saved(path: Path):
    """A `save_to_disk` folder: a DatasetDict or one Dataset."""
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:  # a corrupt or foreign folder
        raise UserError(f"cannot load the saved dataset '{path}': {_first_line(exc)}") from None


def load_hub_shaped(source: str, config: str | None, hub: bool):
    """datasets.load_dataset for a Hub id (`hub`) or a Hub-shaped local folder; a DatasetDict."""
    import datasets

    try:
        return datasets.load_dataset(source, config)
    except Exception as exc:
        first = _first_line(exc)
        where = f" (config {config!r})" if config else ""
        if hub and "/" not in source:
            # A bare name is a Hub id by the one rule (references.is_local_reference), but far more often
            # a mistyped local file: say both.
            raise UserError(f"'{source}' does not exist as a local path, and the Hugging Face Hub could not load "
                            f"it{where}: {first}; check the spelling, or network access and HF_HUB_OFFLINE") from None
        if hub:
            raise UserError(
                f"needs the Hugging Face Hub: could not load '{source}'{where}: {first}; "
                "check network access and HF_HUB_OFFLINE, or point data.source at a local copy"
            ) from None
        raise UserError(f"cannot load the dataset folder '{source}'{where}: {first}") from None


def load_per_language(source: str, hub_configs: Mapping[str, str], languages: Sequence[str], hub: bool
                      ) -> tuple[dict[str, pd.DataFrame], Any]:
    """({split: DataFrame}, the first config's features) of a source with one config per language; each row
    gets its config's `language`."""
    wanted = list(languages) or list(hub_configs)
    missing = [lang for lang in wanted if lang not in hub_configs]
    if missing:
        raise UserError(f"data.hub_configs has no config for language(s) {', '.join(missing)}")
    per_split: dict[str, list[pd.DataFrame]] = {}
    features = None
    for lang in wanted:
        for split, ds in load_hub_shaped(source, hub_configs[lang], hub).items():
            features = features if features is not None else ds.features
            per_split.setdefault(split, []).append(ds.to_pandas().assign(language=lang))
    return {split: pd.concat(frames, ignore_index=True) for split, frames in per_split.items()}, features


def warn_trust_remote_code() -> None:
    import datasets

    log.warning("datasets %s no longer runs dataset scripts; trust_remote_code is ignored", datasets.__version__)


def class_names(features: Any, column: str | None) -> list[str] | None:
    """Label names when `column` of datasets `features` is a ClassLabel, else None."""
    if features is None or column is None or column not in features:
        return None
    names = getattr(features[column], "names", None)
    return list(names) if names else None
