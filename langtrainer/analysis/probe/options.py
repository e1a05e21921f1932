"""The settings of one `langtrainer probe` run, where each came from, and their checks.

A value is taken from the caller (`"cli"`), else the run's recipe.yaml
(`"recipe"`: `analysis.probe.*`, `model.max_length`, `data.languages`), else
langtrainer's default (`"default"`); see `langtrainer.analysis.settings`.
The probe JSON records every value's source under `sources`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from langtrainer.analysis.embeddings import FEATURES
from langtrainer.analysis.settings import (
    config_defaults,
    recipe_key_of,
    recipe_keys,
    resolve_settings,
)
from langtrainer.errors import UserError, setting_error
from langtrainer.recipe import ProbeConfig, check_number
from langtrainer.recipe.schema import NUMBER_RULES
from langtrainer.rundir import RunDir


@dataclass(frozen=True)
class ProbeOptions:
    """What to probe and how; None = not given (filled by `resolve`).

    data: "test", "external" or a path to a table of texts. external (+
    external_configs: language -> config, or a '{lang}' template): the corpus
    behind data="external". layer: a hidden-state index or "all". A field
    named like one of `recipe.ProbeConfig`'s is read from the run's
    `analysis.probe` (see RECIPE_KEYS).
    """

    data: str | None = None
    C: float | None = None
    folds: int | None = None
    per_language: int | None = None
    external: str | None = None
    external_configs: Mapping[str, str] | str | None = None
    feature: str | None = None
    layer: int | str | None = None
    seed: int | None = None
    languages: list[str] | None = None
    max_length: int | None = None

    def check(self) -> None:
        """Every set value is valid (UserError naming the field otherwise); numbers by `recipe.check_number`."""
        for name, keys in RECIPE_KEYS.items():
            if ".".join(keys) in NUMBER_RULES:
                check_number(".".join(keys), getattr(self, name), name)
        check_number("seed", self.seed, "seed")
        if self.feature is not None and self.feature not in FEATURES:
            raise UserError(f"feature must be one of {', '.join(FEATURES)} (got {self.feature!r})")
        if self.layer is not None and self.layer != "all":
            if isinstance(self.layer, bool) or not isinstance(self.layer, int):
                raise UserError(f"layer must be an integer or 'all' (got {self.layer!r})")
        if self.external is not None and (not isinstance(self.external, str) or not self.external.strip()):
            raise UserError(f"external must name a corpus (got {self.external!r})")
        configs = self.external_configs
        if configs is not None and not (isinstance(configs, str) or isinstance(configs, Mapping)):
            raise UserError(f"external_configs must map languages to configs or be a '{{lang}}' template (got {configs!r})")
        if isinstance(configs, str) and "{lang}" not in configs:
            raise UserError(f"external_configs {configs!r}: a template must contain '{{lang}}'")

    def resolve(self, run: RunDir | None) -> tuple["ProbeOptions", dict[str, str]]:
        """Every unset value from the run's recipe, else the default; and each value's source."""
        self.check()
        values, sources = resolve_settings(asdict(self), run, RECIPE_KEYS, DEFAULTS)
        if sources["languages"] == "recipe" and not values["languages"]:
            values["languages"], sources["languages"] = None, "default"  # data.languages: [] = every language
        if sources["external"] != sources["external_configs"] and sources["external"] == "cli":
            # A corpus named on the command line is not read with the recipe's Wikipedia configs.
            values["external_configs"], sources["external_configs"] = self.external_configs, "cli"
        resolved = replace(self, **values)
        try:
            resolved.check()
        except UserError as exc:
            bad = [name for name, source in sources.items() if source == "recipe" and name in str(exc)]
            if bad and run is not None:
                raise UserError(f"{run.recipe_path}: {recipe_key_of(bad[0], RECIPE_KEYS)}: {exc}") from None
            raise
        return resolved, sources



# field -> where the run's recipe.yaml keeps it: ProbeConfig's fields, the model's input length and
# the fine-tuning languages.
RECIPE_KEYS: dict[str, tuple[str, ...]] = recipe_keys(ProbeOptions, ProbeConfig, ("analysis", "probe"),
                                                      max_length=("model", "max_length"),
                                                      languages=("data", "languages"))

# Neither the caller nor the recipe: ProbeConfig's defaults, and these. max_length None = the
# model's 512; languages None = the run's fine-tuning languages as the data shows them (metrics,
# test split).
DEFAULTS: dict[str, Any] = {"data": "test", **config_defaults(ProbeConfig, RECIPE_KEYS),
                            "seed": 0, "languages": None, "max_length": None}



def _check_inputs(batch_size: int, ckpt: str | None = None) -> None:
    """What `ProbeOptions` does not hold, checked before any model is loaded: the batch size and a local
    checkpoint's existence."""
    from langtrainer.models import looks_like_local_path

    if ckpt is not None and not ckpt.startswith("builtin:") and not Path(ckpt).expanduser().exists() \
            and looks_like_local_path(ckpt):
        raise setting_error(f"{{ckpt}} '{ckpt}' does not exist: give a run folder, an HF model folder or "
                            "builtin:NAME", "ckpt")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise setting_error(f"{{batch_size}} must be an integer >= 1, got {batch_size!r}", "batch_size")


def resolve_probe_options(ckpt: str | os.PathLike, options: ProbeOptions,
                          batch_size: int = 64) -> tuple[ProbeOptions, dict[str, str], RunDir | None]:
    """`options` checked, then resolved against `ckpt`'s recipe when it is a run folder: (resolved
    options, each value's source, the run folder or None). Nothing is loaded."""
    options.check()
    _check_inputs(batch_size, ckpt=str(ckpt))
    local = Path(ckpt).expanduser()
    run = RunDir(local) if local.is_dir() else None
    resolved, sources = options.resolve(run)  # checks the resolved values too
    return resolved, sources, run
