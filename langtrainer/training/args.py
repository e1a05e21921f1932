"""`LangTrainingArguments`: `TrainingArguments` plus the paper's knobs.

Kept apart from the trainer so that recipes can be validated against these
fields without importing the training machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping

from transformers import TrainingArguments

from langtrainer.defaults import HEAD_LEARNING_RATE, LEARNING_RATE
from langtrainer.errors import SettingError, UserError
from langtrainer.recipe import LossConfig

if TYPE_CHECKING:
    from langtrainer.recipe import Recipe

# LossConfig's fields that TrainingArguments holds as they are (the adversary's block is flattened).
LOSS_FIELDS = tuple(f.name for f in fields(LossConfig) if f.name != "language_adversary")

# Fields filled from the recipe's `loss:` / `data:` blocks, not from `training:`.
RECIPE_MANAGED_FIELDS = (
    *LOSS_FIELDS,
    "language_sampler",
    "language_adversary",
    "language_adversary_weight",
    "language_adversary_schedule",
    "language_adversary_hidden",
    "language_column",  # recipes rename the source's column to `language` (data.columns.language)
)


@dataclass
class LangTrainingArguments(TrainingArguments, LossConfig):
    """TrainingArguments with a head learning rate and the per-language loss settings (`recipe.LossConfig`'s
    fields: class_weights, weight_scheme, reduction, mask_entropy, ...)."""

    head_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the classifier head (paper: 5e-4); None = learning_rate."},
    )
    radam: bool = field(
        default=False,
        metadata={"help": "torch.optim.RAdam (betas adam_beta1/2, eps adam_epsilon) instead of `optim`: the "
                          "released code's optimizer, which transformers has no name for."},
    )
    fp16_on_gpu: bool = field(
        default=False,
        metadata={"help": "fp16 mixed precision when training runs on a CUDA device, full precision otherwise "
                          "(the paper recipes: the released code trained in fp16 on GPUs)."},
    )
    language_column: str = field(
        default="language",
        metadata={"help": "Dataset column with each example's language code (e.g. 'lang')."},
    )
    language_sampler: Literal["none", "per_language_balanced"] = field(
        default="none",
        metadata={"help": "per_language_balanced: resample on the (language, label) key instead of weighting."},
    )

    language_adversary: Literal["none", "gradient_reversal", "entropy"] = field(
        default="none",
        metadata={"help": "none | gradient_reversal | entropy: a language-identification head on the first "
                          "token trained against the encoder (recipe: loss.language_adversary.method)."},
    )
    language_adversary_weight: float = field(
        default=1.0, metadata={"help": "lambda of the adversary's gradient into the encoder (its maximum under dann)."}
    )
    language_adversary_schedule: Literal["constant", "dann"] = field(
        default="constant", metadata={"help": "constant, or dann: lambda x (2 / (1 + exp(-10 p)) - 1), p = progress."}
    )
    language_adversary_hidden: int = field(
        default=0, metadata={"help": "Hidden width of the language head (0 = linear)."}
    )

    def __post_init__(self):
        if self.language_adversary != "none":
            from langtrainer.recipe import check_language_adversary

            check_language_adversary(
                self.language_adversary, self.language_adversary_weight, self.language_adversary_schedule,
                self.language_adversary_hidden,
                key=lambda name: "language_adversary" if name == "method" else f"language_adversary_{name}",
            )
        # Decided before TrainingArguments checks its precision flags: a recipe that
        # asks for fp16 on GPU still runs, in full precision, on a CPU-only machine.
        import torch

        self.fp16 = wants_fp16(self.fp16, self.fp16_on_gpu, self.use_cpu, self.bf16, torch.cuda.is_available())
        super().__post_init__()


def adversary_fields(recipe: "Recipe") -> dict[str, Any]:
    """The recipe's loss.language_adversary as LangTrainingArguments fields."""
    adversary = recipe.loss.language_adversary
    if adversary is None:
        return {"language_adversary": "none"}
    return {
        "language_adversary": adversary.method,
        "language_adversary_weight": adversary.weight,
        "language_adversary_schedule": adversary.schedule,
        "language_adversary_hidden": adversary.hidden,
    }


def wants_fp16(fp16: bool, fp16_on_gpu: bool, use_cpu: bool, bf16: bool, cuda: bool) -> bool:
    """fp16 as asked, or (fp16_on_gpu) when training will run on a CUDA device without bf16."""
    return bool(fp16 or (fp16_on_gpu and cuda and not use_cpu and not bf16))


