"""Computing a planned SHAP run shard by shard, in one process or several.

Rank 0 checks the output folder against the arguments and writes the
manifest; every process computes the shards `assign_shards` gives it
(balanced by token count; the shards are the same as in one process, so the
result is identical); rank 0 checks every shard and marks the manifest
complete with the shards' checksums.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Sequence

from langtrainer.analysis.shap.engine import Progress, explain
from langtrainer.analysis.shap.run import ShapPlan
from langtrainer.analysis.shap.store import (MANIFEST, SHARD_DIR, file_sha256, read_manifest, shard_is_valid,
                                             shard_path, shard_table, write_shard)
from langtrainer.artifacts import ShapManifest
from langtrainer.errors import setting_error

log = logging.getLogger(__name__)


def assign_shards(lengths: Sequence[int], shard_size: int, world_size: int) -> list[list[int]]:
    """Shard indices per process, balanced by token count (longest first, to the least loaded).

    Cost of a shard = sum of its examples' token counts (forward cost per
    masked row is about linear in length at these sizes, and max_evals rows
    per example). Deterministic, so every process computes the same split.
    """
    n_shards = (len(lengths) + shard_size - 1) // shard_size
    costs = [sum(lengths[k * shard_size:(k + 1) * shard_size]) for k in range(n_shards)]
    loads = [0] * world_size
    assignment: list[list[int]] = [[] for _ in range(world_size)]
    for k in sorted(range(n_shards), key=lambda k: (-costs[k], k)):
        target = min(range(world_size), key=lambda r: (loads[r], r))
        assignment[target].append(k)
        loads[target] += costs[k]
    return [sorted(a) for a in assignment]


def compute_shards(plan: ShapPlan, progress: Progress | None = None, rank: int | None = None,
                   world_size: int | None = None) -> Path:
    """Compute this process's missing or damaged shards of `plan`; rank 0 completes the manifest."""
    import torch

    from langtrainer.training import distributed as launch

    if rank is None or world_size is None:
        rank, world_size = launch.process_rank(), launch.world_size()
    cpu = not torch.cuda.is_available()
    size = plan.options.shard_size
    n_shards = (len(plan.ids) + size - 1) // size
    manifest = ShapManifest(
        arguments=plan.arguments, arguments_hash=plan.arguments_hash, sources=plan.sources,
        label_names=plan.label_names, n_examples=len(plan.ids), n_shards=n_shards, ids=plan.ids, complete=False,
    )
    if rank == 0:
        checksums = _prepare_folder(plan)
        manifest.write(plan.out / MANIFEST)
    launch.wait_for_everyone(cpu)
    if rank != 0:
        checksums = _previous_checksums(plan)

    mine = assign_shards(plan.token_counts, size, world_size)[rank]
    todo = [k for k in mine if not _valid(plan, k, checksums)]
    my_total = sum(len(_rows(plan, k)) for k in mine)
    done = my_total - sum(len(_rows(plan, k)) for k in todo)
    if todo:
        log.info("%d of %d shards to compute (%d examples already done)", len(todo), n_shards, done)
        _compute(plan, todo, done, my_total, progress)
    elif progress:
        progress(my_total, my_total)
    launch.wait_for_everyone(cpu)
    if rank == 0:
        missing = [k for k in range(n_shards) if not _valid(plan, k, {})]
        if missing:
            raise RuntimeError(f"shards {missing[:5]} are missing after every process finished")
        manifest.shard_sha256 = {shard_path(plan.out, k).name: file_sha256(shard_path(plan.out, k))
                                 for k in range(n_shards)}
        manifest.complete = True
        manifest.write(plan.out / MANIFEST)
    return plan.out


def _rows(plan: ShapPlan, k: int):
    size = plan.options.shard_size
    return plan.sample.iloc[k * size:(k + 1) * size]


def _valid(plan: ShapPlan, k: int, checksums: dict[str, str]) -> bool:
    path = shard_path(plan.out, k)
    return shard_is_valid(path, _rows(plan, k)["id"].tolist(), plan.arguments_hash, checksums.get(path.name))


def _previous_checksums(plan: ShapPlan) -> dict[str, str]:
    previous = read_manifest(plan.out)
    if previous and previous.arguments_hash == plan.arguments_hash:
        return dict(previous.shard_sha256 or {})
    return {}


def _prepare_folder(plan: ShapPlan) -> dict[str, str]:
    """Refuse a folder holding results of other arguments (unless overwrite); the checksums to trust.

    A manifest of other arguments whose run never finished a shard (e.g. it
    failed at once) is replaced without asking.
    """
    previous = read_manifest(plan.out)
    stale = previous is not None and previous.arguments_hash != plan.arguments_hash
    if stale and not plan.options.overwrite and any((plan.out / SHARD_DIR).glob("shard-*.parquet")):
        old = previous.arguments
        changed = [k for k in plan.arguments if old.get(k) != plan.arguments[k]]
        raise setting_error(
            f"{plan.out} holds SHAP results for other arguments ({', '.join(changed) or 'format'} differ); "
            "use another {out} or {overwrite}", "out", "overwrite")
    if plan.options.overwrite:
        if (plan.out / SHARD_DIR).is_dir():
            shutil.rmtree(plan.out / SHARD_DIR)
        return {}
    return _previous_checksums(plan)


def _compute(plan: ShapPlan, todo: list[int], done: int, total: int, progress: Progress | None) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(plan.ckpt)
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    if progress:
        progress(done, total)
    for k in todo:
        rows = _rows(plan, k)

        def shard_progress(n: int, _: int, base: int = done) -> None:
            if progress:
                progress(base + n, total)

        attributions = explain(
            model,
            plan.tokenizer,
            rows["text"].astype(str).tolist(),
            rows["text_pair"].astype(str).tolist() if plan.has_pairs else None,
            max_evals=plan.options.max_evals,
            batch_size=plan.options.batch_size,
            max_length=plan.options.max_length,
            progress=shard_progress,
        )
        write_shard(shard_path(plan.out, k), shard_table(rows, attributions, plan.arguments_hash))
        done += len(rows)
