"""`run_shap`: explain (a subsample of) a run's split into a resumable output folder.

`plan_shap` does every check and every read (options, model folder, output
folder, data, tokenizer) and writes nothing, so that a user error leaves no
file behind; `sharded.compute_shards` then does the work.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from langtrainer.analysis.shap.engine import Progress
from langtrainer.analysis.shap.masker import model_max_length
from langtrainer.analysis.shap.options import ShapOptions
from langtrainer.analysis.shap.store import arguments_hash, model_fingerprint
from langtrainer.data.stratified import stratified_subsample
from langtrainer.errors import UserError, setting_error
from langtrainer.rundir import RunDir
from langtrainer.rundir.subsets import is_subsets_folder

# `id` is optional: without one, an example's id is its row number in the split ("0", "1", ...).
REQUIRED_COLUMNS = ("text", "label", "language")


@dataclass
class ShapPlan:
    """Everything `compute_shards` needs, checked: the sorted sample and the manifest's contents."""

    ckpt: Path
    out: Path
    sample: Any  # pandas.DataFrame, sorted by token count then id
    token_counts: list[int]
    options: ShapOptions  # resolved: every value set (subsample may stay None: every row)
    sources: dict[str, str]
    arguments: dict[str, Any]
    label_names: list[str]
    tokenizer: Any

    @property
    def ids(self) -> list[str]:
        return self.sample["id"].tolist()

    @property
    def arguments_hash(self) -> str:
        return arguments_hash(self.arguments)

    @property
    def has_pairs(self) -> bool:
        return "text_pair" in self.sample.columns


def run_shap(
    ckpt: str | os.PathLike,
    options: ShapOptions | None = None,
    *,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    progress: Progress | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    columns: Mapping[str, str] | None = None,
) -> Path:
    """Explain a run's split and write OUT/manifest.json + OUT/shards/*.parquet; return OUT.

    `options` unset values come from the run's recipe, else the defaults
    (see `ShapOptions`). `data` defaults to the run's data/, `out` to its
    shap/; `columns` maps text/label/language/id/text_pair to other column
    names of `data`. Rerun with the same arguments and valid shards are kept: an
    interrupted or damaged run is completed. Under a multi-process launch
    (rank/world_size, default from the launcher's environment) each process
    computes its share of the shards; the result is the same as in one.
    """
    from langtrainer.analysis.shap.sharded import compute_shards

    run = RunDir(ckpt)
    with run.read_lock():  # no finetune writes the run while it is explained
        plan = plan_shap(run, options or ShapOptions(), data=data, out=out, columns=columns)
        return compute_shards(plan, progress=progress, rank=rank, world_size=world_size)


def plan_shap(run: RunDir, options: ShapOptions, data=None, out=None,
              columns: Mapping[str, str] | None = None) -> ShapPlan:
    """Check and load everything `run_shap` needs, writing nothing."""
    from transformers import AutoConfig

    from langtrainer.models import check_model_folder, load_tokenizer

    ckpt = run.path
    if not ckpt.is_dir():
        from langtrainer.preflight import user_path

        user_path(ckpt, "ckpt")
    if not ckpt.is_dir() or not run.has_model():
        raise setting_error(f"{{ckpt}} {ckpt} is not a model folder (no config.json): give a run folder written by finetune", "ckpt")
    check_model_folder(ckpt)
    tokenizer = load_tokenizer(ckpt)  # present and consistent with the embeddings, before the data is read
    resolved, sources = options.resolve(run)
    out_dir = check_output_dir(Path(out).expanduser() if out is not None else run.shap_dir)
    data_path = Path(data).expanduser() if data is not None else run.data_path
    id2label = json.loads(run.model_config_path.read_text(encoding="utf-8")).get("id2label") or {}
    label_names = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label))]
    frame = load_split(data_path, resolved.split, columns)
    frame["label"] = label_indices(frame["label"], label_names, f"{data_path} ({resolved.split})",
                                   ids_are_classes=is_subsets_folder(data_path))
    sample = stratified_subsample(frame, resolved.subsample, resolved.seed)
    config = AutoConfig.from_pretrained(ckpt)
    limit = model_max_length(config, tokenizer)
    if resolved.max_length is None:
        resolved = replace(resolved, max_length=limit)
    elif resolved.max_length > limit:
        raise setting_error(f"max_length {resolved.max_length} ({sources['max_length']}) exceeds the model's {limit} "
                        "positions; give {max_length} at most that", "max_length")
    sample, token_counts = _sorted_by_length(sample, tokenizer)
    ids = sample["id"].tolist()
    arguments = {
        "ckpt": str(ckpt.resolve()),
        "model_fingerprint": model_fingerprint(ckpt),
        "data": str(data_path.resolve()),
        "split": resolved.split,
        "subsample": resolved.subsample,
        "seed": resolved.seed,
        "max_evals": resolved.max_evals,
        "max_length": resolved.max_length,
        "shard_size": resolved.shard_size,
        "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16],
    }
    if columns:
        arguments["columns"] = dict(sorted(columns.items()))
    return ShapPlan(ckpt=ckpt, out=out_dir, sample=sample, token_counts=token_counts, options=resolved,
                    sources=sources, arguments=arguments, label_names=label_names, tokenizer=tokenizer)


