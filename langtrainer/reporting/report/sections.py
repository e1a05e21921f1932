"""report.md, section by section: each reads the collected runs and the summary, and is left out when
the runs hold nothing for it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from langtrainer.analysis.probe.core import block_at_chance
from langtrainer.artifacts import ProbeModelBlock
from langtrainer.reporting.report.collect import Collected, Run
from langtrainer.reporting.report.paper import PAPER
from langtrainer.reporting.report.setups import role_sort_key, role_title
from langtrainer.reporting.report.statistics import (Summary, by_role, group_distribution, language_table,
                                                    mean_table, reference_at_chance)
from langtrainer.reporting.report.verdicts import _verdicts, rule_text
from langtrainer.defaults import FAVOURED_LABEL_RATIO
from langtrainer.reporting.markdown import md_list, md_text
from langtrainer.reporting.tables import share_note, to_markdown


def fmt(mean: float, std: float = float("nan"), digits: int = 3) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _chance_notes(collected: Collected) -> list[str]:
    """Each probe at chance (`analysis.probe.at_chance`), by setup and data, and what that leaves decided
    (`analysis.probe.difference_measured`)."""
    notes = []
    for data in sorted({d for run in collected.runs for d in run.probes}):
        if reference_at_chance(collected, data):
            notes.append(f"- The pretrained model's probe on {data} is at chance (always the commonest language): at "
                         "this C and this many texts the probe cannot see language even where it is known to be, so "
                         "no verdict rests on it.")
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    seeds: dict[str, int] = {}
    for run in sorted(collected.runs, key=lambda r: (role_sort_key(r.role), r.seed)):
        seeds[run.role] = seeds.get(run.role, 0) + 1
        for data, probe in sorted(run.probes.items()):
            if block_at_chance(probe):
                chance = (probe.block.result or {}).get("chance_accuracy")
                found.setdefault((run.role, data), []).append((float(probe.accuracy_mean), float(chance)))
    for (role, data), values in found.items():
        levels = sorted({round(c, 3) for _, c in values})
        notes.append(f"- The {role_title(role)} probe on {data} is at chance in {len(values)} of {seeds[role]} "
                     f"run(s) ({', '.join(f'{m:.3f}' for m, _ in values)}; always guessing the commonest language "
                     f"scores {', '.join(f'{c:.3f}' for c in levels)}).")
    if found:
        notes.append("- At this C such a model's first token shows no language the probe can use: a difference to a "
                     "model above chance is measured, one between two models at chance in the same seed is not.")
    return ["", *notes] if notes else []


def _c_sweep_rows(collected: Collected) -> list[tuple[float, dict[str, str]]]:
    """Per C: 'test | external' probe accuracy (mean over seeds) for each role."""
    values: dict[float, dict[str, dict[str, list[float]]]] = {}

    def add(role: str, data: str, block: ProbeModelBlock) -> None:
        for point in block.c_sweep or []:
            values.setdefault(float(point["C"]), {}).setdefault(role, {}).setdefault(data, []).append(
                float(point["accuracy_mean"]))

    for run in collected.runs:
        for data, probe in run.probes.items():
            add(run.role, data, probe.block)
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


def _test_mix_sentence(collected: Collected) -> str:
    """What a model that ignores language would predict, from the test set's own label mix."""
    n = len(collected.label_names)
    shares = collected.test_label_shares
    if not shares:
        return ("If the test set has the same label mix in every language, a model that ignores language predicts "
                "the same distribution in every group.")
    rows = [np.asarray(v) for v in shares.values()]
    same = all(np.allclose(r, rows[0], atol=0.005) for r in rows)
    if same and np.allclose(rows[0], 1.0 / n, atol=0.005):
        return (f"The test set is balanced ({100 / n:.0f} % of each of the {n} labels in every language), so a model "
                "that ignores language predicts the same distribution in every group.")
    if same:
        mix = " / ".join(f"{100 * v:.1f}" for v in rows[0])
        return (f"The test set has the same label mix in every language ({mix} %), so a model that ignores "
                "language predicts the same distribution in every group.")
    return ("The test set's label mix differs between languages, so the groups' predictions differ even for a "
            "model that ignores language: compare them with each group's own label mix.")


