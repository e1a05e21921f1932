"""Verdict lines: a rule on measured numbers, "not shown" unless it holds.

'Yes' only when a paired difference over K seeds exceeds t·SE, t being
Student's 95 % two-sided quantile with K − 1 degrees of freedom (4.30 at 3
seeds); with one seed, when it exceeds 2 SE of that run's measurement error
(`statistics.difference_verdict`). `RULE` says so in the report.
"""

from __future__ import annotations

import math

from langtrainer.reporting.report.setups import role_sort_key, role_title
from langtrainer.reporting.report.statistics import Comparison, Summary
from langtrainer.reporting.markdown import md_list, md_text
from langtrainer.training.intervals import seed_threshold

RULE = ("A verdict says yes only when the paired difference over seeds exceeds t·SE, t being Student's 95 % "
        "two-sided quantile with seeds − 1 degrees of freedom (a paired t test: {threshold}); with one seed, when "
        "it exceeds 2 SE of that run's measurement error (binomial for accuracy, fold spread for a probe), which "
        "leaves out the training's own noise. Otherwise: not shown.")


def rule_text(n_seeds: int) -> str:
    """RULE with the threshold at `n_seeds` seeds."""
    if n_seeds >= 2:
        return RULE.format(threshold=f"{seed_threshold(n_seeds):.2f} SE at these {n_seeds} seeds")
    return RULE.format(threshold=f"{seed_threshold(3):.2f} SE at 3 seeds, {seed_threshold(5):.2f} at 5")


def _mitigation_phrases(role: str) -> tuple[str, str]:
    """(question subject with its verb, short name) for a mitigated role, e.g. ('Do per-language weights', 'weights')."""
    if role == "imbalanced+cw":
        return "Do per-language weights", "Weights"
    phrase = role_title(role).removeprefix("imbalanced + ")
    return f"Does training with {phrase}", f"Training with {phrase}"


def _judge(comp: dict[str, Comparison], question: str, key: str, expected_sign: int, yes: str, opposite: str) -> str | None:
    """A verdict line on comparison `key`: 'yes' only when the difference passes the rule (module docstring)."""
    c = comp.get(key)
    if c is None:
        return None
    diff = expected_sign * c.mean
    detail = f"({c.mean:+.3f} ± {c.se:.3f} SE, {c.n_seeds} seed{'s' if c.n_seeds > 1 else ''})"
    if c.clear and diff > 0:
        return f"**{question}** Yes: {yes} {detail}."
    if c.clear and diff < 0:
        return f"**{question}** No, the opposite: {opposite} {detail}."
    return f"**{question}** Not shown: the difference is within the noise {detail}."


def _shared_bias_note(summary: Summary, role: str) -> str:
    """The skew index cannot see one label taking much of every group: say so beside it."""
    n_labels = max(len(summary.label_names or []), 1)
    shared = summary.roles[role].shared_bias if role in summary.roles else None
    if not shared or shared[1] < 1.5 / n_labels:
        return ""
    label, share = shared
    amount = "all" if share >= 0.995 else f"at least {100 * share:.0f} %"
    return (f" The skew index does not see a bias that every group shares: '{md_text(label)}' takes {amount} "
            f"of every group's predictions in the {role_title(role)} model (see the prediction table).")


def _mitigation_verdicts(summary: Summary, role: str) -> list[str | None]:
    """Does a mitigation (an imbalanced+... setup) undo what the imbalance did?"""
    comp = summary.comparisons
    subject, short = _mitigation_phrases(role)
    name = role_title(role)
    skew = _judge(comp, f"{subject} remove the prediction skew?", f"skew_index:{role}-imbalanced", -1,
                  f"{name} − imbalanced skew index", "it increases the skew")
    lines = [
        _judge(comp, f"{subject} recover accuracy?", f"accuracy:{role}-imbalanced", +1,
               f"{name} − imbalanced accuracy", "it lowers accuracy"),
        skew + _shared_bias_note(summary, role) if skew else None,
        _judge(comp, f"{subject} make languages less identifiable (test set)?", f"probe_test:{role}-imbalanced", -1,
               f"{name} − imbalanced probe accuracy", "languages become more separable"),
        _judge(comp, f"{subject} make languages less identifiable (external corpus)?",
               f"probe_external:{role}-imbalanced", -1, f"{name} − imbalanced probe accuracy",
               "languages become more separable"),
    ]
    gap, recovered = comp.get("accuracy:balanced-imbalanced"), comp.get(f"accuracy:{role}-imbalanced")
    if gap and recovered and gap.clear and gap.mean > 0:
        lines.append(f"{short} recover{'' if short == 'Weights' else 's'} "
                     f"{100 * recovered.mean / gap.mean:.0f} % of the accuracy gap (point estimate).")
    return lines


