"""A compare's plan: every run's recipe, the shared data split, the checks, before anything is written.

Each (mitigation, seed) run gets the user's recipe (+ --set) with the
mitigation's overlay, `seed = recipe seed + k` and `data.split_seed` pinned
to the recipe's split seed: all runs train and test on the same rows, the
seed varies initialisation and order only.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from langtrainer.compare.folder import CompareDir, slug
from langtrainer.compare.mitigations import (
    DEFAULT_MITIGATIONS,
    Mitigation,
    apply_overlay,
    check_applicable,
    check_sets,
    resolve_mitigations,
)
from langtrainer.errors import UserError, setting_error
from langtrainer.recipe import Recipe

FORMAT_VERSION = 1


@dataclass
class RunPlan:
    mitigation: str
    seed: int
    recipe: Recipe
    folder: Path
    steps: int


@dataclass
class ComparePlan:
    out: Path
    recipe_path: str
    base: Recipe
    mitigations: list[Mitigation]
    baseline: str
    seeds: list[int]
    split_seed: int
    runs: dict[tuple[str, int], RunPlan]
    languages: list[str]
    identity: dict[str, Any]
    subsets: Any = field(repr=False, default=None)  # the split, in memory until the run writes data/
    distribution: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def folder(self) -> CompareDir:
        return CompareDir(self.out)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.mitigations]

    def ordered_runs(self) -> list[RunPlan]:
        """Seed by seed (every mitigation of seed k before seed k+1): an interrupted compare has whole pairs."""
        return [self.runs[(m, s)] for s in self.seeds for m in self.names]


def data_fingerprint(subsets) -> str:
    """sha256 over the split's rows (every column, in order): which rows the compare's runs share."""
    import pandas as pd

    digest = hashlib.sha256()
    for name in sorted(subsets):
        frame = subsets[name].to_pandas()
        digest.update(f"{name}\0{len(frame)}\0{','.join(map(str, frame.columns))}\0".encode())
        if len(frame):
            digest.update(pd.util.hash_pandas_object(frame.astype(str), index=False).values.tobytes())
    return digest.hexdigest()


def training_steps(recipe: Recipe, n_train: int) -> int:
    """Optimizer steps of one run (the Trainer's arithmetic on one device)."""
    training = recipe.training
    max_steps = int(training.get("max_steps", -1) or -1)
    if max_steps > 0:
        return max_steps
    batch = int(training.get("per_device_train_batch_size", 8))
    accumulation = int(training.get("gradient_accumulation_steps", 1))
    epochs = float(training.get("num_train_epochs", 3.0))
    batches = math.ceil(n_train / batch) if not training.get("dataloader_drop_last") else n_train // batch
    per_epoch = max(batches // accumulation, 1)
    return math.ceil(epochs * per_epoch)


def plan_compare(recipe: str | Path, mitigations: Sequence[str] = DEFAULT_MITIGATIONS, seeds: int = 3,
                 sets: Sequence[str] = (), baseline: str = "none", out: str | Path | None = None,
                 variants: Sequence[str] = (), build_data: bool = True) -> ComparePlan:
    """Check everything and resolve every run's recipe; build the split in memory (nothing is written).

    UserError (before any file is written) for: seeds < 1, an unknown mitigation, a baseline not
    among the mitigations, an override (`sets`) on a key a mitigation owns, a mitigation the data cannot run
    (languages, design, a key this version lacks), an output folder holding another compare.
    """
    from langtrainer.data.sampling import build_from_recipe
    from langtrainer.pipelines.finetune import training_subset_names
    from langtrainer.preflight import check_model_max_length
    from langtrainer.recipe import apply_overrides, load_raw, recipe_from_dict, split_seed
    from langtrainer.rundir.naming import recipe_sha256

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise setting_error(f"{{seeds}} must be at least 1 (got {seeds})", "seeds")
    chosen = resolve_mitigations(list(mitigations), variants)
    names = [m.name for m in chosen]
    if baseline not in names:
        raise setting_error(f"{{baseline}} {baseline!r} is not among the mitigations ({', '.join(names)})", "baseline")
    check_sets(sets, chosen)
    raw = apply_overrides(load_raw(recipe), sets)
    base = recipe_from_dict(raw)
    check_model_max_length(base)
    pinned = split_seed(base)
    out_path = Path(out).expanduser() if out is not None else Path("compares") / f"{base.name}-compare"
    folder = CompareDir(out_path)
    if folder.path.exists() and not folder.path.is_dir():
        raise UserError(f"-o '{folder.path}' is a file: give a new or empty folder")
    seed_list = [base.seed + k for k in range(seeds)]
    if base.data.languages:  # known without reading the data: refuse before the split is built
        for m in chosen:
            check_applicable(m, base, base.data.languages, design=False)
    recipes: dict[tuple[str, int], Recipe] = {}
    for m in chosen:
        overlaid = apply_overlay(raw, m)
        for seed in seed_list:
            run_raw = apply_overrides(overlaid, [f"seed={seed}", f"name={base.name}_{slug(m.name)}"])
            run_raw.setdefault("data", {})["split_seed"] = pinned
            try:
                recipes[(m.name, seed)] = recipe_from_dict(run_raw)
            except UserError as exc:
                raise UserError(f"mitigation {m.name!r}: {exc}") from None
    # The split every run shares, from the baseline's recipe at the pinned split seed.
    subsets, distribution = build_from_recipe(recipes[(baseline, seed_list[0])]) if build_data else (None, {})
    languages = list(base.data.languages) or list(distribution.get("languages") or [])
    for m in chosen:
        check_applicable(m, recipes[(m.name, seed_list[0])], languages)
    identity = {
        "kind": "langtrainer.compare",
        "format_version": FORMAT_VERSION,
        "recipe_sha256": recipe_sha256(recipe_from_dict({**raw, "data": {**raw.get("data", {}),
                                                                         "split_seed": pinned}})),
        "data_sha256": data_fingerprint(subsets) if subsets is not None else None,
        "mitigations": names,
        "overlays": {m.name: m.overrides for m in chosen},
        "baseline": baseline,
        "split_seed": pinned,
    }
    if build_data:
        folder.check_identity(identity)
    runs = {}
    for (name, seed), run_recipe in recipes.items():
        steps = 0
        if subsets is not None:
            train_name, _ = training_subset_names(run_recipe)
            steps = training_steps(run_recipe, len(subsets[train_name])) if train_name in subsets else 0
        runs[(name, seed)] = RunPlan(name, seed, run_recipe, folder.run(name, seed).path, steps)
    return ComparePlan(out=out_path, recipe_path=str(recipe), base=base, mitigations=chosen, baseline=baseline,
                       seeds=seed_list, split_seed=pinned, runs=runs, languages=languages, identity=identity,
                       subsets=subsets, distribution=distribution)
