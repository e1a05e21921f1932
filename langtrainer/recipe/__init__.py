"""Recipes: one YAML file per experiment, parsed into typed dataclasses.

A recipe says which model, which data and which label skew, how the loss is
weighted, how training runs (`training:` passes through to
`TrainingArguments`, except the fields langtrainer owns or that reach outside
the run) and how the analysis is done. Unknown keys, wrong types and numbers
that cannot work (a NaN learning rate, a batch of 0) are `UserError`s that
name the key, so a typo fails in a second instead of after an hour of
training.

One module per concern:

  schema.py   the dataclasses (the only declaration of a setting), defaults from `defaults.py`, and
              beside them the one rule of each numeric setting (`NUMBER_RULES`, `check_number`)
  parsing.py  YAML values against the annotations; `training:` against TrainingArguments
  loading.py  YAML files, `extends:`, overrides (`a.b=c`), relative paths, writing the resolved recipe
  rules.py    the checks of a whole recipe (cross-field, names, `training:`'s numbers)

The names below are the recipe's public API.
"""

from langtrainer.recipe.loading import (
    apply_overrides,
    builtin_recipe_path,
    dump_recipe,
    load_raw,
    load_recipe,
    parse_override,
    recipe_from_dict,
    resolve_recipe_path,
    save_recipe,
)
from langtrainer.recipe.rules import check_language_adversary, check_recipe
from langtrainer.recipe.schema import (
    AnalysisConfig,
    ColumnsConfig,
    DataConfig,
    ImbalanceConfig,
    LanguageAdversaryConfig,
    LossConfig,
    ModelConfig,
    ProbeConfig,
    Recipe,
    ShapConfig,
    check_number,
    describe_language_adversary,
    ratio_to_percentages,
    split_seed,
)

__all__ = [
    "AnalysisConfig", "ColumnsConfig", "DataConfig", "ImbalanceConfig", "LanguageAdversaryConfig", "LossConfig",
    "ModelConfig", "ProbeConfig", "Recipe", "ShapConfig", "apply_overrides", "builtin_recipe_path",
    "check_language_adversary", "check_number", "check_recipe", "describe_language_adversary", "dump_recipe",
    "load_raw", "load_recipe", "parse_override", "ratio_to_percentages", "recipe_from_dict", "resolve_recipe_path",
    "save_recipe", "split_seed",
]
