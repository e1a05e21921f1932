"""Build the shipped builtin corpora from Debian packages (a maintainer step).

    python tools/builtin_build.py --out langtrainer/data/assets
    python tools/builtin_build.py --check

The package itself only reads the processed Parquet files this writes
(`langtrainer.data.builtin`); building needs `apt-get download` (nothing is installed),
`dpkg-deb`, and the optional extra `build-corpora` (py3langid), which the
runtime never imports.

Sources:
- `libreoffice-help-*` (MPL-2.0): labeled paragraphs, label = help module.
  `(page, par_id)` aligns translations, so splits are assigned per page.
- `debian-reference-*` (GPL-2+): unlabeled paragraphs per language, the
  probe's external corpus (standing in for Wikipedia).
"""

from __future__ import annotations

import argparse
import hashlib
import html.parser
import io
import json
import logging
import random
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from langtrainer.atomic import atomic_dir, write_bytes, write_json
from langtrainer.errors import UserError
from langtrainer.cache import cache_dir

log = logging.getLogger(__name__)

LANGUAGES = ("de", "en", "es", "fr", "ja", "zh")
ENGLISH = "en"

LO_PACKAGE = {lang: f"libreoffice-help-{suffix}" for lang, suffix in
              {"de": "de", "en": "en-us", "es": "es", "fr": "fr", "ja": "ja", "zh": "zh-cn"}.items()}
LO_HELP_DIR = {"de": "de", "en": "en-US", "es": "es", "fr": "fr", "ja": "ja", "zh": "zh-CN"}
DEBREF_PACKAGE = {lang: f"debian-reference-{suffix}" for lang, suffix in
                  {"de": "de", "en": "en", "es": "es", "fr": "fr", "ja": "ja", "zh": "zh-cn"}.items()}
DEBREF_FILE_LANG = {"de": "de", "en": "en", "es": "es", "fr": "fr", "ja": "ja", "zh": "zh-cn"}
DEBREF_CHAPTERS = tuple(f"ch{i:02d}" for i in range(1, 13))

# LibreOffice help paragraphs: <p id="par_id…"> with one of these classes, or a
# class-less one inside a <div class="tip|note|warning">. Table cells come as
# "tablecontentintable" / "tablecontentsintable", so "tablecontent" is a prefix.
LO_PARAGRAPH_CLASSES = ("paragraph", "listitem")
LO_PARAGRAPH_CLASS_PREFIX = "tablecontent"
LO_NOTE_DIVS = ("tip", "note", "warning")

MIN_CHARS = {"ja": 15, "zh": 15}
MIN_CHARS_DEFAULT = 40

SPLIT_SEED = 0
SPLIT_FRACTIONS = (("train", 0.70), ("validation", 0.15), ("test", 0.15))
SPLIT_ORDER = tuple(name for name, _ in SPLIT_FRACTIONS)
DEMO_LABELS = ("scalc", "swriter", "simpress", "sbasic")
MAX_ASSET_BYTES = 10_000_000
ZSTD_LEVEL = 19

LO_FILE = "libreoffice_help.parquet"
DEBREF_FILE = "debian_reference.parquet"
SOURCES_FILE = "SOURCES.json"

_COMMON_RULES = [
    "whitespace collapsed to single spaces, Unicode NFC, stripped",
    f"drop texts shorter than {MIN_CHARS_DEFAULT} characters ({MIN_CHARS['ja']} for ja and zh)",
]
_LANGID_RULE = "drop texts whose py3langid language (restricted to de, en, es, fr, ja, zh) differs from the expected one"
FILTER_RULES = _COMMON_RULES + [
    "drop a non-English paragraph equal to its English twin (same page and par_id)",
    _LANGID_RULE,
    "drop a validation/test paragraph (in every language) when its text in some language also occurs "
    "in an earlier split (train < validation < test), so no translation of it crosses splits",
    "drop later duplicates of a text within a language (order: split, page, par_id)",
]
DEBREF_FILTER_RULES = _COMMON_RULES + [
    "drop a non-English paragraph equal to any English paragraph",
    _LANGID_RULE,
    "drop later duplicates of a text within a language (order: chapter, paragraph index)",
]


# ---------------------------------------------------------------- packages

