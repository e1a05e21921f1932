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
import json
import logging
import re
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from langtrainer.errors import UserError
from langtrainer.names import check_label_names, check_language_codes
from langtrainer.references import TABLE_SUFFIXES, is_local_reference

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
_INT_TEXT = re.compile(r"^-?\d+$")


class SourcePools(dict):
    """dict split -> DataFrame, plus `report`: what loading did (dropped rows, created splits)."""

    def __init__(self, pools: Mapping[str, pd.DataFrame], report: dict[str, Any]):
        super().__init__(pools)
        self.report = report


# ------------------------------------------------------------------ readers

def _decode_utf8(path: Path) -> str:
    """The file's text; a UTF-8 byte-order mark (what some editors write first) is dropped."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"'{path}' is not UTF-8 text (invalid byte at offset {exc.start}); re-save it as UTF-8"
        ) from None


def _check_csv_header(text: str, path: Path) -> None:
    """A column named twice would be read as 'text' and 'text.1', and one of the two silently ignored."""
    import csv

    try:
        header = next(csv.reader(io.StringIO(text[:1_000_000])), [])
    except csv.Error:
        return  # pandas reports the malformed file
    _refuse_duplicate_columns([h.strip() for h in header], path)


def _refuse_duplicate_columns(columns, path) -> None:
    seen: set[str] = set()
    for column in map(str, columns):
        if column in seen:
            raise UserError(f"'{path}': the column '{column}' appears twice; rename or remove one of them")
        seen.add(column)


def _no_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _DuplicateKey(next(k for k in keys if keys.count(k) > 1))
    return dict(pairs)


class _DuplicateKey(ValueError):
    pass


def _check_json_lines(text: str, path: Path) -> None:
    """Each non-blank line is one JSON object with each key once; the first that is not is named by its
    line number (pandas names a byte position, and keeps the last of two equal keys silently)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as exc:
            raise UserError(f"'{path}' line {number}: the key '{exc.args[0]}' appears twice in one object; "
                            "keep one of them") from None
        except ValueError as exc:
            raise UserError(f"'{path}' line {number} is not valid JSON ({getattr(exc, 'msg', exc)}): fix or "
                            "remove that line") from None
        if not isinstance(value, dict):
            raise UserError(f"'{path}' line {number} is a JSON {type(value).__name__}, not an object: write one "
                            "{\"text\": ..., \"label\": ..., \"language\": ...} object per line")


def read_table(path: str | Path) -> pd.DataFrame:
    """One local jsonl/json/csv/parquet file as a DataFrame (no type guessing on text)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
            _refuse_duplicate_columns(frame.columns, path)
            return frame
        text = _decode_utf8(path)
        if suffix == ".csv":
            _check_csv_header(text, path)
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        if suffix in (".jsonl", ".json"):
            lines = suffix == ".jsonl" or not text.lstrip().startswith("[")
            if lines:
                _check_json_lines(text, path)
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


# ------------------------------------------------------------------ one table of examples

STANDARD_COLUMNS = ("id", "text", "text_pair", "label", "language", "group")
SAVED_MARKERS = ("dataset_dict.json", "state.json")


def column_flag(key: str) -> str:
    """The CLI flag that names the source column for a standard column ('text_pair' -> --text-pair-column)."""
    return f"--{key.replace('_', '-')}-column"


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / marker).is_file() for marker in SAVED_MARKERS)


def _split_files(path: Path) -> dict[str, Path]:
    """{split name: file} for a folder of split files (train.jsonl, test.csv, ...)."""
    found: dict[str, Path] = {}
    for suffix in TABLE_SUFFIXES:
        for file in sorted(path.glob(f"*{suffix}")):
            found.setdefault(file.stem, file)
    return found


def _load_saved(path: Path):
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:  # a corrupt or foreign folder
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load the saved dataset '{path}': {first}") from None


def _load_hub_shaped(source: str, config: str | None, hub: bool):
    """datasets.load_dataset for a Hub id or a Hub-shaped local folder (a dataset card with configs)."""
    import datasets

    try:
        return datasets.load_dataset(source, config)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f" (config {config!r})" if config else ""
        if hub:
            raise UserError(
                f"needs the Hugging Face Hub: could not load '{source}'{where}: {first}; "
                "check network access and HF_HUB_OFFLINE, or point data.source at a local copy"
            ) from None
        raise UserError(f"cannot load the dataset folder '{source}'{where}: {first}") from None


def _pick_split(splits: Mapping[str, Any], split: str | None, source: str) -> Any:
    """One split of a dataset with named splits; split=None is fine only when there is one."""
    names = ", ".join(map(str, splits))
    if split is None:
        if len(splits) == 1:
            return next(iter(splits.values()))
        raise UserError(f"'{source}' has several splits ({names}); choose one with --split")
    if split not in splits:
        raise UserError(f"no split '{split}' in '{source}' (splits: {names}); choose one with --split")
    return splits[split]


def _rows_of_split(table: pd.DataFrame, split: str | None, source: str) -> pd.DataFrame:
    """A single table's rows for `split` (by its `split` column); without that column, all rows."""
    if split is None or "split" not in table.columns:
        return table
    values = table["split"].astype(str)
    if not (values == split).any():
        raise UserError(
            f"no rows with split '{split}' in '{source}' (split values: {', '.join(sorted(values.unique()))}); "
            "choose one with --split"
        )
    return table[values == split].reset_index(drop=True)


