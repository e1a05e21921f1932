"""The settings of one `langtrainer shap` run, where each came from, and their checks.

A value is taken from, in order: the caller (`"cli"`: a command-line flag or
a library argument), the run's recipe.yaml (`"recipe"`: `analysis.shap.*`,
the recipe's `seed`, `model.max_length`), else langtrainer's default
(`"default"`, from langtrainer.defaults). The manifest records the source of
every value. Every value is checked before anything is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from langtrainer import defaults
from langtrainer.analysis.settings import config_defaults, recipe_keys, resolve_settings
from langtrainer.errors import UserError, setting_error
from langtrainer.recipe import ShapConfig, check_number
from langtrainer.recipe.schema import NUMBER_RULES
from langtrainer.rundir import RunDir




@dataclass(frozen=True)
class ShapOptions:
    """What to explain and how; None = not given (filled by `resolve`).

    split: the split of the run's data to explain. subsample: explain N
    examples, stratified by language and label (None after resolving: every
    row). max_evals: model evaluations per example (shap's max_evals).
    batch_size: masked rows per forward pass (speed only). seed: the
    subsample's seed. shard_size: examples per shard (the unit of
    resumption). max_length: tokens the model sees (the run's training
    `model.max_length`; None after resolving: the model's own limit).
    overwrite: discard results in the output folder made with other
    arguments.
    """

    split: str | None = None
    subsample: int | None = None
    max_evals: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    shard_size: int | None = None
    max_length: int | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name, keys in RECIPE_KEYS.items():  # numbers by their recipe key's one rule
            if ".".join(keys) in NUMBER_RULES:
                check_number(".".join(keys), getattr(self, name), name)
        _check_int("shard_size", self.shard_size, 1)  # not a recipe setting: its rule is here
        if self.split is not None and (not isinstance(self.split, str) or not self.split.strip()):
            raise UserError(f"split must be a split name such as 'test' (got {self.split!r})")

    def given(self) -> dict[str, Any]:
        """The values the caller set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "overwrite" and getattr(self, f.name) is not None}

    def resolve(self, run: RunDir) -> tuple["ShapOptions", dict[str, str]]:
        """Every unset value from the run's recipe, else the default; and each value's source.

        Recipe values are checked like given ones: a recipe with
        `analysis.shap.max_evals: 0` is refused with the field's name.
        """
        given = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "overwrite"}
        values, sources = resolve_settings(given, run, RECIPE_KEYS, DEFAULTS)
        try:
            resolved = replace(self, **values)
        except UserError as exc:
            recipe_fields = [n for n, s in sources.items() if s == "recipe" and n in str(exc)]
            if recipe_fields:
                key = ".".join(RECIPE_KEYS[recipe_fields[0]])
                raise UserError(f"{run.recipe_path}: {key}: {exc}") from None
            raise
        return resolved, sources


# field -> where the run's recipe.yaml keeps it: ShapConfig's fields, the recipe's seed and the
# model's input length.
RECIPE_KEYS: dict[str, tuple[str, ...]] = recipe_keys(ShapOptions, ShapConfig, ("analysis", "shap"),
                                                      seed=("seed",), max_length=("model", "max_length"))

# The defaults when neither the caller nor the recipe sets a value: ShapConfig's, except that
# subsample and max_length have none without a recipe (every row, and the model's own input limit).
DEFAULTS: dict[str, Any] = {
    "split": "test",
    **config_defaults(ShapConfig, RECIPE_KEYS),
    "subsample": None,
    "seed": 0,
    "shard_size": defaults.SHAP_SHARD_SIZE,
    "max_length": None,
}


def _check_int(name: str, value: Any, low: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise setting_error(f"{{{name}}} must be a whole number, got {value!r}", name)
    if value < low:
        raise setting_error(f"{{{name}}} must be at least {low}, got {value}", name)
