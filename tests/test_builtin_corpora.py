"""The shipped builtin corpora: counts, split hygiene, filtering, provenance.

Fast: reads the shipped Parquet files only (no apt, no py3langid).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from importlib.resources import files

import pyarrow.parquet as pq
import pytest

import builtin_build  # tools/builtin_build.py (pytest puts tools/ on the path)
from langtrainer.data.builtin import BUILTIN_CORPORA, builtin_info, load_builtin
from langtrainer.errors import UserError

LANGUAGES = ["de", "en", "es", "fr", "ja", "zh"]
DEMO_LABELS = ["scalc", "swriter", "simpress", "sbasic"]
ASSETS = files("langtrainer.data").joinpath("assets")

KANA = re.compile(r"[\u3040-\u30ff]")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def help_frame():
    return load_builtin("libreoffice-help")


@pytest.fixture(scope="module")
def debref_frame():
    return load_builtin("builtin:debian-reference")


def test_names_prefix_and_unknown_corpus():
    assert BUILTIN_CORPORA == ("libreoffice-help", "debian-reference")
    assert len(load_builtin("builtin:libreoffice-help")) == len(load_builtin("libreoffice-help"))
    with pytest.raises(UserError, match="builtin:libreoffice-help, builtin:debian-reference"):
        load_builtin("builtin:wikipedia")


def test_callers_get_independent_copies(help_frame):
    first = load_builtin("libreoffice-help")
    first.loc[0, "text"] = "changed"
    first.drop(columns=["page"], inplace=True)
    again = load_builtin("libreoffice-help")
    assert "page" in again.columns and again.loc[0, "text"] == help_frame.loc[0, "text"] != "changed"
    info = builtin_info("libreoffice-help")
    info["packages"].clear()
    assert builtin_info("builtin:libreoffice-help")["packages"]


def test_columns(help_frame, debref_frame):
    assert list(help_frame.columns) == ["id", "text", "label", "language", "page", "par_id", "split"]
    assert list(debref_frame.columns) == ["id", "text", "language", "chapter"]
    assert sorted(help_frame["language"].unique()) == LANGUAGES
    assert sorted(debref_frame["language"].unique()) == LANGUAGES
    assert set(help_frame["split"].unique()) == {"train", "validation", "test"}
    assert set(DEMO_LABELS) <= set(help_frame["label"].unique())
    assert help_frame["id"].is_unique and debref_frame["id"].is_unique
    expected_ids = "lo:" + help_frame["language"] + ":" + help_frame["page"] + "#" + help_frame["par_id"]
    assert (help_frame["id"] == expected_ids).all()
    assert (help_frame["label"] == help_frame["page"].str.split("/").str[0]).all()
    assert help_frame["par_id"].str.startswith("par_id").all()


def test_demo_cells_are_large_enough(help_frame):
    counts = help_frame.groupby(["language", "label", "split"]).size()
    minimum = {"train": 550, "validation": 100, "test": 100}
    for language in LANGUAGES:
        for label in DEMO_LABELS:
            for split, floor in minimum.items():
                n = counts.get((language, label, split), 0)
                assert n >= floor, f"{language}/{label}/{split}: {n} < {floor}"


def test_debian_reference_has_1000_paragraphs_per_language(debref_frame):
    counts = debref_frame["language"].value_counts()
    for language in LANGUAGES:
        assert counts[language] >= 1000, language
    assert debref_frame["chapter"].str.fullmatch(r"ch(0[1-9]|1[0-2])").all()


def test_each_page_and_paragraph_sits_in_one_split(help_frame):
    splits_per_page = help_frame.groupby("page")["split"].nunique()
    assert (splits_per_page == 1).all()
    splits_per_paragraph = help_frame.groupby(["page", "par_id"])["split"].nunique()
    assert (splits_per_paragraph == 1).all()
    # Roughly 70/15/15 of the pages of every label.
    pages = help_frame.drop_duplicates("page")
    for label, group in pages.groupby("label"):
        share = group["split"].value_counts(normalize=True)
        if len(group) >= 100:
            assert 0.62 <= share["train"] <= 0.78, (label, share.to_dict())


def test_no_text_crosses_splits_within_a_language(help_frame):
    for language, group in help_frame.groupby("language"):
        by_split = {split: set(g["text"]) for split, g in group.groupby("split")}
        assert not by_split["train"] & by_split["test"], language
        assert not by_split["train"] & by_split["validation"], language
        assert not by_split["validation"] & by_split["test"], language


def test_filters_hold(help_frame, debref_frame):
    for frame in (help_frame, debref_frame):
        limit = frame["language"].map(lambda lang: 15 if lang in ("ja", "zh") else 40)
        assert (frame["text"].str.len() >= limit).all()
        assert not frame["text"].str.contains(r"\s\s|\n|\t").any()
        assert (frame["text"] == frame["text"].str.strip()).all()
        assert not frame.duplicated(["language", "text"]).any()
    # A non-English paragraph never equals its English twin.
    english = help_frame[help_frame["language"] == "en"][["page", "par_id", "text"]]
    others = help_frame[help_frame["language"] != "en"].merge(
        english, on=["page", "par_id"], suffixes=("", "_en"))
    assert len(others) > 30000  # the join is real: most paragraphs have an English twin
    assert not (others["text"] == others["text_en"]).any()
    english_debref = set(debref_frame.loc[debref_frame["language"] == "en", "text"])
    assert not debref_frame.loc[debref_frame["language"] != "en", "text"].isin(english_debref).any()


@pytest.mark.parametrize("corpus", ["libreoffice-help", "debian-reference"])
def test_scripts_match_languages(corpus):
    frame = load_builtin(corpus)
    text = {lang: frame.loc[frame["language"] == lang, "text"] for lang in LANGUAGES}
    ja_kana = text["ja"].str.contains(KANA)
    assert (ja_kana | text["ja"].str.contains(CJK)).mean() >= 0.95
    assert ja_kana.mean() >= 0.90  # kana tells Japanese from Chinese
    zh_ok = text["zh"].str.contains(CJK) & ~text["zh"].str.contains(KANA)
    assert zh_ok.mean() >= 0.95
    for lang in ("de", "en", "es", "fr"):
        assert (~text[lang].str.contains(CJK) & ~text[lang].str.contains(KANA)).mean() >= 0.99, lang
    assert text["de"].str.contains("[äöüß]").mean() >= 0.3
    assert text["es"].str.contains("[áéíóúñ¿]").mean() >= 0.3
    assert text["fr"].str.contains("[éèàçê]").mean() >= 0.4


def test_sources_json_matches_shipped_files(help_frame, debref_frame):
    sources = json.loads(ASSETS.joinpath("SOURCES.json").read_text(encoding="utf-8"))
    frames = {"libreoffice-help": help_frame, "debian-reference": debref_frame}
    for name, frame in frames.items():
        info = sources["corpora"][name]
        data = ASSETS.joinpath(info["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"], name
        assert info["bytes"] == len(data) and info["rows"] == len(frame)
        assert len(info["packages"]) == 6
        assert all(re.fullmatch(r"[0-9:.+~a-z-]+", v) for v in info["packages"].values())
    lo = sources["corpora"]["libreoffice-help"]
    assert lo["license"] == "MPL-2.0" and sources["corpora"]["debian-reference"]["license"] == "GPL-2+"
    assert set(lo["packages"]) == {f"libreoffice-help-{s}" for s in ("de", "en-us", "es", "fr", "ja", "zh-cn")}
    counted = help_frame.groupby(["language", "label", "split"]).size()
    for (language, label, split), n in counted.items():
        assert lo["counts"][language][label][split] == n
    assert sum(len(v) for v in builtin_info("debian-reference")["counts"].values()) == 6 * 12
    total_size = sum(len(ASSETS.joinpath(info["file"]).read_bytes()) for info in sources["corpora"].values())
    assert total_size < 10_000_000


# ---------------------------------------------------------------- the builder's parsing (no apt)

HELP_PAGE = """<html><body><div id="DisplayArea">
<h1 id="hd_id1">A heading that is long enough to be a paragraph, but is not one</h1>
<p id="par_id1" class="paragraph" dir="auto">Press <span class="switchinline"><span hidden="true" class="MAC">Command</span><span hidden="true">Ctrl</span></span> + F   to
 open <a href="x">Find</a>.</p>
