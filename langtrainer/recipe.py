"""Recipes: one YAML file per experiment, parsed into typed dataclasses.

A recipe says which model, which data and which label skew, how the loss is
weighted, how training runs (`training:` passes through to
`TrainingArguments`, except the fields langtrainer owns or that reach outside
the run) and how the analysis is done. Unknown keys, wrong types and numbers
that cannot work (a NaN learning rate, a batch of 0) are `UserError`s that
name the key, so a typo fails in a second instead of after an hour of
training. YAML is read by `safe_yaml` (alias budget, no tags). `extends: other.yaml`
lets sibling recipes share a base; `--set a.b=c` overrides any field.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from langtrainer import atomic, defaults, safe_yaml
from langtrainer.errors import UserError
from langtrainer.names import check_label_names, check_language_codes
from langtrainer.references import is_local_reference


@dataclass
class ModelConfig:
    """Which pretrained encoder to fine-tune."""

    name_or_path: str = "builtin:multilingual-e5-small"
    arch: Literal["xlm-roberta", "bert"] | None = None  # builtin models only
    max_length: int = defaults.MAX_LENGTH
    freeze_word_embeddings: bool = False
    trust_remote_code: bool = False


@dataclass
class ColumnsConfig:
    """Source column names mapped onto langtrainer's id/text/text_pair/label/language."""

    id: str | None = None
    text: str = "text"
    text_pair: str | None = None
    label: str = "label"
    language: str | None = "language"
    group: str | None = None  # rows sharing a group (translations of one item) stay on one side of a split


@dataclass
class DataConfig:
    """Where the examples come from and how many go into each subset."""

    source: str = "builtin:libreoffice-help"
    # How reports and the model card name the dataset (default: the Hub id, builtin name or file name).
    name: str | None = None
    hub_configs: dict[str, str] | None = None
    splits: dict[str, str] = field(
        default_factory=lambda: {"train": "train", "validation": "validation", "test": "test"}
    )
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    languages: list[str] = field(default_factory=list)
    labels: list[str] | None = None
    train_per_language: int = 240
    validation_per_language: int = 60
    test_per_cell: int = 30
    # Shares of train carved (stratified by language and label) into a split the source lacks.
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    sampler: Literal["per_language_balanced"] | None = None
    trust_remote_code: bool = False
    # The seed of the split and subsamples (null: the recipe's seed). `compare` fixes it so that
    # every seed of every mitigation trains and tests on the same rows while the seed varies training.
    split_seed: int | None = None


@dataclass
class ImbalanceConfig:
    """The language-label skew (Table 1) and which training subset to use.

    subset "none" trains on the data as it is (the source's splits, or
    validation/test carved from train). Left unset it is "imbalanced" when a
    distribution is given, else "none": a recipe without an `imbalance:`
    block trains as-is.
    """

    subset: Literal["none", "balanced", "imbalanced"] | None = None
    groups: dict[str, list[str]] | None = None
    # Per language or group: percentages per label (a list summing to 100, as Table 1 prints
    # them) or an exact ratio "1:2:3:4:5" (the released code's config format), which is
    # turned into exact percentages here so that every consumer sees one form.
    distribution: dict[str, list[float] | str] | None = None

    def __post_init__(self) -> None:
        if self.distribution:
            self.distribution = {key: ratio_to_percentages(row, f"imbalance.distribution.{key}")
                                 if isinstance(row, str) else row for key, row in self.distribution.items()}
        if self.subset is None:
            self.subset = "imbalanced" if self.distribution else "none"


def ratio_to_percentages(ratio: str, where: str = "ratio") -> list[float]:
    """'1:2:3:4:5' -> [100/15, 200/15, ...]: exact shares, no rounding to Table 1's printed 6.6 / 33.3."""
    parts = [p.strip() for p in ratio.split(":")]
    try:
        weights = [float(p) for p in parts]
    except ValueError:
        weights = []
    if len(weights) < 2 or not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise UserError(f"{where}: expected percentages or a ratio such as '1:2:3', got {ratio!r}")
    total = sum(weights)
    return [100.0 * w / total for w in weights]


LANGUAGE_ADVERSARY_METHODS = ("gradient_reversal", "entropy")
LANGUAGE_ADVERSARY_SCHEDULES = ("constant", "dann")