# langtrainer's values of the TrainingArguments fields a recipe's `training:` leaves out (the released
# code's schedule, a log line every 10 steps, no outside loggers); the other fields keep
# TrainingArguments' own defaults. Evaluation and best-model selection follow whether there is a
# validation split (`build_training_args`).
RUN_DEFAULTS: dict[str, Any] = dict(
    save_strategy="epoch",
    metric_for_best_model="eval_loss",
    greater_is_better=False,
    save_total_limit=2,
    logging_strategy="steps",
    logging_steps=10,
    report_to="none",
    disable_tqdm=True,
    learning_rate=LEARNING_RATE,
    head_learning_rate=HEAD_LEARNING_RATE,
    lr_scheduler_type="linear",
    warmup_steps=0,
)


def training_value(training: Mapping[str, Any], name: str) -> Any:
    """The value a run uses for the TrainingArguments field `name` under a recipe's `training:` block: the
    recipe's, else langtrainer's (`RUN_DEFAULTS`), else TrainingArguments' own default."""
    if name in training:
        return training[name]
    if name in RUN_DEFAULTS:
        return RUN_DEFAULTS[name]
    return next(f.default for f in fields(LangTrainingArguments) if f.name == name)


def build_training_args(recipe: "Recipe", output_dir: Path, has_eval: bool) -> LangTrainingArguments:
    """The run's TrainingArguments: langtrainer's defaults, then `training:`, then the loss/sampler fields."""
    import torch

    defaults: dict[str, Any] = dict(
        output_dir=str(output_dir),
        eval_strategy="epoch" if has_eval else "no",
        load_best_model_at_end=has_eval,
        **RUN_DEFAULTS,
        use_cpu=not torch.cuda.is_available(),
    )
    managed = dict(
        seed=recipe.seed,
        **{name: getattr(recipe.loss, name) for name in LOSS_FIELDS},
        language_sampler=recipe.data.sampler or "none",
        **adversary_fields(recipe),
    )
    owned = [key for key in recipe.training if run_owned_reason(key)]
    if owned:  # a Recipe built in code skips the recipe reader's refusal
        raise run_owned_error(owned[0])
    kwargs = {**defaults, **recipe.training, **managed}
    if "seed" in recipe.training and recipe.training["seed"] != recipe.seed:
        raise UserError("set the seed with the recipe's top-level 'seed', not training.seed")
    try:
        return LangTrainingArguments(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UserError(f"training: {str(exc).splitlines()[0]}") from None


# TrainingArguments fields that langtrainer sets itself or that reach outside
# the run folder (another folder, the Hub): a recipe's `training:` may not set
# them. Field -> what to use instead, naming finetune's arguments as {name} (the CLI
# writes its flags there, see errors.SettingError). (`report_to` stays the user's choice:
# the loggers write into the run's logs/ or where their own settings say.)
_NO_UPLOAD = "langtrainer never uploads to the Hub; publish the finished run folder yourself"
RUN_OWNED_FIELDS = {
    "output_dir": "the run folder is finetune's {output_dir}",
    "logging_dir": "training logs go to the run folder's logs/",
    "overwrite_output_dir": "give finetune a new {output_dir}, or {resume}",
    "resume_from_checkpoint": "use finetune's {resume}",
    "seed": "set the recipe's top-level 'seed'",
    "local_rank": "processes are started by finetune's {num_processes} / {accelerate_config}",
    "label_names": "langtrainer names the label column itself (data.columns.label for the source)",
    "push_to_hub": _NO_UPLOAD,
    "hub_token": _NO_UPLOAD,
    "hub_private_repo": _NO_UPLOAD,
    "hub_model_id": _NO_UPLOAD,
    "hub_strategy": _NO_UPLOAD,
    "hub_always_push": _NO_UPLOAD,
    "hub_revision": _NO_UPLOAD,
    "push_to_hub_model_id": _NO_UPLOAD,
    "push_to_hub_organization": _NO_UPLOAD,
    "push_to_hub_token": _NO_UPLOAD,
}


def run_owned_reason(name: str) -> str | None:
    """Why `training.<name>` is refused (what to use instead), or None when a recipe may set it."""
    if name in RUN_OWNED_FIELDS:
        return RUN_OWNED_FIELDS[name]
    if name.startswith(("hub_", "push_to_hub", "trackio_")):
        return _NO_UPLOAD
    return None


def run_owned_error(name: str) -> SettingError | None:
    """The error that refuses `training.<name>` in a recipe, or None when a recipe may set it."""
    import re

    reason = run_owned_reason(name)
    if reason is None:
        return None
    return SettingError(f"training.{name} cannot be set in a recipe: {reason}", re.findall(r"\{(\w+)\}", reason))
