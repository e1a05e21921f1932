"""Load a labeled multilingual dataset into train/validation/test pools.

Every source (the builtin corpus, a local file or folder, a Hub dataset) ends
up in the same shape: one pandas DataFrame per split with columns `id`,
`text`, optional `text_pair`, `label` (int, 0..C-1 in the recipe's label
order) and `language`, plus `group` when the source has one (rows of a group
are translations of each other and must stay in the same split). The sampler
draws the balanced/imbalanced subsets from these pools.

Everything a user can get wrong (a missing file, a column that is not there,
a language or label the data does not have, a non-UTF-8 file, no Hub access)
is a one-line `UserError`.
"""

from __future__ import annotations

import io
import logging
import re
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from langtrainer.errors import UserError

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
CANONICAL = ("id", "text", "text_pair", "label", "language")
_INT_TEXT = re.compile(r"^-?\d+$")


class SourcePools(dict):
    """dict split -> DataFrame, plus `report`: what loading did (dropped rows, created splits)."""

    def __init__(self, pools: Mapping[str, pd.DataFrame], report: dict[str, Any]):
        super().__init__(pools)
        self.report = report


# ------------------------------------------------------------------ readers

def _decode_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"'{path}' is not UTF-8 text (invalid byte at offset {exc.start}); re-save it as UTF-8"
        ) from None


