"""One column mapping and one standardisation for every table of examples.

The standard columns are `id`, `text`, `text_pair`, `label`, `language` and
`group` (rows of a group are translations of each other). A source names its
own columns through the mapping (a recipe's `data.columns`, or a dict): a
standard column is taken from its mapped source column, or from a column of
its own name when unmapped. A mapped or required column that is absent is one
error, `missing_column`, naming the recipe key (`data.columns.text`); the CLI
adds its flag.

Values: texts are strings (numbers become text, lists and dicts are refused),
a label or language is one value per row, language codes are stripped and
lower-cased (a null one is refused), blank label cells become null. Rows are
never dropped here: callers decide (and count) what to leave out.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from langtrainer.errors import SettingError, UserError
from langtrainer.names import check_language_codes

STANDARD_COLUMNS = ("id", "text", "text_pair", "label", "language", "group")


def column_mapping(columns: Any) -> dict[str, str | None]:
    """{standard name: source column or None} from a dict, a `recipe.ColumnsConfig` or None."""
    if columns is None:
        return {key: None for key in STANDARD_COLUMNS}
    get = columns.get if isinstance(columns, Mapping) else (lambda k, d=None: getattr(columns, k, d))
    return {key: get(key, None) for key in STANDARD_COLUMNS}


def missing_column(key: str, column: str, present: Sequence[str], source: str, split: str | None) -> SettingError:
    """The one error for a standard column the data lacks."""
    where = f"the '{split}' data" if split else "the data"
    fact = f"{source}: the {key} column '{column}' is not in {where} (columns present: {', '.join(map(str, present))})"
    fix = f"set data.columns.{key}"
    return SettingError(f"{fact}; {fix}", f"data.columns.{key}", f"{fact}; pass {{data.columns.{key}}} or {fix}")


def renames(present: Sequence[str], mapping: Mapping[str, str | None], require: Sequence[str], source: str,
            split: str | None = None) -> dict[str, str]:
    """{source column: standard name}; `missing_column` for a mapped or required column that is absent."""
    out = {}
    for key in STANDARD_COLUMNS:
        column = mapping.get(key) or key
        if column not in present:
            if mapping.get(key) or key in require:
                raise missing_column(key, column, present, source, split)
            continue
        out[column] = key
    return out


def _not_text(key: str, kind: str, where: str) -> SettingError:
    fact = f"{where}: the {key} column holds {kind}, not a string; store one text per row"
    return SettingError(f"{fact} (or map another column with data.columns.{key})", f"data.columns.{key}",
                        f"{fact} (pass {{data.columns.{key}}} to use another column)")


def text_values(values: pd.Series, key: str, where: str) -> pd.Series:
    """Texts as str (numbers become their text, null stays null); lists and dicts are refused."""
    bad = values.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray)))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise _not_text(key, f"a {type(values.iloc[row]).__name__} in row {row + 1}", where)
    return values.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) or isinstance(v, str)
                      else str(v))


def refuse_containers(values: pd.Series, key: str, where: str) -> None:
    """A list or mapping in the label or language column would become its string ("['a']") and a class of its
    own: refuse it (one label and one language per row)."""
    bad = values.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray)))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        kind = type(values.iloc[row]).__name__
        raise UserError(f"{where}: the {key} column holds a {kind} in row {row + 1} ({str(values.iloc[row])[:40]}); "
                        f"give one {key} per row (multi-label rows are not supported)")


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


def standardise(table: Any, mapping: Mapping[str, str | None], require: Sequence[str], source: str,
                split: str | None = None, where: str | None = None) -> Any:
    """`table` (a DataFrame or a datasets.Dataset) with standard column names and values; other columns kept.

    `source` and `split` name the data in a missing-column error, `where`
    (default `source`) in a value error. A Dataset stays a Dataset (a large
    corpus is not copied into memory): its renames and checks run on its
    features, and only its language column is read.
    """
    where = where or source
    if isinstance(table, pd.DataFrame):
        return _standardise_frame(table, renames(list(map(str, table.columns)), mapping, require, source, split),
                                  where)
    return _standardise_dataset(table, renames(table.column_names, mapping, require, source, split), where)


def _standardise_frame(frame: pd.DataFrame, moves: Mapping[str, str], where: str) -> pd.DataFrame:
    clashing = [key for key in moves.values() if key in frame.columns and key not in moves]
    frame = frame.drop(columns=clashing).rename(columns=dict(moves))
    for key in ("text", "text_pair"):
        if key in frame.columns:
            frame[key] = text_values(frame[key], key, where)
    for key in ("label", "language"):
        if key in frame.columns:
            refuse_containers(frame[key], key, where)
    if "language" in frame.columns:
        frame["language"] = normalise_languages(frame["language"], where)
    if "label" in frame.columns:
        frame["label"] = blank_labels_to_null(frame["label"])
    for key in ("id", "group"):
        if key in frame.columns:
            frame[key] = frame[key].map(lambda v: None if v is None else str(v))
    return frame.reset_index(drop=True)


def _standardise_dataset(ds: Any, moves: Mapping[str, str], where: str) -> Any:
    import datasets

    clashing = [key for key in moves.values() if key in ds.column_names and key not in moves]
    if clashing:
        ds = ds.remove_columns(clashing)
    renamed = {src: key for src, key in moves.items() if src != key}
    if renamed:
        ds = ds.rename_columns(renamed)
    for key in ("text", "text_pair"):
        if key in ds.column_names:
            feature = ds.features[key]
            if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
                if not isinstance(feature, datasets.Value):
                    raise _not_text(key, f"{type(feature).__name__} values", where)
                ds = ds.cast_column(key, datasets.Value("string"))
    if "language" in ds.column_names:
        raw = pd.Series(ds["language"], dtype=object)
        refuse_containers(raw, "language", where)
        clean = normalise_languages(raw, where)
        if not clean.equals(raw.astype(object)):
            ds = ds.remove_columns("language").add_column("language", clean.tolist())
    return ds