def _skew_sentence(collected: Collected) -> str:
    groups = list(collected.groups or {})
    if len(groups) == 2:
        how = (f"the share of group {md_text(groups[0])}'s predictions in the labels its training data "
               f"over-represents + the same share of group {md_text(groups[1])} − 1")
    else:
        how = (f"for each of the {len(groups)} language groups, the share of its predictions in the labels its "
               "training data over-represents minus the other groups' share in those labels, averaged over groups")
    return (f"Skew index: {how} (0: predictions do not depend on the language group; > 0: they follow the "
            "training skew). A bias that every group shares (one label predicted for much of every group) "
            "leaves it at 0: read it with the prediction table.")


def _diff_titles(collected: Collected) -> dict[str, str]:
    """Diff folder name -> 'compared − balanced' as shap_diff.json names the two runs."""
    titles = {}
    for (_, name), diff in sorted(collected.shap_diffs.items()):
        titles.setdefault(name, str(diff.comparison or name))
    return titles


@dataclass
class _Page:
    """What every section of report.md reads."""

    collected: Collected
    summary: Summary
    figures: dict[str, Path]
    out: Path
    links: dict[str, Path]
    roles: dict[str, list[Run]]
    order: list[str]
    numbers: Any
    names: list[str]

    def table_ref(self, ref: str) -> str:
        """' (Table N)' beside a heading, only where the runs are the paper's analogue."""
        return f" ({ref})" if self.numbers else ""


def _intro_section(page: "_Page") -> list[str]:
    """Title, seeds, the data's labels, languages and groups, and the verdicts."""
    collected, summary, numbers = page.collected, page.summary, page.numbers
    seeds = summary.seeds
    intro = f"Seeds: {', '.join(map(str, seeds))}. Numbers are mean ± std over seeds where there are several."
    if numbers:
        intro += (f" The paper's numbers (mBERT, {numbers.dataset}: the closest analogue) are shown for "
                  "orientation only: different data, model and size.")
    md = ["# langtrainer report", "", intro, ""]
    names = page.names
    facts = [f"{len(names)} labels ({md_list(names)})"]
    if collected.languages:
        facts.append(f"{len(collected.languages)} languages ({md_list(collected.languages)})")
    if collected.groups and collected.favoured_by != "language":
        facts.append("language groups " + "; ".join(f"{md_text(g)}: {md_list(langs, ',')}"
                                                    for g, langs in collected.groups.items()))
    md += ["Data: " + ", ".join(facts) + ".", "", "## Verdicts", "", rule_text(len(seeds)), ""]
    verdicts = _verdicts(summary)
    md += [f"- {line}" for line in verdicts] or [
        "- No verdicts: they compare a balanced run with an imbalanced one (and mitigations with the imbalanced "
        "one), or on data as it is a mitigation with a run without one, of the same data, and these runs hold no "
        "such pair."]
    return md


def _accuracy_section(page: "_Page") -> list[str]:
    """Table 3: accuracy, macro-F1 and skew index per training setup."""
    collected, summary, figures = page.collected, page.summary, page.figures
    out, order, numbers = page.out, page.order, page.numbers
    md: list[str] = ["", f"## Task accuracy{page.table_ref('Table 3')}", ""]
    rows = []
    for role in order:
        r = summary.roles[role]
        row = [role_title(role), fmt(*r.accuracy[:2]), fmt(*r.macro_f1[:2]), fmt(*r.skew_index[:2]),
               fmt(*r.language_prediction_cmi[:2], digits=4) + _p_values(r.language_prediction_cmi_p_value)]
        if numbers:
            paper = numbers.accuracy.get(role)
            row.append("–" if paper is None else f"{paper:.3f}")
        rows.append(row)
    header = ["training setup", "accuracy", "macro-F1", "skew index", "language–prediction CMI (nats)"]
    md.append(_table(header + ([f"paper (mBERT, {numbers.dataset})"] if numbers else []), rows))
    if collected.groups and any(not math.isnan(summary.roles[r].skew_index[0]) for r in order):
        md += ["", _skew_sentence(collected)]
    else:
        md += ["", "Skew index –: it measures how far predictions follow each language group's training skew, "
               "so it needs a recipe with a skew design (imbalance.groups and imbalance.distribution). On any "
               "data the language–prediction CMI measures the language-driven lean instead."]
    md += ["", CMI_SENTENCE]
    md += [""]
    if "accuracy_probe" in figures:
        md += [f"![accuracy and probe]({figures['accuracy_probe'].relative_to(out)})", ""]
    return md


