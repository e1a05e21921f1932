"""Any source as the tables it stores: the one place that decides how a source is read.

A source is a `builtin:` corpus, a jsonl/json/csv/parquet file, a
`save_to_disk` folder, a folder of split files (train.jsonl, test.csv, ...),
a Hub-shaped local folder or a Hub id. Local path or Hub id is decided by
`references.is_local_reference` alone. What comes back is a `SourceTables`:
named splits, or one table (whose `split` column, when it has one, divides
it). Its tables are pandas DataFrames or datasets.Datasets, read only when a
split is asked for (a folder's split files are read one at a time; a Hub
corpus stays memory-mapped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from langtrainer.data import hub
from langtrainer.data.formats import read_table
from langtrainer.errors import SettingError, UserError
from langtrainer.references import TABLE_SUFFIXES, is_local_reference


def split_files(path: Path) -> dict[str, Path]:
    """{split name: file} for a folder of split files (train.jsonl, test.csv, ...)."""
    found: dict[str, Path] = {}
    for suffix in TABLE_SUFFIXES:
        for file in sorted(path.glob(f"*{suffix}")):
            found.setdefault(file.stem, file)
    return found


def _choose_split(fact: str) -> SettingError:
    return SettingError(f"{fact}; choose one with the split argument", "split", f"{fact}; choose one with {{split}}")


def _read(table: Any) -> Any:
    return read_table(table) if isinstance(table, Path) else table


@dataclass
class SourceTables:
    """A source's tables: `splits` by the source's own split names, or one `table`.

    `by_column`: `table`'s `split` column names its rows' splits (a file, a
    builtin corpus); a saved single Dataset is one split whatever it holds.
    `features`: the datasets features when the source has them (label names
    of a ClassLabel column). `per_language`: the rows' `language` column was
    set from `hub_configs` (one config per language).
    """

    source: str
    splits: dict[str, Any] = field(default_factory=dict)
    table: Any = None
    by_column: bool = True
    features: Any = None
    per_language: bool = False

    def names(self) -> list[str] | None:
        """The split names one can ask for; None for one table without a split column."""
        if self.table is None:
            return list(self.splits)
        if not self.by_column:
            return None
        table = self.table
        return sorted(table["split"].astype(str).unique()) if "split" in table.columns else None

    def split(self, name: str | None) -> Any:
        """One split by the source's name for it; None is fine only where there is one.

        One table without a split column is its own split whatever `name` says.
        """
        if self.table is not None:
            if name is None or not self.by_column or "split" not in self.table.columns:
                return self.table
            values = self.table["split"].astype(str)
            if not (values == name).any():
                raise _choose_split(f"no rows with split '{name}' in '{self.source}' (split values: "
                                    f"{', '.join(sorted(values.unique()))})")
            return self.table[values == name].reset_index(drop=True)
        names = ", ".join(map(str, self.splits))
        if name is None:
            if len(self.splits) == 1:
                return _read(next(iter(self.splits.values())))
            raise _choose_split(f"'{self.source}' has several splits ({names})")
        if name not in self.splits:
            raise _choose_split(f"no split '{name}' in '{self.source}' (splits: {names})")
        return _read(self.splits[name])

    def mapped(self, splits: Mapping[str, str]) -> dict[str, Any]:
        """{our split: table} for a recipe's `data.splits` (ours -> the source's name); train must be there.

        The splits the source lacks are left out (the caller carves them).
        """
        if self.table is not None and self.by_column:
            table = self.table
            if "split" not in table.columns:
                return {"train": table}
            values = table["split"].astype(str)
            tables = {ours: table[values == theirs].reset_index(drop=True)
                      for ours, theirs in splits.items() if (values == theirs).any()}
            if "train" not in tables:
                raise UserError(f"{self.source}: no rows with split '{splits.get('train')}' "
                                f"(split values present: {', '.join(sorted(values.unique()))})")
            return tables
        named = self.splits if self.table is None else {"train": self.table}
        tables = {ours: _read(named[theirs]) for ours, theirs in splits.items() if theirs in named}
        if "train" not in tables:
            raise UserError(f"{self.source}: no '{splits.get('train')}' split (splits present: "
                            f"{', '.join(map(str, named))}); set data.splits.train")
        return tables


def open_source(source: str | Path, *, config: str | None = None, hub_configs: Mapping[str, str] | None = None,
                languages: Sequence[str] = (), wanted: Sequence[str] | None = None,
                trust_remote_code: bool = False) -> SourceTables:
    """`source`'s tables, unread where they can wait.

    `config` is the Hub config of a Hub id or Hub-shaped folder; `hub_configs`
    instead loads one config per language (of `languages`, default all) and
    gives each row its language. A folder is read as split files when it holds
    one of the `wanted` split names (any table file when `wanted` is None),
    else as a Hub-shaped folder.
    """
    name = str(source)
    if name.startswith("builtin:"):
        from langtrainer.data.builtin import load_builtin

        return SourceTables(name, table=load_builtin(name.split(":", 1)[1]))
    path = Path(name).expanduser()
    if not is_local_reference(name):
        return _hub_shaped(name, config, hub_configs, languages, remote=True, trust_remote_code=trust_remote_code)
    if not path.exists():
        raise UserError(f"data source '{path}' does not exist (a local path; check the spelling)")
    if path.is_file():
        return SourceTables(name, table=read_table(path))
    if hub.is_saved_dataset(path):
        loaded = hub.load_saved(path)
        if hasattr(loaded, "keys"):
            return SourceTables(name, splits=dict(loaded), features=_first_features(loaded.values()))
        return SourceTables(name, table=loaded, by_column=False, features=loaded.features)
    files = split_files(path)
    if files and (wanted is None or any(split in files for split in wanted)):
        return SourceTables(name, splits=dict(files))
    return _hub_shaped(str(path), config, hub_configs, languages, remote=False, trust_remote_code=trust_remote_code)


def _first_features(tables) -> Any:
    return next((t.features for t in tables if getattr(t, "features", None) is not None), None)


def _hub_shaped(source: str, config: str | None, hub_configs: Mapping[str, str] | None,
                languages: Sequence[str], remote: bool, trust_remote_code: bool) -> SourceTables:
    if trust_remote_code:
        hub.warn_trust_remote_code()
    if hub_configs:
        frames, features = hub.load_per_language(source, hub_configs, languages, remote)
        return SourceTables(source, splits=frames, features=features, per_language=True)
    loaded = hub.load_hub_shaped(source, config, remote)
    return SourceTables(source, splits=dict(loaded), features=_first_features(loaded.values()))


def split_names(source: str | Path, config: str | None = None) -> list[str] | None:
    """The split names `load_examples` can pick from `source`; None for one table without a split column."""
    return open_source(source, config=config).names()


def to_frame(table: Any) -> pd.DataFrame:
    """A table as a DataFrame (a datasets.Dataset is copied into memory)."""
    return table if isinstance(table, pd.DataFrame) else table.to_pandas()
