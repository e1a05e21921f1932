"""Recipe -> subsets -> LangTrainer -> run directory.

The run directory is a standard HF checkpoint of the best model (by
validation loss) plus `recipe.yaml` (resolved), `data/` (the subsets),
`metrics.json` (written last: its presence means the run is complete) and
`checkpoints/` (Trainer checkpoints, for `--resume`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from langtrainer import atomic
from langtrainer.errors import UserError
from langtrainer.training.distributed import main_process_first, wait_for_everyone
from langtrainer.recipe import Recipe, dump_recipe, save_recipe

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, dict[str, float]], None]

DATA_DIR = "data"
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.json"
RECIPE_FILE = "recipe.yaml"


def training_subset_names(recipe: Recipe) -> tuple[str, str]:
    """(train split, validation split) for the recipe's `imbalance.subset`."""
    subset = recipe.imbalance.subset
    return f"train_{subset}", f"validation_{subset}"


def prepare_data(recipe: Recipe, run_dir: Path):
    """Build the subsets once and keep them in the run dir (reused on resume)."""
    import datasets

    data_dir = run_dir / DATA_DIR
    if data_dir.is_dir():
        return datasets.load_from_disk(str(data_dir))
    from langtrainer.data.sampling import build_from_recipe

    subsets, report = build_from_recipe(recipe)
    with atomic.atomic_dir(data_dir) as tmp:
        subsets.save_to_disk(str(tmp))
        atomic.write_json(tmp / "distribution.json", report)
    return datasets.load_from_disk(str(data_dir))


def label_names_of(dataset) -> list[str]:
    feature = dataset.features.get("label")
    names = getattr(feature, "names", None)
    if names:
        return list(names)
    return [str(i) for i in range(int(max(dataset["label"])) + 1)]


def load_model_for_classification(recipe: Recipe, label_names: list[str]):
    """Resolve `model.name_or_path` (builtin, local, Hub) and add a fresh head."""
    from transformers import AutoModelForSequenceClassification

    from langtrainer.models import resolve_model_path
    from langtrainer.models import load_tokenizer

    path = resolve_model_path(recipe.model.name_or_path, arch=recipe.model.arch)
    remote = recipe.model.trust_remote_code
    try:
        tokenizer = load_tokenizer(path, trust_remote_code=remote)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path),
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            # A checkpoint that already has a head for another label set gets a fresh one.
            ignore_mismatched_sizes=True,
            trust_remote_code=remote,
        )
    except OSError as exc:
        if not Path(str(path)).exists():
            raise UserError(
                f"model '{recipe.model.name_or_path}' needs the Hugging Face Hub, which is unreachable: "
                f"use a local folder or builtin:multilingual-e5-small ({str(exc).splitlines()[0][:120]})"
            ) from None
        raise UserError(f"cannot load model from '{path}': {str(exc).splitlines()[0]}") from None
    if recipe.model.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model, tokenizer


def check_local_model(recipe: Recipe) -> None:
    """A local model path that does not exist fails at once, before any import or output."""
    name = recipe.model.name_or_path
    if not name.startswith("builtin:"):
        from langtrainer.models import resolve_model_path

        resolve_model_path(name)


def tokenize(dataset, tokenizer, max_length: int):
    """input_ids/attention_mask/labels + language; text columns dropped."""
    has_pair = "text_pair" in dataset.column_names

    def encode(batch):
        pairs = batch["text_pair"] if has_pair else None
        enc = tokenizer(batch["text"], pairs, truncation=True, max_length=max_length)
        enc["labels"] = batch["label"]
        return enc

    keep = {"language"}
    drop = [c for c in dataset.column_names if c not in keep]
    return dataset.map(encode, batched=True, remove_columns=drop, desc=None)


def sort_by_length(tokenized, raw):
    """Both datasets in the same (stable) order of token count, shortest first.

    Predictions come back in dataset order, so the untokenized rows that the
    metrics read (label, language) are reordered with the tokenized ones.
    """
    lengths = np.fromiter((len(ids) for ids in tokenized["input_ids"]), dtype=np.int64, count=len(tokenized))
    order = np.argsort(lengths, kind="stable")
    return tokenized.select(order), raw.select(order)


