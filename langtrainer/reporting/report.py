"""The report: the paper's Tables 2-4 and Figure 1, rebuilt from run outputs.

`collect(dirs)` finds what finished runs left behind (metrics.json, probe
JSONs, shap_diff.json), `summarise` turns it into tables with mean +- std over
seeds, and `write_report` writes report.md with the PNGs it embeds. Verdicts
are stated only as far as the numbers carry them: a difference smaller than
its uncertainty is reported as "not shown".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from langtrainer import atomic
from langtrainer.errors import UserError

ROLE_ORDER = ["pretrained", "balanced", "imbalanced", "imbalanced+cw"]
ROLE_TITLES = {
    "pretrained": "pretrained (no fine-tuning)",
    "balanced": "balanced",
    "imbalanced": "imbalanced",
    "imbalanced+cw": "imbalanced + per-language weights",
}
# The paper's mBERT numbers on Amazon reviews (6 languages, Table 1a skew):
# the closest analogue of the demo. For orientation only.
PAPER_ACCURACY = {"balanced": 0.580, "imbalanced": 0.556, "imbalanced+cw": 0.569}  # Table 3
PAPER_PROBE = {  # Table 4: (original test set, Wikipedia)
    "balanced": (0.613, 0.480),
    "imbalanced": (0.847, 0.646),
    "imbalanced+cw": (0.709, 0.569),
}
PAPER_TABLE2 = {  # Table 2a: imbalanced model's test predictions per group, stars 1..5
    "FR,ES,JA": [13.9, 20.6, 20.1, 19.6, 25.8],
    "DE,EN,ZH": [27.3, 20.7, 16.9, 20.4, 14.7],
}


@dataclass
class Run:
    """One fine-tuned model and what was measured on it."""

    path: Path
    role: str
    name: str
    seed: int
    metrics: dict[str, Any]
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Collected:
    runs: list[Run]
    pretrained_probes: dict[int, dict[str, dict[str, Any]]]  # seed -> data -> probe.json
    shap_diffs: dict[tuple[int, str], dict[str, Any]]  # (seed, name) -> shap_diff.json
    shap_figures: dict[tuple[int, str], Path]
    groups: dict[str, list[str]] | None
    favoured: dict[str, list[int]] | None
    label_names: list[str]


def role_of(metrics: dict[str, Any]) -> str:
    if metrics.get("subset") == "balanced":
        return "balanced"
    return "imbalanced+cw" if metrics.get("class_weights_mode", "none") != "none" else "imbalanced"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read '{path}': {exc}") from None


def _seed_of(path: Path) -> int | None:
    for part in reversed(path.parts):
        if part.startswith("seed") and part[4:].isdigit():
            return int(part[4:])
    return None


def collect(dirs: Iterable[str | Path]) -> Collected:
    """Find runs, probes and SHAP diffs under the given directories."""
    runs: list[Run] = []
    pretrained: dict[int, dict[str, dict[str, Any]]] = {}
    diffs: dict[tuple[int, str], dict[str, Any]] = {}
    figures: dict[tuple[int, str], Path] = {}
    groups = favoured = None
    label_names: list[str] = []
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"'{root}' is not a directory")
        for metrics_path in sorted(root.rglob("metrics.json")):
            if any(part.startswith(".") for part in metrics_path.relative_to(root).parts):
                continue
            metrics = _read_json(metrics_path)
            if "test" not in metrics:
                continue
            run = Run(
                path=metrics_path.parent,
                role=role_of(metrics),
                name=str(metrics.get("recipe", metrics_path.parent.name)),
                seed=int(metrics.get("seed", 0)),
                metrics=metrics,
            )
            for probe_path in sorted(run.path.glob("probe_*.json")):
                probe = _read_json(probe_path)
                run.probes[probe_path.stem.removeprefix("probe_")] = probe
                if probe.get("base"):
                    pretrained.setdefault(run.seed, {}).setdefault(
                        probe_path.stem.removeprefix("probe_"), probe["base"]
                    )
            runs.append(run)
            label_names = label_names or list(metrics.get("label_names", []))
            groups = groups or metrics.get("groups")
            favoured = favoured or metrics.get("favoured_labels")
        for probe_path in sorted(root.rglob("pretrained/probe_*.json")):
            seed = _seed_of(probe_path) or 0
            pretrained.setdefault(seed, {})[probe_path.stem.removeprefix("probe_")] = _read_json(probe_path)
        for diff_path in sorted(root.rglob("shap_diff.json")):
            seed = _seed_of(diff_path) or 0
            diffs[(seed, diff_path.parent.name)] = _read_json(diff_path)
            png = diff_path.with_suffix(".png")
            if png.exists():
                figures[(seed, diff_path.parent.name)] = png
    if not runs:
        raise UserError("no finished runs (metrics.json) found under " + ", ".join(str(d) for d in dirs))
    return Collected(runs, pretrained, diffs, figures, groups, favoured, label_names)


# ---------------------------------------------------------------- numbers


def mean_std(values: list[float]) -> tuple[float, float, int]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan"), 0
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else float("nan"), len(arr)


def fmt(mean: float, std: float = float("nan"), digits: int = 3) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def binomial_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


def difference_verdict(a: list[float], b: list[float], single_seed_se: float) -> tuple[float, float, bool]:
    """Mean of a - b, its standard error, and whether |diff| > 2 SE.

    With several seeds the SE comes from the spread of the paired differences;
    with one seed it is `single_seed_se` (the measurement error of that one
    difference: binomial for accuracies, fold spread for probes).
    """
    diffs = [x - y for x, y in zip(a, b)]
    mean = float(np.mean(diffs))
    se = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else float(single_seed_se)
    return mean, se, abs(mean) > 2 * se


def single_run_se(run: Run, metric: str, n_test: int) -> float:
    """Measurement error of one run's number."""
    test = run.metrics["test"]
    if metric == "accuracy":
        return binomial_se(test["accuracy"], n_test)
    if metric == "skew_index":
        # sum of two favoured-label shares, each a proportion over half the test set
        favoured = run.metrics.get("favoured_labels") or {}
        names = run.metrics.get("label_names") or []
        var = 0.0
        for group, labels in favoured.items():
            share = sum(prediction_share(test, group, names[c], 0.0) for c in labels)
            var += binomial_se(share, max(1, n_test // max(1, len(favoured)))) ** 2
        return math.sqrt(var)
    probe = run.probes.get(metric.removeprefix("probe_"), {})
    folds = len(probe.get("fold_accuracies") or probe.get("result", {}).get("fold_accuracies", []) or [1]) or 1
    return float(probe.get("accuracy_std", float("nan"))) / math.sqrt(folds)


def prediction_share(test: dict[str, Any], unit: str, label: str, missing: float = float("nan")) -> float:
    """Share of `unit`'s (a group's or a language's) test predictions that are `label` (metrics.json's tidy table)."""
    row = test.get("by_group", {}).get(unit) or test.get("by_language", {}).get(unit) or {}
    return float(row.get("prediction_shares", {}).get(label, missing))


def by_role(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.seed):
        out.setdefault(run.role, []).append(run)
    return out


def paired(runs: dict[str, list[Run]], role_a: str, role_b: str, key) -> tuple[list[float], list[float]]:
    """Values of key(run) for the seeds both roles have, in seed order."""
    a = {r.seed: key(r) for r in runs.get(role_a, [])}
    b = {r.seed: key(r) for r in runs.get(role_b, [])}
    seeds = sorted(set(a) & set(b))
    return [a[s] for s in seeds], [b[s] for s in seeds]


def probe_accuracy(run: Run, data: str) -> float | None:
    probe = run.probes.get(data)
    return None if probe is None else float(probe["accuracy_mean"])


def group_distribution(run: Run, group: str, label_names: list[str]) -> list[float]:
    test = run.metrics["test"]
    return [100 * prediction_share(test, group, name) for name in label_names]


def neutral_shift(diff: dict[str, Any], groups: dict[str, list[str]], favoured: dict[str, list[int]],
                  label_names: list[str]) -> dict[str, float]:
    """Mean neutral-token cumulative SHAP difference, per group, on its favoured labels.

    Reads shap_diff.json's by_language[label][language]["neutral"]["mean"].
    """
    by_language = diff.get("by_language", {})
    out = {}
    for group, langs in groups.items():
        values = [
            by_language[label_names[c]][lang]["neutral"]["mean"]
            for c in favoured.get(group, [])
            for lang in langs
            if lang in by_language.get(label_names[c], {}) and "neutral" in by_language[label_names[c]][lang]
        ]
        out[group] = float(np.mean(values)) if values else float("nan")
    return out


# ---------------------------------------------------------------- figures


def plot_accuracy_and_probe(runs: dict[str, list[Run]], pretrained: dict[int, dict[str, dict]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roles = [r for r in ROLE_ORDER if r in runs]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    acc = [mean_std([r.metrics["test"]["accuracy"] for r in runs[role]]) for role in roles]
    axes[0].bar(range(len(roles)), [m for m, _, _ in acc], yerr=[0 if math.isnan(s) else s for _, s, _ in acc],
                color=["#4c72b0", "#dd8452", "#55a868"][: len(roles)], capsize=4)
    axes[0].set_xticks(range(len(roles)), [ROLE_TITLES[r].replace(" + ", "\n+ ") for r in roles], fontsize=8)
    axes[0].set_ylabel("test accuracy")
    lo = min(m for m, _, _ in acc if not math.isnan(m))
    axes[0].set_ylim(max(0.0, lo - 0.1), 1.0)
    axes[0].set_title("Task accuracy (Table 3 analogue)")
    probe_roles = (["pretrained"] if pretrained else []) + roles
    width = 0.38
    for k, data in enumerate(["test", "external"]):
        vals = []
        for role in probe_roles:
            if role == "pretrained":
                vals.append(mean_std([p[data]["accuracy_mean"] for p in pretrained.values() if data in p]))
            else:
                vals.append(mean_std([probe_accuracy(r, data) for r in runs[role]]))
        axes[1].bar(np.arange(len(probe_roles)) + (k - 0.5) * width, [m for m, _, _ in vals], width,
                    yerr=[0 if math.isnan(s) else s for _, s, _ in vals], capsize=3,
                    label="test set" if data == "test" else "external corpus")
    axes[1].set_xticks(range(len(probe_roles)), [ROLE_TITLES[r].replace(" + ", "\n+ ").replace(" (", "\n(") for r in probe_roles], fontsize=7)
    axes[1].set_ylabel("language-ID accuracy")
    axes[1].set_title("Language identifiability (Table 4 analogue)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path = out / "accuracy_probe.png"
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


# ---------------------------------------------------------------- markdown


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summarise(collected: Collected) -> dict[str, Any]:
    """All numbers the report states, as JSON-ready data (report.json)."""
    runs = by_role(collected.runs)
    n_test = max(int(r.metrics.get("test_examples", 0)) for r in collected.runs)
    summary: dict[str, Any] = {"seeds": sorted({r.seed for r in collected.runs}), "n_test": n_test, "roles": {}}
    for role, role_runs in runs.items():
        summary["roles"][role] = {
            "names": sorted({r.name for r in role_runs}),
            "accuracy": mean_std([r.metrics["test"]["accuracy"] for r in role_runs]),
            "macro_f1": mean_std([r.metrics["test"]["macro_f1"] for r in role_runs]),
            "skew_index": mean_std([r.metrics["test"].get("skew_index", float("nan")) for r in role_runs]),
            "probe_test": mean_std([probe_accuracy(r, "test") for r in role_runs]),
            "probe_external": mean_std([probe_accuracy(r, "external") for r in role_runs]),
            "per_seed_accuracy": {r.seed: r.metrics["test"]["accuracy"] for r in role_runs},
        }
    if collected.pretrained_probes:
        summary["roles"]["pretrained"] = {
            "probe_test": mean_std([p["test"]["accuracy_mean"] for p in collected.pretrained_probes.values() if "test" in p]),
            "probe_external": mean_std(
                [p["external"]["accuracy_mean"] for p in collected.pretrained_probes.values() if "external" in p]
            ),
        }
    comparisons = {}
    metric_keys = {
        "accuracy": lambda r: r.metrics["test"]["accuracy"],
        "skew_index": lambda r: r.metrics["test"].get("skew_index", float("nan")),
        "probe_test": lambda r: probe_accuracy(r, "test"),
        "probe_external": lambda r: probe_accuracy(r, "external"),
    }
    for a, b in (("balanced", "imbalanced"), ("imbalanced+cw", "imbalanced"), ("balanced", "imbalanced+cw")):
        for metric, key in metric_keys.items():
            xs, ys = paired(runs, a, b, key)
            if not xs or any(v is None or math.isnan(v) for v in xs + ys):
                continue
            single = math.sqrt(single_run_se(runs[a][0], metric, n_test) ** 2
                               + single_run_se(runs[b][0], metric, n_test) ** 2)
            mean, se, clear = difference_verdict(xs, ys, single)
            comparisons[f"{metric}:{a}-{b}"] = {"mean": mean, "se": se, "clear": bool(clear), "n_seeds": len(xs)}
    summary["comparisons"] = comparisons
    if collected.groups and collected.favoured and collected.label_names:
        shifts = {}
        for (seed, name), diff in collected.shap_diffs.items():
            shifts.setdefault(name, []).append(neutral_shift(diff, collected.groups, collected.favoured, collected.label_names))
        summary["shap_neutral_shift"] = {
            name: {g: mean_std([v[g] for v in values]) for g in collected.groups} for name, values in shifts.items()
        }
    return summary


def _verdicts(summary: dict[str, Any]) -> list[str]:
    """One line per finding; 'yes' only when the difference exceeds 2 standard errors."""
    comp = summary["comparisons"]

    def judge(question: str, key: str, expected_sign: int, yes: str, opposite: str) -> str | None:
        c = comp.get(key)
        if c is None:
            return None
        diff = expected_sign * c["mean"]
        detail = f"({c['mean']:+.3f} ± {c['se']:.3f} SE, {c['n_seeds']} seed{'s' if c['n_seeds'] > 1 else ''})"
        if c["clear"] and diff > 0:
            return f"**{question}** Yes: {yes} {detail}."
        if c["clear"] and diff < 0:
            return f"**{question}** No, the opposite: {opposite} {detail}."
        return f"**{question}** Not shown: the difference is within the noise {detail}."

    lines = [
        judge("Does the imbalance hurt accuracy?", "accuracy:balanced-imbalanced", +1,
              "balanced − imbalanced accuracy", "the imbalanced model is more accurate"),
        judge("Do the imbalanced model's predictions follow each language's training skew?",
              "skew_index:balanced-imbalanced", -1, "balanced − imbalanced skew index",
              "the balanced model is more skewed"),
        judge("Are languages more identifiable in the imbalanced model (test set)?",
              "probe_test:balanced-imbalanced", -1, "balanced − imbalanced probe accuracy",
              "the balanced model is more language-separable"),
        judge("... on the external corpus?", "probe_external:balanced-imbalanced", -1,
              "balanced − imbalanced probe accuracy", "the balanced model is more language-separable"),
        judge("Do per-language weights recover accuracy?", "accuracy:imbalanced+cw-imbalanced", +1,
              "weighted − imbalanced accuracy", "weighting lowers accuracy"),
        judge("Do per-language weights remove the prediction skew?", "skew_index:imbalanced+cw-imbalanced", -1,
              "weighted − imbalanced skew index", "weighting increases the skew"),
        judge("Do per-language weights make languages less identifiable (test set)?",
              "probe_test:imbalanced+cw-imbalanced", -1, "weighted − imbalanced probe accuracy",
              "weighting makes languages more separable"),
    ]
    gap = comp.get("accuracy:balanced-imbalanced")
    recovered = comp.get("accuracy:imbalanced+cw-imbalanced")
    if gap and recovered and gap["clear"] and gap["mean"] > 0:
        lines.append(f"Weights recover {100 * recovered['mean'] / gap['mean']:.0f} % of the accuracy gap "
                     "(point estimate).")
    for name, shift in sorted(summary.get("shap_neutral_shift", {}).items()):
        line = _shap_verdict(name, shift)
        if line:
            lines.append(line)
    return [line for line in lines if line]


def _shap_verdict(name: str, shift: dict[str, tuple[float, float, int]]) -> str | None:
    """Per group, the mean neutral-token shift; with several seeds 'yes' only beyond 2 SE of the seed mean."""
    values = {g: v for g, v in shift.items() if not math.isnan(v[0])}
    if not values:
        return None
    question = (f"**Do neutral tokens of over-represented languages gain SHAP for their favoured labels "
                f"({name})?**")
    if all(n >= 2 and not math.isnan(std) for _, std, n in values.values()):
        se = {g: std / math.sqrt(n) for g, (_, std, n) in values.items()}
        detail = ", ".join(f"{g}: {mean:+.4f} ± {se[g]:.4f} SE" for g, (mean, _, _) in values.items())
        clear = [g for g, (mean, _, _) in values.items() if mean > 2 * se[g]]
        n_seeds = min(n for _, _, n in values.values())
        if len(clear) == len(values):
            answer = "Yes, in every group"
        elif clear:
            answer = f"Only in group {', '.join(clear)}; elsewhere within the noise"
        else:
            answer = "Not shown: within the noise in every group"
        return f"{question} {answer} (mean cumulative difference over {n_seeds} seeds; {detail})."
    detail = ", ".join(f"{g}: {mean:+.4f}" for g, (mean, _, _) in values.items())
    direction = "positive" if all(v[0] > 0 for v in values.values()) else "not positive in every group"
    return (f"{question} Mean cumulative difference {detail}: {direction} "
            "(one seed, so no uncertainty attached; see the figure).")


def _c_sweep_rows(collected: Collected) -> list[tuple[float, dict[str, str]]]:
    """Per C: 'test | external' probe accuracy (mean over seeds) for each role."""
    values: dict[float, dict[str, dict[str, list[float]]]] = {}

    def add(role: str, data: str, probe: dict[str, Any]) -> None:
        for point in probe.get("c_sweep") or []:
            values.setdefault(float(point["C"]), {}).setdefault(role, {}).setdefault(data, []).append(
                float(point["accuracy_mean"]))

    for run in collected.runs:
        for data, probe in run.probes.items():
            add(run.role, data, probe)
    for probes in collected.pretrained_probes.values():
        for data, probe in probes.items():
            add("pretrained", data, probe)
    rows = []
    for c in sorted(values):
        cells = {}
        for role, by_data in values[c].items():
            parts = [f"{np.mean(by_data[d]):.3f}" if d in by_data else "–" for d in ("test", "external")]
            cells[role] = " \\| ".join(parts)
        rows.append((c, cells))
    return rows


def render_markdown(collected: Collected, summary: dict[str, Any], figures: dict[str, Path], out: Path) -> str:
    roles = by_role(collected.runs)
    seeds = summary["seeds"]
    md = [
        "# langtrainer report",
        "",
        f"Seeds: {', '.join(map(str, seeds))}. Numbers are mean ± std over seeds where there are several. "
        "The paper's numbers (mBERT, Amazon reviews: the closest analogue) are shown for orientation only: "
        "different data, model and size.",
        "",
        "## Verdicts",
        "",
    ]
    md += [f"- {line}" for line in _verdicts(summary)]
    md += ["", "## Task accuracy (Table 3)", ""]
    rows = []
    for role in ROLE_ORDER:
        if role not in summary["roles"] or role == "pretrained":
            continue
        r = summary["roles"][role]
        rows.append([ROLE_TITLES[role], fmt(*r["accuracy"][:2]), fmt(*r["macro_f1"][:2]), fmt(*r["skew_index"][:2]),
                     f"{PAPER_ACCURACY.get(role, float('nan')):.3f}"])
    md.append(_table(["training setup", "accuracy", "macro-F1", "skew index", "paper (mBERT, Amazon)"], rows))
    md += ["", "Skew index: favoured-label share of group A + that of group B − 1 (0: predictions do not depend on "
           "the language group; > 0: they follow the training skew).", ""]
    if "accuracy_probe" in figures:
        md += [f"![accuracy and probe]({figures['accuracy_probe'].relative_to(out)})", ""]
    if collected.groups and collected.label_names:
        md += ["## Test-set predictions per language group (Table 2)", ""]
        header = ["model", "group"] + [f"{name} %" for name in collected.label_names]
        rows = []
        for role in ("balanced", "imbalanced", "imbalanced+cw"):
            for group, langs in collected.groups.items():
                dists = np.array([group_distribution(r, group, collected.label_names) for r in roles.get(role, [])])
                if not len(dists):
                    continue
                fav = set((collected.favoured or {}).get(group, []))
                cells = [
                    (f"**{v:.1f}**" if c in fav else f"{v:.1f}") for c, v in enumerate(dists.mean(axis=0))
                ]
                rows.append([ROLE_TITLES[role], f"{group} ({','.join(langs)})"] + cells)
        md.append(_table(header, rows))
        md += ["", "Bold: the labels the group's imbalanced training data over-represents. The test set is balanced "
               "(25 % each), so a model that ignores language predicts the same distribution in both groups.",
               "Paper, Table 2a (imbalanced mBERT, stars 1–5): FR,ES,JA "
               + " / ".join(f"{v}" for v in PAPER_TABLE2["FR,ES,JA"]) + "; DE,EN,ZH "
               + " / ".join(f"{v}" for v in PAPER_TABLE2["DE,EN,ZH"]) + ".", ""]
    md += ["## Language identification probe (Table 4)", ""]
    rows = []
    for role in ROLE_ORDER:
        r = summary["roles"].get(role)
        if not r:
            continue
        paper = PAPER_PROBE.get(role)
        rows.append([ROLE_TITLES[role], fmt(*r["probe_test"][:2]), fmt(*r["probe_external"][:2]),
                     f"{paper[0]:.3f} / {paper[1]:.3f}" if paper else "–"])
    md.append(_table(["model", "test set", "external corpus", "paper (original / Wikipedia)"], rows))
    any_probe = next((p for r in collected.runs for p in r.probes.values()), None)
    if any_probe:
        s = any_probe.get("settings", {})
        md += ["", f"Logistic regression on {any_probe.get('feature', 'first-token')} embeddings of the last layer, "
               f"C = {s.get('C')}, {s.get('folds')}-fold CV. C = 1e-4 is the paper code's setting; so strong "
               "a penalty needs many texts (with a few hundred, even the pretrained model can score near "
               "chance), and a large C saturates near 1.0 and hides the difference: the sweep below shows both."]
    sweep_rows = _c_sweep_rows(collected)
    if sweep_rows:
        roles_present = [r for r in ROLE_ORDER if r in sweep_rows[0][1]]
        md += ["", "Probe accuracy over the regularisation strength C (test set | external corpus): where the "
               "models separate, if anywhere.", ""]
        md.append(_table(["C"] + [ROLE_TITLES[r] for r in roles_present],
                         [[f"{c:g}"] + [cells.get(r, "–") for r in roles_present] for c, cells in sweep_rows]))
    md += [""]
    if collected.shap_diffs:
        md += ["## Cumulative SHAP difference (Figure 1)", ""]
        shift = summary.get("shap_neutral_shift", {})
        if shift:
            rows = [[name] + [fmt(*v[g][:2], digits=4) for g in collected.groups] for name, v in sorted(shift.items())]
            md.append(_table(["comparison"] + [f"group {g}: neutral tokens, favoured labels" for g in collected.groups], rows))
            md += ["", "Mean cumulative SHAP difference of neutral tokens (|S_bal| ≤ threshold) on the labels each "
                   "group's imbalanced data over-represents. The paper finds this positive: uninformative tokens of "
                   "an over-represented language come to push towards that label.", ""]
        for key, path in sorted(figures.items()):
            if key.startswith("shap_diff"):
                md += [f"![{key}]({path.relative_to(out)})", ""]
    md += ["## Runs", ""]
    md.append(_table(["run", "seed", "test accuracy", "steps", "train s"],
                     [[str(r.path), str(r.seed), f"{r.metrics['test']['accuracy']:.3f}",
                       str(r.metrics['train']['steps']), f"{r.metrics['train']['seconds']:.0f}"]
                      for r in sorted(collected.runs, key=lambda r: (r.seed, ROLE_ORDER.index(r.role)))]))
    return "\n".join(md) + "\n"


def write_report(dirs: Iterable[str | Path], out: str | Path) -> Path:
    """Collect, summarise, plot, and write out/report.md (+ report.json, PNGs)."""
    import shutil

    from langtrainer.preflight import UNLOCKED_TEMP_AGE_S, check_output_folder, remove_stale_temporaries

    out = check_output_folder(out, "--out")
    collected = collect(list(dirs))  # before anything is made: a report on nothing leaves no folder
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, UNLOCKED_TEMP_AGE_S)  # half-written files of a killed report
    summary = summarise(collected)
    figures = {"accuracy_probe": plot_accuracy_and_probe(by_role(collected.runs), collected.pretrained_probes, out)}
    for (seed, name), png in sorted(collected.shap_figures.items()):
        target = out / f"shap_diff_{name}_seed{seed}.png"
        if png.resolve() != target.resolve():
            with atomic.atomic_path(target) as tmp:
                shutil.copyfile(png, tmp)
        figures[f"shap_diff_{name}_seed{seed}"] = target
    atomic.write_json(out / "report.json", summary)
    return atomic.write_text(out / "report.md", render_markdown(collected, summary, figures, out))
