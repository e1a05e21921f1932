"""`finetune --dry-run`: what a recipe would do, without loading model weights.

It resolves the recipe, opens the data, plans the subsets (and selects the
training rows, without materialising them), and works out the training and
analysis workload the way the Trainer will: optimizer steps, evaluations and
checkpoints, tokens per epoch, the forward passes of evaluation, SHAP and the
probe, and the device. A user checks a paper recipe this way before renting a
GPU: a design that does not fit the data is the same `UserError` that
`finetune` would raise after loading everything.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from langtrainer.errors import UserError, setting_error
from langtrainer.recipe import Recipe

FORMAT_VERSION = 1
TOKEN_SAMPLE = 1000  # training rows tokenised (or measured in characters) for the tokens-per-epoch estimate
# Without the recipe's tokenizer: one token per CJK character (and kana, hangul), one per
# CHARS_PER_TOKEN other characters; a rough rule for WordPiece / SentencePiece vocabularies.
CHARS_PER_TOKEN = 4.0
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


@dataclass
class Workload:
    """Forward passes (rows through the model) of one kind of work."""

    what: str
    forward_passes: int
    detail: str


@dataclass
class DryRunPlan:
    """What `finetune RECIPE` would do; `rows` are [language][label] counts per split."""

    recipe: str
    subset: str
    seed: int
    model: str
    max_length: int
    source: str
    languages: list[str]
    label_names: list[str]
    split_names: dict[str, str]  # train / validation / test -> the subset's name in data/
    rows: dict[str, list[list[int]]]
    processes: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    epochs: float
    batches_per_epoch: int
    steps_per_epoch: int
    optimizer_steps: int
    eval_strategy: str
    eval_every_steps: int | None
    evaluations: int
    save_strategy: str
    save_every_steps: int | None
    checkpoints: int
    save_total_limit: int | None
    tokens_per_epoch: int
    tokens_method: str
    tokens_sample: int
    mean_tokens_per_row: float
    truncated_share: float
    workload: list[Workload]
    device: str
    fp16: bool
    format_version: int = FORMAT_VERSION
    notes: list[str] = field(default_factory=list)

    @property
    def train_examples(self) -> int:
        return int(np.sum(self.rows["train"]))

    @property
    def effective_batch(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.processes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def optimizer_steps(n_examples: int, per_device: int, accumulation: int, processes: int, epochs: float,
                    max_steps: int = -1) -> tuple[int, int, int]:
    """(batches per epoch, optimizer steps per epoch, total optimizer steps) as the Trainer counts them.

    transformers' `Trainer.set_initial_training_values`: a DataLoader of
    ceil(n / (batch x processes)) batches (no drop_last), an optimizer step per
    `accumulation` batches with a partial last one, max(.., 1); max_steps > 0 wins
    over epochs.
    """
    batches = math.ceil(n_examples / (per_device * processes)) if n_examples else 0
    per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)
    total = max_steps if max_steps > 0 else math.ceil(epochs * per_epoch)
    return batches, per_epoch, total


def _interval(value: float, total: int) -> int:
    """TrainerState.compute_steps: a fraction below 1 is a share of all steps, rounded up."""
    return math.ceil(total * value) if value < 1 else int(value)


def _schedule(total: int, steps_per_epoch: int, strategy: str, every: float) -> tuple[int | None, int]:
    """(interval in steps or None, how many times) for an eval/save strategy.

    transformers' DefaultFlowCallback: "steps" acts at every multiple of the
    interval and once more at the last step when that is not a multiple.
    """
    if strategy == "steps":
        interval = max(_interval(every, total), 1)
        return interval, total // interval + int(total % interval > 0)
    if strategy == "epoch":
        return steps_per_epoch, math.ceil(total / steps_per_epoch)
    return None, 0


def _count_tokens(rows, recipe: Recipe, tokenizer) -> tuple[float, float]:
    """(mean tokens per row, share of rows cut at max_length) over the sampled rows."""
    max_length = recipe.model.max_length
    texts = [str(t) for t in rows["text"]]
    pairs = [str(t) for t in rows["text_pair"]] if "text_pair" in rows.columns else None
    if tokenizer is not None:
        from langtrainer.models.tokenizers import clip_text

        texts = [clip_text(t, max_length) for t in texts]
        pairs = [clip_text(t, max_length) for t in pairs] if pairs is not None else None
        full = tokenizer(texts, pairs, truncation=False, add_special_tokens=True)["input_ids"]
        lengths = np.array([len(ids) for ids in full], dtype=float)
    else:
        def estimate(text: str) -> float:
            cjk = len(_CJK.findall(text))
            return cjk + (len(text) - cjk) / CHARS_PER_TOKEN

        specials = 3 if pairs is not None else 2
        lengths = np.array([estimate(t) + (estimate(p) if pairs is not None else 0.0) + specials
                            for t, p in zip(texts, pairs if pairs is not None else texts)])
    if not len(lengths):
        return 0.0, 0.0
    return float(np.minimum(lengths, max_length).mean()), float((lengths > max_length).mean())


def _local_tokenizer(recipe: Recipe):
    """The recipe's tokenizer from a local folder or the Hugging Face cache, without the network; else None."""
    from pathlib import Path

    name = recipe.model.name_or_path
    if name.startswith("builtin:"):
        from langtrainer.models.registry import builtin_model_dir, is_prepared

        folder = builtin_model_dir(name, recipe.model.arch or "xlm-roberta")
        name = str(folder) if is_prepared(folder, recipe.model.arch or "xlm-roberta") else ""
    if not name:
        return None
    try:
        from transformers import AutoTokenizer

        if Path(name).expanduser().is_dir():
            from langtrainer.models.tokenizers import load_tokenizer

            return load_tokenizer(Path(name).expanduser())
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError):
        return None