<p id="par_id2" class="listitem">An item<br>on two lines</p>
<table><tr><td><p id="par_id3" class="tablecontentintable">In a cell &amp; escaped</p></td></tr></table>
<div class="tip"><div class="noteicon"><img src="tip.svg" alt="tip"></div><div class="notetext"><p id="par_id4" dir="auto">A tip</p></div></div>
<p id="par_id5" dir="auto">Class-less outside a note</p>
<p id="par_id6" class="code">code()</p>
<div class="embedded"><p id="par_id7" class="paragraph">Copied from another page</p></div>
<p class="paragraph">No par_id</p>
<p id="par_id1" class="paragraph">Second copy of par_id1</p>
</div></body></html>"""

DEBREF_CHAPTER = """<html><body><div class="section">
<p>First <code class="literal">apt</code> paragraph.</p><a id="x"/>
<pre class="screen">$ not a paragraph</pre>
<p class="title"><strong>Table 1.1. A title</strong></p>
<div class="itemizedlist"><ul><li><p>In a list
 item</p></li></ul></div>
</div></body></html>"""


def test_parse_help_page_selects_paragraphs():
    assert builtin_build.parse_help_page(HELP_PAGE) == [
        ("par_id1", "Press Ctrl + F to open Find."),
        ("par_id2", "An item on two lines"),
        ("par_id3", "In a cell & escaped"),
        ("par_id4", "A tip"),
    ]


def test_parse_debref_chapter_skips_pre_and_titles():
    assert builtin_build.parse_debref_chapter(DEBREF_CHAPTER) == ["First apt paragraph.", "In a list item"]


def test_page_splits_are_seeded_and_stratified():
    pages = {"scalc": [f"scalc/{i:03d}.html" for i in range(200)],
             "sbasic": [f"sbasic/{i:03d}.html" for i in range(20)]}
    first = builtin_build.assign_page_splits(pages, seed=0)
    assert first == builtin_build.assign_page_splits(pages, seed=0)
    assert first != builtin_build.assign_page_splits(pages, seed=1)
    for label, n, expected in (("scalc", 200, (140, 30, 30)), ("sbasic", 20, (14, 3, 3))):
        got = [sum(1 for p in pages[label] if first[p] == s) for s in ("train", "validation", "test")]
        assert tuple(got) == expected, label


def test_check_reports_row_and_version_differences(tmp_path):
    shipped = tmp_path / "shipped"
    shutil.copytree(str(ASSETS), shipped)
    assert builtin_build.compare(shipped, shipped) == []
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(shipped, rebuilt)
    table = pq.read_table(rebuilt / "debian_reference.parquet")
    first_id = table.column("id")[0].as_py()
    pq.write_table(table.slice(1), rebuilt / "debian_reference.parquet")
    sources = json.loads((rebuilt / "SOURCES.json").read_text(encoding="utf-8"))
    sources["corpora"]["debian-reference"]["packages"]["debian-reference-de"] = "9.9"
    (rebuilt / "SOURCES.json").write_text(json.dumps(sources), encoding="utf-8")
    lines = builtin_build.compare(shipped, rebuilt)
    language = first_id.split(":")[1]
    n = int((table.column("language").to_pandas() == language).sum())
    assert f"debian-reference {language}: {n} -> {n - 1} rows" in lines
    assert any(line.startswith("debian-reference: 1 ids removed: " + first_id) for line in lines)
    assert any("debian-reference-de" in line and "-> 9.9" in line for line in lines)
    assert not any(line.startswith("libreoffice-help") for line in lines)
