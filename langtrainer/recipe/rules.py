"""The checks of a recipe's values that types alone cannot express, and the one rule table of its numbers.

A numeric setting's rule sits beside its dataclass field (`schema.NUMBER_RULES`,
by recipe key) and is applied by `schema.check_number`, here and by every
other module that takes the setting; `training:`'s numbers (TrainingArguments
fields) have their rules here (`_TRAINING_RULES`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from langtrainer.errors import UserError
from langtrainer.names import check_label_names, check_language_codes
from langtrainer.recipe.parsing import closest
from langtrainer.recipe.schema import (
    LANGUAGE_ADVERSARY_METHODS,
    LANGUAGE_ADVERSARY_SCHEDULES,
    NUMBER_RULES,
    Recipe,
    is_at_least_one,
    is_non_negative,
    is_positive,
    is_seed,
    is_unit,
    check_number,
)

def check_language_adversary(method: Any, weight: Any, schedule: Any, hidden: Any,
                             key: Callable[[str], str] = lambda name: f"loss.language_adversary.{name}") -> None:
    """The one validation of the adversary's settings (recipes and LangTrainingArguments); `key` names a field."""
    if method not in LANGUAGE_ADVERSARY_METHODS:
        raise UserError(f"{key('method')} must be one of {', '.join(LANGUAGE_ADVERSARY_METHODS)}; got {method!r}")
    if schedule not in LANGUAGE_ADVERSARY_SCHEDULES:
        raise UserError(f"{key('schedule')} must be one of {', '.join(LANGUAGE_ADVERSARY_SCHEDULES)}; got {schedule!r}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not is_non_negative(float(weight)):
        raise UserError(f"{key('weight')} must be a finite number >= 0, got {weight!r}")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
        raise UserError(f"{key('hidden')} must be an integer >= 0 (0 = a linear head), got {hidden!r}")



# A recipe name becomes a folder name (runs/<name>-<subset>-<mitigations>-seed<seed>): no separators, no '..', no hidden files.
_NAME = re.compile(r"\w[\w.+-]{0,127}")


def check_recipe(recipe: Recipe) -> None:
    """Cross-field checks that types alone cannot express."""
    data, imb = recipe.data, recipe.imbalance
    if not _NAME.fullmatch(recipe.name) or ".." in recipe.name:
        raise UserError(
            f"name {recipe.name!r} must be a plain folder name: letters, digits, '.', '_', '+', '-' "
            "(no '/', no '..', not starting with '.'), at most 128 characters"
        )
    if len(set(data.languages)) != len(data.languages):
        raise UserError("data.languages lists a language twice")
    for lang in data.languages:
        if not lang.strip() or lang != lang.strip():
            raise UserError(f"data.languages: {lang!r} is not a language code (blank or surrounded by spaces)")
    check_language_codes(data.languages, "data.languages")
    if data.labels:  # an empty list means every label in the data
        check_label_names(data.labels, "data.labels")
        if len(data.labels) < 2:
            raise UserError(f"data.labels lists {len(data.labels)} label(s): a classifier needs at least 2 "
                            "(with one, every prediction is right and nothing is learned)")
    if imb.subset != "none":
        for name in ("train_per_language", "test_per_cell"):
            if getattr(data, name) < 1:
                raise UserError(f"data.{name} must be >= 1 (got {getattr(data, name)}): nothing to train or test on")
    for name in ("validation_fraction", "test_fraction"):
        value = getattr(data, name)
        if not 0.0 < value < 1.0:  # also refuses nan
            raise UserError(f"data.{name} must be in (0, 1), got {value}: a split the source lacks is carved with "
                            "it, and 0 would leave that split empty")
    if data.validation_fraction + data.test_fraction >= 1.0:
        raise UserError("data.validation_fraction + data.test_fraction must be below 1 (train keeps the rest)")
    if imb.groups:
        check_label_names([str(g) for g in imb.groups], "imbalance.groups")
        seen: dict[str, str] = {}
        for group, langs in imb.groups.items():
            check_language_codes(langs, f"imbalance.groups.{group}")
            for lang in langs:
                if lang in seen:
                    raise UserError(f"imbalance.groups: language '{lang}' is in both '{seen[lang]}' and '{group}'")
                seen[lang] = group
                if data.languages and lang not in data.languages:
                    raise UserError(f"imbalance.groups.{group}: language '{lang}' is not in data.languages")
    if imb.distribution:
        for key, row in imb.distribution.items():
            if not all(math.isfinite(v) and v >= 0 for v in row):
                raise UserError(f"imbalance.distribution.{key}: percentages must be finite and >= 0, got {row}")
        valid = set(data.languages) | set(imb.groups or {})
        for key in imb.distribution:
            if valid and key not in valid:
                raise UserError(
                    f"imbalance.distribution: '{key}' is neither a language in data.languages nor a group"
                    f"{closest(key, valid)}"
                )
    adversary = recipe.loss.language_adversary
    if adversary is not None:
        check_language_adversary(adversary.method, adversary.weight, adversary.schedule, adversary.hidden)
    _check_values(recipe)
    strategy = recipe.training.get("train_sampling_strategy", "random")
    if data.sampler == "per_language_balanced" and strategy not in ("random", None):
        raise UserError(
            f"data.sampler: per_language_balanced draws the training order itself; "
            f"it cannot be combined with training.train_sampling_strategy={strategy}"
        )


_TRAINING_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "learning_rate": (is_positive, "a finite number > 0"),
    "head_learning_rate": (is_positive, "a finite number > 0 (or null: the learning_rate)"),
    "num_train_epochs": (is_positive, "a finite number > 0"),
    "max_steps": (lambda v: v == -1 or v > 0, "> 0 (or -1: num_train_epochs decides)"),
    "per_device_train_batch_size": (is_at_least_one, ">= 1"),
    "per_device_eval_batch_size": (is_at_least_one, ">= 1"),
    "gradient_accumulation_steps": (is_at_least_one, ">= 1"),
    "eval_accumulation_steps": (is_at_least_one, ">= 1 (or null)"),
    "logging_steps": (is_positive, "> 0"),
    "save_steps": (is_positive, "> 0"),
    "eval_steps": (is_positive, "> 0 (or null)"),
    "warmup_steps": (is_non_negative, ">= 0"),
    "warmup_ratio": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "weight_decay": (is_non_negative, "a finite number >= 0"),
    "max_grad_norm": (is_non_negative, "a finite number >= 0"),
    "adam_beta1": (is_unit, "in [0, 1)"),
    "adam_beta2": (is_unit, "in [0, 1)"),
    "adam_epsilon": (is_non_negative, "a finite number >= 0"),
    "label_smoothing_factor": (is_unit, "in [0, 1)"),
    "dataloader_num_workers": (is_non_negative, ">= 0"),
    "save_total_limit": (is_at_least_one, ">= 1 (or null: keep all)"),
    "torch_empty_cache_steps": (is_at_least_one, ">= 1 (or null)"),
    "data_seed": (is_seed, "in [0, 2**32) (or null: the recipe's seed)"),
    "ddp_timeout": (is_positive, "> 0"),
    "eval_delay": (is_non_negative, ">= 0"),
    "neftune_noise_alpha": (is_non_negative, "a finite number >= 0 (or null)"),
}