def split_names(source: str | Path, config: str | None = None) -> list[str] | None:
    """The split names `load_examples` can pick from `source`; None for one table without a split column."""
    name = str(source)
    if name.startswith("builtin:"):
        from langtrainer.data.builtin import load_builtin

        table = load_builtin(name.split(":", 1)[1])
        return sorted(table["split"].astype(str).unique()) if "split" in table.columns else None
    path = Path(name).expanduser()
    if path.is_file():
        table = read_table(path)
        return sorted(table["split"].astype(str).unique()) if "split" in table.columns else None
    if _is_saved_dataset(path):
        loaded = _load_saved(path)
        return list(loaded) if hasattr(loaded, "keys") else None
    if path.is_dir() and _split_files(path):
        return list(_split_files(path))
    if not path.exists() and (_looks_like_path(name) or "/" not in name):
        raise UserError(f"'{name}' does not exist (not a local path; a Hub id has the form org/name)")
    return list(_load_hub_shaped(name, config, hub=not path.exists()))


def _open_examples(source: str, split: str | None, config: str | None):
    """`source` as a DataFrame (files, builtin corpora) or a datasets.Dataset (saved or Hub-shaped)."""
    if source.startswith("builtin:"):
        from langtrainer.data.builtin import load_builtin

        return _rows_of_split(load_builtin(source.split(":", 1)[1]), split, source)
    path = Path(source).expanduser()
    if path.is_file():
        return _rows_of_split(read_table(path), split, source)
    if _is_saved_dataset(path):
        loaded = _load_saved(path)
        return _pick_split(loaded, split, source) if hasattr(loaded, "keys") else loaded
    if path.is_dir():
        files = _split_files(path)
        if files:
            return read_table(_pick_split(files, split, source))
        return _pick_split(_load_hub_shaped(str(path), config, hub=False), split, source)
    if _looks_like_path(source) or "/" not in source:
        raise UserError(f"'{source}' does not exist (not a local path; a Hub id has the form org/name)")
    return _pick_split(_load_hub_shaped(source, config, hub=True), split, source)


def _mapping_of(columns: Any) -> dict[str, str | None]:
    """{standard name: source column or None} from a dict, a ColumnsConfig or None."""
    if columns is None:
        return {}
    get = columns.get if isinstance(columns, Mapping) else (lambda k, d=None: getattr(columns, k, d))
    return {key: get(key, None) for key in STANDARD_COLUMNS}


def _missing_column(key: str, column: str, present: Sequence[str], source: str) -> UserError:
    return UserError(
        f"no '{column}' column in {Path(source).name or source} (columns: {', '.join(map(str, present))}); "
        f"pass {column_flag(key)} or set data.columns.{key}"
    )


def _renames(present: Sequence[str], mapping: Mapping[str, str | None], require: Sequence[str],
             source: str) -> dict[str, str]:
    """{source column: standard name}; UserError naming the flag for a mapped or required column that is absent."""
    renames = {}
    for key in STANDARD_COLUMNS:
        column = mapping.get(key) or key
        if column not in present:
            if mapping.get(key) or key in require:
                raise _missing_column(key, column, present, source)
            continue
        renames[column] = key
    return renames


