"""Latent-space language identification probe (paper Section 2.2, Tables 4 and 7).

How identifiable is the input language from a model's sentence features? A
logistic regression predicts the language from first-token embeddings, scored
by stratified k-fold cross-validation. A model that learned "language =>
label" from language-specific class imbalance separates languages more.

Regularisation: the paper's text says "sklearn's default parameters"
(C = 1.0), but its released code fits `LogisticRegressionCV(Cs=1, cv=5,
max_iter=1000)`, and `Cs=1` means the single value C = 1e-4, a heavily
regularised probe. That is what produces its accuracies between 0.3 and 0.93;
with C = 1.0 the probe saturates near 1.0 even on a pretrained model and shows
no difference. So C defaults to 1e-4 here, and `probe_c_sweep` reports the
accuracy over a range of C so a user sees where two models differ.

Features are not standardised by default, as in the paper's code (with C this
small, standardising changes the result a lot, because the penalty then acts
on a different scale); `standardize=True` puts a StandardScaler, fitted on the
training folds only, in front of the regression.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from langtrainer.training.evaluator import Evaluator

from langtrainer import defaults
from langtrainer.analysis.embeddings import FEATURES, extract_embeddings, num_hidden_layers
from langtrainer.artifacts import ProbeModelBlock, ProbeReport
from langtrainer.data.stratified import sample_per_language
from langtrainer.errors import UserError

logger = logging.getLogger(__name__)

PAPER_C = defaults.PROBE_C
DEFAULT_C_SWEEP = defaults.PROBE_C_SWEEP
EXTERNAL_SOURCE = defaults.EXTERNAL_CORPUS  # the builtin stand-in for Wikipedia


@dataclass
class ProbeResult:
    """Cross-validated language-identification scores for one feature matrix.

    accuracy_std is the population standard deviation over folds (as
    `cross_val_score(...).std()`). Recall and the confusion matrix pool the
    out-of-fold predictions; confusion rows are true languages, columns
    predicted, both in `languages` order. chance_accuracy is the share of the
    most frequent language (what a constant guess scores).
    """

    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: list[float]
    languages: list[str]
    n_per_language: dict[str, int]
    recall_per_language: dict[str, float]
    confusion: list[list[int]]
    chance_accuracy: float
    converged: bool
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_inputs(features: np.ndarray, languages: Sequence[str], folds: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2:
        raise UserError(f"features must be a 2-D array [n, hidden], got shape {X.shape}")
    labels = [str(lang) for lang in languages]
    if len(labels) != X.shape[0]:
        raise UserError(f"{X.shape[0]} feature rows but {len(labels)} languages")
    if not np.isfinite(X).all():
        raise UserError("features contain NaN or infinite values")
    names = sorted(set(labels))
    if len(names) < 2:
        raise UserError(f"the probe needs at least 2 languages, got {names}")
    if folds < 2:
        raise UserError("folds must be at least 2")
    y = np.array([names.index(lang) for lang in labels])
    counts = np.bincount(y, minlength=len(names))
    if counts.min() < folds:
        short = names[int(counts.argmin())]
        raise UserError(
            f"language {short!r} has {int(counts.min())} examples, fewer than folds={folds}: "
            "add examples or lower --folds"
        )
    return X, y, names


def _make_classifier(C: float, max_iter: int, standardize: bool, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regression = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    return make_pipeline(StandardScaler(), regression) if standardize else regression


def check_probe_options(C: float | None, folds: int | None, per_language: int | None, batch_size: int,
                        seed: int | None,
                        ckpt: str | None = None) -> None:
    """The probe's numbers (and a local --ckpt's existence), checked before any model is loaded."""
    from langtrainer.models import looks_like_local_path
    from langtrainer.preflight import check_positive, check_seed

    if ckpt is not None and not ckpt.startswith("builtin:") and not Path(ckpt).expanduser().exists() \
            and looks_like_local_path(ckpt):
        raise UserError(f"--ckpt '{ckpt}' does not exist: give a run folder, an HF model folder or builtin:NAME")

    # None: not given here (the run's recipe or a default decides, and is checked then).
    if C is not None:
        check_positive(C, "--C")
    if folds is not None and folds < 2:
        raise UserError(f"--folds must be at least 2, got {folds}")
    if per_language is not None:
        check_positive(per_language, "--per-language", integer=True)
    check_positive(batch_size, "--batch-size", integer=True)
    if seed is not None:
        check_seed(seed)


def probe_language(
    features: np.ndarray,
    languages: Sequence[str],
    C: float = PAPER_C,
    folds: int = 5,
    seed: int = 0,
    max_iter: int = defaults.PROBE_MAX_ITER,
    standardize: bool = False,
    blas_threads: int | None = 1,
) -> ProbeResult:
    """Language-identification accuracy of a logistic regression under stratified k-fold CV.

    Folds are shuffled with `seed`, so the same inputs give the same numbers.
    The fits use `blas_threads` BLAS threads (None: the library's default):
    on these small matrices more threads only wait and contend, 3-10x slower
    on 2 cores (bench/bench_probe_blas.py).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    if not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
        raise UserError(f"C must be a finite number > 0, got {C}")
    X, y, names = _check_inputs(features, languages, folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted = np.empty_like(y)
    fold_accuracies: list[float] = []
    converged = True
    with threadpool_limits(blas_threads, user_api="blas"):
        for train_idx, test_idx in splitter.split(X, y):
            classifier = _make_classifier(C, max_iter, standardize, seed)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                classifier.fit(X[train_idx], y[train_idx])
            if any(issubclass(w.category, ConvergenceWarning) for w in caught):
                converged = False
            predicted[test_idx] = classifier.predict(X[test_idx])
            fold_accuracies.append(float(np.mean(predicted[test_idx] == y[test_idx])))
    if not converged:
        logger.warning("logistic regression did not converge in %d iterations (C=%g)", max_iter, C)

    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    counts = confusion.sum(axis=1)
    return ProbeResult(
        accuracy_mean=float(np.mean(fold_accuracies)),
        accuracy_std=float(np.std(fold_accuracies)),
        fold_accuracies=fold_accuracies,
        languages=names,
        n_per_language={name: int(counts[i]) for i, name in enumerate(names)},
        recall_per_language={name: float(confusion[i, i] / counts[i]) for i, name in enumerate(names)},
        confusion=confusion.tolist(),
        chance_accuracy=float(counts.max() / counts.sum()),
        converged=converged,
        settings={
            "C": float(C),
            "folds": int(folds),
            "seed": int(seed),
            "max_iter": int(max_iter),
            "standardize": bool(standardize),
            "classifier": "sklearn LogisticRegression (lbfgs, multinomial)",
            "cv": "StratifiedKFold(shuffle=True, random_state=seed)",
        },
    )


def probe_c_sweep(
    features: np.ndarray,
    languages: Sequence[str],
    Cs: Sequence[float] = DEFAULT_C_SWEEP,
    folds: int = 5,
    seed: int = 0,
    max_iter: int = defaults.PROBE_MAX_ITER,
    standardize: bool = False,
) -> list[ProbeResult]:
    """`probe_language` at each C (same folds), to show where a probe saturates."""
    return [
        probe_language(features, languages, C=c, folds=folds, seed=seed, max_iter=max_iter, standardize=standardize)
        for c in Cs
    ]


# --------------------------------------------------------------------------- data


def _clean_frame(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in ("text", "language") if c not in frame.columns]
    if missing:
        raise UserError(
            f"{source} has no {' or '.join(repr(c) for c in missing)} column "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    columns = ["text", "language"] + (["text_pair"] if "text_pair" in frame.columns else [])
    frame = frame[columns].copy()
    frame = frame[frame["text"].notna() & (frame["text"].astype(str).str.strip() != "")]
    frame["text"] = frame["text"].astype(str)
    frame["language"] = frame["language"].astype(str)
    if "text_pair" in frame.columns:
        if frame["text_pair"].isna().all():
            frame = frame.drop(columns="text_pair")
        else:
            frame["text_pair"] = frame["text_pair"].fillna("").astype(str)
    return frame.reset_index(drop=True)


def run_dir_test_frame(model_dir: str | Path) -> pd.DataFrame | None:
    """The balanced test split that `finetune` saved in model_dir/data, or None."""
    data_dir = Path(model_dir) / "data"
    if not data_dir.is_dir():
        return None
    import datasets

    try:
        subsets = datasets.load_from_disk(str(data_dir))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(subsets, datasets.DatasetDict) or "test" not in subsets:
        return None
    return subsets["test"].to_pandas()


def run_languages(model_dir: str | Path) -> list[str] | None:
    """The languages a run was fine-tuned on: its recipe's data.languages, else its metrics', else its test split's."""
    from langtrainer.rundir import RunDir

    run = RunDir(model_dir)
    try:
        metrics = run.read_metrics()
    except UserError:  # a damaged metrics.json: the recipe or the test split still say
        metrics = None
    for value in (run.recipe_value("data", "languages"), metrics.languages if metrics else None):
        if isinstance(value, list) and value:
            return [str(lang) for lang in value]
    test = run_dir_test_frame(model_dir)
    if test is not None and "language" in test.columns:
        return sorted(test["language"].astype(str).unique())
    return None


def probe_texts(
    model_dir: str | Path,
    data: str,
    per_language: int | None,
    languages: Sequence[str] | None,
    seed: int,
    external: str = EXTERNAL_SOURCE,
    external_configs: Mapping[str, str] | str | None = None,
) -> tuple[pd.DataFrame, str]:
    """The texts to probe on and a description of where they came from.

    data "test": the run directory's test split; "external": the corpus
    `external` (with `external_configs`, one config per language, e.g.
    wikimedia/wikipedia's 20231101.<lang>); else a table of texts (any format
    `load_examples` reads). `languages` None means the run's fine-tuning
    languages (those the data has); languages that are asked for must all be
    there. `per_language` caps every source.
    """
    asked = [str(lang) for lang in languages] if languages is not None else None
    wanted = asked
    if data != "test" and wanted is None:
        wanted = run_languages(model_dir)
        if wanted is not None:
            logger.info("probe restricted to the fine-tuning languages %s", wanted)
    if data == "external" and external_configs and wanted is None and isinstance(external_configs, Mapping):
        wanted = sorted(external_configs)
    frame, source = _read_probe_source(model_dir, data, external, external_configs, wanted, per_language, seed)
    frame = _clean_frame(frame, source)
    wanted = _check_probe_languages(frame, source, asked, wanted)
    frame = sample_per_language(frame, per_language, seed, asked if asked is not None else wanted)
    if per_language is not None and data == "external":
        counts = frame["language"].value_counts()
        short = {lang: int(n) for lang, n in counts.items() if n < per_language}
        if short:
            logger.warning("fewer than %d external texts for %s", per_language, short)
    return frame, source


def _read_probe_source(model_dir, data: str, external: str, external_configs, wanted: list[str] | None,
                       per_language: int | None, seed: int) -> tuple[pd.DataFrame, str]:
    """The raw texts of `data` (see probe_texts) and a description of their source."""
    from langtrainer.analysis.probe_corpus import describe_source, load_config_corpus, load_table_texts

    if data == "test":
        frame = run_dir_test_frame(model_dir)
        if frame is None:
            raise UserError(
                f"--data test needs a run directory with a saved test split ({model_dir}/data); "
                "use --data external or a file"
            )
        return frame, f"{Path(model_dir) / 'data'} [test]"
    if data != "external":
        return load_table_texts(data), str(data)
    if not external_configs:
        return load_table_texts(external), external
    if external.startswith("builtin:") or Path(external).is_file():
        raise UserError(
            f"external_configs names per-language configs of a Hub id or Hub-shaped folder, but {external} is "
            "one table: set analysis.probe.external_configs to null"
        )
    return load_config_corpus(external, external_configs, wanted or [], per_language, seed), \
        describe_source(external, external_configs)


def _check_probe_languages(frame: pd.DataFrame, source: str, asked: list[str] | None,
                           wanted: list[str] | None) -> list[str] | None:
    """Languages asked for must all be there; of the fine-tuning languages, those that are (at least one)."""
    available = sorted(frame["language"].unique())
    if asked is not None:
        absent = [lang for lang in asked if lang not in available]
        if absent:
            raise UserError(f"{source} has no text in {', '.join(absent)} (it has: {', '.join(available)})")
        return wanted
    if wanted is None:
        return None
    absent = [lang for lang in wanted if lang not in available]
    if absent:
        logger.warning("%s has no text in the fine-tuning language(s) %s", source, ", ".join(absent))
    wanted = [lang for lang in wanted if lang in available]
    if not wanted:
        raise UserError(
            f"{source} has none of the fine-tuning languages (it has: {', '.join(available)}); "
            "choose some with --languages"
        )
    return wanted


# --------------------------------------------------------------------------- models


def resolve_model(name_or_path: str | Path) -> str | Path:
    """A local folder (run directory or HF folder), the cached folder of a `builtin:` model, or a Hub id."""
    from langtrainer.models import resolve_model_path

    resolved = resolve_model_path(str(name_or_path))
    if isinstance(resolved, Path) and resolved.is_dir() and not (resolved / "config.json").is_file():
        raise UserError(
            f"'{name_or_path}' holds no model (no config.json): give a finished run directory, "
            "an HF model folder or builtin:NAME"
        )
    return resolved


def load_encoder(model_dir: str | Path):
    """(model, tokenizer, pooler_trained) from an HF folder, in eval mode.

    A sequence-classification checkpoint is loaded with its head (its
    `base_model` is what gets probed); anything else as a bare `AutoModel`.
    pooler_trained is False when the pooler weights were missing from the
    checkpoint (randomly initialised, e.g. the converted multilingual-e5).
    """
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    from langtrainer.models import check_model_folder, load_tokenizer

    if Path(model_dir).expanduser().is_dir():
        check_model_folder(Path(model_dir).expanduser())  # whole weights before transformers reads them
        load_tokenizer(Path(model_dir).expanduser())  # present, a tokenizer, and within the embeddings
    try:
        config = AutoConfig.from_pretrained(model_dir)
        architectures = config.architectures or []
        loader = (
            AutoModelForSequenceClassification
            if any(a.endswith("ForSequenceClassification") for a in architectures)
            else AutoModel
        )
        model, info = loader.from_pretrained(model_dir, output_loading_info=True)
        tokenizer = load_tokenizer(model_dir)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a model from {model_dir}: {str(exc).splitlines()[0]}") from None
    model.eval()
    pooler_trained = not any("pooler" in key for key in info.get("missing_keys", ()))
    return model, tokenizer, pooler_trained


def _recipe_max_length(model_dir: str | Path) -> int | None:
    """The run's training max length (its recipe's model.max_length), None for a folder without a recipe."""
    from langtrainer.rundir import RunDir

    value = RunDir(model_dir).recipe_value("model", "max_length")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# --------------------------------------------------------------------------- run


def _summary(result: ProbeResult) -> dict[str, Any]:
    return {
        "accuracy_mean": result.accuracy_mean,
        "accuracy_std": result.accuracy_std,
        "fold_accuracies": result.fold_accuracies,
        "converged": result.converged,
    }


def _probe_model(
    name: str,
    frame: pd.DataFrame,
    layer: int | str,
    feature: str,
    probe_kwargs: dict[str, Any],
    c_sweep: Sequence[float] | None,
    batch_size: int,
    max_length: int | None,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    """Embed `frame` with one model and probe it; the per-model block of probe.json."""
    model_dir = resolve_model(name)
    model, tokenizer, pooler_trained = load_encoder(model_dir)
    if feature == "pooler" and not pooler_trained:
        raise UserError(
            f"{name} has no trained pooler (its pooler weights are not in the checkpoint): "
            "use --feature first-token or mean"
        )
    if max_length is None:
        max_length = _recipe_max_length(model_dir) or 512
    n_layers = num_hidden_layers(model)
    layers: list[int] | str = "all" if layer == "all" else [int(layer)]
    started = time.perf_counter()
    embeddings = extract_embeddings(
        model,
        tokenizer,
        frame["text"].tolist(),
        text_pairs=frame["text_pair"].tolist() if "text_pair" in frame.columns else None,
        layers=layers,
        feature=feature,  # type: ignore[arg-type]
        batch_size=batch_size,
        max_length=max_length,
        progress=(lambda done, total: progress(done)) if progress is not None else None,
    )
    embedding_s = time.perf_counter() - started
    del model

    languages = frame["language"].tolist()
    started = time.perf_counter()
    per_layer = {key: probe_language(matrix, languages, **probe_kwargs) for key, matrix in embeddings.items()}
    primary_key = n_layers if layer == "all" else int(layer)
    primary = per_layer[primary_key]
    sweep = None
    if c_sweep:
        kwargs = {k: v for k, v in probe_kwargs.items() if k != "C"}
        # The headline C is already fitted (same folds, same seed): not twice.
        others = [c for c in c_sweep if c != primary.settings["C"]]
        fitted = {r.settings["C"]: r for r in probe_c_sweep(embeddings[primary_key], languages, Cs=others, **kwargs)}
        fitted[primary.settings["C"]] = primary
        sweep = [{"C": float(c), **_summary(fitted[float(c)])} for c in c_sweep]
    probe_s = time.perf_counter() - started
    return {
        "model": str(name),
        "model_path": str(model_dir),
        "num_hidden_layers": n_layers,
        "max_length": max_length,
        "layer": primary_key,
        "accuracy_mean": primary.accuracy_mean,
        "accuracy_std": primary.accuracy_std,
        "result": primary.to_dict(),
        "layers": [{"layer": key, **_summary(r)} for key, r in per_layer.items()] if layer == "all" else None,
        "c_sweep": sweep,
        "seconds": {"embedding": round(embedding_s, 3), "probe": round(probe_s, 3)},
    }


def run_probe(
    model_path: str | Path,
    data: str = "test",
    layer: int | str = -1,
    feature: str = "first-token",
    folds: int = 5,
    per_language: int | None = 1000,
    C: float = PAPER_C,
    languages: Sequence[str] | None = None,
    compare_base: str | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    c_sweep: Sequence[float] | None = None,
    standardize: bool = False,
    max_iter: int = defaults.PROBE_MAX_ITER,
    batch_size: int = 64,
    max_length: int | None = None,
    external: str = EXTERNAL_SOURCE,
    external_configs: Mapping[str, str] | str | None = None,
) -> ProbeReport:
    """Probe a fine-tuned run (or any encoder) for language identifiability; the probe JSON's object.

    data: "test" (the run's balanced test split), "external" (the corpus
    `external`, by default the builtin Debian Reference paragraphs, in the
    fine-tuning languages: the paper's "Wikipedia" column; a Hub id or
    Hub-shaped folder with `external_configs` reads one config per language)
    or a path to a table of texts. layer: an index into the hidden states
    (-1 = last) or "all" for the layer-by-layer curve (headline numbers are
    then the last layer's). compare_base: a base model probed on the same
    texts with the same settings, reported under "base". c_sweep: Cs for an
    accuracy-over-C table at the headline layer. progress(done, total) counts
    embedded examples over all models.
    """
    if feature not in FEATURES:
        raise UserError(f"unknown feature {feature!r}; choose one of {', '.join(FEATURES)}")
    if layer != "all":
        try:
            layer = int(layer)
        except (TypeError, ValueError):
            raise UserError(f"layer must be an integer or 'all', got {layer!r}") from None
    model_dir = resolve_model(model_path)
    frame, source = probe_texts(model_dir, str(data), per_language, languages, seed, external=external,
                                external_configs=external_configs)
    n_models = 2 if compare_base else 1
    total = len(frame) * n_models
    probe_kwargs = {"C": C, "folds": folds, "seed": seed, "max_iter": max_iter, "standardize": standardize}
    # Fail on bad probe inputs (too few examples per language) before any embedding.
    _check_inputs(np.zeros((len(frame), 1)), frame["language"].tolist(), folds)

    def step(offset: int) -> Callable[[int], None] | None:
        if progress is None:
            return None
        return lambda done: progress(offset + done, total)

    block = _probe_model(
        str(model_path), frame, layer, feature, probe_kwargs, c_sweep, batch_size, max_length, step(0)
    )
    base_block = None
    if compare_base:
        base_block = _probe_model(
            compare_base, frame, layer, feature, probe_kwargs, c_sweep, batch_size, max_length, step(len(frame))
        )
    counts = frame["language"].value_counts()
    return ProbeReport(
        data=str(data),
        data_source=source,
        feature=feature,
        layer_requested=layer,
        settings={**probe_kwargs, "per_language": per_language, "batch_size": batch_size},
        languages=sorted(counts.index.tolist()),
        n_examples=int(len(frame)),
        n_per_language={lang: int(counts[lang]) for lang in sorted(counts.index)},
        block=ProbeModelBlock.from_dict(block),
        base=None if base_block is None else ProbeModelBlock.from_dict(base_block),
    )


# --------------------------------------------------------------------------- training-time metric


class ProbeEvaluator(Evaluator):
    """Language-identification accuracy as an evaluation metric during fine-tuning.

    LangTrainer calls `compute_eval_metrics` inside `evaluate()` and logs the
    returned keys with the `eval_` prefix (eval_lid_accuracy,
    eval_lid_accuracy_std), so the probe is logged like any other metric.
    The sample (texts, languages) is fixed at construction so that numbers
    are comparable across evaluations.
    """

    def __init__(
        self,
        texts: Sequence[str],
        languages: Sequence[str],
        text_pairs: Sequence[str] | None = None,
        C: float = PAPER_C,
        folds: int = 5,
        seed: int = 0,
        feature: str = "first-token",
        layer: int = -1,
        batch_size: int = 64,
        max_length: int = 512,
        max_iter: int = defaults.PROBE_MAX_ITER,
        standardize: bool = False,
        metric_prefix: str = "lid",
    ):
        self.texts = [str(t) for t in texts]
        self.languages = [str(lang) for lang in languages]
        self.text_pairs = [str(t) for t in text_pairs] if text_pairs is not None else None
        if len(self.texts) != len(self.languages):
            raise UserError(f"{len(self.texts)} texts but {len(self.languages)} languages")
        _check_inputs(np.zeros((len(self.texts), 1)), self.languages, folds)
        if feature not in FEATURES:
            raise UserError(f"unknown feature {feature!r}; choose one of {', '.join(FEATURES)}")
        self.C, self.folds, self.seed = C, folds, seed
        self.feature, self.layer = feature, int(layer)
        self.batch_size, self.max_length = batch_size, max_length
        self.max_iter, self.standardize = max_iter, standardize
        self.metric_prefix = metric_prefix

    @classmethod
    def from_frame(cls, frame, per_language: int = 200, seed: int = 0, **kwargs) -> "ProbeEvaluator":
        """A callback on up to `per_language` rows per language of a DataFrame or datasets.Dataset."""
        if not isinstance(frame, pd.DataFrame):
            frame = frame.to_pandas()
        sample = sample_per_language(_clean_frame(frame, "probe sample"), per_language, seed)
        pairs = sample["text_pair"].tolist() if "text_pair" in sample.columns else None
        return cls(sample["text"].tolist(), sample["language"].tolist(), text_pairs=pairs, seed=seed, **kwargs)

    def compute_eval_metrics(self, model, tokenizer) -> dict[str, float]:
        if tokenizer is None:
            raise UserError("ProbeCallback needs the tokenizer (pass processing_class to the trainer)")
        was_training = model.training
        try:
            features = extract_embeddings(
                model,
                tokenizer,
                self.texts,
                text_pairs=self.text_pairs,
                layers=[self.layer],
                feature=self.feature,  # type: ignore[arg-type]
                batch_size=self.batch_size,
                max_length=self.max_length,
            )[self.layer]
        finally:
            model.train(was_training)
        result = probe_language(
            features,
            self.languages,
            C=self.C,
            folds=self.folds,
            seed=self.seed,
            max_iter=self.max_iter,
            standardize=self.standardize,
        )
        return {
            f"{self.metric_prefix}_accuracy": result.accuracy_mean,
            f"{self.metric_prefix}_accuracy_std": result.accuracy_std,
        }
