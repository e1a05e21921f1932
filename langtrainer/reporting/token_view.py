"""Token views: each explained example's tokens coloured by SHAP value, as one self-contained HTML page.

`shap.plots.text` draws one explanation with scripts; these pages hold every
explained example with nothing but inline CSS (they open offline, from a
file, in any browser, and carry no scripts). Per example and model, two rows:
the tokens coloured by their SHAP value for the predicted label and for the
true label (one row when they are the same; red pushes towards the label, blue away, the deeper the larger
|value|; one colour scale per page, so the two models compare). A comparison
page puts the balanced model beside the compared one and orders the examples
by their neutral-token shift: the summed difference (compared − balanced)
over the tokens the balanced model finds neutral (|S_bal| ≤ threshold) for
the compared model's predicted label, largest |shift| first (Section 2.3's
cumulative difference, one example at a time).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from langtrainer import atomic
from langtrainer.defaults import SHAP_THRESHOLD
from langtrainer.errors import UserError

POSITIVE_RGB = (255, 13, 87)  # shap's red: pushes towards the label
NEGATIVE_RGB = (30, 136, 229)  # shap's blue: pushes away from it

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.2em 2em; color: #222; }
h1 { font-size: 1.35em; margin-bottom: 0.2em; }
p.note { color: #555; max-width: 70em; font-size: 0.9em; }
.legend span.swatch { display: inline-block; width: 2.2em; height: 1em; vertical-align: middle; margin: 0 0.2em; }
section.example { border-top: 1px solid #ddd; padding: 0.6em 0 0.8em; }
section.example h2 { font-size: 0.95em; margin: 0 0 0.4em; font-weight: 600; }
section.example h2 .meta { font-weight: normal; color: #666; }
.columns { display: grid; grid-template-columns: repeat(var(--cols), minmax(0, 1fr)); gap: 1.4em; }
.model h3 { font-size: 0.85em; margin: 0 0 0.3em; color: #444; }
.row { margin: 0.15em 0 0.45em; line-height: 1.9; overflow-wrap: anywhere; }
.row .what { display: block; font-size: 0.75em; color: #666; }
.tok { padding: 0.12em 0.08em; margin: 0 0.04em; border-radius: 3px; white-space: pre-wrap; }
.tok.special { color: #999; font-size: 0.8em; }
.shift-pos { color: rgb(200, 10, 70); } .shift-neg { color: rgb(20, 100, 190); }
"""


def _colour(value: float, scale: float) -> str:
    """rgba() of a SHAP value: red for > 0, blue for < 0, alpha |value| / scale (capped at 1)."""
    alpha = 0.0 if scale <= 0 else min(1.0, abs(value) / scale)
    r, g, b = POSITIVE_RGB if value > 0 else NEGATIVE_RGB
    return f"rgba({r}, {g}, {b}, {alpha:.3f})"


def _token_text(token: str) -> str:
    # SentencePiece marks a word start with U+2581; show it as the space it stands for
    return token.replace("\u2581", " ")


def token_spans(tokens: Sequence[str], values: np.ndarray, special: np.ndarray, scale: float) -> str:
    """One <span> per token: escaped text, data-value (the SHAP value), background colour, tooltip."""
    parts = []
    for token, value, is_special in zip(tokens, np.asarray(values, dtype=float), special):
        classes = "tok special" if is_special else "tok"
        # dark text stays readable on light colours, white on deep ones
        ink = "; color: #fff" if scale > 0 and abs(value) / scale > 0.6 else ""
        parts.append(
            f'<span class="{classes}" data-value="{value:.6g}" style="background-color: {_colour(value, scale)}{ink}" '
            f'title="{value:+.4g}">{html.escape(_token_text(str(token)))}</span>'
        )
    # <wbr>: a line may break between any two tokens (WordPiece rows have no spaces to break at)
    return "<wbr>".join(parts)


def _predicted(row: Any) -> int:
    return int(np.argmax(np.asarray(row["probabilities"])))


def row_neutral_difference(bal_row: Any, other_row: Any, label: int, threshold: float) -> float:
    """One row's cumulative SHAP difference on neutral tokens: the sum over non-special tokens with
    |S_bal(t, label)| ≤ threshold of S_other(t, label) − S_bal(t, label). (The report's `neutral_shift`
    is the mean of shap_diff.json's per-language means over a group's favoured labels, not this.)"""
    bal_values = np.asarray(bal_row["values"], dtype=float)[:, label]
    other_values = np.asarray(other_row["values"], dtype=float)[:, label]
    neutral = (np.abs(bal_values) <= threshold) & ~np.asarray(bal_row["special"], dtype=bool)
    return float((other_values - bal_values)[neutral].sum())


def _scale(frames: Sequence[Any]) -> float:
    """The page's colour scale: the 99th percentile of |value| over every explained token and label."""
    values = [np.abs(np.asarray(v, dtype=float)).reshape(-1) for frame in frames for v in frame["values"]]
    flat = np.concatenate(values) if values else np.zeros(1)
    scale = float(np.percentile(flat, 99)) if flat.size else 0.0
    return scale if scale > 0 else float(flat.max(initial=0.0)) or 1.0