def _text_values(values: pd.Series, key: str, source: str) -> pd.Series:
    """Texts as str (numbers become their text, null stays null); lists and dicts are refused."""
    bad = values.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray)))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        kind = type(values.iloc[row]).__name__
        raise UserError(
            f"{source}: the {key} column holds a {kind} in row {row + 1}, not a string; "
            f"store one text per row (pass {column_flag(key)} to use another column)"
        )
    return values.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) or isinstance(v, str)
                      else str(v))


def normalise_languages(values: pd.Series, source: str) -> pd.Series:
    """Language codes stripped and lower-cased ('EN', ' en' -> 'en'); a null or blank code is a UserError.

    ISO 639 / BCP 47 codes are case-insensitive, so lower-casing never merges
    two different languages; refusing 'EN' would only make users edit files.
    """
    text = values.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    blank = text.isna() | (text.fillna("").str.strip() == "")
    if blank.any():
        row = int(np.flatnonzero(blank.to_numpy())[0])
        raise UserError(
            f"{source}: {int(blank.sum())} row(s) have no language (first: row {row + 1}); "
            "fill the language column or remove those rows"
        )
    codes = text.str.strip().str.lower()
    check_language_codes(sorted(codes.unique()), f"{source}: the language column")
    return codes


def blank_labels_to_null(values: pd.Series) -> pd.Series:
    """Blank label cells ('', whitespace: how CSV writes a missing value) become null, never a class ''."""
    if pd.api.types.is_numeric_dtype(values):
        return values
    blank = values.map(lambda v: isinstance(v, str) and v.strip() == "").astype(bool)
    return values.astype(object).where(~blank, None) if blank.any() else values


def _standardise_frame(frame: pd.DataFrame, renames: Mapping[str, str], source: str) -> pd.DataFrame:
    clashing = [key for key in renames.values() if key in frame.columns and key not in renames]
    frame = frame.drop(columns=clashing).rename(columns=dict(renames))
    for key in ("text", "text_pair"):
        if key in frame.columns:
            frame[key] = _text_values(frame[key], key, source)
    if "language" in frame.columns:
        frame["language"] = normalise_languages(frame["language"], source)
    if "label" in frame.columns:
        frame["label"] = blank_labels_to_null(frame["label"])
    for key in ("id", "group"):
        if key in frame.columns:
            frame[key] = frame[key].map(lambda v: None if v is None else str(v))
    return frame.reset_index(drop=True)


def _standardise_dataset(ds: Any, renames: Mapping[str, str], source: str) -> Any:
    """A datasets.Dataset with standard names; string checks on its features, language normalised."""
    import datasets

    clashing = [key for key in renames.values() if key in ds.column_names and key not in renames]
    if clashing:
        ds = ds.remove_columns(clashing)
    moves = {src: key for src, key in renames.items() if src != key}
    if moves:
        ds = ds.rename_columns(moves)
    for key in ("text", "text_pair"):
        if key in ds.column_names:
            feature = ds.features[key]
            if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
                if isinstance(feature, datasets.Value):
                    ds = ds.cast_column(key, datasets.Value("string"))
                else:
                    raise UserError(
                        f"{source}: the {key} column holds {type(feature).__name__} values, not strings; "
                        f"store one text per row (pass {column_flag(key)} to use another column)"
                    )
    if "language" in ds.column_names:
        raw = pd.Series(ds["language"], dtype=object)
        clean = normalise_languages(raw, source)
        if not clean.equals(raw.astype(object)):
            ds = ds.remove_columns("language").add_column("language", clean.tolist())
    return ds