CMI_SENTENCE = (
    "Language–prediction CMI: I(language; prediction | true label) in nats over the test split (plug-in "
    "estimate), with its permutation p-value in brackets (languages shuffled within each true label, "
    "seeded; one p per seed). It is 0 when, within each true label, every language gets the same "
    "prediction mix, so it needs no skew design and is not fooled by languages whose test rows have "
    "different label mixes; on few rows the plug-in estimate is above 0 by chance, which the p-value "
    "accounts for.")


def _p_values(values: list[Any] | None) -> str:
    """' (p 0.003, 0.04)': the CMI's permutation p-value of each seed, where recorded."""
    found = [f"{v:.2g}" for v in values or [] if isinstance(v, (int, float))]
    return f" (p {', '.join(found)})" if found else ""


def _predictions_section(page: "_Page") -> list[str]:
    """Table 2: test-set prediction shares per language group."""
    collected, roles, order, numbers, names = page.collected, page.roles, page.order, page.numbers, page.names
    md: list[str] = []
    if collected.groups and names:
        md += [f"## Test-set predictions per language group{page.table_ref('Table 2')}", ""]
        runs = [r for role in order for r in roles[role]]
        with_true = all(not np.isnan(group_distribution(r, g, names, true=True)).any()
                        for r in runs for g in collected.groups)
        header = ["model", "group"] + [f"{md_text(name)} % true / predicted" if with_true else f"{md_text(name)} %"
                                       for name in names]
        rows = []
        for role in order:
            for group, langs in collected.groups.items():
                dists = np.array([group_distribution(r, group, names) for r in roles[role]])
                if not len(dists) or np.isnan(dists).all():
                    continue
                true = np.array([group_distribution(r, group, names, true=True) for r in roles[role]]).mean(axis=0)
                fav = set((collected.favoured or {}).get(group, []))
                cells = [("–" if math.isnan(v) else (f"**{v:.1f}**" if c in fav else f"{v:.1f}"))
                         for c, v in enumerate(dists.mean(axis=0))]
                if with_true:
                    cells = [f"{t:.1f} / {cell}" for t, cell in zip(true, cells)]
                rows.append([role_title(role), f"{md_text(group)} ({md_list(langs, ',')})"] + cells)
        md.append(_table(header, rows))
        md += ["", _favoured_sentence(collected) + " " + _test_mix_sentence(collected)]
        if numbers:
            paper_rows = "; ".join(f"{g} " + " / ".join(f"{v}" for v in vals) for g, vals in numbers.table2.items())
            md += [f"Paper, Table 2 (imbalanced mBERT, {numbers.dataset}, {numbers.table2_labels}): {paper_rows}."]
        md += [""]
    return md


def _favoured_sentence(collected: Collected) -> str:
    if collected.favoured_by == "language":
        return (f"As-is data: each language is its own group. Bold: the labels the language's training rows "
                f"over-represent (a share at least {FAVOURED_LABEL_RATIO:g} times the label's share of all "
                "training rows).")
    return "Bold: the labels the group's imbalanced training data over-represents."


