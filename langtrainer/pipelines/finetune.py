"""`finetune`: recipe -> subsets -> LangTrainer -> a finished run folder.

The run folder (rundir.RunDir) ends up as a standard HF checkpoint of the
best model (by validation loss) plus the resolved recipe, the subsets and
metrics.json, written last: its presence means the run is complete.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from langtrainer.artifacts import MetricFrame, RunMetrics, StageTimes
from langtrainer.errors import UserError, setting_error
from langtrainer.models.classifier import check_local_model, load_model_for_classification
from langtrainer.recipe import Recipe
from langtrainer.rundir import RunDir
from langtrainer.training.distributed import main_process_first, wait_for_everyone

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, dict[str, float]], None]


def training_subset_names(recipe: Recipe) -> tuple[str, str]:
    """(train split, validation split) of the subsets the recipe trains on.

    As-is data keeps the source's split names; a skew design builds
    train_<subset> / validation_<subset> beside one shared test split.
    """
    subset = recipe.imbalance.subset
    if subset == "none":
        return "train", "validation"
    return f"train_{subset}", f"validation_{subset}"


def prepare_data(recipe: Recipe, run: RunDir):
    """Build the subsets once and keep them in the run folder (reused on resume)."""
    if not run.has_data():
        from langtrainer.data.sampling import build_from_recipe

        subsets, report = build_from_recipe(recipe)
        run.write_subsets(subsets, report)
    return run.load_subsets()


def label_names_of(dataset) -> list[str]:
    feature = dataset.features.get("label")
    names = getattr(feature, "names", None)
    if names:
        return list(names)
    return [str(i) for i in range(int(max(dataset["label"])) + 1)]


def uses_cpu(recipe: Recipe) -> bool:
    """The training arguments' `use_cpu` (default: no CUDA device)."""
    import torch

    return bool(recipe.training.get("use_cpu", not torch.cuda.is_available()))


@dataclass
class Inputs:
    """What the Trainer needs: the model, its tokenizer, and the encoded splits.

    `test_rows` / `validation_rows` are the untokenized rows (label, language)
    in the same length-sorted order as the encoded ones, for the metrics.
    """

    model: Any
    tokenizer: Any
    label_names: list[str]
    train: Any
    validation: Any | None
    validation_rows: Any | None
    test: Any
    test_rows: Any


def prepare_inputs(recipe: Recipe, run: RunDir) -> Inputs:
    """Subsets (built or reused), the model with a fresh head, and the tokenized splits."""
    from langtrainer.training.encoding import sort_by_length, tokenize

    subsets = prepare_data(recipe, run)
    train_name, validation_name = training_subset_names(recipe)
    label_names = label_names_of(subsets["test"])
    model, tokenizer = load_model_for_classification(recipe, label_names)
    max_length = recipe.model.max_length
    train = tokenize(subsets[train_name], tokenizer, max_length)
    # Evaluation batches pad to their longest text: in length order they pad little.
    test, test_rows = sort_by_length(tokenize(subsets["test"], tokenizer, max_length), subsets["test"])
    validation = validation_rows = None
    if validation_name in subsets and len(subsets[validation_name]):
        validation, validation_rows = sort_by_length(
            tokenize(subsets[validation_name], tokenizer, max_length), subsets[validation_name])
    return Inputs(model, tokenizer, label_names, train, validation, validation_rows, test, test_rows)


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


def evaluators_for(recipe: Recipe, validation) -> list:
    """Probe / SHAP evaluators on a fixed validation sample, when the recipe asks."""
    evaluators = []
    probe, shap = recipe.analysis.probe, recipe.analysis.shap
    if validation is None:
        return evaluators
    if probe.during_training_per_language > 0:
        from langtrainer.analysis.probe import ProbeEvaluator

        evaluators.append(ProbeEvaluator.from_frame(
            validation, per_language=probe.during_training_per_language, seed=recipe.seed, C=probe.C,
            folds=probe.folds, feature=probe.feature, layer=probe.layer, max_length=recipe.model.max_length,
        ))
    if shap.during_training_per_language > 0:
        from langtrainer.analysis.shap import ShapEvaluator

        evaluators.append(ShapEvaluator.from_frame(
            validation, per_language=shap.during_training_per_language, seed=recipe.seed,
            max_evals=shap.during_training_max_evals, batch_size=shap.batch_size, threshold=shap.threshold,
        ))
    return evaluators


