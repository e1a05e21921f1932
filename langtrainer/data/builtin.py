"""The corpora shipped inside the package, readable offline.

- `libreoffice-help`: LibreOffice 7.4 help paragraphs in de, en, es, fr, ja,
  zh (MPL-2.0). Columns `id, text, label, language, page, par_id, split`;
  `label` is the help module (scalc, swriter, simpress, sbasic, ...) and
  `split` (train/validation/test) is assigned per page, so all translations
  of a paragraph share one split.
- `debian-reference`: unlabeled Debian Reference paragraphs per language
  (GPL-2+), the probe's external corpus. Columns `id, text, language, chapter`.

The Parquet files and SOURCES.json (package versions, licences, filtering
rules, counts, sha256) are built by `python tools/builtin_build.py`.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json

import pandas as pd

from langtrainer.errors import UserError

PREFIX = "builtin:"
BUILTIN_CORPORA = ("libreoffice-help", "debian-reference")
SOURCES_FILE = "SOURCES.json"
_FILES = {"libreoffice-help": "libreoffice_help.parquet", "debian-reference": "debian_reference.parquet"}


def corpus_name(name: str) -> str:
    """The canonical corpus name ('builtin:' prefix optional); UserError if unknown."""
    bare = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if bare not in BUILTIN_CORPORA:
        known = ", ".join(PREFIX + n for n in BUILTIN_CORPORA)
        raise UserError(f"unknown builtin corpus '{name}'; known: {known}")
    return bare


def _asset(filename: str):
    resource = importlib.resources.files("langtrainer.data").joinpath("assets").joinpath(filename)
    if not resource.is_file():
        raise UserError(f"builtin corpus file {filename} is missing from the installed package; "
                        "reinstall langtrainer (maintainers: python tools/builtin_build.py)")
    return resource


@functools.lru_cache(maxsize=1)
def _sources() -> dict:
    return json.loads(_asset(SOURCES_FILE).read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def _load(name: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    with importlib.resources.as_file(_asset(_FILES[name])) as path:
        return pq.read_table(path).to_pandas()


def load_builtin(name: str) -> pd.DataFrame:
    """One builtin corpus as a DataFrame (read once per process; callers get a copy)."""
    return _load(corpus_name(name)).copy()


def builtin_info(name: str) -> dict:
    """Provenance of one corpus from SOURCES.json: packages, licence, rules, counts, sha256."""
    return copy.deepcopy(_sources()["corpora"][corpus_name(name)])