def uses_cpu(recipe: Recipe) -> bool:
    """The training arguments' `use_cpu` (default: no CUDA device)."""
    import torch

    return bool(recipe.training.get("use_cpu", not torch.cuda.is_available()))


def check_run_dir(run_dir: str | Path, resume: bool) -> None:
    """UserError when `run_dir` holds a finished run, an unfinished one without `resume`,
    or anything that is not a run (a run deletes its checkpoints/ and reads its data/)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--output-dir '{run_dir}' is a file: give a new or empty folder")
    if (run_dir / METRICS_FILE).exists() and not resume:
        raise UserError(f"'{run_dir}' already holds a finished run: choose another --output-dir or delete it")
    checkpoints = run_dir / CHECKPOINT_DIR
    if checkpoints.exists() and any(checkpoints.glob("checkpoint-*")) and not resume:
        raise UserError(f"'{run_dir}' holds an unfinished run: pass --resume to continue it, or delete the folder")
    if run_dir.is_dir() and not (run_dir / RECIPE_FILE).exists():
        foreign = sorted(p.name for p in run_dir.iterdir() if p.name != DATA_DIR and not p.name.startswith("."))
        if foreign:
            raise UserError(
                f"'{run_dir}' is not a langtrainer run directory (it holds {', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}): give a new or empty --output-dir"
            )


def last_complete_checkpoint(checkpoints: Path, remove_incomplete: bool = False) -> Path | None:
    """The newest checkpoint-N whose trainer_state.json (the Trainer writes it last) parses.

    A process killed while saving leaves a newer checkpoint without it (or with
    half of it); resuming from that one would fail or load half-written state.
    remove_incomplete deletes those newer, incomplete ones (the Trainer would
    otherwise count them when it rotates checkpoints).
    """
    import json

    def step(path: Path) -> int:
        tail = path.name.rpartition("-")[2]
        return int(tail) if tail.isdigit() else -1

    for candidate in sorted(checkpoints.glob("checkpoint-*"), key=step, reverse=True):
        try:
            json.loads((candidate / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("ignoring incomplete checkpoint %s (killed while saving?)", candidate)
            if remove_incomplete:
                shutil.rmtree(candidate, ignore_errors=True)
            continue
        return candidate
    return None


def _first_difference(old: Any, new: Any, where: str = "") -> str | None:
    """Dotted key of the first field that differs between two recipe dicts, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            found = _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
            if found:
                return found
        return None
    return None if old == new else where or "recipe"


