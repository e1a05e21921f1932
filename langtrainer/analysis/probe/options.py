"""The settings of one `langtrainer probe` run, where each came from, and their checks.

A value is taken from the caller (`"cli"`), else the run's recipe.yaml
(`"recipe"`: `analysis.probe.*`, `model.max_length`, `data.languages`), else
langtrainer's default (`"default"`); see `langtrainer.analysis.settings`.
The probe JSON records every value's source under `sources`.
"""

from __future__ import annotations

import math
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
from langtrainer.errors import UserError
from langtrainer.recipe import ProbeConfig
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
        """Every set value is valid (UserError naming the field otherwise)."""
        if self.C is not None:
            if isinstance(self.C, bool) or not isinstance(self.C, (int, float)) or not math.isfinite(self.C) or self.C <= 0:
                raise UserError(f"C must be a positive number (got {self.C!r})")
        _check_int("folds", self.folds, 2)
        _check_int("per_language", self.per_language, 1)
        _check_int("seed", self.seed, 0)
        _check_int("max_length", self.max_length, 8)
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



def check_probe_options(C: float | None, folds: int | None, per_language: int | None, batch_size: int,
                        seed: int | None,
                        ckpt: str | None = None) -> None:
    """The probe's numbers (and a local --ckpt's existence), checked before any model is loaded."""
    from langtrainer.models import looks_like_local_path
    from langtrainer.preflight import check_positive, check_seed

    if ckpt is not None and not ckpt.startswith("builtin:") and not Path(ckpt).expanduser().exists() \
            and looks_like_local_path(ckpt):
        raise UserError(f"--ckpt '{ckpt}' does not exist: give a run folder, an HF model folder or builtin:NAME")

    # None: not given here (the run's recipe or a default decides, and is checked then).
    if C is not None:
        check_positive(C, "--C")
    if folds is not None and folds < 2:
        raise UserError(f"--folds must be at least 2, got {folds}")
    if per_language is not None:
        check_positive(per_language, "--per-language", integer=True)
    check_positive(batch_size, "--batch-size", integer=True)
    if seed is not None:
        check_seed(seed)

def _check_int(name: str, value: Any, low: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be a whole number (got {value!r})")
    if value < low:
        raise UserError(f"{name} must be at least {low} (got {value})")


def resolve_probe_options(ckpt: str | os.PathLike, options: ProbeOptions,
                          batch_size: int = 64) -> tuple[ProbeOptions, dict[str, str], RunDir | None]:
    """`options` checked, then resolved against `ckpt`'s recipe when it is a run folder: (resolved
    options, each value's source, the run folder or None). Nothing is loaded."""
    check_probe_options(C=options.C, folds=options.folds, per_language=options.per_language,
                        batch_size=batch_size, seed=options.seed, ckpt=str(ckpt))
    local = Path(ckpt).expanduser()
    run = RunDir(local) if local.is_dir() else None
    resolved, sources = options.resolve(run)
    check_probe_options(C=resolved.C, folds=resolved.folds, per_language=resolved.per_language,
                        batch_size=batch_size, seed=resolved.seed)
    return resolved, sources, run
