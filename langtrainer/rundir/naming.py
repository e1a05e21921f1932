"""A run folder's default name: the recipe's name, subset, mitigations and seed, and the recipe's hash."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langtrainer.recipe import Recipe


def recipe_sha256(recipe: "Recipe") -> str:
    """sha256 of the resolved recipe as recipe.yaml stores it."""
    import hashlib

    from langtrainer.recipe import dump_recipe

    return hashlib.sha256(dump_recipe(recipe).encode("utf-8")).hexdigest()


WEIGHT_SCHEME_TAGS = {"inverse": "", "sqrt_inverse": "_sqrt", "effective_number": "_effnum"}


def mitigation_tag(recipe: "Recipe") -> str:
    """The recipe's mitigations as a folder-name part: `none`, or `+`-joined `cw` (per-language eq. 2
    weights; `gcw` global), a `_sqrt` / `_effnum` suffix for the other weight schemes, `sampler`,
    `mie` (masked-input entropy term) and `adversary` (language adversary)."""
    loss = recipe.loss
    parts = []
    if loss.class_weights in ("per_language", "global"):
        base = "cw" if loss.class_weights == "per_language" else "gcw"
        parts.append(base + WEIGHT_SCHEME_TAGS.get(loss.weight_scheme, "_" + str(loss.weight_scheme)))
    if recipe.data.sampler:
        parts.append("sampler")
    if float(loss.mask_entropy or 0.0) > 0:
        parts.append("mie")
    if getattr(loss, "language_adversary", None):
        parts.append("adversary")
    return "+".join(parts) or "none"


def default_run_name(recipe: "Recipe") -> str:
    """<name>-<subset>-<mitigations>-seed<seed>: runs of one recipe with and without weights, a sampler,
    the entropy term or the adversary, or on another subset or seed, get different folders."""
    return f"{recipe.name}-{recipe.imbalance.subset}-{mitigation_tag(recipe)}-seed{recipe.seed}"
