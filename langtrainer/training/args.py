"""`LangTrainingArguments`: `TrainingArguments` plus the paper's knobs.

Kept apart from the trainer so that recipes can be validated against these
fields without importing the training machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from transformers import TrainingArguments

# Fields filled from the recipe's `loss:` / `data:` blocks, not from `training:`.
RECIPE_MANAGED_FIELDS = (
    "class_weights",
    "weight_scheme",
    "effective_number_beta",
    "loss_reduction",
    "mask_entropy",
    "language_sampler",
)


@dataclass
class LangTrainingArguments(TrainingArguments):
    """TrainingArguments with a head learning rate and the per-language loss settings."""

    head_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the classifier head (paper: 5e-4); None = learning_rate."},
    )
    class_weights: Literal["none", "per_language", "global"] = field(
        default="none", metadata={"help": "none | per_language (eq. 2) | global class weights."}
    )
    weight_scheme: Literal["inverse", "sqrt_inverse", "effective_number"] = field(
        default="inverse", metadata={"help": "inverse = eq. 2; sqrt_inverse; effective_number (Cui et al.)."}
    )
    effective_number_beta: float = field(default=0.999, metadata={"help": "beta of effective_number."})
    loss_reduction: Literal["mean", "weighted_mean"] = field(
        default="mean",
        metadata={"help": "mean: sum w_i l_i / N (the paper); weighted_mean: sum w_i l_i / sum w_i."},
    )
    mask_entropy: float = field(
        default=0.0, metadata={"help": "Coefficient of the masked-input entropy term (Annex A.3, eq. 3)."}
    )
    language_sampler: Literal["none", "per_language_balanced"] = field(
        default="none",
        metadata={"help": "per_language_balanced: resample on the (language, label) key instead of weighting."},
    )


# TrainingArguments fields that langtrainer sets itself or that reach outside
# the run folder (another folder, the Hub, a tracking service): a recipe's
# `training:` may not set them. Field -> what to use instead.
_NO_UPLOAD = "langtrainer never uploads; publish the finished run folder yourself"
RUN_OWNED_FIELDS = {
    "output_dir": "the run folder is finetune's --output-dir/-o",
    "logging_dir": "training logs go to the run folder's metrics.json (log_history)",
    "overwrite_output_dir": "give finetune a new --output-dir, or --resume",
    "resume_from_checkpoint": "use finetune --resume",
    "seed": "set the recipe's top-level 'seed'",
    "local_rank": "processes are started by finetune --num-processes / --accelerate-config",
    "report_to": "training logs go to the run folder's metrics.json (log_history)",
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
