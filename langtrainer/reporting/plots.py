"""Every figure langtrainer draws, in one shape: `plot_x(data, ax=None) -> ax`.

A plot takes the numbers it draws and an optional matplotlib `Axes` (a new
figure when omitted) and returns the axes; it never writes a file. Saving is
`save_figure(ax, path)`, the one place that turns a figure into a PNG on disk
(atomically). This is fairlearn's convention: a caller can put several plots
on one figure, restyle them, or save them where it likes.
"""

from __future__ import annotations

import io
from pathlib import Path


def new_axes(figsize: tuple[float, float] = (6.0, 4.0)):
    """A fresh Agg figure's axes (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def save_figure(ax, path: Path, dpi: int = 120) -> Path:
    """Write the figure holding `ax` to `path` as PNG (atomically) and close it."""
    import matplotlib.pyplot as plt

    from langtrainer.atomic import write_bytes

    fig = ax.figure
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return write_bytes(Path(path), buffer.getvalue())


def plot_shap_diff(result, ax=None, label=None):
    """Figure 1: mean cumulative SHAP difference per token category and language (`ShapDiffResult`).

    label (index or name) draws that label's panel on `ax`. Without a label,
    every label gets a panel of one new figure (then `ax` must be None) and
    the first panel's axes are returned: its `.figure` holds them all.
    Bars: mean ± standard error over the examples in each mean; the small
    number on each bar is that n.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.label_names)
    if label is not None:
        index = names.index(label) if isinstance(label, str) else int(label)
        ax = ax if ax is not None else new_axes((4.8, 3.8))
        _shap_diff_panel(result, index, ax)
        ax.set_ylabel(f"cumulative SHAP difference\n({result.comparison})")
        ax.legend(fontsize="small")
        return ax
    if ax is not None and len(names) > 1:
        raise ValueError("give label= to draw one label's panel on an existing ax")
    columns = min(len(names), 3)
    rows = (len(names) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4.8 * columns, 3.8 * rows), squeeze=False, sharey=True)
    for c in range(len(names)):
        _shap_diff_panel(result, c, axes[c // columns][c % columns])
        if c % columns == 0:
            axes[c // columns][0].set_ylabel(f"cumulative SHAP difference\n({result.comparison})")
    for k in range(len(names), rows * columns):
        axes[k // columns][k % columns].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    bottom = 0.0
    if rows * columns > len(names):  # a spare panel holds the legend, clear of every tick label
        spare = axes[rows - 1][columns - 1]
        spare.legend(handles, labels, loc="center", ncol=2 if len(labels) > 4 else 1, title="language (group)")
    else:
        fig.legend(handles, labels, loc="lower center", ncol=min(max(len(labels), 1), 6), fontsize="small")
        bottom = 0.45 / fig.get_figheight()  # room for one row of legend below the tick labels
    fig.suptitle(f"Average cumulative difference in SHAP value by token category "
                 f"(threshold {result.threshold:g}; bars: mean ± s.e. over examples)")
    fig.tight_layout(rect=(0, bottom, 1, 0.95))
    return axes[0][0]


def _shap_diff_panel(result, c: int, ax) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    categories = ["negative", "neutral", "positive", "base"]
    table = result.by_language
    group_of = {lang: name for name, langs in (result.groups or {}).items() for lang in langs}
    languages = sorted(table["language"].unique(), key=lambda lang: (group_of.get(lang, "~"), lang))
    colors = plt.get_cmap("tab10")
    hatches = {name: h for name, h in zip(sorted(set(group_of.values())), ["", "//", "..", "xx", "\\\\"])}
    width = 0.8 / max(len(languages), 1)
    panel = table[table["class"] == c]
    for j, language in enumerate(languages):
        rows = panel[panel["language"] == language].set_index("category")
        heights = [float(rows["mean"].get(cat, np.nan)) for cat in categories]
        errors = [float(rows["std"].get(cat, 0.0)) / max(np.sqrt(float(rows["n"].get(cat, 1))), 1.0)
                  for cat in categories]
        xs = np.arange(len(categories)) + (j - (len(languages) - 1) / 2) * width
        group = group_of.get(language)
        bars = ax.bar(xs, heights, width, yerr=errors, capsize=2, color=colors(j % 10), hatch=hatches.get(group, ""),
                      edgecolor="black", linewidth=0.4, label=f"{language} ({group})" if group else language)
        # n per bar: with masked averaging a category's mean counts only the examples that have a token there.
        counts = [rows["n"].get(cat) for cat in categories]
        ax.bar_label(bars, labels=["" if n is None or np.isnan(n) else str(int(n)) for n in counts],
                     fontsize=5, padding=1, rotation=90)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.axvline(len(categories) - 1.5, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xticks(np.arange(len(categories)))
    ax.set_xticklabels(["neg. tokens", "neutral tokens", "pos. tokens", "base value"])
    ax.set_title(f"label: {result.label_names[c]}")


def plot_probe_layers(report, ax=None):
    """Language-identification accuracy by layer (mean ± std over folds) from one probe
    (an `artifacts.ProbeReport` or its JSON) with `layer: all`.

    One curve for the model and, when the probe compared a base model, one for
    the base; the dotted line is chance (the share of the largest language).
    """
    from matplotlib.ticker import MaxNLocator

    report = report.to_dict() if hasattr(report, "to_dict") else report

    if not report.get("layers"):
        raise ValueError("the probe has no layer curve: run it with layer 'all'")
    ax = ax if ax is not None else new_axes((6.0, 4.0))
    curves = [("fine-tuned" if report.get("base") else report["model"], report)]
    if report.get("base"):
        curves.append((f"base ({report['base']['model']})", report["base"]))
    for label, block in curves:
        xs = [e["layer"] for e in block["layers"]]
        ys = [e["accuracy_mean"] for e in block["layers"]]
        errs = [e["accuracy_std"] for e in block["layers"]]
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)
    chance = report["result"]["chance_accuracy"]
    ax.axhline(chance, color="grey", linestyle=":", label=f"chance ({chance:.2f})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel(f"LID accuracy ({report['settings']['folds']}-fold)")
    ax.set_title(f"language identification by layer: {report['data']}, C={report['settings']['C']:g}")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small")
    return ax


def _finite(values) -> list[float]:
    import math

    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def _mean_and_spread(values) -> tuple[float, float | None]:
    """Mean and sample std; no spread for fewer than two values (one seed has no error bar)."""
    import numpy as np

    finite = _finite(values)
    if not finite:
        return float("nan"), None
    return float(np.mean(finite)), (float(np.std(finite, ddof=1)) if len(finite) > 1 else None)


def plot_accuracy(values, ax=None, reference=None, reference_label: str = "paper", ylabel: str = "test accuracy"):
    """Test accuracy per training setup: `values` maps a setup's name to its per-seed accuracies.

    The axis starts at 0 (so bar heights compare as ratios); error bars (± std
    over seeds) only where a setup has several seeds; each bar carries its
    value. `reference` (name -> number) adds markers labelled `reference_label`.
    """
    import numpy as np

    ax = ax if ax is not None else new_axes((5.0, 3.6))
    names = list(values)
    stats = [_mean_and_spread(values[name]) for name in names]
    means = [m for m, _ in stats]
    colors = [f"C{k % 10}" for k in range(len(names))]
    xs = np.arange(len(names))
    ax.bar(xs, means, color=colors, width=0.6)
    with_spread = [k for k, (_, s) in enumerate(stats) if s is not None]
    if with_spread:
        ax.errorbar(xs[with_spread], [means[k] for k in with_spread], yerr=[stats[k][1] for k in with_spread],
                    fmt="none", ecolor="black", capsize=4, label="± std over seeds")
    for x, mean in zip(xs, means):
        if not np.isnan(mean):
            ax.text(x, mean / 2, f"{mean:.3f}", ha="center", va="center", fontsize=8, color="white",
                    fontweight="bold")
    if reference:
        points = [(k, reference[name]) for k, name in enumerate(names) if name in reference]
        if points:
            ax.scatter([k for k, _ in points], [v for _, v in points], marker="D", color="black", zorder=3,
                       label=reference_label)
    ax.set_xticks(xs)
    ax.set_xticklabels([name.replace(" + ", "\n+ ") for name in names], fontsize=8)
    _unit_axis(ax)
    ax.set_ylabel(ylabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper center", ncol=2, frameon=False)
    return ax


def _unit_axis(ax) -> None:
    """0 to 1 with headroom above 1 for the legend, which then covers no bar."""
    import numpy as np

    ax.set_ylim(0.0, 1.2)
    ax.set_yticks(np.linspace(0.0, 1.0, 6))
    ax.axhline(1.0, color="grey", linewidth=0.5, linestyle=":")


def plot_probe(values, ax=None, ylabel: str = "language-ID accuracy", chance=None):
    """Language-ID probe accuracy per model: `values` maps a model's name to {data name: per-seed accuracies}.

    One bar series per data set that has a number for some model (so every
    legend entry has bars); axis from 0; error bars only for several seeds;
    `chance` (data name -> accuracy of always guessing the commonest language)
    draws a dashed line per data set in its series' colour.
    """
    import numpy as np

    ax = ax if ax is not None else new_axes((5.0, 3.6))
    names = list(values)
    series = []
    for name in names:
        for data in values[name]:
            if data not in series and _finite(values[name][data]):
                series.append(data)
    width = 0.8 / max(len(series), 1)
    xs = np.arange(len(names))
    for k, data in enumerate(series):
        stats = [_mean_and_spread(values[name].get(data, [])) for name in names]
        offsets = xs + (k - (len(series) - 1) / 2) * width
        ax.bar(offsets, [m for m, _ in stats], width, color=f"C{k}", label=data)
        spread = [j for j, (_, s) in enumerate(stats) if s is not None]
        if spread:
            ax.errorbar(offsets[spread], [stats[j][0] for j in spread], yerr=[stats[j][1] for j in spread],
                        fmt="none", ecolor="black", capsize=3)
    for k, data in enumerate(series):
        level = (chance or {}).get(data)
        if level is not None:
            ax.axhline(level, color=f"C{k}", linestyle="--", linewidth=1, label=f"chance ({data})")
    ax.set_xticks(xs)
    ax.set_xticklabels([name.replace(" + ", "\n+ ").replace(" (", "\n(") for name in names], fontsize=7)
    _unit_axis(ax)
    ax.set_ylabel(ylabel)
    if series:
        ax.legend(fontsize=8, loc="upper center", ncol=2, frameon=False)
    return ax


def plot_accuracy_and_probe(accuracy, probes, reference=None, reference_label: str = "paper",
                            analogue: bool = False, chance=None, probe_note: str = ""):
    """The report's accuracy_probe figure: task accuracy per setup (`plot_accuracy`) and, when any probe
    has a number, language-ID accuracy per model (`plot_probe`, with `chance` levels) beside it; returns
    the first axes.

    `analogue` adds the paper's table names to the titles (runs that stand in for a paper experiment);
    `probe_note` is a second title line of the probe panel (which C it shows).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_probe = any(v is not None for per_data in probes.values() for values in per_data.values() for v in values)
    _, axes = plt.subplots(1, 2 if has_probe else 1, figsize=(10, 3.8) if has_probe else (5.5, 3.8), squeeze=False)
    plot_accuracy(accuracy, ax=axes[0][0], reference=reference, reference_label=reference_label)
    axes[0][0].set_title("Task accuracy" + (" (Table 3 analogue)" if analogue else ""))
    if has_probe:
        plot_probe(probes, ax=axes[0][1], chance=chance)
        axes[0][1].set_title("Language identifiability" + (" (Table 4 analogue)" if analogue else "")
                             + (f"\n{probe_note}" if probe_note else ""), fontsize=10 if probe_note else None)
    return axes[0][0]


VERDICT_COLOURS = {"better": "tab:green", "worse": "tab:red", "within the noise": "tab:grey"}


def plot_forest(rows, ax=None, title: str | None = None, xlabel: str = "difference to the baseline"):
    """A forest plot of paired differences: one row per compared setup, its mean and interval.

    `rows`: sequence of dicts with `name`, `mean`, `low`, `high` (None: no interval, a bare point),
    `verdict` ("better" / "worse" / "within the noise", colours the row) and optionally `points`
    (the per-seed differences, drawn as small dots). A vertical line marks no difference.
    """
    import math

    rows = list(rows)
    ax = ax if ax is not None else new_axes((6.0, 0.6 + 0.45 * max(len(rows), 1)))
    ys = list(range(len(rows)))[::-1]
    for y, row in zip(ys, rows):
        colour = VERDICT_COLOURS.get(row.get("verdict", ""), "black")
        if row.get("low") is not None and row.get("high") is not None:
            ax.hlines(y, row["low"], row["high"], color=colour, linewidth=2)
        if row.get("mean") is not None and math.isfinite(row["mean"]):
            ax.plot([row["mean"]], [y], marker="D", color=colour, markersize=6, zorder=3)
        points = [p for p in row.get("points", []) if p is not None and math.isfinite(p)]
        if points:
            ax.scatter(points, [y + 0.18] * len(points), s=10, color="black", zorder=4)
    ax.axvline(0.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(ys)
    ax.set_yticklabels([row["name"] for row in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax
