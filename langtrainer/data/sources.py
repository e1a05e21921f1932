"""Load a labeled multilingual dataset: the one reader every command uses.

`load_examples` reads one split of any source as a datasets.Dataset with the
standard columns (audit, shap, the probe's texts); `load_source` reads a
recipe's `data:` block into train/validation/test pools: one pandas
DataFrame per split with columns `id`, `text`, optional `text_pair`, `label`
(int, 0..C-1 in the recipe's label order) and `language`, plus `group` when
the source has one (rows of a group are translations of each other and stay
in the same split). Both open the source with `source_tables.open_source`,
map and check columns with `columns.standardise`; `load_source` then drops
and counts unusable rows, encodes labels and carves missing splits
(`carving.carve`). The sampler draws the balanced/imbalanced subsets from
the pools.

Everything a user can get wrong (a missing file, a column that is not there,
a language or label the data does not have, a non-UTF-8 file, no Hub access)
is a one-line `UserError`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from langtrainer.data.carving import carve
from langtrainer.data.columns import column_mapping, standardise
from langtrainer.data.hub import class_names
from langtrainer.data.source_tables import open_source, to_frame
from langtrainer.errors import UserError
from langtrainer.names import check_label_names

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
_INT_TEXT = re.compile(r"^-?\d+$")


class SourcePools(dict):
    """dict split -> DataFrame, plus `report`: what loading did (dropped rows, created splits)."""

    def __init__(self, pools: Mapping[str, pd.DataFrame], report: dict[str, Any]):
        super().__init__(pools)
        self.report = report


def load_examples(source: str | Path, split: str | None = None, columns: Any = None, *,
                  config: str | None = None, require: Sequence[str] = ("text",)):
    """One split of `source` as a datasets.Dataset with standard column names.

    `source` is anything `source_tables.open_source` reads; `config` the Hub
    config of a Hub id or Hub-shaped folder. `split` picks one split of a
    source that has several (a DatasetDict, split files, Hub splits, or a
    single table's `split` column); a single table without a `split` column
    is its own split whatever `split` says. With several splits and
    `split=None`: UserError.

    `columns` (dict or ColumnsConfig; None = the standard names) maps
    id/text/text_pair/label/language/group to source columns, which are
    renamed; other columns are kept. A mapped or `require`d column that is
    absent is `columns.missing_column`. Rows are never dropped here.
    """
    name = str(source)
    tables = open_source(name, config=config)
    table = tables.split(split)
    named = split if tables.names() else None  # a table without splits is not "the 'test' data"
    standard = standardise(table, column_mapping(columns), require, name, named)
    if not isinstance(standard, pd.DataFrame):
        return standard
    import datasets

    try:
        return datasets.Dataset.from_pandas(standard, preserve_index=False)
    except Exception as exc:  # pyarrow: a column mixing types
        if type(exc).__module__.startswith("pyarrow"):
            raise UserError(f"cannot read '{name}': {str(exc).splitlines()[0]}") from None
        raise


def _pool(df: pd.DataFrame, split: str) -> pd.DataFrame:
    """A standardised split as a pool: the standard columns only, in order; ids numbered where the source has
    none; a null text is ''."""
    ids = df["id"].astype(str) if "id" in df.columns else pd.Series(
        [f"{split}-{i}" for i in range(len(df))], index=df.index)
    result = pd.DataFrame({"id": ids})
    for key in ("text", "text_pair"):
        if key in df.columns:
            result[key] = df[key].where(df[key].notna(), "").astype(str)
    result["label"] = df["label"]
    result["language"] = df["language"]
    if "group" in df.columns:
        result["group"] = df["group"].astype(str)
    return result.reset_index(drop=True)


def _clean_pools(tables: Mapping[str, pd.DataFrame], report: dict[str, Any], source: str) -> dict[str, pd.DataFrame]:
    """Rows with an empty text or no label dropped and counted in `report`."""
    pools: dict[str, pd.DataFrame] = {}
    for split, df in tables.items():
        empty = df["text"].str.strip() == ""
        unlabelled = df["label"].isna() & ~empty
        if empty.any():
            log.info("%s: dropped %d rows with empty text from '%s'", source, int(empty.sum()), split)
        report["dropped_empty_text"][split] = int(empty.sum())
        report["dropped_missing_label"][split] = int(unlabelled.sum())
        if unlabelled.any():
            log.warning("%s: left out %d rows without a label from '%s'", source, int(unlabelled.sum()), split)
        pools[split] = df[~empty & ~df["label"].isna()].reset_index(drop=True)
    return pools


def _check_unique_ids(pools: Mapping[str, pd.DataFrame], source: str) -> None:
    """Ids name examples in SHAP shards and predictions: one id, one row, over all splits."""
    ids = pd.concat([df["id"] for df in pools.values()], ignore_index=True)
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise UserError(
            f"{source}: {len(duplicated)} duplicate id(s), e.g. {duplicated.iloc[0]!r} "
            f"({int((ids == duplicated.iloc[0]).sum())} rows); make data.columns.id unique, "
            "or set data.columns.id to null to number the rows"
        )


def _label_encoding(values: pd.Series, class_names: list[str] | None,
                    labels: Sequence[str] | None) -> tuple[dict[Any, int], list[str], bool]:
    """(raw value -> new id, label names, labels are ints) for the chosen labels, in order."""
    as_int = pd.api.types.is_integer_dtype(values) or (
        values.dtype == object and len(values) > 0 and values.astype(str).str.match(_INT_TEXT).all()
    )
    if as_int:
        present = sorted(int(v) for v in pd.unique(values.astype(np.int64)))

        def name_of(i: int) -> str:
            return class_names[i] if class_names and 0 <= i < len(class_names) else str(i)

        if labels:
            chosen = []
            for label in labels:
                text = str(label)
                if class_names and text in class_names:
                    chosen.append(class_names.index(text))
                elif _INT_TEXT.match(text):
                    chosen.append(int(text))
                else:
                    raise UserError(
                        f"label '{label}' is not in the data (labels present: "
                        f"{', '.join(name_of(i) for i in present)})"
                    )
        else:
            chosen = present
        absent = [i for i in chosen if i not in present]
        if absent:
            raise UserError(
                f"label '{name_of(absent[0])}' is not in the data (labels present: "
                f"{', '.join(name_of(i) for i in present)})"
            )
        return {raw: new for new, raw in enumerate(chosen)}, [name_of(i) for i in chosen], True
    present = sorted(str(v) for v in pd.unique(values.astype(str)))
    chosen = [str(label) for label in labels] if labels else present
    for label in chosen:
        if label not in present:
            raise UserError(f"label '{label}' is not in the data (labels present: {', '.join(present)})")
    return {raw: new for new, raw in enumerate(chosen)}, chosen, False



def _select_languages(pools: dict[str, pd.DataFrame], languages: list[str], source: str) -> dict[str, pd.DataFrame]:
    """The recipe's languages (every one must be present), else all in the data."""
    present = sorted(set().union(*(set(df["language"].unique()) for df in pools.values())))
    for lang in languages:
        if lang not in present:
            hint = (f"; write '{lang.strip().lower()}' (language codes are read stripped and lower-case)"
                    if lang.strip().lower() in present else "")
            raise UserError(
                f"{source}: language '{lang}' is not in the data (languages present: {', '.join(present)}){hint}"
            )
    if not languages:
        return pools
    return {s: df[df["language"].isin(languages)].reset_index(drop=True) for s, df in pools.items()}


def _encode_labels(pools: dict[str, pd.DataFrame], class_names, labels: Sequence[str] | None):
    """One label encoding for all splits; rows with a label outside `labels` are left out."""
    all_labels = pd.concat([df["label"] for df in pools.values()], ignore_index=True)
    encoding, label_names, as_int = _label_encoding(all_labels, class_names, labels)
    check_label_names(label_names, "the data's labels")
    if len(label_names) < 2:
        raise UserError(f"the data has {len(label_names)} label ({', '.join(map(repr, label_names))}): a classifier "
                        "needs at least 2 (with one, every prediction is right and nothing is learned)")
    if "train" in pools:
        raw = pools["train"]["label"]
        in_train = set((raw.astype(np.int64) if as_int else raw.astype(str)).map(encoding).dropna().astype(int))
        for split, df in pools.items():
            if split == "train":
                continue
            raw = df["label"]
            seen = set((raw.astype(np.int64) if as_int else raw.astype(str)).map(encoding).dropna().astype(int))
            extra = sorted(seen - in_train)
            if extra:
                raise UserError(f"label '{label_names[extra[0]]}' is in the {split} split but not in train, so no "
                                "model can learn it: add training examples of it, or leave it out with data.labels")
    encoded = {}
    for split, df in pools.items():
        raw_labels = df["label"].astype(np.int64) if as_int else df["label"].astype(str)
        new = raw_labels.map(encoding)
        keep = new.notna().to_numpy()
        df = df[keep].reset_index(drop=True)
        df["label"] = new[keep].astype(np.int64).to_numpy()
        encoded[split] = df
    return encoded, label_names



def load_source(
    source: str,
    splits: Mapping[str, str] | None,
    columns: Any,
    languages: Sequence[str] | None,
    labels: Sequence[str] | None,
    hub_configs: Mapping[str, str] | None = None,
    trust_remote_code: bool = False,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> tuple[SourcePools, list[str]]:
    """Load `source` into {split: DataFrame(id, text, [text_pair], label, language)} and label names.

    `splits` maps train/validation/test to the source's split names; a split
    the source lacks is carved out of the train pool (`validation_fraction` /
    `test_fraction` of each (language, label) cell, at least one row where
    the cell allows, seeded; groups stay whole, see `carving.carve`).
    `columns` maps standard names to source columns (an object with
    attributes or a dict). Labels are ints in the order of `labels` (or
    sorted); rows with other labels or languages are left out. The returned
    dict has a `.report` attribute (dropped rows per split, which splits were
    carved, the source).
    """
    splits = dict(splits or {s: s for s in SPLITS})
    mapping = column_mapping(columns)
    languages = list(languages or [])
    tables = open_source(source, hub_configs=hub_configs, languages=languages, wanted=list(splits.values()),
                         trust_remote_code=trust_remote_code)
    if tables.per_language:
        mapping["language"] = "language"  # set per config from data.hub_configs
    names = class_names(tables.features, mapping["label"] or "label")
    standard = {split: _pool(standardise(to_frame(table), mapping, ("text", "label", "language"), source, split,
                                         where=f"{source} ({split})"), split)
                for split, table in tables.mapped(splits).items()}
    report: dict[str, Any] = {"source": source, "dropped_empty_text": {}, "dropped_missing_label": {},
                              "carved_splits": []}
    pools = _clean_pools(standard, report, source)
    pools, label_names = _encode_labels(_select_languages(pools, languages, source), names, labels)
    _check_unique_ids(pools, source)

    fractions = {"validation": validation_fraction, "test": test_fraction}
    missing = {s: fractions[s] for s in ("validation", "test") if s not in pools}
    if missing:
        log.info("%s: no %s split; carving them from train (%s)", source, "/".join(missing),
                 ", ".join(f"{s} {100 * f:.0f}%" for s, f in missing.items()))
        pools.update(carve(pools["train"], missing, seed))
        report["carved_splits"] = list(missing)
    report["rows"] = {split: int(len(df)) for split, df in pools.items()}
    return SourcePools(pools, report), label_names
