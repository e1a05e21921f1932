"""Training setups ("roles"): what a run's recipe did (subset, class weights, sampler, entropy term),
their names in tables and questions, and their order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langtrainer.artifacts import RunMetrics


ROLE_ORDER = ["pretrained", "balanced", "imbalanced", "imbalanced+cw"]


ROLE_TITLES = {
    "pretrained": "pretrained (no fine-tuning)",
    "balanced": "balanced",
    "imbalanced": "imbalanced",
    "imbalanced+cw": "imbalanced + per-language weights",
    "as-is": "as-is",
}


PART_TITLES = {"cw": "per-language weights", "global-cw": "global weights", "sampler": "balanced sampler",
               "mie": "entropy term"}


BASE_ORDER = {"pretrained": 0, "balanced": 1, "imbalanced": 2, "as-is": 3}


def role_title(role: str) -> str:
    """A role's name for tables and questions, e.g. 'imbalanced + per-language weights + entropy term'."""
    if role in ROLE_TITLES:
        return ROLE_TITLES[role]
    base, *parts = role.split("+")
    return " + ".join([ROLE_TITLES.get(base, base)] + [PART_TITLES.get(p, p) for p in parts])


def role_sort_key(role: str) -> tuple:
    base, *parts = role.split("+")
    known = ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)
    return (BASE_ORDER.get(base, 9), known, len(parts), role)


@dataclass(frozen=True)
class Setup:
    """What a run's training did, read from its recipe (metrics.json for runs without a readable one)."""

    subset: str  # "balanced", "imbalanced" or "none" (the data as it is)
    class_weights: str  # "none", "per_language" or "global"
    sampler: str | None
    entropy_term: float  # the masked-input entropy coefficient (eq. 3); 0 without the term

    @classmethod
    def of(cls, metrics: RunMetrics | None, recipe: dict[str, Any] | None) -> "Setup":
        recipe = recipe or {}
        imbalance, loss, data = (recipe.get(k) or {} for k in ("imbalance", "loss", "data"))
        subset = imbalance.get("subset") or (metrics.subset if metrics else None) or "none"
        mode = loss.get("class_weights") or (metrics.class_weights_mode if metrics else None) or "none"
        sampler = data.get("sampler") or (metrics.sampler if metrics else None)
        return cls(str(subset), str(mode), sampler, float(loss.get("mask_entropy") or 0.0))

    @property
    def role(self) -> str:
        """The setup as a role: subset, then +cw / +global-cw / +sampler / +mie.

        'balanced', 'imbalanced', 'imbalanced+cw' are the paper's three; a
        balanced run keeps its name whatever its weights (eq. 2 weights are 1
        on a balanced subset).
        """
        base = {"balanced": "balanced", "imbalanced": "imbalanced"}.get(self.subset, "as-is")
        parts = [base]
        if base != "balanced" and self.class_weights != "none":
            parts.append("cw" if self.class_weights == "per_language" else "global-cw")
        if self.sampler:
            parts.append("sampler")
        if self.entropy_term > 0:
            parts.append("mie")
        return "+".join(parts)


def role_of(metrics: RunMetrics | None, recipe: dict[str, Any] | None = None) -> str:
    """The run's training setup as a role name (see `Setup.role`)."""
    return Setup.of(metrics, recipe).role