# What evaluation logs (training.metrics, the probe and SHAP callbacks), without the eval_ prefix.
_EVAL_METRIC_PREFIXES = ("loss", "accuracy", "macro_f1", "pred_", "skew_index", "lid_", "shap_", "ce",
                         "difference", "by_language", "by_group", "prediction_shares")


def _check_values(recipe: Recipe) -> None:
    """Numbers that type-check but cannot work (a NaN learning rate, a batch of 0, ...)."""
    for key in NUMBER_RULES:
        node: Any = recipe
        for part in key.split("."):
            node = getattr(node, part)
        try:
            check_number(key, node)
        except UserError as exc:  # a recipe names the key only: no flag stands for it
            raise UserError(str(exc)) from None
    for key, value in recipe.training.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"training.{key} must be a finite number, got {value}")
        rule = _TRAINING_RULES.get(key)
        if rule is not None and not rule[0](value):
            raise UserError(f"training.{key} must be {rule[1]}, got {value}")
    metric = recipe.training.get("metric_for_best_model")
    if isinstance(metric, str) and not metric.removeprefix("eval_").startswith(_EVAL_METRIC_PREFIXES):
        # The Trainer would find out only at the first evaluation, after an epoch of training.
        raise UserError(
            f"training.metric_for_best_model {metric!r} is not a metric langtrainer logs "
            "(loss, accuracy, macro_f1, accuracy_<language>, pred_<language>_<label>, skew_index, lid_accuracy, shap_...)"
        )