def build_trainer(recipe: Recipe, run: RunDir, inputs: Inputs, callbacks: list, progress: ProgressFn | None):
    """A LangTrainer on the inputs, checkpointing into the run's checkpoints/."""
    from transformers.trainer_callback import PrinterCallback

    from langtrainer.training.args import build_training_args
    from langtrainer.training.evaluation import make_compute_metrics
    from langtrainer.training.logs import keep_logs_in
    from langtrainer.training.trainer import LangTrainer

    args = build_training_args(recipe, run.checkpoints, has_eval=inputs.validation is not None)
    all_callbacks = list(callbacks)
    if progress is not None:
        all_callbacks.append(_ProgressBridge(progress))
    trainer = LangTrainer(
        model=inputs.model,
        args=args,
        train_dataset=inputs.train,
        eval_dataset=inputs.validation,
        processing_class=inputs.tokenizer,
        compute_metrics=(make_compute_metrics(inputs.validation_rows, inputs.label_names, recipe)
                         if inputs.validation_rows is not None else None),
        callbacks=all_callbacks,
        evaluators=evaluators_for(recipe, inputs.validation_rows),
        languages=recipe.data.languages or None,
    )
    # The library never prints: drop the Trainer's stdout logger (disable_tqdm installs it).
    trainer.remove_callback(PrinterCallback)
    keep_logs_in(trainer, run.logs_dir)  # checkpoints/ is deleted at the end; logs/ stays
    return trainer


def train(trainer, run: RunDir, resume: bool) -> dict[str, Any]:
    """Train (from the last complete checkpoint when resuming); metrics.json's `train` block."""
    resume_from = None
    if resume and run.checkpoints.is_dir():
        resume_from = run.last_complete_checkpoint(remove_incomplete=trainer.is_world_process_zero())
    resumed_step = int(resume_from.name.rpartition("-")[2]) if resume_from is not None else None
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    seconds = time.perf_counter() - started
    steps_run = trainer.state.global_step - (resumed_step or 0)
    return {
        "steps": trainer.state.global_step,
        "seconds": seconds,
        "steps_per_second": steps_run / seconds if seconds > 0 else None,
        # Mean loss of the steps this call ran (after a resume: of the resumed steps only).
        "loss": float(output.training_loss),
        "resumed_from_step": resumed_step,
        "examples": len(trainer.train_dataset),
    }


def test_metrics(trainer, inputs: Inputs, recipe: Recipe, run: RunDir | None = None) -> dict[str, Any]:
    """metrics.json's `test` block: the tidy metric frame of the best model on the test split; with
    `run`, the predictions behind it go to the run's predictions.parquet (main process only)."""
    from langtrainer.training.evaluation import evaluate_predictions, prediction_table
    from langtrainer.training.logs import log_test_metrics

    trainer.compute_metrics = None  # it is bound to the validation rows
    with trainer.inference_predictions() as route:  # the exported forward where exact (models.inference)
        prediction = trainer.predict(inputs.test, metric_key_prefix="test")
    logger.info("test predictions through the %s forward", route)
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    metrics = evaluate_predictions(logits, inputs.test_rows, inputs.label_names, recipe, uncertainty=True)
    if run is not None and trainer.is_world_process_zero():
        # Before metrics.json, which marks the run finished: a finished run always has its predictions.
        run.write_predictions(prediction_table(logits, inputs.test_rows, inputs.label_names))
    metrics["loss"] = float(prediction.metrics.get("test_loss", float("nan")))
    metrics["ce"] = float(prediction.metrics.get("test_ce", float("nan")))
    for key in ("language_adversary_loss", "language_adversary_accuracy"):  # loss.language_adversary on
        if f"test_{key}" in prediction.metrics:
            metrics[key] = float(prediction.metrics[f"test_{key}"])
    log_test_metrics(trainer, metrics)  # through the Trainer's loggers (TensorBoard: test/...)
    return metrics