def _as_is_verdicts(summary: Summary, role: str) -> list[str | None]:
    """On data as it is: does a mitigation change accuracy or language identifiability against training
    without one? (Its language dependence is in the CMI column, with a p-value per run.)"""
    comp = summary.comparisons
    phrase = role_title(role).removeprefix("as-is + ")
    subject = "Do per-language weights" if phrase == "per-language weights" else f"Does training with {phrase}"
    name = role_title(role)
    return [
        _judge(comp, f"{subject} change accuracy on this data?", f"accuracy:{role}-as-is", +1,
               f"higher accuracy ({name} − as-is)", "it lowers accuracy"),
        _judge(comp, f"{subject} make languages less identifiable (test set)?", f"probe_test:{role}-as-is", -1,
               f"{name} − as-is probe accuracy", "languages become more separable"),
        _judge(comp, f"{subject} make languages less identifiable (external corpus)?",
               f"probe_external:{role}-as-is", -1, f"{name} − as-is probe accuracy",
               "languages become more separable"),
    ]


def _verdicts(summary: Summary) -> list[str]:
    """One line per finding, then per mitigation, then per SHAP comparison."""
    comp = summary.comparisons
    skew = _judge(comp, "Do the imbalanced model's predictions follow each language's training skew?",
                  "skew_index:balanced-imbalanced", -1, "balanced − imbalanced skew index",
                  "the balanced model is more skewed")
    lines = [
        _judge(comp, "Does the imbalance hurt accuracy?", "accuracy:balanced-imbalanced", +1,
               "balanced − imbalanced accuracy", "the imbalanced model is more accurate"),
        skew + _shared_bias_note(summary, "imbalanced") if skew else None,
        _judge(comp, "Are languages more identifiable in the imbalanced model (test set)?",
               "probe_test:balanced-imbalanced", -1, "balanced − imbalanced probe accuracy",
               "the balanced model is more language-separable"),
        _judge(comp, "Are languages more identifiable in the imbalanced model (external corpus)?",
               "probe_external:balanced-imbalanced", -1,
               "balanced − imbalanced probe accuracy", "the balanced model is more language-separable"),
    ]
    for role in sorted(summary.roles, key=role_sort_key):
        if role.startswith("imbalanced+"):
            lines += _mitigation_verdicts(summary, role)
        if role.startswith("as-is+"):
            lines += _as_is_verdicts(summary, role)
    for name, shift in sorted((summary.shap_neutral_shift or {}).items()):
        lines.append(_shap_verdict(name, shift))
    return [line for line in lines if line]


def _shap_verdict(name: str, shift: dict[str, tuple[float, float, int]]) -> str | None:
    """Per group, the mean neutral-token shift; with several seeds 'yes' only beyond t·SE of the seed mean."""
    values = {g: v for g, v in shift.items() if not math.isnan(v[0])}
    if not values:
        return None
    question = (f"**Do neutral tokens of over-represented languages gain SHAP for their favoured labels "
                f"({name})?**")
    if all(n >= 2 and not math.isnan(std) for _, std, n in values.values()):
        se = {g: std / math.sqrt(n) for g, (_, std, n) in values.items()}
        detail = ", ".join(f"{md_text(g)}: {mean:+.4f} ± {se[g]:.4f} SE" for g, (mean, _, _) in values.items())
        clear = [g for g, (mean, _, n) in values.items() if mean > seed_threshold(n) * se[g]]
        n_seeds = min(n for _, _, n in values.values())
        if len(clear) == len(values):
            answer = "Yes, in every group"
        elif clear:
            answer = f"Only in group {md_list(clear)}; elsewhere within the noise"
        else:
            answer = "Not shown: within the noise in every group"
        return f"{question} {answer} (mean cumulative difference over {n_seeds} seeds; {detail})."
    detail = ", ".join(f"{md_text(g)}: {mean:+.4f}" for g, (mean, _, _) in values.items())
    direction = "positive" if all(v[0] > 0 for v in values.values()) else "not positive in every group"
    return (f"{question} Mean cumulative difference {detail}: {direction} "
            "(one seed, so no uncertainty attached; see the figure).")
