"""The mitigations `compare` knows: each one a recipe overlay, in one table.

A mitigation is a set of `--set`-style overrides applied on top of the
user's recipe. Every mitigation switches the other mitigations off (its
overlay names every mitigation key it needs, `none` switches all of them
off), so the runs of a compare differ only in what their names say. The
keys a mitigation sets are the keys it *owns*: a `--set` on one of them
would silently change what the mitigation means, so `compare` refuses it.

`MITIGATIONS` is the table the README and docs/compare.md show
(`mitigation_table()` renders it).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Sequence

from langtrainer.errors import UserError, setting_error

# Everything "off": the state of the recipe keys that `none` pins.
_OFF = {
    "loss.class_weights": "none",
    "data.sampler": None,
    "loss.mask_entropy": 0.0,
}
# The paper's Annex A.3 term as its released code computes it (mean over classes, the batch's last row
# fully masked), at the _mie recipes' weight.
_ENTROPY = {"loss.mask_entropy": 1.0, "loss.mask_entropy_normalisation": "mean",
            "loss.mask_entropy_input": "last_row"}


@dataclass(frozen=True)
class Mitigation:
    """One row of the table.

    overrides: recipe keys -> values on top of the user's recipe (with `_OFF` for the rest).
    needs_languages: the least number of languages the data must have.
    needs_design: the recipe must have the paper's skew design (imbalance.distribution).
    needs_key: a recipe key that must exist in this version (the adversary's block).
    rank: simplicity, for the recommendation's last tie-break (lower is simpler).
    """

    name: str
    what: str
    overrides: dict[str, Any]
    rank: int
    needs_languages: int = 1
    needs_design: bool = False
    needs_key: str | None = None
    user_defined: bool = False

    def owned_keys(self) -> list[str]:
        return sorted(self.overrides)


def _with_off(**overrides: Any) -> dict[str, Any]:
    return {**_OFF, **overrides}


def _adversary(method: str) -> dict[str, Any]:
    # The ramp (2/(1+exp(-10p)) - 1 of training progress p) is what lets the encoder learn the task first:
    # at a constant weight the paper's authors saw the adversary keep the model from learning.
    return _with_off(**{"loss.language_adversary.method": method, "loss.language_adversary.schedule": "dann"})


MITIGATIONS: dict[str, Mitigation] = {m.name: m for m in [
    Mitigation("none", "plain cross-entropy: no weights, no sampler, no entropy term, no adversary",
               _with_off(), rank=0),
    Mitigation("class_weights", "per-language class weights, eq. 2: w_{c,l} = n_l / (C n_{c,l})",
               _with_off(**{"loss.class_weights": "per_language", "loss.weight_scheme": "inverse"}), rank=1),
    Mitigation("class_weights:sqrt_inverse", "per-language weights ∝ 1/sqrt(n_{c,l}), scaled like eq. 2",
               _with_off(**{"loss.class_weights": "per_language", "loss.weight_scheme": "sqrt_inverse"}), rank=1),
    Mitigation("class_weights:effective_number",
               "per-language weights ∝ (1−β)/(1−β^n_{c,l}) (Cui et al. 2019), scaled like eq. 2",
               _with_off(**{"loss.class_weights": "per_language", "loss.weight_scheme": "effective_number"}),
               rank=1),
    # The sampler draws the training order itself, so it replaces the recipe's sampling strategy (group_by_length).
    Mitigation("sampler", "per-language balanced sampler: every (language, label) cell drawn equally often",
               _with_off(**{"data.sampler": "per_language_balanced", "training.train_sampling_strategy": "random"}),
               rank=2),
    Mitigation("entropy", "masked-input entropy term, Annex A.3 (weight 1, mean over classes, last row masked)",
               _with_off(**_ENTROPY), rank=3),
    Mitigation("adversarial", "language-ID head with gradient reversal, weight ramped (dann)",
               _adversary("gradient_reversal"), rank=4, needs_languages=2, needs_key="loss.language_adversary"),
    Mitigation("lid_entropy", "language-ID head; the encoder maximises its entropy, weight ramped (dann)",
               _adversary("entropy"), rank=4, needs_languages=2, needs_key="loss.language_adversary"),
    Mitigation("balanced", "the paper's reference: train on the balanced subset (no skew), plain loss",
               _with_off(**{"imbalance.subset": "balanced"}), rank=5, needs_design=True),
]}

DEFAULT_MITIGATIONS = ("none", "class_weights", "sampler", "entropy")
_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
_MITIGATION_KEYS = {key for m in MITIGATIONS.values() for key in m.overrides}


def mitigation_table() -> list[tuple[str, str, str]]:
    """(name, what it does, its recipe overlay) per built-in mitigation, for the docs and `compare --help`."""
    return [(m.name, m.what, ", ".join(f"{k}={_show(v)}" for k, v in m.overrides.items() if _OFF.get(k, ...) != v)
             or "(everything off)") for m in MITIGATIONS.values()]


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def parse_variant(spec: str) -> Mitigation:
    """`name:key=value,key=value`: a user's own mitigation (any recipe keys), on top of everything off."""
    from langtrainer.recipe import parse_override

    name, sep, body = spec.partition(":")
    if not sep or not body.strip():
        raise setting_error(f"{{variants}} {spec!r} must be NAME:key=value[,key=value...]", "variants")
    if not _NAME.fullmatch(name) or ":" in name:
        raise setting_error(f"{{variants}} name {name!r} must be letters, digits, '.', '_', '+', '-' (at most 64)",
                            "variants")
    if name in MITIGATIONS:
        raise setting_error(f"{{variants}} name {name!r} is a built-in mitigation: choose another name", "variants")
    overrides: dict[str, Any] = {}
    for item in body.split(","):
        keys, value = parse_override(item.strip())
        overrides[".".join(keys)] = value
    return Mitigation(name, "user variant: " + body, _with_off(**overrides), rank=10, user_defined=True)


def resolve_mitigations(names: Sequence[str], variants: Sequence[str] = ()) -> list[Mitigation]:
    """The named mitigations (built-in names and --variant names), in order, each once."""
    own = {v.name: v for v in (parse_variant(spec) for spec in variants)}
    chosen: list[Mitigation] = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if name in own:
            chosen.append(own[name])
        elif name in MITIGATIONS:
            chosen.append(MITIGATIONS[name])
        else:
            valid = ", ".join([*MITIGATIONS, *own])
            raise setting_error(f"unknown mitigation {name!r}: choose from {valid} (or define one with {{variants}})",
                                "variants")
    for name in own:  # a variant given but not listed still runs
        if name not in [m.name for m in chosen]:
            chosen.append(own[name])
    seen = [m.name for m in chosen]
    duplicated = sorted({n for n in seen if seen.count(n) > 1})
    if duplicated:
        raise UserError(f"mitigation {duplicated[0]!r} is listed twice")
    if len(chosen) < 2:
        raise UserError("compare needs at least two mitigations (a baseline and one to compare)")
    return chosen


def check_sets(sets: Sequence[str], mitigations: Sequence[Mitigation]) -> None:
    """Refuse a --set on a key that a chosen mitigation owns (it would change what the mitigation means)."""
    from langtrainer.recipe import parse_override

    for item in sets:
        keys, _ = parse_override(item)
        key = ".".join(keys)
        for m in mitigations:
            for owned in m.owned_keys():
                if owned == key or owned.startswith(key + ".") or key.startswith(owned + "."):
                    raise setting_error(f"{{sets}} {key} touches {owned}, which mitigation {m.name!r} sets: "
                                        "drop that override, or define your own mitigation ({variants}) with it", "sets", "variants")


def check_applicable(mitigation: Mitigation, recipe: Any, languages: Sequence[str], design: bool = True) -> None:
    """UserError when the mitigation cannot run on this recipe and its data (design: check the skew design too)."""
    if len(languages) < mitigation.needs_languages:
        raise UserError(f"mitigation {mitigation.name!r} needs at least {mitigation.needs_languages} languages; "
                        f"the data has {len(languages)} ({', '.join(languages) or 'none'})")
    if mitigation.needs_key is not None and not _has_key(recipe, mitigation.needs_key):
        raise UserError(f"mitigation {mitigation.name!r} needs recipe key {mitigation.needs_key}, "
                        "which this langtrainer version does not have")
    if design and mitigation.needs_design and not recipe.imbalance.distribution:
        raise UserError(f"mitigation {mitigation.name!r} needs the paper's skew design (imbalance.distribution "
                        "and groups); the recipe trains on its data as it is")


def _has_key(obj: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(obj) or part not in {f.name for f in dataclasses.fields(obj)}:
            return False
        obj = getattr(obj, part)
    return True


def apply_overlay(raw: dict[str, Any], mitigation: Mitigation) -> dict[str, Any]:
    """The user's raw recipe with the mitigation's keys set (a copy).

    Where this version has the adversary's block, every mitigation without one switches it off.
    """
    import copy

    from langtrainer.recipe import Recipe

    out = copy.deepcopy(raw)
    overrides = dict(mitigation.overrides)
    if _has_key(Recipe(), "loss.language_adversary") and not any(
            k.startswith("loss.language_adversary") for k in overrides):
        overrides["loss.language_adversary"] = None
    for key, value in overrides.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


__all__ = ["MITIGATIONS", "DEFAULT_MITIGATIONS", "Mitigation", "apply_overlay", "check_applicable", "check_sets",
           "mitigation_table", "parse_variant", "resolve_mitigations"]