def run_metrics(recipe: Recipe, trainer, inputs: Inputs, train_block: dict[str, Any],
                run: RunDir | None = None) -> RunMetrics:
    """Everything metrics.json holds."""
    from langtrainer.training.evaluation import favoured_labels, favoured_labels_from_training

    state = trainer.state
    favoured = favoured_labels(recipe, len(inputs.label_names))
    # As-is data has no design: each language's favoured labels come from its training rows.
    favoured_by = "group" if favoured else "language"
    if not favoured:
        favoured = favoured_labels_from_training(inputs.train["labels"], inputs.train["language"],
                                                 len(inputs.label_names))
    return RunMetrics(
        recipe=recipe.name,
        subset=recipe.imbalance.subset,
        class_weights_mode=recipe.loss.class_weights,
        sampler=recipe.data.sampler,
        seed=recipe.seed,
        groups=recipe.imbalance.groups,
        favoured_labels=favoured,
        favoured_labels_by=favoured_by,
        test_examples=len(inputs.test),
        languages=trainer.languages,
        label_names=inputs.label_names,
        test=MetricFrame.from_dict(test_metrics(trainer, inputs, recipe, run)),
        best_validation_loss=state.best_metric,
        best_checkpoint=Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
        train=train_block,
        class_weights=None if trainer.class_weights is None else trainer.class_weights.tolist(),
        log_history=state.log_history,
    )


def publish(trainer, run: RunDir, metrics: RunMetrics, keep_checkpoints: bool) -> None:
    """Best model, then metrics.json, then (unless kept) the checkpoints go."""
    if trainer.is_world_process_zero():
        shutil.rmtree(run.staging, ignore_errors=True)
    # Every process calls save_model (under FSDP / DeepSpeed ZeRO-3 it gathers
    # the sharded weights); only the main process writes: model + tokenizer.
    trainer.save_model(str(run.staging))
    if trainer.is_world_process_zero():
        run.install_model(run.staging)
        run.write_metrics(metrics)
        from langtrainer.reporting.model_card import write_model_card

        write_model_card(run)
        # After metrics.json: a kill in between leaves spare checkpoints, never a run without them or metrics.
        if not keep_checkpoints:
            shutil.rmtree(run.checkpoints, ignore_errors=True)


def check_run(recipe: Recipe, run: RunDir, resume: bool, resume_inexact: bool = False, locked: bool = False) -> None:
    """Everything about the run folder that must hold before (and again once it is locked) a run writes."""
    if not locked:
        run.check_not_in_use()
    from langtrainer.preflight import user_path

    user_path(run.path, "output_dir")
    run.check_writable(resume)
    run.check_recipe(recipe)  # a leftover data/ of another recipe must not be reused
    run.check_identity(recipe)
    if resume and run.is_finished() and not run.has_model():
        raise UserError(f"'{run.path}' has {run.METRICS} but no model ({run.MODEL_CONFIG}): the run is damaged; "
                        "delete the folder and train again")
    if resume and not run.is_finished() and run.has_checkpoints():
        checkpoint = run.last_complete_checkpoint()
        if checkpoint is not None:
            from langtrainer.models.folder import check_model_folder

            try:
                check_model_folder(checkpoint)  # whole weights, or the Trainer fails deep inside loading them
            except UserError as exc:
                raise UserError(f"cannot resume: {exc}; delete {checkpoint.name} to resume from an earlier "
                                "checkpoint") from None
        if checkpoint is not None and not run.resume_state_is_exact(checkpoint) and not resume_inexact:
            raise setting_error(f"'{checkpoint}' has no random-number state (rng_state.pth), so resuming would not "
                                "give the uninterrupted run's result: pass {resume_inexact} to continue anyway",
                                "resume_inexact")


@dataclass
class PreparedRun:
    """What `finetune` needs, checked before anything slow is imported (`prepare`)."""

    recipe: Recipe
    run_dir: Path