def _languages_section(page: "_Page") -> list[str]:
    """Per-language tables (MetricFrame.by_group shape) per training setup."""
    collected, roles, order = page.collected, page.roles, page.order
    md: list[str] = []
    language_tables = {role: mean_table([language_table(r, collected) for r in roles[role]]) for role in order}
    if any(t is not None for t in language_tables.values()):
        first = next(t for t in language_tables.values() if t is not None)
        md += ["## Per-language results", "",
               "One row per language (fairlearn's MetricFrame.by_group shape): n, accuracy and macro-F1 (with one "
               "run's 95 % intervals: Wilson for accuracy, a bootstrap over the language's test rows for macro-F1), "
               "and per label the shares. " + share_note(first) + " Mean over seeds where there are several (the "
               "intervals are then left out: the spread over seeds is in the tables above).", ""]
        favoured = collected.favoured if collected.favoured_by == "language" else None
        for role, table in language_tables.items():
            if table is not None:
                md += [f"### {role_title(role)}", "", to_markdown(table, favoured=favoured), ""]
        if collected.small_samples:
            md += ["### Small samples", "",
                   "Each line limits the per-language numbers it names (thresholds in langtrainer/defaults.py):", ""]
            md += [f"- {md_text(line)}" for line in collected.small_samples] + [""]
    return md


def _probe_section(page: "_Page") -> list[str]:
    """Table 4: the language-identification probe and its C sweep."""
    collected, summary, order, numbers = page.collected, page.summary, page.order, page.numbers
    md: list[str] = []
    probe_roles = (["pretrained"] if "pretrained" in summary.roles else []) + order
    has_probe = any(not math.isnan(summary.roles[r].probe_test[0])
                    or not math.isnan(summary.roles[r].probe_external[0]) for r in probe_roles)
    if has_probe:
        md += [f"## Language identification probe{page.table_ref('Table 4')}", ""]
        rows = []
        for role in probe_roles:
            r = summary.roles[role]
            row = [role_title(role), fmt(*r.probe_test[:2]), fmt(*r.probe_external[:2])]
            if numbers:
                paper = numbers.probe.get(role)
                row.append(f"{paper[0]:.3f} / {paper[1]:.3f}" if paper else "–")
            rows.append(row)
        md.append(_table(["model", "test set", "external corpus"]
                         + (["paper (original / Wikipedia)"] if numbers else []), rows))
        any_probe = next((p for r in collected.runs for p in r.probes.values()), None)
        if any_probe:
            s = any_probe.settings
            md += ["", f"Logistic regression on {any_probe.feature or 'first-token'} embeddings of the last "
                   f"layer, C = {s.get('C')}, {s.get('folds')}-fold CV. C = 1e-4 is the paper code's setting; so "
                   "strong a penalty needs many texts (with a few hundred, even the pretrained model can score near "
                   "chance), and a large C saturates near 1.0 and hides the difference"
                   + (": the sweep below shows both." if _c_sweep_rows(collected) else
                      "; `langtrainer probe --c-sweep` shows accuracy over C.")]
            md += _chance_notes(collected)
        sweep_rows = _c_sweep_rows(collected)
        if sweep_rows:
            present = {role for _, cells in sweep_rows for role in cells}
            roles_present = [r for r in probe_roles if r in present]
            md += ["", "Probe accuracy over the regularisation strength C (test set | external corpus): where the "
                   "models separate, if anywhere.", ""]
            md.append(_table(["C"] + [role_title(r) for r in roles_present],
                             [[f"{c:g}"] + [cells.get(r, "–") for r in roles_present] for c, cells in sweep_rows]))
        md += [""]
    return md