def _sorted_by_length(sample, tokenizer):
    """The sample by token count (then id), so that shards and pools hold texts of similar length."""
    texts = sample["text"].astype(str).tolist()
    if "text_pair" in sample.columns:
        encoded = tokenizer(texts, sample["text_pair"].astype(str).tolist())["input_ids"]
    else:
        encoded = tokenizer(texts)["input_ids"]
    sample = sample.assign(_length=[len(x) for x in encoded]).sort_values(["_length", "id"], kind="stable")
    token_counts = sample["_length"].tolist()
    return sample.drop(columns="_length").reset_index(drop=True), token_counts


def check_output_dir(path: Path) -> Path:
    """`path` if it is, or can become, a folder; a one-line UserError otherwise (before any work)."""
    from langtrainer.preflight import user_path

    path = user_path(path, "out")
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                what = "{out}" if candidate == path else f"{{out}}'s parent {candidate}"
                raise setting_error(f"{what} is a file, not a folder: give a folder path (it is created if missing)",
                                    "out")
            if not os.access(candidate, os.W_OK | os.X_OK):
                raise setting_error(f"{candidate} is not writable: give another {{out}}", "out")
            return path
    return path


def load_split(data: Path, split: str, columns: Mapping[str, str] | None = None):
    """The split's rows as a DataFrame with str ids, checked for the columns SHAP needs and unique ids.

    `columns` maps the standard names to the table's (e.g. {"text": "review"})."""
    from langtrainer.data.sources import load_examples

    if not data.exists():
        raise setting_error(f"data path {data} does not exist (give {{data}} PATH to a save_to_disk dataset or a table)", "data")
    frame = load_examples(data, split=split, columns=columns, require=REQUIRED_COLUMNS).to_pandas()
    if "id" not in frame.columns:
        frame["id"] = [str(i) for i in range(len(frame))]
    frame["id"] = frame["id"].astype(str)
    duplicated = frame["id"].duplicated()
    if duplicated.any():
        raise UserError(f"{data} ({split}) has duplicate ids, e.g. {frame['id'][duplicated].iloc[0]!r}; "
                        "give every example its own id")
    if frame["label"].isna().any():
        raise UserError(f"{data} ({split}) has rows without a label; drop them or fill them in")
    return frame


def label_indices(labels, label_names: list[str], where: str, ids_are_classes: bool = False):
    """Labels as the model's class indices, read by name: each value names one of the model's labels.

    A run's own data/ stores class indices (`ids_are_classes`). Elsewhere a
    value is a label name, compared as text ('1' names the label '1', not
    class 1); only a column of integers none of which is a label name is
    read as class indices (a file numbered like the model's classes). A
    column mixing names and other integers is refused: it cannot be read
    either way without guessing.
    """
    import pandas as pd

    index = {name: i for i, name in enumerate(label_names)}
    text = labels.astype(str)
    is_int = pd.api.types.is_integer_dtype(labels) or bool(len(text)) and text.str.fullmatch(r"-?\d+").all()
    present = set(text)
    if ids_are_classes and pd.api.types.is_integer_dtype(labels):
        values = labels.astype(int)
    elif present <= set(index):
        values = text.map(index).astype(int)
    elif is_int and not present & set(index):
        values = text.astype(int)
    else:
        unknown = sorted(present - set(index))
        hint = (" (the column mixes label names and class numbers: write every label as a name)"
                if is_int and present & set(index) else "")
        raise UserError(f"{where}: label {unknown[0]!r} is not one of the model's labels "
                        f"({', '.join(label_names)}){hint}")
    bad = values[(values < 0) | (values >= len(label_names))]
    if len(bad):
        raise UserError(f"{where}: label {int(bad.iloc[0])} is outside the model's {len(label_names)} classes")
    return values