def prepare(recipe_path: str | Path, overrides: list[str] | tuple[str, ...] = (), output_dir: str | Path | None = None,
            subset: str | None = None) -> PreparedRun:
    """The recipe loaded (`subset` as one more override), its model reference and max length checked,
    the run folder named (runs/<rundir.default_run_name>) unless given, and checked as a folder."""
    from langtrainer.preflight import check_machine_bounds, check_model_max_length, check_output_folder
    from langtrainer.recipe import load_recipe
    from langtrainer.rundir.naming import default_run_name

    overrides = list(overrides)
    if subset is not None:
        if subset not in ("none", "balanced", "imbalanced"):
            raise setting_error(f"{{subset}} must be none, balanced or imbalanced, got {subset!r}", "subset")
        overrides.append(f"imbalance.subset={subset}")
    recipe = load_recipe(recipe_path, overrides)
    check_local_model(recipe)  # before the slow imports: a typo in the model path fails in a second
    check_model_max_length(recipe)
    check_machine_bounds(recipe)
    run_dir = Path(output_dir) if output_dir else Path("runs") / default_run_name(recipe)
    check_output_folder(run_dir, "output_dir")
    return PreparedRun(recipe, run_dir)


class _StageClock:
    """Wall-clock seconds of consecutive stages."""

    def __init__(self):
        self.stages: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = round(now - self.last, 2)
        self.last = now


def finetune(
    recipe: Recipe,
    run_dir: str | Path,
    resume: bool = False,
    progress: ProgressFn | None = None,
    callbacks: list | None = None,
    keep_checkpoints: bool = False,
    resume_inexact: bool = False,
    prepared: bool = False,
) -> RunMetrics:
    """Train the recipe's training split and write the run folder; return metrics.json's content.

    The main process holds the folder's lock from its first check to the
    last file (a second `finetune` into it fails at once). `resume_inexact`
    resumes from a checkpoint without its random-number state. `prepared`:
    the recipe comes from `prepare`, whose checks are not repeated.
    """
    from langtrainer.preflight import check_machine_bounds, check_model_max_length
    from langtrainer.recipe import check_recipe
    from langtrainer.training.distributed import is_main_process

    resume = resume or resume_inexact
    if not prepared:
        check_recipe(recipe)  # a Recipe built in code gets the recipe reader's checks too
        check_local_model(recipe)
        check_model_max_length(recipe)
        check_machine_bounds(recipe)
    import torch
    from transformers import set_seed

    run = RunDir(run_dir)
    main = is_main_process()
    # The other processes of a multi-process launch check nothing here: the main
    # process holds the folder's lock (they would see it "in use") and writes into
    # it while they start; the launching command checked the folder before launch.
    if main:
        check_run(recipe, run, resume, resume_inexact)  # before the folder is made: a refusal leaves nothing
    if resume and run.is_finished():
        logger.info("%s is already finished; nothing to resume", run.path)
        return run.read_metrics()
    cpu = uses_cpu(recipe)
    with run.claim() if main else contextlib.nullcontext():
        if main:
            check_run(recipe, run, resume, resume_inexact, locked=True)  # again: no other command writes here now
        clock = _StageClock()
        set_seed(recipe.seed)
        # Under a multi-process launch the main process writes recipe.yaml, data/,
        # the datasets.map caches and any converted builtin model first; the
        # others wait, then read them (no two processes write the same file).
        with main_process_first(cpu) as is_main:
            if is_main:
                run.write_recipe(recipe)
            inputs = prepare_inputs(recipe, run)
            if is_main:
                run.write_identity(recipe)
        clock.lap("data")
        trainer = build_trainer(recipe, run, inputs, callbacks or [], progress)
        clock.lap("model")
        train_block = train(trainer, run, resume)
        clock.lap("train")
        metrics = run_metrics(recipe, trainer, inputs, train_block, run)
        clock.lap("test")
        publish(trainer, run, metrics, keep_checkpoints)
        clock.lap("save")
        if main:
            run.write_stage_times(StageTimes(clock.stages, resumed=train_block["resumed_from_step"] is not None))
    # No process returns before the run folder is complete.
    wait_for_everyone(cpu)
    del trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return metrics