@dataclass(frozen=True)
class Package:
    name: str
    version: str
    deb: Path
    root: Path  # where it was unpacked with dpkg -x


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise UserError(f"{cmd[0]} not found: building the builtin corpora needs a Debian system") from exc
    except subprocess.CalledProcessError as exc:
        raise UserError(f"{' '.join(cmd)} failed: {exc.stderr.strip().splitlines()[-1:]}") from exc
    return done.stdout


def fetch_package(name: str, cache: Path) -> Package:
    """Download (once) and unpack (once) one Debian package into `cache`."""
    debs_dir = cache
    debs_dir.mkdir(parents=True, exist_ok=True)
    debs = sorted(debs_dir.glob(f"{name}_*.deb"))
    if not debs:
        log.info("apt-get download %s", name)
        try:
            _run(["apt-get", "download", name], cwd=debs_dir)
        except UserError as exc:
            raise UserError(f"{exc} (run apt-get update once first?)") from exc
        debs = sorted(debs_dir.glob(f"{name}_*.deb"))
    if len(debs) != 1:
        found = ", ".join(d.name for d in debs) or "none"
        raise UserError(f"expected one .deb for {name} in {debs_dir}, found {found}; delete the extra ones")
    deb = debs[0]
    version = _run(["dpkg-deb", "-f", str(deb), "Version"]).strip()
    root = cache / "unpacked" / deb.stem
    if not root.exists():
        with atomic_dir(root) as tmp:
            _run(["dpkg", "-x", str(deb), str(tmp)])
    return Package(name=name, version=version, deb=deb, root=root)


# ---------------------------------------------------------------- HTML