def _device(recipe: Recipe, processes: int) -> tuple[str, bool]:
    import torch

    from langtrainer.training.args import wants_fp16

    training = recipe.training
    cuda = torch.cuda.is_available()
    use_cpu = bool(training.get("use_cpu", not cuda))
    fp16 = wants_fp16(bool(training.get("fp16", False)), bool(training.get("fp16_on_gpu", False)),
                      use_cpu=use_cpu, bf16=bool(training.get("bf16", False)), cuda=cuda)
    if use_cpu or not cuda:
        where = "cpu"
    else:
        where = f"cuda ({torch.cuda.get_device_name(0)}" + (f", {processes} processes)" if processes > 1 else ")")
    return where, fp16


def dry_run(recipe: Recipe, processes: int = 1) -> DryRunPlan:
    """The dry-run plan of `recipe` (see the module docstring); UserError when its design does not fit the data."""
    from langtrainer.data.design_plan import SIZE_FIELDS, design_plan
    from langtrainer.data.sampling import recipe_pools, select_nested
    from langtrainer.training.args import build_training_args

    if processes < 1:
        raise UserError(f"processes must be >= 1, got {processes}")
    data, imbalance = recipe.data, recipe.imbalance
    pools, label_names, languages = recipe_pools(recipe)
    subset = imbalance.subset
    sizes = None if subset == "none" else {name: getattr(data, name) for name in SIZE_FIELDS.values()}
    plan = design_plan(pools, languages, label_names, sizes, imbalance.distribution, imbalance.groups,
                       with_largest=False)
    if plan.shortages():
        raise design_plan(pools, languages, label_names, sizes, imbalance.distribution, imbalance.groups).error()
    if subset == "none":
        names = {"train": "train", "validation": "validation", "test": "test"}
        rows = {role: plan.available[role] for role in names}
    else:
        names = {"train": f"train_{subset}", "validation": f"validation_{subset}", "test": "test"}
        rows = {role: plan.subsets[name] for role, name in names.items()}

    # The training rows themselves (a seeded prefix per cell, as the build takes them), for the token count.
    train_pool = pools["train"]
    if subset == "none":
        positions = np.arange(len(train_pool))
    else:
        chosen, _ = select_nested(train_pool, languages, len(label_names), {names["train"]: rows["train"]},
                                  recipe.seed, "train", label_names)
        positions = chosen[names["train"]]
    rng = np.random.default_rng(recipe.seed)
    sample = train_pool.iloc[np.sort(rng.choice(positions, size=min(TOKEN_SAMPLE, len(positions)), replace=False))]
    tokenizer = _local_tokenizer(recipe)
    mean_tokens, truncated = _count_tokens(sample, recipe, tokenizer)
    method = (f"{recipe.model.name_or_path}'s tokenizer on {len(sample)} training rows drawn with the seed "
              f"(cut at max_length {recipe.model.max_length})" if tokenizer is not None else
              f"estimated from characters of {len(sample)} training rows (1 token per CJK character, per "
              f"{CHARS_PER_TOKEN:g} other characters; cut at max_length {recipe.model.max_length}): the recipe's "
              "tokenizer is not available offline")

    import tempfile
    from pathlib import Path

    n_train = int(np.sum(rows["train"]))
    n_validation = int(np.sum(rows["validation"]))
    n_test = int(np.sum(rows["test"]))
    with tempfile.TemporaryDirectory() as tmp:  # TrainingArguments needs an output_dir; nothing is written
        args = build_training_args(recipe, Path(tmp), has_eval=n_validation > 0)
    batches, per_epoch, total = optimizer_steps(n_train, args.per_device_train_batch_size,
                                                args.gradient_accumulation_steps, processes,
                                                args.num_train_epochs, args.max_steps)
    eval_strategy = str(getattr(args.eval_strategy, "value", args.eval_strategy))
    save_strategy = str(getattr(args.save_strategy, "value", args.save_strategy))
    eval_every, evaluations = _schedule(total, per_epoch, eval_strategy, args.eval_steps or 0)
    save_every, checkpoints = _schedule(total, per_epoch, save_strategy, args.save_steps or 0)
    epochs = total / per_epoch if per_epoch else 0.0

    shap, probe = recipe.analysis.shap, recipe.analysis.probe
    shap_examples = min(shap.subsample, n_test) if shap.subsample > 0 else n_test
    external = probe.per_language * len(languages)
    by_steps = args.max_steps > 0
    trained = total * args.per_device_train_batch_size * args.gradient_accumulation_steps * processes
    workload = [
        Workload("training", trained if by_steps else int(round(n_train * args.num_train_epochs)),
                 (f"{total} optimizer steps x {args.per_device_train_batch_size} x "
                  f"{args.gradient_accumulation_steps} x {processes} rows" if by_steps else
                  f"{n_train} rows x {args.num_train_epochs:g} epochs") + ", forward and backward"),
        Workload("evaluation", evaluations * n_validation + n_test,
                 f"{evaluations} evaluations x {n_validation} validation rows, then {n_test} test rows"),
        Workload("shap", shap_examples * shap.max_evals,
                 f"`shap`: {shap_examples} test examples x up to {shap.max_evals} masked inputs "
                 f"(max_evals), per model"),
        Workload("probe", n_test + external,
                 f"`probe`: {n_test} test rows and {probe.per_language} x {len(languages)} external texts "
                 f"({probe.external}), then {probe.folds}-fold logistic regressions (C = {probe.C:g})"),
    ]
    notes = []
    if eval_strategy == "no" and n_validation:
        notes.append("no evaluation during training: the validation rows are not used")
    device, fp16 = _device(recipe, processes)
    return DryRunPlan(
        recipe=recipe.name, subset=subset, seed=recipe.seed, model=recipe.model.name_or_path,
        max_length=recipe.model.max_length, source=data.source, languages=list(languages),
        label_names=list(label_names), split_names=names,
        rows={role: np.asarray(a).astype(int).tolist() for role, a in rows.items()},
        processes=processes, per_device_train_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps, epochs=float(epochs),
        batches_per_epoch=batches, steps_per_epoch=per_epoch, optimizer_steps=total,
        eval_strategy=eval_strategy, eval_every_steps=eval_every, evaluations=evaluations,
        save_strategy=save_strategy, save_every_steps=save_every, checkpoints=checkpoints,
        save_total_limit=args.save_total_limit,
        tokens_per_epoch=int(round(mean_tokens * n_train)), tokens_method=method, tokens_sample=len(sample),
        mean_tokens_per_row=mean_tokens, truncated_share=truncated, workload=workload,
        device=device, fp16=fp16, notes=notes,
    )


def dry_run_file(recipe_path, overrides: list[str] | tuple[str, ...] = (), subset: str | None = None,
                 processes: int = 1) -> DryRunPlan:
    """`finetune RECIPE --dry-run`: the recipe loaded as `finetune` loads it (`subset` as one more override), then
    `dry_run`. Neither the model nor the run folder is looked at."""
    from langtrainer.recipe import load_recipe

    overrides = list(overrides)
    if subset is not None:
        if subset not in ("none", "balanced", "imbalanced"):
            raise setting_error(f"{{subset}} must be none, balanced or imbalanced, got {subset!r}", "subset")
        overrides.append(f"imbalance.subset={subset}")
    return dry_run(load_recipe(recipe_path, overrides), processes=processes)