def _shap_section(page: "_Page") -> list[str]:
    """Figure 1: the cumulative SHAP difference, its neutral-token summary and figures."""
    collected, summary, figures, out = page.collected, page.summary, page.figures, page.out
    md: list[str] = []
    if collected.shap_diffs:
        titles = _diff_titles(collected)
        md += [f"## Cumulative SHAP difference{page.table_ref('Figure 1')}", ""]
        shift = summary.shap_neutral_shift or {}
        if shift:
            rows = [[name if titles.get(name, name) == name else f"{titles[name]} ({name})"] + [fmt(*v[g][:2], digits=4) for g in collected.groups]
                    for name, v in sorted(shift.items())]
            md.append(_table(["comparison"] + [f"group {md_text(g)}: neutral tokens, favoured labels"
                                               for g in collected.groups], rows))
            md += ["", "Mean cumulative SHAP difference of neutral tokens (|S_bal| ≤ threshold) on the labels each "
                   + ("language's training rows over-represent (as-is data: each language is its own group)."
                      if collected.favoured_by == "language" else "group's imbalanced data over-represents.")
                   + " The paper finds this positive: uninformative tokens of an over-represented language come "
                   "to push towards that label.", ""]
        base = summary.shap_base_difference
        if base:
            entropy = collected.entropy_comparisons
            md.append(_table(["comparison", "mean |base-value difference|"],
                             [[name + (" (entropy term)" if name in entropy else ""), fmt(*v[:2], digits=4)]
                              for name, v in sorted(base.items())]))
            md += ["", "Comparisons marked \"entropy term\": both models trained with the masked-input entropy term "
                   "(Annex A.3, the paper's Figure 3; their recipes' loss.mask_entropy), which pulls their all-[MASK] "
                   "outputs, the SHAP base values, together. A token-level shift hidden by base-value differences "
                   "shows there.", ""]
        md += ["In the figures and in shap_diff.csv, negative / neutral / positive are SHAP token categories "
               "(tokens split by the balanced model's value at ± the threshold) and base is the base value: they "
               "are not labels. Each panel is one label.", ""]
        for key, path in sorted(figures.items()):
            if key.startswith("shap_diff"):
                name = key.removeprefix("shap_diff_").rpartition("_seed")[0]
                md += [f"![{key}]({path.relative_to(out)})", "",
                       f"{titles.get(name, name)}, seed {key.rpartition('_seed')[2]}.", ""]
    return md


def _token_views_section(page: "_Page") -> list[str]:
    """Links to the token-view pages."""
    out, links = page.out, page.links
    md: list[str] = []
    if links:
        compared = any(path.name.startswith("token_view_diff_") for path in links.values())
        layout = ("per comparison the balanced model beside the compared one, examples with the largest "
                  "neutral-token shift first; per run" if compared else "one page per run,")
        md += ["## Token views", "",
               "Each explained example's tokens coloured by SHAP value for the predicted and the true label: "
               f"{layout} every explained example (self-contained HTML, opens offline).", ""]
        md += [f"- [{name}]({path.relative_to(out)})" for name, path in sorted(links.items())] + [""]
    return md


def _runs_section(page: "_Page") -> list[str]:
    """Every run folder with its seed, accuracy and training size."""
    collected, = page.collected,
    md: list[str] = ["## Runs", ""]
    md.append(_table(["run", "setup", "seed", "test accuracy", "steps", "train s"],
                     [[str(r.path), role_title(r.role), str(r.seed), f"{r.metrics.test.accuracy:.3f}",
                       str(r.metrics.train['steps']), f"{r.metrics.train['seconds']:.0f}"]
                      for r in sorted(collected.runs, key=lambda r: (r.seed, role_sort_key(r.role)))]))
    return md


def render_markdown(collected: Collected, summary: Summary, figures: dict[str, Path], out: Path,
                    links: dict[str, Path] | None = None) -> str:
    """report.md: one section after another, each skipped when the runs hold nothing for it."""
    roles = by_role(collected.runs)
    page = _Page(collected, summary, figures, out, links or {}, roles, sorted(roles, key=role_sort_key),
                 PAPER.get(collected.paper) if collected.paper else None, collected.label_names)
    md: list[str] = []
    for section in (_intro_section, _accuracy_section, _predictions_section, _languages_section, _probe_section,
                    _shap_section, _token_views_section, _runs_section):
        md += section(page)
    return "\n".join(md) + "\n"