def read_table(path: str | Path) -> pd.DataFrame:
    """One local jsonl/json/csv/parquet file as a DataFrame (no type guessing on text)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        text = _decode_utf8(path)
        if suffix == ".csv":
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        if suffix in (".jsonl", ".json"):
            lines = suffix == ".jsonl" or not text.lstrip().startswith("[")
            return pd.read_json(io.StringIO(text), lines=lines, dtype=False, convert_dates=False)
    except UserError:
        raise
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read '{path}': {first}") from None
    except Exception as exc:  # pyarrow errors on a broken parquet file
        if type(exc).__module__.startswith("pyarrow"):
            raise UserError(f"cannot read '{path}': {str(exc).splitlines()[0]}") from None
        raise
    raise UserError(f"'{path}': unsupported file type '{suffix}' (use one of {', '.join(TABLE_SUFFIXES)})")


def _class_names(features: Any, column: str | None) -> list[str] | None:
    """Label names when the column is a datasets ClassLabel, else None."""
    if features is None or column is None or column not in features:
        return None
    names = getattr(features[column], "names", None)
    return list(names) if names else None


def _from_datasets(obj: Any, label_column: str | None) -> tuple[dict[str, pd.DataFrame], list[str] | None]:
    """A datasets DatasetDict (or one Dataset, as split 'train') as DataFrames."""
    import datasets

    if isinstance(obj, datasets.Dataset):
        obj = datasets.DatasetDict({"train": obj})
    names = None
    tables = {}
    for split, ds in obj.items():
        names = names or _class_names(ds.features, label_column)
        tables[split] = ds.to_pandas()
    return tables, names


def _looks_like_path(source: str) -> bool:
    """A Hub id is 'name' or 'org/name'; anything else is a local path."""
    if Path(source).expanduser().exists():
        return True
    if source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1:
        return True
    return Path(source).suffix.lower() in TABLE_SUFFIXES + (".arrow",)


def _read_local(path: Path, splits: Mapping[str, str], label_column: str | None):
    """Local file or folder -> ({source split or None: DataFrame}, class names)."""
    if not path.exists():
        raise UserError(f"data source '{path}' does not exist (a local path; check the spelling)")
    if path.is_file():
        return {None: read_table(path)}, None
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        import datasets

        try:
            obj = datasets.load_from_disk(str(path))
        except Exception as exc:  # a corrupt or foreign folder
            raise UserError(f"cannot load the saved dataset '{path}': {str(exc).splitlines()[0]}") from None
        return _from_datasets(obj, label_column)
    tables = {}
    for source_name in splits.values():
        for suffix in TABLE_SUFFIXES:
            candidate = path / f"{source_name}{suffix}"
            if candidate.is_file():
                tables[source_name] = read_table(candidate)
                break
    if not tables:
        wanted = ", ".join(f"{s}.jsonl/.csv/.parquet" for s in splits.values())
        raise UserError(f"folder '{path}' has no split files (expected {wanted}, or a save_to_disk dataset)")
    return tables, None


def _read_hub(source: str, hub_configs: Mapping[str, str] | None, languages: Sequence[str],
              label_column: str | None, trust_remote_code: bool):
    """A Hub dataset (one config per language when hub_configs is given)."""
    import datasets

    if trust_remote_code:
        log.warning("datasets %s no longer runs dataset scripts; trust_remote_code is ignored", datasets.__version__)

    def load(config: str | None):
        try:
            return datasets.load_dataset(source, config)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"needs the Hugging Face Hub: could not load '{source}'"
                f"{f' (config {config!r})' if config else ''}: {first}; "
                "check network access and HF_HUB_OFFLINE, or point data.source at a local copy"
            ) from None

    if not hub_configs:
        return _from_datasets(load(None), label_column)
    wanted = list(languages) or list(hub_configs)
    missing = [lang for lang in wanted if lang not in hub_configs]
    if missing:
        raise UserError(f"data.hub_configs has no config for language(s) {', '.join(missing)}")
    per_split: dict[str, list[pd.DataFrame]] = {}
    names = None
    for lang in wanted:
        tables, lang_names = _from_datasets(load(hub_configs[lang]), label_column)
        names = names or lang_names
        for split, df in tables.items():
            per_split.setdefault(split, []).append(df.assign(language=lang))
    return {split: pd.concat(dfs, ignore_index=True) for split, dfs in per_split.items()}, names


# ------------------------------------------------------------------ normalising

def _column_map(columns: Any) -> dict[str, str | None]:
    """Recipe `columns` (object or mapping) -> canonical name -> source column."""
    get = columns.get if isinstance(columns, Mapping) else (lambda k, d=None: getattr(columns, k, d))
    defaults = {"id": None, "text": "text", "text_pair": None, "label": "label", "language": "language"}
    mapping = {key: get(key, default) for key, default in defaults.items()}
    mapping["group"] = get("group", None)
    return mapping


def _canonical(df: pd.DataFrame, split: str, mapping: Mapping[str, str | None], source: str) -> pd.DataFrame:
    """Rename source columns to id/text/text_pair/label/language(/group); check they exist."""
    present = [str(c) for c in df.columns]
    out = {}
    for key in ("text", "label", "language", "text_pair"):
        column = mapping[key]
        if column is None:
            if key == "language" and "language" in df.columns:
                column = "language"  # added per config for hub_configs sources
            else:
                continue
        if column not in df.columns:
            raise UserError(
                f"{source}: the {key} column '{column}' is not in the '{split}' data "
                f"(columns present: {', '.join(present)}); set data.columns.{key}"
            )
        out[key] = df[column]
    if "language" not in out:
        raise UserError(
            f"{source}: no language column (columns present: {', '.join(present)}); "
            "set data.columns.language or data.hub_configs"
        )
    id_column = mapping["id"] or ("id" if "id" in df.columns else None)
    if id_column is not None:
        if id_column not in df.columns:
            raise UserError(
                f"{source}: the id column '{id_column}' is not in the '{split}' data "
                f"(columns present: {', '.join(present)}); set data.columns.id"
            )
        ids = df[id_column].astype(str)
    else:
        ids = pd.Series([f"{split}-{i}" for i in range(len(df))], index=df.index)
    result = pd.DataFrame({"id": ids})
    for key in ("text", "text_pair"):
        if key in out:
            result[key] = out[key].where(out[key].notna(), "").astype(str)
    result["label"] = out["label"]
    result["language"] = out["language"].astype(str)
    group_column = mapping["group"] or ("group" if "group" in df.columns else None)
    if group_column is not None and group_column in df.columns:
        result["group"] = df[group_column].astype(str)
    return result.reset_index(drop=True)


def _label_encoding(values: pd.Series, class_names: list[str] | None,
                    labels: Sequence[str] | None) -> tuple[dict[Any, int], list[str], bool]:
    """(raw value -> new id, label names, labels are ints) for the chosen labels, in order."""
    as_int = pd.api.types.is_integer_dtype(values) or (
        values.dtype == object and len(values) > 0 and values.astype(str).str.match(_INT_TEXT).all()
    )
    if as_int:
        present = sorted(int(v) for v in pd.unique(values.astype(np.int64)))
        name_of = (lambda i: class_names[i] if class_names and 0 <= i < len(class_names) else str(i))
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


def _carve(train: pd.DataFrame, missing: Sequence[str], fraction: float, seed: int) -> dict[str, pd.DataFrame]:
    """Split `missing` splits (each `fraction` of the rows) off the train pool, seeded.

    Stratified by (language, label): in each cell the rows are ranked by a
    seeded permutation and the first fraction goes to the first missing split,
    the next to the second. With a `group` column the groups are the units
    (translations stay together), stratified by the group's first label.
    """
    if len(train) == 0:
        return {name: train for name in (*missing, "train")}
    rng = np.random.default_rng([seed % 2**32, zlib.crc32(b"carve")])
    if "group" in train.columns:
        groups = train.groupby("group", sort=True).agg(label=("label", "first"), size=("label", "size"))
        groups = groups.iloc[rng.permutation(len(groups))]
        position = groups.groupby("label").cumcount().to_numpy()
        stratum_size = groups.groupby("label")["size"].transform("count").to_numpy()
        share = position / np.maximum(stratum_size, 1)
        unit_share = pd.Series(share, index=groups.index)
        row_share = train["group"].map(unit_share).to_numpy()
    else:
        language = pd.factorize(train["language"])[0].astype(np.int64)
        cell = language * (int(train["label"].max()) + 1) + train["label"].to_numpy()
        order = rng.permutation(len(train))
        rank = np.empty(len(train))
        rank[order] = pd.Series(cell[order]).groupby(cell[order]).cumcount().to_numpy()
        row_share = rank / np.bincount(cell)[cell]
    out = {}
    low = 0.0
    for name in missing:
        take = (row_share >= low) & (row_share < low + fraction)
        out[name] = train[take].reset_index(drop=True)
        low += fraction
    out["train"] = train[row_share >= low].reset_index(drop=True)
    return out


def load_source(
    source: str,
    splits: Mapping[str, str] | None,
    columns: Any,
    languages: Sequence[str] | None,
    labels: Sequence[str] | None,
    hub_configs: Mapping[str, str] | None = None,
    trust_remote_code: bool = False,
    seed: int = 0,
    holdout_fraction: float = 0.1,
) -> tuple[SourcePools, list[str]]:
    """Load `source` into {split: DataFrame(id, text, [text_pair], label, language)} and label names.

    `splits` maps train/validation/test to the source's split names; a split
    the source lacks is carved out of the train pool (`holdout_fraction` of it,
    seeded, stratified). `columns` maps canonical names to source columns
    (an object with attributes or a dict). Labels are ints in the order of
    `labels` (or sorted); rows with other labels or languages are left out.
    The returned dict has a `.report` attribute (dropped rows per split, which
    splits were carved, the source).
    """
    splits = dict(splits or {s: s for s in SPLITS})
    mapping = _column_map(columns)
    languages = list(languages or [])
    label_column = mapping["label"]

    if source.startswith("builtin:"):
        from langtrainer.data.builtin import load_builtin

        table = load_builtin(source.split(":", 1)[1])
        raw, class_names = {None: table}, None
    elif _looks_like_path(source):
        raw, class_names = _read_local(Path(source).expanduser(), splits, label_column)
    else:
        raw, class_names = _read_hub(source, hub_configs, languages, label_column, trust_remote_code)
        if hub_configs:
            mapping["language"] = "language"  # set per config by _read_hub

    # Pools by our split name: a single table is divided by its `split` column.
    tables: dict[str, pd.DataFrame] = {}
    if set(raw) == {None}:
        table = raw[None]
        if "split" in table.columns:
            values = table["split"].astype(str)
            for ours, theirs in splits.items():
                if (values == theirs).any():
                    tables[ours] = table[values == theirs].reset_index(drop=True)
            if "train" not in tables:
                raise UserError(
                    f"{source}: no rows with split '{splits.get('train')}' "
                    f"(split values present: {', '.join(sorted(values.unique()))})"
                )
        else:
            tables["train"] = table
    else:
        for ours, theirs in splits.items():
            if theirs in raw:
                tables[ours] = raw[theirs]
        if "train" not in tables:
            raise UserError(
                f"{source}: no '{splits.get('train')}' split (splits present: {', '.join(map(str, raw))}); "
                "set data.splits.train"
            )

    report: dict[str, Any] = {"source": source, "dropped_empty_text": {}, "dropped_missing_label": {},
                              "carved_splits": []}
    pools: dict[str, pd.DataFrame] = {}
    for split, df in tables.items():
        df = _canonical(df, split, mapping, source)
        empty = df["text"].str.strip() == ""
        no_label = df["label"].isna()
        if empty.any():
            log.info("%s: dropped %d rows with empty text from '%s'", source, int(empty.sum()), split)
        report["dropped_empty_text"][split] = int(empty.sum())
        report["dropped_missing_label"][split] = int((no_label & ~empty).sum())
        pools[split] = df[~empty & ~no_label].reset_index(drop=True)

    # Languages: keep the recipe's (all must be present), else all in the data.
    present = sorted(set().union(*(set(df["language"].unique()) for df in pools.values())))
    for lang in languages:
        if lang not in present:
            raise UserError(f"{source}: language '{lang}' is not in the data (languages present: {', '.join(present)})")
    if languages:
        pools = {s: df[df["language"].isin(languages)].reset_index(drop=True) for s, df in pools.items()}

    # Labels: one encoding for all splits.
    all_labels = pd.concat([df["label"] for df in pools.values()], ignore_index=True)
    encoding, label_names, as_int = _label_encoding(all_labels, class_names, labels)
    for split, df in pools.items():
        raw_labels = df["label"].astype(np.int64) if as_int else df["label"].astype(str)
        new = raw_labels.map(encoding)
        keep = new.notna().to_numpy()
        df = df[keep].reset_index(drop=True)
        df["label"] = new[keep].astype(np.int64).to_numpy()
        pools[split] = df

    missing = [s for s in ("validation", "test") if s not in pools]
    if missing:
        log.info("%s: no %s split; carving %.0f%% of train for each", source, "/".join(missing),
                 100 * holdout_fraction)
        pools.update(_carve(pools["train"], missing, holdout_fraction, seed))
        report["carved_splits"] = missing
    report["rows"] = {split: int(len(df)) for split, df in pools.items()}
    return SourcePools(pools, report), label_names