def load_examples(source: str | Path, split: str | None = None, columns: Any = None, *,
                  config: str | None = None, require: Sequence[str] = ("text",)):
    """THE loader for "a table of examples": returns a datasets.Dataset with standard column names.

    `source` is a jsonl/json/csv/parquet file (read strictly: UTF-8 checked,
    text read as text, never type-guessed), a `builtin:` corpus, a
    `save_to_disk` Dataset or DatasetDict folder, a folder of split files
    (train.jsonl, test.csv, ...), a Hub-shaped local folder or a Hub id (both
    via `datasets.load_dataset(source, config)`).

    `split` picks one split of a source that has several (a DatasetDict, split
    files, Hub splits, or a single table's `split` column); a single table
    without a `split` column is its own split whatever `split` says. With
    several splits and `split=None`: UserError.

    `columns` (dict or ColumnsConfig; None = the standard names) maps
    id/text/text_pair/label/language/group to source columns, which are
    renamed; other columns are kept. A mapped or `require`d column that is
    absent is a one-line UserError naming the CLI flag (--language-column) and
    the recipe field (data.columns.language).

    Values: texts are strings (numbers become text; lists/dicts are refused),
    language codes are stripped and lower-cased (null ones refused), blank
    label cells become null. Rows are never dropped here: callers decide
    (and count) what to leave out.
    """
    name = str(source)
    opened = _open_examples(name, split, config)
    mapping = _mapping_of(columns)
    if isinstance(opened, pd.DataFrame):
        import datasets

        frame = _standardise_frame(opened, _renames(list(map(str, opened.columns)), mapping, require, name), name)
        try:
            return datasets.Dataset.from_pandas(frame, preserve_index=False)
        except Exception as exc:  # pyarrow: a column mixing types
            if type(exc).__module__.startswith("pyarrow"):
                raise UserError(f"cannot read '{name}': {str(exc).splitlines()[0]}") from None
            raise
    return _standardise_dataset(opened, _renames(opened.column_names, mapping, require, name), name)


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
    """A Hub id is 'name' or 'org/name'; anything else is a local path (`references.is_local_reference`)."""
    return is_local_reference(source)


def _read_local(path: Path, splits: Mapping[str, str], label_column: str | None):
    """Local file or folder of split files / saved dataset -> ({source split or None: DataFrame}, class names)."""
    if not path.exists():
        raise UserError(f"data source '{path}' does not exist (a local path; check the spelling)")
    if path.is_file():
        return {None: read_table(path)}, None
    if _is_saved_dataset(path):
        return _from_datasets(_load_saved(path), label_column)
    files = _split_files(path)
    tables = {name: read_table(files[name]) for name in splits.values() if name in files}
    if not tables:
        wanted = ", ".join(f"{s}.jsonl/.csv/.parquet" for s in splits.values())
        raise UserError(f"folder '{path}' has no split files (expected {wanted}, or a save_to_disk dataset)")
    return tables, None


def _is_hub_shaped_folder(path: Path, splits: Mapping[str, str]) -> bool:
    """A local folder that only datasets.load_dataset reads (a dataset card with configs, nested files)."""
    if not path.is_dir() or _is_saved_dataset(path):
        return False
    return not any(name in _split_files(path) for name in splits.values())


def _read_hub(source: str, hub_configs: Mapping[str, str] | None, languages: Sequence[str],
              label_column: str | None, trust_remote_code: bool, hub: bool = True):
    """A Hub dataset or a Hub-shaped local folder (one config per language when hub_configs is given)."""
    import datasets

    if trust_remote_code:
        log.warning("datasets %s no longer runs dataset scripts; trust_remote_code is ignored", datasets.__version__)

    if not hub_configs:
        return _from_datasets(_load_hub_shaped(source, None, hub), label_column)
    wanted = list(languages) or list(hub_configs)
    missing = [lang for lang in wanted if lang not in hub_configs]
    if missing:
        raise UserError(f"data.hub_configs has no config for language(s) {', '.join(missing)}")
    per_split: dict[str, list[pd.DataFrame]] = {}
    names = None
    for lang in wanted:
        tables, lang_names = _from_datasets(_load_hub_shaped(source, hub_configs[lang], hub), label_column)
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
    """Rename source columns to id/text/text_pair/label/language(/group); check they exist and hold sane values.

    Texts must be strings (numbers become text, lists/dicts are refused),
    language codes are stripped and lower-cased (null refused), blank label
    cells become null (dropped and counted by the caller, never a class '').
    """
    present = [str(c) for c in df.columns]
    where = f"{source} ({split})"

    def absent(key: str, column: str) -> UserError:
        return UserError(
            f"{source}: the {key} column '{column}' is not in the '{split}' data "
            f"(columns present: {', '.join(present)}); pass {column_flag(key)} or set data.columns.{key}"
        )

    out = {}
    for key in ("text", "label", "language", "text_pair"):
        column = mapping[key]
        if column is None:
            if key == "language" and "language" in df.columns:
                column = "language"  # added per config for hub_configs sources
            else:
                continue
        if column not in df.columns:
            raise absent(key, column)
        out[key] = df[column]
    if "language" not in out:
        raise UserError(
            f"{source}: no language column (columns present: {', '.join(present)}); "
            "pass --language-column or set data.columns.language (or data.hub_configs)"
        )
    id_column = mapping["id"] or ("id" if "id" in df.columns else None)
    if id_column is not None:
        if id_column not in df.columns:
            raise absent("id", id_column)
        ids = df[id_column].astype(str)
    else:
        ids = pd.Series([f"{split}-{i}" for i in range(len(df))], index=df.index)
    result = pd.DataFrame({"id": ids})
    for key in ("text", "text_pair"):
        if key in out:
            values = _text_values(out[key], key, where)
            result[key] = values.where(values.notna(), "").astype(str)
    for key in ("label", "language"):
        _refuse_containers(out[key], key, where)
    result["label"] = blank_labels_to_null(out["label"])
    result["language"] = normalise_languages(out["language"], where)
    if mapping["group"] is not None and mapping["group"] not in df.columns:
        raise absent("group", mapping["group"])
    group_column = mapping["group"] or ("group" if "group" in df.columns else None)
    if group_column is not None:
        result["group"] = df[group_column].astype(str)
    return result.reset_index(drop=True)


