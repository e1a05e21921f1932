"""The recipe schema: one dataclass per block of a recipe, the only declaration of a setting.

A recipe says which model, which data and which label skew, how the loss is
weighted, how training runs (`training:` passes through to
`TrainingArguments`, see `recipe.parsing`) and how the analysis is done.
Defaults shared with other modules come from `defaults.py`; the checks of the
values live in `recipe.rules`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from langtrainer import defaults
from langtrainer.errors import UserError, setting_error


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


def split_seed(recipe: Recipe) -> int:
    """The seed the data split and subsamples are drawn with: data.split_seed, else the recipe's seed."""
    return recipe.data.split_seed if recipe.data.split_seed is not None else recipe.seed


# ---------------------------------------------------------------- the numbers

SEED_LIMIT = 2**32  # numpy's and torch's seeding accept [0, 2**32)


def is_positive(v: float) -> bool:
    return math.isfinite(v) and v > 0


def is_non_negative(v: float) -> bool:
    return math.isfinite(v) and v >= 0


def is_at_least_one(v: float) -> bool:
    return v >= 1


def is_unit(v: float) -> bool:
    return 0 <= v < 1


def is_seed(v: float) -> bool:
    return 0 <= v < SEED_LIMIT


@dataclass(frozen=True)
class NumberRule:
    """What a numeric setting must be: `ok(value)`, said as `what`; `whole`: an integer."""

    ok: Callable[[float], bool]
    what: str
    whole: bool = False


# The one rule of every numeric setting, by its recipe key, beside the dataclasses that declare the
# settings. The recipe's checks (recipe.rules), ProbeOptions, ShapOptions, the probe's maths, the SHAP
# engine and shap-diff all call `check_number` with the key, so no range is written twice. Fields a recipe leaves out are not
# checked; None means "unset" for optional ones.
NUMBER_RULES: dict[str, NumberRule] = {
    "seed": NumberRule(is_seed, "in [0, 2**32)", whole=True),
    "model.max_length": NumberRule(lambda v: v >= 8, "at least 8", whole=True),
    "data.train_per_language": NumberRule(lambda v: v >= 0, ">= 0", whole=True),
    "data.validation_per_language": NumberRule(lambda v: v >= 0, ">= 0", whole=True),
    "data.test_per_cell": NumberRule(lambda v: v >= 0, ">= 0", whole=True),
    "data.split_seed": NumberRule(is_seed, "in [0, 2**32) (or null: the recipe's seed)", whole=True),
    "loss.effective_number_beta": NumberRule(lambda v: 0 < v < 1, "in (0, 1)"),
    "loss.mask_entropy": NumberRule(is_non_negative, "a finite number >= 0"),
    "analysis.probe.C": NumberRule(is_positive, "a finite number > 0 (the paper: 1e-4)"),
    "analysis.probe.folds": NumberRule(lambda v: v >= 2, "at least 2", whole=True),
    "analysis.probe.per_language": NumberRule(is_at_least_one, "at least 1", whole=True),
    "analysis.probe.during_training_per_language": NumberRule(lambda v: v >= 0, ">= 0 (0 = off)", whole=True),
    "analysis.shap.subsample": NumberRule(is_at_least_one, "at least 1", whole=True),
    # f(all kept), f(all masked) and one split of the root
    "analysis.shap.max_evals": NumberRule(lambda v: v >= 4, "at least 4", whole=True),
    "analysis.shap.batch_size": NumberRule(is_at_least_one, "at least 1", whole=True),
    "analysis.shap.threshold": NumberRule(is_non_negative, "a finite number >= 0 (the paper: 0.01)"),
    "analysis.shap.during_training_per_language": NumberRule(lambda v: v >= 0, ">= 0 (0 = off)", whole=True),
    "analysis.shap.during_training_max_evals": NumberRule(lambda v: v >= 4, "at least 4", whole=True),
}


def check_number(key: str, value: Any, name: str | None = None) -> None:
    """SettingError `{name} must be ..., got value` when `value` breaks the rule of recipe key `key`.

    `name` is how the caller knows the setting (a keyword argument such as
    `folds`; default the recipe key); the CLI names its flag for it instead.
    None is not checked (unset).
    """
    if value is None:
        return
    rule, name = NUMBER_RULES[key], name or key
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise setting_error(f"{{{name}}} must be a {'whole ' if rule.whole else ''}number, got {value!r}", name)
    if rule.whole and not isinstance(value, int):
        write = f"; write {int(value)}" if math.isfinite(value) and float(value).is_integer() else ""
        raise setting_error(f"{{{name}}} must be a whole number, got {value!r}{write}", name)
    if not rule.ok(value):
        raise setting_error(f"{{{name}}} must be {rule.what}, got {value!r}", name)
