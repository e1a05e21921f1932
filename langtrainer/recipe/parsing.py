"""Typing a recipe: YAML values checked against the schema's annotations, `training:` against TrainingArguments.

An unknown key names the closest valid one; a wrong type names the key and
what it must be; `training:` keys are `LangTrainingArguments` fields (minus
the ones langtrainer owns), with their choices read from the field's own
definition.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from typing import Any, Literal

from langtrainer.errors import UserError
from langtrainer.recipe.schema import Recipe


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def closest(key: str, valid: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else f" (valid keys: {', '.join(sorted(valid))})"


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in typing.get_args(tp) else "")
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping to {_describe(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


_NUMBER = re.compile(r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting int->float only."""
    origin = typing.get_origin(tp)
    bad = UserError(f"{where}: expected {_describe(tp)}, got {value!r}")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return _coerce(value, arg, where)  # its own error names the key inside
            try:
                return _coerce(value, arg, where)
            except UserError:
                continue
        raise bad
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin is list:
        if not isinstance(value, list):
            raise bad
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        key_tp, val_tp = typing.get_args(tp)
        return {_coerce(str(k), key_tp, where): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value)  # '5e-5' from a YAML 1.1 reader, or quoted
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad


def build(cls: type, raw: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise UserError(f"unknown recipe key '{path}'{closest(str(key), names)}")
        if key == "training" and cls is Recipe:
            kwargs[key] = validate_training(value or {})
        else:
            kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def training_argument_types() -> dict[str, Any]:
    """Field name -> annotation of LangTrainingArguments (TrainingArguments + ours)."""
    from langtrainer.training.args import RECIPE_MANAGED_FIELDS, LangTrainingArguments

    hints = typing.get_type_hints(LangTrainingArguments)
    return {
        f.name: hints.get(f.name, Any)
        for f in dataclasses.fields(LangTrainingArguments)
        if f.init and f.name not in RECIPE_MANAGED_FIELDS
    }


def validate_training(raw: Any) -> dict[str, Any]:
    """Check `training:` keys and scalar types against LangTrainingArguments."""
    if not isinstance(raw, dict):
        raise UserError(f"training: expected a mapping of TrainingArguments fields, got {raw!r}")
    from langtrainer.training.args import run_owned_error

    fields = training_argument_types()
    out = {}
    for key, value in raw.items():
        refused = run_owned_error(str(key))
        if refused is not None:
            raise refused
        if key not in fields:
            raise UserError(
                f"unknown recipe key 'training.{key}': not a TrainingArguments field{closest(str(key), fields)}"
            )
        tp = fields[key]
        scalar = _scalar_type(tp)
        if scalar is not None:
            value = _coerce(value, scalar, f"training.{key}")
        out[key] = _check_choice(key, value)
    return out


@functools.lru_cache(maxsize=1)
def training_argument_choices() -> dict[str, tuple[str, ...]]:
    """Field -> the values TrainingArguments accepts, for fields with a fixed set.

    From the field's own definition: an Enum in its annotation
    (lr_scheduler_type, eval_strategy, optim, ...), a Literal, or
    `metadata["choices"]` (log_level, train_sampling_strategy, ...);
    report_to takes the integrations transformers knows plus all/none.
    """
    import enum

    from langtrainer.training.args import LangTrainingArguments

    hints = typing.get_type_hints(LangTrainingArguments)
    out: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(LangTrainingArguments):
        tp = hints.get(f.name, Any)
        members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
        choices: list[str] = []
        for member in members:
            if isinstance(member, type) and issubclass(member, enum.Enum):
                choices += [str(m.value) for m in member]
            elif typing.get_origin(member) is Literal and str not in members:  # `str | Literal[False]` is free text
                choices += [str(a) for a in typing.get_args(member)]
        if not choices and f.metadata.get("choices"):
            choices = [str(c) for c in f.metadata["choices"]]
        if choices:
            out[f.name] = tuple(dict.fromkeys(choices))
    try:
        from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

        out["report_to"] = ("all", "none", *INTEGRATION_TO_CALLBACK)
    except ImportError:  # another transformers layout: leave report_to to TrainingArguments
        pass
    return out


def _check_choice(key: str, value: Any) -> Any:
    """`value` if it is one of the field's choices (YAML's unquoted `no`, read as false, is 'no')."""
    choices = training_argument_choices().get(key)
    if choices is None or value is None:
        return value
    if value is False and "no" in choices:
        return "no"
    values = value if key == "report_to" and isinstance(value, list) else [value]
    for item in values:
        if not isinstance(item, str) or item not in choices:
            match = difflib.get_close_matches(str(item), choices, n=1, cutoff=0.5)
            hint = f"did you mean '{match[0]}'? " if match else ""
            raise UserError(f"training.{key}: {item!r} is not a valid choice ({hint}valid: {', '.join(choices)})")
    return value


def _scalar_type(tp: Any) -> Any:
    """int/float/bool (optionally Optional) annotations we can check; else None."""
    if tp in (int, float, bool):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and args[0] in (int, float, bool):
            return tp
    return None
