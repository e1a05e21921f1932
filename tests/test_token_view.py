"""Token views: self-contained HTML whose token colours are the stored SHAP values; renders in headless Chromium."""

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from langtrainer.analysis.shap import load_shap_result
from langtrainer.reporting.token_view import (NEGATIVE_RGB, POSITIVE_RGB, render_run_view, write_comparison_view)
from results_fixtures import write_shap_folder

LABELS = ["neg", "pos"]
TOKENS_A = ["<s>", "\u2581good", "\u2581film", "</s>"]
TOKENS_B = ["<s>", "\u2581<b>bold</b>", "\u2581&", "\u2581ok", "</s>"]


def example(id_, tokens, values, label, language="en"):
    return {"id": id_, "language": language, "label": label, "text": " ".join(tokens[1:-1]), "tokens": tokens,
            "values": values, "base_values": [0.5, 0.5]}


# balanced: "film" and "&", "ok" are neutral (|value| ≤ 0.01); the compared model moves them
BAL = [
    example("a", TOKENS_A, [[0, 0], [-0.30, 0.30], [0.005, -0.005], [0, 0]], 1),
    example("b", TOKENS_B, [[0, 0], [0.20, -0.20], [0.0, 0.0], [0.01, -0.01], [0, 0]], 1, "de"),
]
OTHER = [
    example("a", TOKENS_A, [[0, 0], [-0.25, 0.25], [-0.015, 0.015], [0, 0]], 1),
    # b (true label pos) is predicted neg by both: 0.5 + 0.36 > 0.5 - 0.36
    example("b", TOKENS_B, [[0, 0], [0.20, -0.20], [0.10, -0.10], [0.06, -0.06], [0, 0]], 1, "de"),
]


class Spans(HTMLParser):
    """Collects every token span (with the row it is in) and every URL-ish attribute."""

    def __init__(self):
        super().__init__()
        self.rows, self.sections, self.urls, self.tags = [], [], [], set()
        self._row = None
        self._span = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        for key in ("src", "href"):
            if key in attrs:
                self.urls.append(attrs[key])
        if tag == "section":
            self.sections.append(attrs)
        if tag == "div" and attrs.get("class") == "row":
            self._row = {"kind": attrs["data-kind"], "label": attrs["data-label"], "spans": []}
            self.rows.append(self._row)
        if tag == "span" and "tok" in (attrs.get("class") or "").split():
            self._span = {"value": float(attrs["data-value"]), "style": attrs["style"], "text": ""}
            self._row["spans"].append(self._span)

    def handle_data(self, data):
        if self._span is not None:
            self._span["text"] += data

    def handle_endtag(self, tag):
        if tag == "span":
            self._span = None


@pytest.fixture
def results(tmp_path):
    bal = load_shap_result(write_shap_folder(tmp_path / "bal" / "shap", BAL, LABELS))
    other = load_shap_result(write_shap_folder(tmp_path / "imbal" / "shap", OTHER, LABELS))
    return bal, other


def alpha_of(style):
    match = re.fullmatch(r"background-color: rgba\((\d+), (\d+), (\d+), ([0-9.]+)\)(; color: #fff)?", style)
    assert match, style
    return tuple(int(x) for x in match.groups()[:3]), float(match.group(4))


def test_comparison_view_colours_tokens_by_their_shap_values(results, tmp_path):
    bal, other = results
    path = write_comparison_view(bal, other, tmp_path / "view.html", title="imbal vs bal <script>", threshold=0.01)
    page = path.read_text()
    assert not re.search(r"https?://", page) and "<script" not in page  # offline, no scripts (title escaped)
    assert "imbal vs bal &lt;script&gt;" in page
    parser = Spans()
    parser.feed(page)
    assert parser.urls == [] and "link" not in parser.tags and "img" not in parser.tags
    # b's neutral tokens ("&", "ok") shift by (0.10 - 0) + (0.06 - 0.01) = 0.15 towards "neg", a's by
    # (0.015 - (-0.005)) = 0.02 towards "pos": b comes first
    assert [s["data-id"] for s in parser.sections] == ["b", "a"]
    assert float(parser.sections[0]["data-shift"]) == pytest.approx(0.15, abs=1e-6)
    assert float(parser.sections[1]["data-shift"]) == pytest.approx(0.02, abs=1e-6)
    # b (wrong): predicted and true rows per model; a (correct): one row per model
    rows = parser.rows
    assert [(r["kind"], r["label"]) for r in rows] == [("predicted", "neg"), ("true", "pos")] * 2 + [
        ("predicted", "pos")] * 2
    scale = float(np.percentile(np.abs(np.concatenate(
        [np.asarray(e["values"], float).ravel() for e in BAL + OTHER])), 99))
    for row, source in zip(rows, [BAL[1], BAL[1], OTHER[1], OTHER[1], BAL[0], OTHER[0]]):
        stored = np.asarray(source["values"], float)
        label = LABELS.index(row["label"])
        assert [s["value"] for s in row["spans"]] == pytest.approx(stored[:, label].tolist(), abs=1e-6)
        for span, value in zip(row["spans"], stored[:, label]):
            rgb, alpha = alpha_of(span["style"])
            if value != 0:
                assert rgb == (POSITIVE_RGB if value > 0 else NEGATIVE_RGB)
            assert alpha == pytest.approx(min(1.0, abs(value) / scale), abs=1e-3)
    # token text is escaped, and shown, not interpreted
    texts = [s["text"] for s in rows[0]["spans"]]
    assert texts == ["<s>", " <b>bold</b>", " &", " ok", "</s>"]
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page


def test_run_view_holds_every_example(results):
    bal, _ = results
    parser = Spans()
    parser.feed(render_run_view(bal))
    assert [s["data-id"] for s in parser.sections] == ["a", "b"]
    assert [r["kind"] for r in parser.rows] == ["predicted", "predicted", "true"]  # b is wrong: two rows


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_comparison_view_renders_in_headless_chromium(results, tmp_path):
    from PIL import Image

    bal, other = results
    path = write_comparison_view(bal, other, tmp_path / "view.html")
    png = tmp_path / "view.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={png}", "--window-size=1200,900", Path(path).as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    image = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)
    # the strongest red token (|0.30| at the page's scale) is drawn: pixels close to shap's red
    red = np.abs(image - np.array(POSITIVE_RGB)).sum(axis=1) < 60
    blue = np.abs(image - np.array(NEGATIVE_RGB)).sum(axis=1) < 60
    assert red.sum() > 100 and blue.sum() > 100