VOID_TAGS = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """One canonical form per paragraph, so equal texts compare equal."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


class _ParagraphParser(html.parser.HTMLParser):
    """Collects the text of selected <p> elements, keeping a tag stack for context.

    Subclasses decide which <p> to capture (`wants`) and which inline
    subtrees to skip (`skips`).
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.paragraphs: list[tuple[dict[str, str], str]] = []
        self._capture_depth: int | None = None  # stack depth of the captured <p>
        self._capture_attrs: dict[str, str] = {}
        self._skip_depth: int | None = None
        self._parts: list[str] = []

    def wants(self, attrs: dict[str, str]) -> bool:
        raise NotImplementedError

    def skips(self, tag: str, attrs: dict[str, str]) -> bool:
        return False

    def handle_starttag(self, tag: str, attr_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attr_list}
        if tag in VOID_TAGS:
            if tag == "br" and self._capture_depth is not None and self._skip_depth is None:
                self._parts.append(" ")
            return
        self.stack.append((tag, attrs))
        depth = len(self.stack)
        if self._capture_depth is None:
            if tag == "p" and self.wants(attrs):
                self._capture_depth, self._capture_attrs, self._parts = depth, attrs, []
        elif self._skip_depth is None and self.skips(tag, attrs):
            self._skip_depth = depth

    def handle_startendtag(self, tag: str, attr_list: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_TAGS:  # XHTML-style <a id="x"/>: opens and closes at once
            return
        self.handle_starttag(tag, attr_list)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS or not any(t == tag for t, _ in self.stack):
            return  # stray end tag: ignore
        while self.stack:
            open_tag, _ = self.stack.pop()
            depth = len(self.stack) + 1
            if self._skip_depth is not None and depth <= self._skip_depth:
                self._skip_depth = None
            if self._capture_depth is not None and depth <= self._capture_depth:
                self.paragraphs.append((self._capture_attrs, "".join(self._parts)))
                self._capture_depth = None
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._capture_depth is not None and self._skip_depth is None:
            self._parts.append(data)

    def inside(self, tag: str, css_class: str) -> bool:
        return any(t == tag and css_class in a.get("class", "").split() for t, a in self.stack)


class _HelpPageParser(_ParagraphParser):
    """LibreOffice help page: par_id paragraphs; default variant of inline switches only."""

    def wants(self, attrs: dict[str, str]) -> bool:
        if not attrs.get("id", "").startswith("par_id"):
            return False
        if self.inside("div", "embedded"):  # a copy of another page's paragraph
            return False
        classes = attrs.get("class", "").split()
        if any(c in LO_PARAGRAPH_CLASSES or c.startswith(LO_PARAGRAPH_CLASS_PREFIX) for c in classes):
            return True
        return not classes and any(self.inside("div", note) for note in LO_NOTE_DIVS)

    def skips(self, tag: str, attrs: dict[str, str]) -> bool:
        # <span hidden class="MAC|WRITER|CALC|…"> are system/application variants
        # of an inline switch; the class-less hidden span is the default text.
        return tag == "span" and "hidden" in attrs and bool(attrs.get("class"))


class _DebrefParser(_ParagraphParser):
    """Debian Reference chapter: class-less <p> body paragraphs, never inside <pre>."""

    def wants(self, attrs: dict[str, str]) -> bool:
        return not attrs.get("class") and not any(t == "pre" for t, _ in self.stack)

    def skips(self, tag: str, attrs: dict[str, str]) -> bool:
        return tag == "pre"


def parse_help_page(markup: str) -> list[tuple[str, str]]:
    """(par_id, text) of one help page in document order, first occurrence per par_id."""
    parser = _HelpPageParser()
    parser.feed(markup)
    parser.close()
    seen: dict[str, str] = {}
    for attrs, text in parser.paragraphs:
        seen.setdefault(attrs["id"], normalise(text))
    return list(seen.items())


def parse_debref_chapter(markup: str) -> list[str]:
    """Body paragraphs of one Debian Reference chapter in document order."""
    parser = _DebrefParser()
    parser.feed(markup)
    parser.close()
    return [normalise(text) for _, text in parser.paragraphs]


# ---------------------------------------------------------------- filters

def min_chars(language: str) -> int:
    return MIN_CHARS.get(language, MIN_CHARS_DEFAULT)


def make_language_detector() -> Callable[[str], str]:
    """py3langid restricted to the six languages, answering our codes."""
    try:
        import py3langid
    except ImportError as exc:
        raise UserError("building the builtin corpora needs py3langid: pip install 'langtrainer[build-corpora]'") from exc
    py3langid.set_languages(list(LANGUAGES))
    return lambda text: py3langid.classify(text)[0]


def assign_page_splits(pages_by_label: dict[str, Iterable[str]], seed: int = SPLIT_SEED) -> dict[str, str]:
    """Page -> split, shuffled per label with a fixed seed (stratified ~70/15/15)."""
    split_of: dict[str, str] = {}
    for label in sorted(pages_by_label):
        pages = sorted(set(pages_by_label[label]))
        random.Random(f"{seed}:{label}").shuffle(pages)
        n_train = round(len(pages) * SPLIT_FRACTIONS[0][1])
        n_validation = round(len(pages) * SPLIT_FRACTIONS[1][1])
        for i, page in enumerate(pages):
            split_of[page] = "train" if i < n_train else "validation" if i < n_train + n_validation else "test"
    return split_of


# ---------------------------------------------------------------- corpora

Progress = Callable[[str], None]


def build_libreoffice_rows(packages: dict[str, Package], detect: Callable[[str], str],
                           progress: Progress | None = None) -> tuple[list[dict], dict]:
    """All filtered LibreOffice help rows plus drop statistics per language."""
    texts: dict[str, dict[tuple[str, str], str]] = {}
    for lang in LANGUAGES:
        if progress:
            progress(f"parsing libreoffice-help {lang}")
        text_root = packages[lang].root / "usr/share/libreoffice/help" / LO_HELP_DIR[lang] / "text"
        if not text_root.is_dir():
            raise UserError(f"{text_root} missing: is {packages[lang].name} the right package?")
        by_key: dict[tuple[str, str], str] = {}
        for path in sorted(text_root.rglob("*.html")):
            page = path.relative_to(text_root).as_posix()
            for par_id, text in parse_help_page(path.read_text(encoding="utf-8")):
                by_key[(page, par_id)] = text
        texts[lang] = by_key

    dropped: dict[str, Counter] = {lang: Counter() for lang in LANGUAGES}
    kept: dict[str, dict[tuple[str, str], str]] = {}
    for lang in LANGUAGES:
        if progress:
            progress(f"filtering libreoffice-help {lang}")
        english = texts[ENGLISH]
        kept[lang] = {}
        for key, text in texts[lang].items():
            dropped[lang]["extracted"] += 1
            if len(text) < min_chars(lang):
                dropped[lang]["short"] += 1
            elif lang != ENGLISH and english.get(key) == text:
                dropped[lang]["english_twin"] += 1
            elif detect(text) != lang:
                dropped[lang]["wrong_language"] += 1
            else:
                kept[lang][key] = text

    split_of = assign_page_splits(_pages_by_label(key[0] for lang in LANGUAGES for key in texts[lang]))

    # A text seen in an earlier split removes its paragraph group from later splits.
    first_split_of_text: dict[tuple[str, str], int] = {}
    for lang in LANGUAGES:
        for key, text in kept[lang].items():
            rank = SPLIT_ORDER.index(split_of[key[0]])
            first_split_of_text[(lang, text)] = min(rank, first_split_of_text.get((lang, text), rank))
    leaking = {key for lang in LANGUAGES for key, text in kept[lang].items()
               if first_split_of_text[(lang, text)] < SPLIT_ORDER.index(split_of[key[0]])}

    rows: list[dict] = []
    for lang in LANGUAGES:
        seen: set[str] = set()
        order = sorted(kept[lang], key=lambda k: (SPLIT_ORDER.index(split_of[k[0]]), k))
        for page, par_id in order:
            text = kept[lang][(page, par_id)]
            if (page, par_id) in leaking:
                dropped[lang]["crosses_splits"] += 1
            elif text in seen:
                dropped[lang]["duplicate"] += 1
            else:
                seen.add(text)
                rows.append({"id": f"lo:{lang}:{page}#{par_id}", "text": text, "label": page.split("/", 1)[0],
                             "language": lang, "page": page, "par_id": par_id, "split": split_of[page]})
    rows.sort(key=lambda r: (r["language"], r["label"], r["page"], r["par_id"]))
    return rows, {lang: dict(sorted(c.items())) for lang, c in dropped.items()}


def _pages_by_label(pages: Iterable[str]) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = defaultdict(set)
    for page in pages:
        grouped[page.split("/", 1)[0]].add(page)
    return grouped


def build_debref_rows(packages: dict[str, Package], detect: Callable[[str], str],
                      progress: Progress | None = None) -> tuple[list[dict], dict]:
    """All filtered Debian Reference rows plus drop statistics per language."""
    paragraphs: dict[str, list[tuple[str, int, str]]] = {}
    for lang in LANGUAGES:
        if progress:
            progress(f"parsing debian-reference {lang}")
        base = packages[lang].root / "usr/share/debian-reference"
        found = []
        for chapter in DEBREF_CHAPTERS:
            path = base / f"{chapter}.{DEBREF_FILE_LANG[lang]}.html"
            if not path.is_file():
                raise UserError(f"{path} missing: is {packages[lang].name} the right package?")
            for index, text in enumerate(parse_debref_chapter(path.read_text(encoding="utf-8"))):
                found.append((chapter, index, text))
        paragraphs[lang] = found

    english = {text for _, _, text in paragraphs[ENGLISH]}
    dropped: dict[str, Counter] = {lang: Counter() for lang in LANGUAGES}
    rows: list[dict] = []
    for lang in LANGUAGES:
        seen: set[str] = set()
        for chapter, index, text in paragraphs[lang]:
            dropped[lang]["extracted"] += 1
            if len(text) < min_chars(lang):
                dropped[lang]["short"] += 1
            elif lang != ENGLISH and text in english:
                dropped[lang]["english_twin"] += 1
            elif detect(text) != lang:
                dropped[lang]["wrong_language"] += 1
            elif text in seen:
                dropped[lang]["duplicate"] += 1
            else:
                seen.add(text)
                rows.append({"id": f"deb:{lang}:{chapter}#{index:04d}", "text": text,
                             "language": lang, "chapter": chapter})
    rows.sort(key=lambda r: r["id"])
    return rows, {lang: dict(sorted(c.items())) for lang, c in dropped.items()}


# ---------------------------------------------------------------- output

LO_COLUMNS = ("id", "text", "label", "language", "page", "par_id", "split")
DEBREF_COLUMNS = ("id", "text", "language", "chapter")


def parquet_bytes(rows: list[dict], columns: tuple[str, ...]) -> bytes:
    """zstd Parquet with string columns only and no pandas metadata (stable bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({c: pa.array([r[c] for r in rows], type=pa.string()) for c in columns})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=ZSTD_LEVEL,
                   row_group_size=max(len(rows), 1), write_statistics=False)
    return sink.getvalue()


def _counts(rows: list[dict], keys: tuple[str, ...]) -> dict:
    nested: dict = {}
    for row in rows:
        node = nested
        for key in keys[:-1]:
            node = node.setdefault(row[key], {})
        node[row[keys[-1]]] = node.get(row[keys[-1]], 0) + 1
    return _sorted_dict(nested)


def _sorted_dict(value):
    if isinstance(value, dict):
        return {k: _sorted_dict(value[k]) for k in sorted(value)}
    return value


def _libreoffice_entry(data: bytes, rows: list[dict], packages: dict, dropped: dict, all_labels: list[str],
                       kept_labels: list[str]) -> dict:
    """SOURCES.json's entry for the labelled corpus: where its paragraphs come from and how they were kept."""
    return {
        "file": LO_FILE,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "rows": len(rows),
        "license": "MPL-2.0",
        "description": "LibreOffice 7.4 help paragraphs; label = help module (first folder under text/)",
        "packages": {p.name: p.version for p in packages.values()},
        "source_paths": "usr/share/libreoffice/help/<lang>/text/<module>/**/*.html",
        "paragraphs": "<p id=\"par_id…\"> with class paragraph, listitem or tablecontent*, "
                      "or class-less inside <div class=\"tip|note|warning\">; not inside "
                      "<div class=\"embedded\">; inline switches keep the default variant",
        "languages": list(LANGUAGES),
        "labels": kept_labels,
        "labels_dropped_for_size": [label for label in all_labels if label not in kept_labels],
        "split": {"unit": "page (path under text/), the same for every language",
                  "stratified_by": "label", "seed": SPLIT_SEED,
                  "fractions": dict(SPLIT_FRACTIONS)},
        "filters": FILTER_RULES,
        "dropped": dropped,
        "counts": _counts(rows, ("language", "label", "split")),
    }


def _debref_entry(data: bytes, rows: list[dict], packages: dict, dropped: dict) -> dict:
    """SOURCES.json's entry for the unlabelled corpus (the probe's external texts)."""
    return {
        "file": DEBREF_FILE,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "rows": len(rows),
        "license": "GPL-2+",
        "description": "Debian Reference 2 body paragraphs (chapters 1-12), unlabeled",
        "packages": {p.name: p.version for p in packages.values()},
        "source_paths": "usr/share/debian-reference/chNN.<lang>.html",
        "paragraphs": "class-less <p> outside <pre>",
        "languages": list(LANGUAGES),
        "filters": DEBREF_FILTER_RULES,
        "dropped": dropped,
        "counts": _counts(rows, ("language", "chapter")),
    }


def build(out: Path, cache: Path, progress: Progress | None = None) -> dict:
    """Fetch the packages, build both corpora and write them to `out`; returns SOURCES.json content."""
    lo_packages = {lang: fetch_package(LO_PACKAGE[lang], cache) for lang in LANGUAGES}
    deb_packages = {lang: fetch_package(DEBREF_PACKAGE[lang], cache) for lang in LANGUAGES}
    detect = make_language_detector()

    lo_rows, lo_dropped = build_libreoffice_rows(lo_packages, detect, progress)
    deb_rows, deb_dropped = build_debref_rows(deb_packages, detect, progress)

    lo_data = parquet_bytes(lo_rows, LO_COLUMNS)
    deb_data = parquet_bytes(deb_rows, DEBREF_COLUMNS)
    all_labels = sorted({r["label"] for r in lo_rows})
    kept_labels = all_labels
    if len(lo_data) + len(deb_data) > MAX_ASSET_BYTES:
        log.info("all modules take %d bytes (> %d): keeping %s only",
                 len(lo_data) + len(deb_data), MAX_ASSET_BYTES, ", ".join(DEMO_LABELS))
        lo_rows = [r for r in lo_rows if r["label"] in DEMO_LABELS]
        lo_data = parquet_bytes(lo_rows, LO_COLUMNS)
        kept_labels = sorted(DEMO_LABELS)

    import py3langid
    import pyarrow

    sources = {
        "format": 1,
        "corpora": {
            "libreoffice-help": _libreoffice_entry(lo_data, lo_rows, lo_packages, lo_dropped, all_labels, kept_labels),
            "debian-reference": _debref_entry(deb_data, deb_rows, deb_packages, deb_dropped),
        },
        "build": {"tool": "python tools/builtin_build.py",
                  "py3langid": getattr(py3langid, "__version__", "unknown"),
                  "pyarrow": pyarrow.__version__},
    }
    out.mkdir(parents=True, exist_ok=True)
    for path in (write_bytes(out / LO_FILE, lo_data), write_bytes(out / DEBREF_FILE, deb_data),
                 write_json(out / SOURCES_FILE, sources)):
        path.chmod(0o644)  # temp files are created 0600; package data must be world-readable
    return sources


# ---------------------------------------------------------------- check

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare(shipped: Path, rebuilt: Path) -> list[str]:
    """Differences between two asset folders, as human-readable lines (empty = same)."""
    import pyarrow.parquet as pq

    lines: list[str] = []
    old_sources = json.loads((shipped / SOURCES_FILE).read_text(encoding="utf-8"))
    new_sources = json.loads((rebuilt / SOURCES_FILE).read_text(encoding="utf-8"))
    for name, new_info in new_sources["corpora"].items():
        old_info = old_sources["corpora"].get(name)
        before = len(lines)
        if old_info is None:
            lines.append(f"{name}: not in the shipped SOURCES.json")
            continue
        for pkg, version in new_info["packages"].items():
            if old_info["packages"].get(pkg) != version:
                lines.append(f"{name}: {pkg} {old_info['packages'].get(pkg)} -> {version}")
        old_path, new_path = shipped / old_info["file"], rebuilt / new_info["file"]
        if _sha256(old_path) == _sha256(new_path):
            continue  # identical bytes: identical rows
        old = pq.read_table(old_path).to_pylist()
        new = pq.read_table(new_path).to_pylist()
        group_keys = ("language", "label", "split") if name == "libreoffice-help" else ("language",)
        old_counts = Counter(tuple(r[k] for k in group_keys) for r in old)
        new_counts = Counter(tuple(r[k] for k in group_keys) for r in new)
        for group in sorted(set(old_counts) | set(new_counts)):
            if old_counts[group] != new_counts[group]:
                lines.append(f"{name} {'/'.join(group)}: {old_counts[group]} -> {new_counts[group]} rows")
        old_by_id = {r["id"]: r for r in old}
        new_by_id = {r["id"]: r for r in new}
        for label, ids in (("removed", sorted(set(old_by_id) - set(new_by_id))),
                           ("added", sorted(set(new_by_id) - set(old_by_id))),
                           ("changed", sorted(i for i in set(old_by_id) & set(new_by_id)
                                              if old_by_id[i] != new_by_id[i]))):
            if ids:
                shown = ", ".join(ids[:5]) + (f", … ({len(ids)} in all)" if len(ids) > 5 else "")
                lines.append(f"{name}: {len(ids)} ids {label}: {shown}")
        if len(lines) == before:
            lines.append(f"{name}: same rows but different bytes (pyarrow version?)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/builtin_build.py", description=__doc__.split("\n")[0])
    default_out = Path(__file__).resolve().parents[1] / "langtrainer" / "data" / "assets"
    parser.add_argument("--out", type=Path, default=default_out, help="asset folder to write (default: the package's)")
    parser.add_argument("--cache", type=Path, default=None, help="where .debs are downloaded and unpacked "
                        "(default: <langtrainer cache>/debs)")
    parser.add_argument("--check", action="store_true", help="rebuild into a temp folder and compare with --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = args.cache or cache_dir() / "debs"
    step = lambda message: log.info("%s", message)  # noqa: E731
    started = time.monotonic()
    try:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                build(Path(tmp), cache, step)
                differences = compare(args.out, Path(tmp))
            for line in differences:
                sys.stdout.write(line + "\n")
            sys.stdout.write(("shipped assets differ from a rebuild\n" if differences
                              else "shipped assets match a rebuild\n"))
            return 1 if differences else 0
        sources = build(args.out, cache, step)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    for name, info in sources["corpora"].items():
        sys.stdout.write(f"{name}: {info['rows']} rows, {info['bytes']} bytes -> {args.out / info['file']}\n")
    sys.stdout.write(f"built in {time.monotonic() - started:.0f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
