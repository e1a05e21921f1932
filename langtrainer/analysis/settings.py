"""Where an analysis command's settings come from: the caller, the run's recipe, or langtrainer's default.

`probe` and `shap` take every setting from, in order: the caller (`"cli"`: a
command-line flag or a library argument), the run's saved recipe.yaml
(`"recipe"`), else langtrainer's default (`"default"`). Their outputs record
each value's source, so a reader can tell a recipe's C = 1e-4 from a flag's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from langtrainer.rundir import RunDir

CLI, RECIPE, DEFAULT = "cli", "recipe", "default"


def resolve_settings(
    given: Mapping[str, Any],
    run: RunDir | None,
    recipe_keys: Mapping[str, tuple[str, ...]],
    defaults: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, sources) for every name in `defaults`.

    A name's value is `given[name]` when that is not None, else the run's
    recipe value at `recipe_keys[name]` when present and not None, else
    `defaults[name]`. `run` None (a plain model folder) reads no recipe.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, default in defaults.items():
        value, source = given.get(name), CLI
        if value is None and run is not None and name in recipe_keys:
            value, source = run.recipe_value(*recipe_keys[name]), RECIPE
        if value is None:
            value, source = default, DEFAULT
        values[name], sources[name] = value, source
    return values, sources


def recipe_keys(options: type, config: type, section: tuple[str, ...],
                **others: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Where the recipe keeps each of `options`' fields: the fields `config` (the recipe's dataclass
    at `section`) declares under the same name, plus `others` kept elsewhere in the recipe.

    The recipe dataclass is the schema: a setting added there under an option's name is read
    from the recipe without touching this mapping.
    """
    names = {f.name for f in dataclasses.fields(options)}
    keys = {f.name: (*section, f.name) for f in dataclasses.fields(config) if f.name in names}
    return {**keys, **others}


def config_defaults(config: type, names: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """The recipe dataclass's defaults of the fields `names` maps into it."""
    out = {}
    for f in dataclasses.fields(config):
        if f.name in names:
            out[f.name] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return out


def recipe_key_of(field: str, recipe_keys: Mapping[str, tuple[str, ...]]) -> str:
    """'C' -> 'analysis.probe.C': how a recipe spells a setting (for error messages)."""
    return ".".join(recipe_keys.get(field, (field,)))