def _refuse_containers(values: pd.Series, key: str, where: str) -> None:
    """A list or mapping in the label or language column would become its string ("['a']") and a class of its
    own: refuse it (one label and one language per row)."""
    bad = values.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray)))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        kind = type(values.iloc[row]).__name__
        raise UserError(f"{where}: the {key} column holds a {kind} in row {row + 1} ({str(values.iloc[row])[:40]}); "
                        f"give one {key} per row (multi-label rows are not supported)")


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


def carve_sizes(n: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """[cells, splits] rows carved from cells of `n` rows: round(fraction * n), and at least one per split
    (with a non-zero fraction) where the cell keeps at least one row for train.

    A few-hundred-row dataset has cells of 3-10 rows, where 10 % rounds to 0:
    without the minimum, validation and test would miss those cells entirely.
    """
    n = np.asarray(n, dtype=np.int64)
    sizes = np.zeros((len(n), len(fractions)), dtype=np.int64)
    for j, fraction in enumerate(fractions):
        if fraction <= 0:
            continue
        want = np.floor(fraction * n + 0.5).astype(np.int64)
        room = n - 1 - sizes.sum(axis=1)  # leave train one row
        sizes[:, j] = np.clip(np.maximum(want, 1), 0, np.maximum(room, 0))
    return sizes


def _carve(train: pd.DataFrame, fractions: Mapping[str, float], seed: int) -> dict[str, pd.DataFrame]:
    """Carve the splits in `fractions` (name -> share of rows) off the train pool, seeded.

    Stratified by (language, label): in each cell the rows are ranked by a
    seeded permutation; the first `carve_sizes` rows go to the first split,
    the next to the second, the rest stay in train. With a `group` column the
    groups are the units (translations stay together), stratified by the
    group's first label.
    """
    names = list(fractions)
    if len(train) == 0:
        return {name: train for name in (*names, "train")}
    rng = np.random.default_rng([seed % 2**32, zlib.crc32(b"carve")])
    if "group" in train.columns:
        groups = train.groupby("group", sort=True).agg(label=("label", "first"))
        unit_cell = pd.factorize(groups["label"])[0].astype(np.int64)
        unit_of_row = groups.index.get_indexer(train["group"])
    else:
        language = pd.factorize(train["language"])[0].astype(np.int64)
        unit_cell = language * (int(train["label"].max()) + 1) + train["label"].to_numpy()
        unit_of_row = np.arange(len(train))
    order = rng.permutation(len(unit_cell))
    rank = np.empty(len(unit_cell), dtype=np.int64)
    rank[order] = pd.Series(unit_cell[order]).groupby(unit_cell[order]).cumcount().to_numpy()
    cells, cell_index, cell_size = np.unique(unit_cell, return_inverse=True, return_counts=True)
    bounds = np.cumsum(carve_sizes(cell_size, [fractions[name] for name in names]), axis=1)[cell_index]
    # unit -> split position: 0..len(names)-1 carved, len(names) = train
    position = (rank[:, None] >= bounds).sum(axis=1)
    row_position = position[unit_of_row]
    out = {name: train[row_position == j].reset_index(drop=True) for j, name in enumerate(names)}
    out["train"] = train[row_position == len(names)].reset_index(drop=True)
    return out


def _read_raw(source: str, splits: Mapping[str, str], mapping: dict[str, str], languages: list[str],
              hub_configs: Mapping[str, str] | None, trust_remote_code: bool):
    """({source split or None: table}, class names or None) from a builtin, local or Hub source."""
    if source.startswith("builtin:"):
        from langtrainer.data.builtin import load_builtin

        return {None: load_builtin(source.split(":", 1)[1])}, None
    if _looks_like_path(source) and not _is_hub_shaped_folder(Path(source).expanduser(), splits):
        return _read_local(Path(source).expanduser(), splits, mapping["label"])
    hub = not Path(source).expanduser().exists()
    raw, class_names = _read_hub(source, hub_configs, languages, mapping["label"], trust_remote_code, hub)
    if hub_configs:
        mapping["language"] = "language"  # set per config by _read_hub
    return raw, class_names


def _split_tables(raw: dict, splits: Mapping[str, str], source: str) -> dict[str, pd.DataFrame]:
    """Tables by our split name: a single table is divided by its `split` column (or is all train)."""
    tables: dict[str, pd.DataFrame] = {}
    if set(raw) == {None}:
        table = raw[None]
        if "split" not in table.columns:
            return {"train": table}
        values = table["split"].astype(str)
        for ours, theirs in splits.items():
            if (values == theirs).any():
                tables[ours] = table[values == theirs].reset_index(drop=True)
        if "train" not in tables:
            raise UserError(
                f"{source}: no rows with split '{splits.get('train')}' "
                f"(split values present: {', '.join(sorted(values.unique()))})"
            )
        return tables
    for ours, theirs in splits.items():
        if theirs in raw:
            tables[ours] = raw[theirs]
    if "train" not in tables:
        raise UserError(
            f"{source}: no '{splits.get('train')}' split (splits present: {', '.join(map(str, raw))}); "
            "set data.splits.train"
        )
    return tables


def _clean_pools(tables: dict[str, pd.DataFrame], mapping: dict[str, str], source: str,
                 report: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Canonical columns; rows with an empty text or no label dropped and counted in `report`."""
    pools: dict[str, pd.DataFrame] = {}
    for split, df in tables.items():
        df = _canonical(df, split, mapping, source)
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
    the cell allows, seeded; groups stay whole, see `_carve`). `columns` maps canonical names to source columns
    (an object with attributes or a dict). Labels are ints in the order of
    `labels` (or sorted); rows with other labels or languages are left out.
    The returned dict has a `.report` attribute (dropped rows per split, which
    splits were carved, the source).
    """
    splits = dict(splits or {s: s for s in SPLITS})
    mapping = _column_map(columns)
    languages = list(languages or [])
    raw, class_names = _read_raw(source, splits, mapping, languages, hub_configs, trust_remote_code)
    report: dict[str, Any] = {"source": source, "dropped_empty_text": {}, "dropped_missing_label": {},
                              "carved_splits": []}
    pools = _clean_pools(_split_tables(raw, splits, source), mapping, source, report)
    pools, label_names = _encode_labels(_select_languages(pools, languages, source), class_names, labels)
    _check_unique_ids(pools, source)

    fractions = {"validation": validation_fraction, "test": test_fraction}
    missing = {s: fractions[s] for s in ("validation", "test") if s not in pools}
    if missing:
        log.info("%s: no %s split; carving them from train (%s)", source, "/".join(missing),
                 ", ".join(f"{s} {100 * f:.0f}%" for s, f in missing.items()))
        pools.update(_carve(pools["train"], missing, seed))
        report["carved_splits"] = list(missing)
    report["rows"] = {split: int(len(df)) for split, df in pools.items()}
    return SourcePools(pools, report), label_names