def _model_column(name: str, row: Any, label_names: Sequence[str], scale: float) -> str:
    predicted, true = _predicted(row), int(row["label"])
    probabilities = np.asarray(row["probabilities"], dtype=float)
    values = np.asarray(row["values"], dtype=float)
    rows = []
    # A correct prediction has one row: its predicted label is the true one.
    shown = [("predicted", predicted)] + ([("true", true)] if true != predicted else [])
    for what, label in shown:
        caption = f"{what}: {label_names[label]} (p = {probabilities[label]:.3f})"
        if true == predicted:
            caption = f"predicted = true label: {label_names[label]} (p = {probabilities[label]:.3f})"
        elif what == "predicted":
            caption += " — wrong"
        rows.append(f'<div class="row" data-kind="{what}" data-label="{html.escape(label_names[label])}">'
                    f'<span class="what">{html.escape(caption)}</span>'
                    f'{token_spans(row["tokens"], values[:, label], row["special"], scale)}</div>')
    return f'<div class="model"><h3>{html.escape(name)}</h3>{"".join(rows)}</div>'


def _page(title: str, note: str, scale: float, sections: list[str]) -> str:
    legend = (f'<p class="legend note">SHAP value: <span class="swatch" style="background-color: '
              f'{_colour(-scale, scale)}"></span>−{scale:.3g} (pushes away from the label) '
              f'<span class="swatch" style="background-color: {_colour(scale, scale)}"></span>+{scale:.3g} '
              "(pushes towards it); deeper colour, larger |value| (the scale is the page's 99th percentile). "
              "Hover a token for its value; grey tokens are the special tokens the masker always keeps.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class=\"note\">{html.escape(note)}</p>{legend}"
            + "".join(sections) + "</body></html>\n")


def render_comparison_view(bal, other, title: str | None = None, threshold: float = SHAP_THRESHOLD,
                           names: tuple[str, str] | None = None) -> str:
    """HTML of two `ShapResult`s of the same examples: balanced left, compared right, biggest shifts first."""
    if list(bal.label_names) != list(other.label_names):
        raise UserError("the two SHAP results have different label names")
    label_names = list(bal.label_names)
    a = bal.examples.set_index("id", drop=False)
    b = other.examples.set_index("id", drop=False)
    ids = [i for i in a.index if i in b.index]
    if not ids:
        raise UserError("the two SHAP results explain no example in common")
    names = names or (bal.name, other.name)
    scale = _scale([a.loc[ids], b.loc[ids]])
    entries = []
    for example_id in ids:
        bal_row, other_row = a.loc[example_id], b.loc[example_id]
        if list(bal_row["tokens"]) != list(other_row["tokens"]):
            raise UserError(f"example {example_id!r} has different tokens in the two results")
        label = _predicted(other_row)
        entries.append((row_neutral_difference(bal_row, other_row, label, threshold), example_id, label))
    entries.sort(key=lambda e: (-abs(e[0]), str(e[1])))
    sections = []
    for shift, example_id, label in entries:
        bal_row, other_row = a.loc[example_id], b.loc[example_id]
        kind = "shift-pos" if shift > 0 else "shift-neg"
        header = (f'<h2>{html.escape(str(example_id))} <span class="meta">· {html.escape(str(bal_row["language"]))}'
                  f' · true label {html.escape(label_names[int(bal_row["label"])])} · neutral-token shift for '
                  f'{html.escape(label_names[label])}: </span><span class="{kind}">{shift:+.4g}</span></h2>')
        columns = (_model_column(names[0], bal_row, label_names, scale)
                   + _model_column(names[1], other_row, label_names, scale))
        sections.append(f'<section class="example" data-id="{html.escape(str(example_id))}" '
                        f'data-shift="{shift:.6g}">{header}<div class="columns" style="--cols: 2">{columns}'
                        "</div></section>")
    note = (f"{len(entries)} explained examples, {names[0]} (left) and {names[1]} (right). Examples are ordered by "
            f"the neutral-token shift: the sum of ({names[1]} − {names[0]}) SHAP values over the tokens whose "
            f"{names[0]} value is within ±{threshold:g}, for {names[1]}'s predicted label; largest |shift| first.")
    return _page(title or f"Token view: {names[1]} vs {names[0]}", note, scale, sections)


def render_run_view(result, title: str | None = None) -> str:
    """HTML of one `ShapResult`: each example's tokens for its predicted and its true label."""
    label_names = list(result.label_names)
    frame = result.examples
    scale = _scale([frame])
    sections = []
    for _, row in frame.iterrows():
        header = (f'<h2>{html.escape(str(row["id"]))} <span class="meta">· {html.escape(str(row["language"]))} · '
                  f'true label {html.escape(label_names[int(row["label"])])}</span></h2>')
        sections.append(f'<section class="example" data-id="{html.escape(str(row["id"]))}">{header}'
                        f'<div class="columns" style="--cols: 1">{_model_column(result.name, row, label_names, scale)}'
                        "</div></section>")
    note = f"{len(frame)} explained examples of {result.name}."
    return _page(title or f"Token view: {result.name}", note, scale, sections)


def write_comparison_view(bal, other, path: str | os.PathLike, **kwargs) -> Path:
    """Write `render_comparison_view` to `path` atomically."""
    return atomic.write_text(Path(path), render_comparison_view(bal, other, **kwargs))


def write_run_view(result, path: str | os.PathLike, **kwargs) -> Path:
    """Write `render_run_view` to `path` atomically."""
    return atomic.write_text(Path(path), render_run_view(result, **kwargs))
