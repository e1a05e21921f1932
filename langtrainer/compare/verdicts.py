"""The one recommendation of a compare, and the rule that makes it (written next to it in compare.md).

RULE: among the mitigations whose accuracy is not worse than the baseline
beyond the noise (a paired t test at 95 %, `statistics`), those whose
worst-language macro-F1 is better than the baseline's beyond the noise; of
these, the largest mean gain in worst-language macro-F1, where a mitigation
whose gain is within the noise of the leader's (paired over seeds) counts as
tied with it; ties go to the lower language dependence
(language_prediction_cmi, else the test-split probe, when that difference is
measured), then to the simpler mitigation (the table's order). Nothing
qualifies: keep the baseline, and say which difference is undecided and how
many seeds the observed spread would need to decide it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from langtrainer.compare import statistics as st

if TYPE_CHECKING:
    from langtrainer.compare.plan import ComparePlan
    from langtrainer.compare.results import Comparison

RULE = ("among mitigations whose accuracy is not worse than the baseline beyond the noise (a paired t test over "
        "seeds at 95 %), the one whose worst-language macro-F1 is better than the baseline's beyond the noise, with "
        "the largest mean gain; a gain within the noise of the leader's (paired over seeds) is a tie, broken by lower "
        "language dependence (I(language; prediction | label), else the test-split probe), then by simplicity; none "
        "qualifies: keep the baseline")
PRIMARY, GUARD = "worst_language_macro_f1", "accuracy"
DEPENDENCE = ("language_prediction_cmi", "probe_test")


@dataclass
class Recommendation:
    choice: str
    decided: bool
    rule: str
    reason: str
    tied: list[str] = field(default_factory=list)
    undecided: dict[str, int | None] = field(default_factory=dict)  # mitigation -> seeds needed (None: unknown)


def recommend(plan: "ComparePlan", comparisons: dict[str, dict[str, "Comparison"]]) -> Recommendation:
    """The recommendation by RULE (module docstring)."""
    primary, guard = comparisons.get(PRIMARY, {}), comparisons.get(GUARD, {})
    others = [m for m in plan.names if m != plan.baseline]
    eligible = [m for m in others if m in primary and primary[m].verdict == st.BETTER
                and guard.get(m) is not None and guard[m].verdict != st.WORSE]
    undecided = {m: primary[m].seeds_needed for m in others if m in primary and primary[m].verdict in (st.NOISE, st.NO_INTERVAL)}
    if not eligible:
        if undecided:
            reason = ("no mitigation's worst-language macro-F1 differs from the baseline's beyond the noise "
                      "for " + ", ".join(undecided) + ": not decided")
        else:
            reason = "no mitigation improves worst-language macro-F1 without costing accuracy beyond the noise"
        return Recommendation(plan.baseline, not undecided, RULE, reason, [], undecided)
    leader = max(eligible, key=lambda m: primary[m].difference_mean)
    tied = [m for m in eligible if m == leader or _within_noise(primary[m], primary[leader])]
    rank = {m.name: i for i, m in enumerate(plan.mitigations)}
    simplicity = {m.name: m.rank for m in plan.mitigations}

    def dependence(m: str) -> float:
        for key in DEPENDENCE:
            c = comparisons.get(key, {}).get(m)
            if c is not None and math.isfinite(c.mean) and c.verdict != st.AT_CHANCE:
                return c.mean
        return math.inf

    choice = min(tied, key=lambda m: (dependence(m), simplicity[m], rank[m]))
    gain = primary[choice]
    reason = (f"worst-language macro-F1 {gain.difference_mean:+.3f} against {plan.baseline}, accuracy "
              f"{guard[choice].verdict}")
    if len(tied) > 1:
        reason += f"; tied with {', '.join(m for m in tied if m != choice)} on that gain, chosen by the tie-breaks"
    return Recommendation(choice, True, RULE, reason, tied, {})


def seeds_to_decide(undecided: dict[str, int | None]) -> int | None:
    """The fewest seeds at which one undecided mitigation's observed worst-language gain would be called
    (`Recommendation.undecided`); None when no spread was measured (one seed)."""
    found = [n for n in undecided.values() if n is not None]
    return min(found) if found else None


def _within_noise(a: "Comparison", b: "Comparison") -> bool:
    """Paired over seeds: is a's difference within the verdict threshold (t·SE) of b's? One seed: never tied
    (no spread to judge)."""
    seeds = sorted(set(a.differences) & set(b.differences))
    if len(seeds) < 2:
        return False
    summary = st.mean_se([a.differences[s] - b.differences[s] for s in seeds])
    return summary.se is not None and abs(summary.mean) <= st.seed_threshold(summary.n) * summary.se
