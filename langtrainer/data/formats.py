"""The table files langtrainer reads (jsonl, json, csv, parquet), read strictly.

Text is read as text (never type-guessed), UTF-8 is checked, and what pandas
would accept silently (a column or JSON key named twice, a line that is not a
JSON object) is a one-line `UserError` naming the file and line. A new format
is a suffix in `references.TABLE_SUFFIXES` and a branch of `read_table`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from langtrainer.errors import UserError
from langtrainer.references import TABLE_SUFFIXES


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