def check_same_recipe(recipe: Recipe, run_dir: Path) -> None:
    """UserError when run_dir was started with another recipe (its data/ and checkpoints would be mixed in)."""
    import yaml

    saved = run_dir / RECIPE_FILE
    if not saved.is_file():
        return
    try:
        old = yaml.safe_load(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return
    new = yaml.safe_load(dump_recipe(recipe))
    key = _first_difference(old, new)
    if key is not None:
        raise UserError(
            f"'{run_dir}' was started with a different recipe ({key} differs): use the same recipe and "
            "--set options, or another --output-dir (or delete the folder)"
        )


def build_training_args(recipe: Recipe, output_dir: Path, has_eval: bool):
    import torch

    from langtrainer.training.args import LangTrainingArguments

    defaults: dict[str, Any] = dict(
        output_dir=str(output_dir),
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="epoch",
        load_best_model_at_end=has_eval,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        save_total_limit=2,
        logging_strategy="steps",
        logging_steps=10,
        report_to="none",
        disable_tqdm=True,
        learning_rate=5e-5,
        head_learning_rate=5e-4,
        lr_scheduler_type="linear",
        warmup_steps=0,
        use_cpu=not torch.cuda.is_available(),
    )
    loss = recipe.loss
    managed = dict(
        seed=recipe.seed,
        class_weights=loss.class_weights,
        weight_scheme=loss.weight_scheme,
        effective_number_beta=loss.effective_number_beta,
        loss_reduction=loss.reduction,
        mask_entropy=loss.mask_entropy,
        mask_entropy_normalisation=loss.mask_entropy_normalisation,
        mask_entropy_input=loss.mask_entropy_input,
        language_sampler=recipe.data.sampler or "none",
    )
    kwargs = {**defaults, **recipe.training, **managed}
    if "seed" in recipe.training and recipe.training["seed"] != recipe.seed:
        raise UserError("set the seed with the recipe's top-level 'seed', not training.seed")
    try:
        return LangTrainingArguments(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UserError(f"training: {str(exc).splitlines()[0]}") from None


class _ProgressBridge:
    """TrainerCallback that forwards step counts and logs to a plain function."""

    def __new__(cls, progress: ProgressFn):
        from transformers import TrainerCallback

        class Bridge(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                progress(state.global_step, state.max_steps, {})

            def on_log(self, args, state, control, logs=None, **kw):
                progress(state.global_step, state.max_steps, dict(logs or {}))

        return Bridge()


def favoured_labels(recipe: Recipe, n_labels: int) -> dict[str, list[int]] | None:
    """Per group, the labels its imbalanced distribution over-represents."""
    imb = recipe.imbalance
    if not imb.groups or not imb.distribution:
        return None
    out = {}
    for group, langs in imb.groups.items():
        row = imb.distribution.get(group) or imb.distribution.get(langs[0])
        if row is None or len(row) != n_labels:
            return None
        out[group] = [c for c, p in enumerate(row) if p > 100.0 / n_labels + 1e-9]
    return out


def evaluate_predictions(logits: np.ndarray, dataset, label_names: list[str], recipe: Recipe) -> dict[str, Any]:
    from langtrainer.training.metrics import classification_metrics, skew_index

    predictions = logits.argmax(-1)
    languages = dataset["language"]
    metrics = classification_metrics(predictions, dataset["label"], languages, label_names, recipe.imbalance.groups)
    favoured = favoured_labels(recipe, len(label_names))
    if favoured:
        metrics["skew_index"] = skew_index(predictions, languages, recipe.imbalance.groups, favoured)
    return metrics


def make_compute_metrics(eval_dataset, label_names: list[str], recipe: Recipe):
    def compute(eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        return evaluate_predictions(np.asarray(logits), eval_dataset, label_names, recipe)

    return compute


def evaluation_callbacks(recipe: Recipe, validation) -> list:
    """ProbeCallback / ShapCallback on a fixed validation sample, when the recipe asks."""
    callbacks = []
    probe, shap = recipe.analysis.probe, recipe.analysis.shap
    if validation is None:
        return callbacks
    if probe.during_training_per_language > 0:
        from langtrainer.analysis.probe import ProbeCallback

        callbacks.append(ProbeCallback.from_frame(
            validation, per_language=probe.during_training_per_language, seed=recipe.seed, C=probe.C,
            folds=probe.folds, feature=probe.feature, layer=probe.layer, max_length=recipe.model.max_length,
        ))
    if shap.during_training_per_language > 0:
        from langtrainer.analysis.shap import ShapCallback

        callbacks.append(ShapCallback.from_frame(
            validation, per_language=shap.during_training_per_language, seed=recipe.seed,
            max_evals=shap.during_training_max_evals, batch_size=shap.batch_size, threshold=shap.threshold,
        ))
    return callbacks


@contextlib.contextmanager
def _removed_on_user_error(run_dir: Path) -> Iterator[None]:
    """A run directory this call creates is removed again when setup fails with a UserError."""
    created = not run_dir.exists()
    try:
        yield
    except UserError:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _move_model_files(src: Path, run_dir: Path) -> None:
    """config.json goes last: a folder with it holds every model file (loaders look for it first)."""
    for item in sorted(src.iterdir(), key=lambda item: item.name == "config.json"):
        os.replace(item, run_dir / item.name)


def finetune(
    recipe: Recipe,
    run_dir: str | Path,
    resume: bool = False,
    progress: ProgressFn | None = None,
    callbacks: list | None = None,
    keep_checkpoints: bool = False,
) -> dict[str, Any]:
    """Train the recipe's subset and write the run directory; return metrics."""
    check_local_model(recipe)
    import torch
    from transformers import set_seed

    from langtrainer.training.trainer import LangTrainer

    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    checkpoints = run_dir / CHECKPOINT_DIR
    check_same_recipe(recipe, run_dir)  # a leftover data/ of another recipe must not be reused
    if resume and (run_dir / METRICS_FILE).is_file():
        import json

        logger.info("%s is already finished; nothing to resume", run_dir)
        return json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
    cpu = uses_cpu(recipe)

    set_seed(recipe.seed)
    # Under a multi-process launch the main process writes recipe.yaml, data/,
    # the datasets.map caches and any converted builtin model first; the
    # others wait, then read them (no two processes write the same file).
    with _removed_on_user_error(run_dir):
        with main_process_first(cpu) as is_main:
            if is_main:
                run_dir.mkdir(parents=True, exist_ok=True)
                save_recipe(recipe, run_dir / RECIPE_FILE)
            subsets = prepare_data(recipe, run_dir)
            train_name, validation_name = training_subset_names(recipe)
            label_names = label_names_of(subsets["test"])
            model, tokenizer = load_model_for_classification(recipe, label_names)

            max_length = recipe.model.max_length
            train = tokenize(subsets[train_name], tokenizer, max_length)
            validation = tokenize(subsets[validation_name], tokenizer, max_length) if len(subsets[validation_name]) else None
            test = tokenize(subsets["test"], tokenizer, max_length)
            # Evaluation batches pad to their longest text: in length order they pad little.
            test, test_rows = sort_by_length(test, subsets["test"])
            validation_rows = None
            if validation is not None:
                validation, validation_rows = sort_by_length(validation, subsets[validation_name])

        args = build_training_args(recipe, checkpoints, has_eval=validation is not None)
    all_callbacks = list(callbacks or []) + evaluation_callbacks(recipe, validation_rows)
    if progress is not None:
        all_callbacks.append(_ProgressBridge(progress))
    trainer = LangTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        compute_metrics=(make_compute_metrics(validation_rows, label_names, recipe)  # untokenized: has label
                         if validation_rows is not None else None),
        callbacks=all_callbacks,
        languages=recipe.data.languages or None,
    )
    # The library never prints: drop the Trainer's stdout logger (disable_tqdm installs it).
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    resume_from = None
    if resume and checkpoints.is_dir():
        resume_from = last_complete_checkpoint(checkpoints, remove_incomplete=trainer.is_world_process_zero())
    resumed_step = int(resume_from.name.rpartition("-")[2]) if resume_from is not None else None
    started = time.perf_counter()
    train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    train_seconds = time.perf_counter() - started
    steps_run = trainer.state.global_step - (resumed_step or 0)

    trainer.compute_metrics = None  # it is bound to the validation rows; test metrics come below
    prediction = trainer.predict(test, metric_key_prefix="test")
    test_metrics = evaluate_predictions(prediction.predictions, test_rows, label_names, recipe)
    test_metrics["loss"] = float(prediction.metrics.get("test_loss", float("nan")))

    metrics: dict[str, Any] = {
        "recipe": recipe.name,
        "subset": recipe.imbalance.subset,
        "class_weights_mode": recipe.loss.class_weights,
        "sampler": recipe.data.sampler,
        "seed": recipe.seed,
        "groups": recipe.imbalance.groups,
        "favoured_labels": favoured_labels(recipe, len(label_names)),
        "test_examples": len(test),
        "languages": trainer.languages,
        "label_names": label_names,
        "test": test_metrics,
        "best_validation_loss": trainer.state.best_metric,
        "best_checkpoint": Path(trainer.state.best_model_checkpoint).name if trainer.state.best_model_checkpoint else None,
        "train": {
            "steps": trainer.state.global_step,
            "seconds": train_seconds,
            "steps_per_second": steps_run / train_seconds if train_seconds > 0 else None,
            # Mean loss of the steps this call ran (after a resume: of the resumed steps only).
            "loss": float(train_output.training_loss),
            "resumed_from_step": resumed_step,
            "examples": len(train),
        },
        "class_weights": None if trainer.class_weights is None else trainer.class_weights.tolist(),
        "log_history": trainer.state.log_history,
    }
    staging = run_dir / ".model.tmp"
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)
    # Every process calls save_model (under FSDP / DeepSpeed ZeRO-3 it gathers
    # the sharded weights); only the main process writes: model + tokenizer.
    trainer.save_model(str(staging))
    if trainer.is_world_process_zero():
        (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle; the run dir holds none
        _move_model_files(staging, run_dir)
        staging.rmdir()
        atomic.write_json(run_dir / METRICS_FILE, metrics)
        # After metrics.json: a kill in between leaves spare checkpoints, never a run without them or metrics.
        if not keep_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)
    # No process returns before the run directory is complete.
    wait_for_everyone(cpu)
    del trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return metrics