@dataclass
class LanguageAdversaryConfig:
    """A language-identification head trained against the encoder (the paper's footnote 2).

    method: gradient_reversal (the encoder gets -lambda x the head loss's gradient) or
    entropy (the encoder maximises the entropy of the head's prediction); weight: lambda
    (its maximum under schedule "dann", which ramps it as 2/(1+exp(-10 p))-1 of training
    progress p); hidden: the head's hidden width (0 = linear). See training/adversary.py.
    """

    method: Literal["gradient_reversal", "entropy"] = "gradient_reversal"
    weight: float = 1.0
    schedule: Literal["constant", "dann"] = "constant"
    hidden: int = 0


def check_language_adversary(method: Any, weight: Any, schedule: Any, hidden: Any,
                             key: Callable[[str], str] = lambda name: f"loss.language_adversary.{name}") -> None:
    """The one validation of the adversary's settings (recipes and LangTrainingArguments); `key` names a field."""
    if method not in LANGUAGE_ADVERSARY_METHODS:
        raise UserError(f"{key('method')} must be one of {', '.join(LANGUAGE_ADVERSARY_METHODS)}; got {method!r}")
    if schedule not in LANGUAGE_ADVERSARY_SCHEDULES:
        raise UserError(f"{key('schedule')} must be one of {', '.join(LANGUAGE_ADVERSARY_SCHEDULES)}; got {schedule!r}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not _non_negative(float(weight)):
        raise UserError(f"{key('weight')} must be a finite number >= 0, got {weight!r}")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
        raise UserError(f"{key('hidden')} must be an integer >= 0 (0 = a linear head), got {hidden!r}")


def describe_language_adversary(config: LanguageAdversaryConfig | None) -> str:
    """One line for `recipe check`: what the adversary does, or that it is off."""
    if config is None:
        return "language adversary: off"
    head = "linear head" if config.hidden == 0 else f"head with {config.hidden} hidden units"
    ramp = "ramped by the dann schedule" if config.schedule == "dann" else "constant"
    return f"language adversary: {config.method}, weight {config.weight:g} ({ramp}), {head}"


@dataclass
class LossConfig:
    """Class weighting (eq. 2) and the masked-input entropy term (eq. 3).

    The one declaration of the loss settings: the recipe's `loss:` block, and
    `training.args.LangTrainingArguments`' fields of the same names (it
    subclasses this, as trl's configs extend TrainingArguments), so a loss
    setting is added here once. (`language_adversary`, a block of its own, is
    flattened into `language_adversary_*` fields there: TrainingArguments'
    fields are flat.)
    """

    class_weights: Literal["none", "per_language", "global"] = field(
        default="none", metadata={"help": "none | per_language (eq. 2) | global class weights."})
    weight_scheme: Literal["inverse", "sqrt_inverse", "effective_number"] = field(
        default="inverse", metadata={"help": "inverse = eq. 2; sqrt_inverse; effective_number (Cui et al.)."})
    effective_number_beta: float = field(default=0.999, metadata={"help": "beta of effective_number."})
    reduction: Literal["mean", "weighted_mean"] = field(
        default="mean", metadata={"help": "mean: sum w_i l_i / N (the paper); weighted_mean: sum w_i l_i / sum w_i."})
    mask_entropy: float = field(
        default=0.0, metadata={"help": "Coefficient of the masked-input entropy term (Annex A.3, eq. 3)."})
    mask_entropy_normalisation: Literal["sum", "mean"] = field(
        default="sum",
        metadata={"help": "sum: sum_c p_c log p_c (eq. 3 as printed); mean: its mean over classes (the released code)."})
    mask_entropy_input: Literal["drawn", "last_row"] = field(
        default="drawn",
        metadata={"help": "drawn: [CLS] + m [MASK] + [SEP], m drawn up to the batch length; "
                          "last_row: the batch's last row, every non-pad token masked (the released code)."})
    # null = off; a mapping turns the language-identification adversary on.
    language_adversary: LanguageAdversaryConfig | None = None


@dataclass
class ProbeConfig:
    """Language-identification probe settings (Section 2.2)."""

    C: float = defaults.PROBE_C  # the paper's released code: LogisticRegressionCV(Cs=1) => C = 1e-4
    folds: int = defaults.PROBE_FOLDS
    # Texts per language of the external corpus and of a file ("1000 articles per
    # language"); the test split is probed whole, as the paper's code did.
    per_language: int = defaults.PROBE_PER_LANGUAGE
    # The corpus of `probe --data external`: a Hub id or Hub-shaped folder (with
    # external_configs), a local table or folder, or builtin:debian-reference.
    external: str = defaults.EXTERNAL_CORPUS
    # A corpus with one config per language (wikimedia/wikipedia): language -> config, or a
    # template such as "20231101.{lang}"; null for a table with a language column.
    external_configs: dict[str, str] | str | None = None
    feature: Literal["first-token", "pooler", "mean"] = defaults.PROBE_FEATURE
    layer: int = defaults.PROBE_LAYER
    # Probe at every evaluation during training (logged as eval_lid_accuracy) on
    # this many validation examples per language; 0 = off.
    during_training_per_language: int = 0


@dataclass
class ShapConfig:
    """Token SHAP settings (Section 2.3, Annex A.4)."""

    subsample: int = defaults.SHAP_SUBSAMPLE
    max_evals: int = defaults.SHAP_MAX_EVALS
    batch_size: int = defaults.SHAP_BATCH_SIZE
    threshold: float = defaults.SHAP_THRESHOLD
    # SHAP summary at every evaluation during training (eval_shap_*) on this
    # many validation examples per language; 0 = off.
    during_training_per_language: int = 0
    during_training_max_evals: int = 64


@dataclass
class AnalysisConfig:
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    shap: ShapConfig = field(default_factory=ShapConfig)


@dataclass
class Recipe:
    """One experiment."""

    name: str = "experiment"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    imbalance: ImbalanceConfig = field(default_factory=ImbalanceConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    training: dict[str, Any] = field(default_factory=dict)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    description: str | None = None
    # Which of the paper's experiments this recipe stands in for ("amazon", "xnli"): the report then
    # shows the paper's numbers beside the run's. Unset for a user's own data.
    paper_analogue: Literal["amazon", "xnli"] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- parsing

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _closest(key: str, valid: typing.Iterable[str]) -> str:
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
        return _build(tp, value, where)
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


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise UserError(f"unknown recipe key '{path}'{_closest(str(key), names)}")
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
    from langtrainer.training.args import run_owned_reason

    fields = training_argument_types()
    out = {}
    for key, value in raw.items():
        reason = run_owned_reason(str(key))
        if reason is not None:
            raise UserError(f"training.{key} cannot be set in a recipe: {reason}")
        if key not in fields:
            raise UserError(
                f"unknown recipe key 'training.{key}': not a TrainingArguments field{_closest(str(key), fields)}"
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


# ---------------------------------------------------------------- loading

def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise UserError(f"recipe '{path}' is a folder: give a YAML file")
    if not path.is_file():
        from langtrainer.preflight import user_path

        user_path(path, "recipe")  # '$HOME/r.yaml' quoted: say so rather than "does not exist"
        raise UserError(f"recipe '{path}' does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"recipe '{path}' is not UTF-8 text") from None
    try:
        raw = safe_yaml.parse(text)
    except UserError as exc:
        raise UserError(f"recipe '{path}' is not valid YAML: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"recipe '{path}' is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"recipe '{path}' must be a YAML mapping, got {type(raw).__name__}")
    return raw


def builtin_recipe_path(name: str) -> Path:
    """`builtin:demo` -> the recipe shipped inside the package."""
    from importlib import resources

    stem = name.removeprefix("builtin:")
    path = Path(str(resources.files("langtrainer") / "builtin_recipes" / f"{stem}.yaml"))
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise UserError(f"unknown builtin recipe '{name}' (known: {', '.join('builtin:' + k for k in known)})")
    return path


# Recipe fields that may name a local file or folder.
PATH_FIELDS = (("data", "source"), ("model", "name_or_path"), ("analysis", "probe", "external"))


def resolve_recipe_path(value: Any, folder: Path) -> Any:
    """A path field's value made absolute against `folder`; `builtin:...` and Hub ids unchanged.

    A relative value is local when `references.is_local_reference` says so
    against `folder`; then it becomes folder/value, so a missing file is
    reported with the place it was looked for. Anything else ('imdb',
    'org/name') is a Hub id.
    """
    if not isinstance(value, str) or not value.strip() or value.startswith("builtin:"):
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return os.path.normpath(path)
    candidate = Path(os.path.normpath(Path(folder).absolute() / path))
    return str(candidate) if is_local_reference(value, folder) else value


def _resolve_path_fields(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    for keys in PATH_FIELDS:
        node: Any = raw
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and keys[-1] in node:
            node[keys[-1]] = resolve_recipe_path(node[keys[-1]], folder)
    return raw


# A recipe extends a few others (a shared base, a paper setting); a deeper chain is a mistake or an attack.
MAX_EXTENDS_DEPTH = 32


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe as a dict, with `extends:` bases merged in (child wins).

    Relative paths in each file resolve against that file's folder, so a
    recipe means the same from any working directory.
    """
    if str(path).startswith("builtin:"):
        path = builtin_recipe_path(str(path))
    path = Path(path).resolve()
    if path in _seen:
        raise UserError(f"recipe '{path}' extends itself (cycle through {', '.join(p.name for p in _seen)})")
    raw = _resolve_path_fields(_read_yaml(path), path.parent)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise UserError(f"recipe '{path}': extends must be a file name, got {parent!r}")
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", parent):
        raise UserError(f"recipe '{path}': extends {parent!r} is a URL, and recipes are never fetched: download it "
                        "and give its local path")
    if len(_seen) + 1 >= MAX_EXTENDS_DEPTH:
        raise UserError(f"recipe '{path}': the extends chain is more than {MAX_EXTENDS_DEPTH} recipes deep: "
                        "merge some of them")
    base_path = parent if parent.startswith("builtin:") else path.parent / parent
    base = load_raw(base_path, _seen + (path,))
    return _deep_merge(base, raw)


def parse_override(item: str) -> tuple[list[str], Any]:
    """'training.num_train_epochs=1' -> (['training', 'num_train_epochs'], 1)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"--set expects KEY=VALUE with a dotted key, e.g. training.num_train_epochs=1; got {item!r}")
    try:
        value = safe_yaml.parse(text) if text.strip() else ""
    except UserError as exc:
        raise UserError(f"--set {key}: {exc}") from None
    except yaml.YAMLError:
        value = text
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for item in overrides:
        keys, value = parse_override(item)
        node = raw
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise UserError(f"--set {item!r}: '{key}' is not a mapping")
            node = child
        if tuple(keys) in PATH_FIELDS:
            value = resolve_recipe_path(value, Path.cwd())  # typed on the command line: relative to here
        node[keys[-1]] = value
    return raw


def recipe_from_dict(raw: dict[str, Any]) -> Recipe:
    recipe = _build(Recipe, raw, "")
    check_recipe(recipe)
    return recipe


def load_recipe(path: str | Path, overrides: typing.Sequence[str] = ()) -> Recipe:
    """Read, merge `extends`, apply `--set` overrides, type-check."""
    raw = apply_overrides(load_raw(path), overrides)
    try:
        return recipe_from_dict(raw)
    except UserError as exc:
        raise UserError(f"{Path(path).name}: {exc}") from None


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
    if not 0 <= recipe.seed < SEED_LIMIT:
        raise UserError(f"seed must be in [0, 2**32), got {recipe.seed}")
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
    for name in ("train_per_language", "validation_per_language", "test_per_cell"):
        if getattr(data, name) < 0:
            raise UserError(f"data.{name} must be >= 0")
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
                    f"{_closest(key, valid)}"
                )
    adversary = recipe.loss.language_adversary
    if adversary is not None:
        check_language_adversary(adversary.method, adversary.weight, adversary.schedule, adversary.hidden)
    if recipe.model.max_length < 8:
        raise UserError("model.max_length must be at least 8")
    _check_values(recipe)
    strategy = recipe.training.get("train_sampling_strategy", "random")
    if data.sampler == "per_language_balanced" and strategy not in ("random", None):
        raise UserError(
            f"data.sampler: per_language_balanced draws the training order itself; "
            f"it cannot be combined with training.train_sampling_strategy={strategy}"
        )


SEED_LIMIT = 2**32  # numpy's and torch's seeding accept [0, 2**32)


def _positive(v: float) -> bool:
    return math.isfinite(v) and v > 0


def _non_negative(v: float) -> bool:
    return math.isfinite(v) and v >= 0


def _at_least_one(v: float) -> bool:
    return v >= 1


def _unit(v: float) -> bool:
    return 0 <= v < 1


# (where, check, what it must be). Fields a recipe leaves out are not checked
# (TrainingArguments' defaults are valid); None means "unset" for optional ones.
_RECIPE_RULES: list[tuple[str, Callable[[float], bool], str]] = [
    ("loss.effective_number_beta", lambda v: 0 < v < 1, "in (0, 1)"),
    ("data.split_seed", lambda v: 0 <= v < SEED_LIMIT, "in [0, 2**32) (or null: the recipe's seed)"),
    ("loss.mask_entropy", _non_negative, "a finite number >= 0"),
    ("analysis.probe.C", _positive, "a finite number > 0 (the paper: 1e-4)"),
    ("analysis.probe.folds", lambda v: v >= 2, "at least 2"),
    ("analysis.probe.per_language", _at_least_one, ">= 1"),
    ("analysis.probe.during_training_per_language", _non_negative, ">= 0 (0 = off)"),
    ("analysis.shap.subsample", _at_least_one, ">= 1"),
    ("analysis.shap.max_evals", lambda v: v >= 4, ">= 4"),
    ("analysis.shap.batch_size", _at_least_one, ">= 1"),
    ("analysis.shap.threshold", _non_negative, "a finite number >= 0 (the paper: 0.01)"),
    ("analysis.shap.during_training_per_language", _non_negative, ">= 0 (0 = off)"),
    ("analysis.shap.during_training_max_evals", lambda v: v >= 4, ">= 4"),
]
_TRAINING_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "learning_rate": (_positive, "a finite number > 0"),
    "head_learning_rate": (_positive, "a finite number > 0 (or null: the learning_rate)"),
    "num_train_epochs": (_positive, "a finite number > 0"),
    "max_steps": (lambda v: v == -1 or v > 0, "> 0 (or -1: num_train_epochs decides)"),
    "per_device_train_batch_size": (_at_least_one, ">= 1"),
    "per_device_eval_batch_size": (_at_least_one, ">= 1"),
    "gradient_accumulation_steps": (_at_least_one, ">= 1"),
    "eval_accumulation_steps": (_at_least_one, ">= 1 (or null)"),
    "logging_steps": (_positive, "> 0"),
    "save_steps": (_positive, "> 0"),
    "eval_steps": (_positive, "> 0 (or null)"),
    "warmup_steps": (_non_negative, ">= 0"),
    "warmup_ratio": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "weight_decay": (_non_negative, "a finite number >= 0"),
    "max_grad_norm": (_non_negative, "a finite number >= 0"),
    "adam_beta1": (_unit, "in [0, 1)"),
    "adam_beta2": (_unit, "in [0, 1)"),
    "adam_epsilon": (_non_negative, "a finite number >= 0"),
    "label_smoothing_factor": (_unit, "in [0, 1)"),
    "dataloader_num_workers": (_non_negative, ">= 0"),
    "save_total_limit": (_at_least_one, ">= 1 (or null: keep all)"),
    "torch_empty_cache_steps": (_at_least_one, ">= 1 (or null)"),
    "data_seed": (lambda v: 0 <= v < SEED_LIMIT, "in [0, 2**32) (or null: the recipe's seed)"),
    "ddp_timeout": (_positive, "> 0"),
    "eval_delay": (_non_negative, ">= 0"),
    "neftune_noise_alpha": (_non_negative, "a finite number >= 0 (or null)"),
}


# What evaluation logs (training.metrics, the probe and SHAP callbacks), without the eval_ prefix.
_EVAL_METRIC_PREFIXES = ("loss", "accuracy", "macro_f1", "pred_", "skew_index", "lid_", "shap_", "ce",
                         "difference", "by_language", "by_group", "prediction_shares")


def _check_values(recipe: Recipe) -> None:
    """Numbers that type-check but cannot work (a NaN learning rate, a batch of 0, ...)."""
    for where, ok, what in _RECIPE_RULES:
        node: Any = recipe
        for part in where.split("."):
            node = getattr(node, part)
        if node is not None and not ok(node):
            raise UserError(f"{where} must be {what}, got {node}")
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


def split_seed(recipe: Recipe) -> int:
    """The seed the data split and subsamples are drawn with: data.split_seed, else the recipe's seed."""
    return recipe.data.split_seed if recipe.data.split_seed is not None else recipe.seed


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True)


def save_recipe(recipe: Recipe, path: str | Path) -> Path:
    """Write the resolved recipe (every default filled in) atomically."""
    return atomic.write_text(path, dump_recipe(recipe))
