"""`RunDir`: a run folder's file names, readers and writers, lock and identity checks (see `langtrainer.rundir`)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from langtrainer import atomic
from langtrainer.artifacts import Distribution, Identity, ProbeReport, RunMetrics, ShapDiffReport, StageTimes
from langtrainer.errors import UserError, setting_error
from langtrainer.rundir.naming import recipe_sha256

if TYPE_CHECKING:
    from langtrainer.recipe import Recipe

logger = logging.getLogger(__name__)


def _first_difference(old: Any, new: Any, where: str = "") -> str | None:
    """Dotted key of the first field that differs between two recipe dicts, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            found = _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
            if found:
                return found
        return None
    return None if old == new else where or "recipe"


# predictions.parquet's fixed columns; the per-class probability columns follow, named by class.
PREDICTION_COLUMNS = ("id", "language", "label", "predicted")


def probability_column(label_name: str) -> str:
    """predictions.parquet's column of one class's probability: the class name, or `p(name)` for a
    class named like a fixed column."""
    return f"p({label_name})" if label_name in PREDICTION_COLUMNS else label_name


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; {} when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class RunDir:
    """One run folder (see the module docstring for its layout)."""

    RECIPE = "recipe.yaml"
    DATA = "data"
    DISTRIBUTION = "distribution.json"
    METRICS = "metrics.json"
    CHECKPOINTS = "checkpoints"
    STAGING = ".model.tmp"
    SHAP = "shap"
    MODEL_CONFIG = "config.json"
    IDENTITY = "identity.json"
    RNG_STATE_GLOB = "rng_state*.pth"  # the Trainer's rng_state.pth, or rng_state_<rank>.pth per process
    LOGS = "logs"
    MODEL_CARD = "README.md"
    SHAP_DIFF = "shap_diff.json"
    TIMINGS = "timings.json"
    PREDICTIONS = "predictions.parquet"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- paths ---------------------------------------------------------------
    @property
    def recipe_path(self) -> Path:
        return self.path / self.RECIPE

    @property
    def data_path(self) -> Path:
        return self.path / self.DATA

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def staging(self) -> Path:
        return self.path / self.STAGING

    @property
    def shap_dir(self) -> Path:
        return self.path / self.SHAP

    @property
    def model_config_path(self) -> Path:
        return self.path / self.MODEL_CONFIG

    @property
    def identity_path(self) -> Path:
        return self.path / self.IDENTITY

    @property
    def logs_dir(self) -> Path:
        """Where the Trainer's loggers write (outside checkpoints/, which a finished run deletes)."""
        return self.path / self.LOGS

    @property
    def model_card_path(self) -> Path:
        """The Hub model card (README.md) of the run's model."""
        return self.path / self.MODEL_CARD

    @property
    def shap_diff_path(self) -> Path:
        """`shap-diff`'s summary when it wrote into this run (the compared model's folder)."""
        return self.path / self.SHAP_DIFF

    def probe_path(self, data_label: str) -> Path:
        """Where the probe of `data_label` ('test', 'external', a file's stem) is written."""
        return self.path / f"probe_{data_label}.json"

    def probe_paths(self) -> dict[str, Path]:
        """Existing probe results by data label."""
        return {p.stem[len("probe_"):]: p for p in sorted(self.path.glob("probe_*.json"))}

    # -- state ---------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def is_finished(self) -> bool:
        return self.metrics_path.is_file()

    def has_model(self) -> bool:
        return self.model_config_path.is_file()

    def has_recipe(self) -> bool:
        return self.recipe_path.is_file()

    def has_data(self) -> bool:
        return self.data_path.is_dir()

    def has_checkpoints(self) -> bool:
        return self.checkpoints.is_dir() and any(self.checkpoints.glob("checkpoint-*"))

    def foreign_entries(self) -> list[str]:
        """Names in the folder that no run writes (a run refuses such a folder)."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.name != self.DATA and not p.name.startswith("."))

    # -- checks before a run writes --------------------------------------------
    def check_writable(self, resume: bool) -> None:
        """UserError when the folder holds a finished run, an unfinished one without `resume`,
        or anything that is not a run (a run deletes its checkpoints/ and reads its data/)."""
        if self.path.exists() and not self.path.is_dir():
            raise setting_error(f"{{output_dir}} '{self.path}' is a file: give a new or empty folder", "output_dir")
        if self.is_finished() and not resume:
            raise setting_error(f"'{self.path}' already holds a finished run: choose another {{output_dir}} or delete it", "output_dir")
        if self.has_checkpoints() and not resume:
            raise setting_error(f"'{self.path}' holds an unfinished run: pass {{resume}} to continue it, or delete the folder", "resume")
        if not self.has_recipe():
            foreign = self.foreign_entries()
            if foreign:
                raise setting_error(
                    f"'{self.path}' is not a langtrainer run directory (it holds {', '.join(foreign[:3])}"
                    f"{', ...' if len(foreign) > 3 else ''}): give a new or empty {{output_dir}}", "output_dir")

    def check_recipe(self, recipe: "Recipe") -> None:
        """UserError when the run was started with another recipe (its data/ and checkpoints would be mixed in)."""
        import yaml

        from langtrainer.recipe import dump_recipe

        old = self.raw_recipe()
        if old is None:
            return
        key = _first_difference(old, yaml.safe_load(dump_recipe(recipe)))
        if key is not None:
            raise setting_error(
                f"'{self.path}' was started with a different recipe ({key} differs): use the same recipe and "
                "{overrides}, or another {output_dir} (or delete the folder)", "output_dir", "overrides")

    def last_complete_checkpoint(self, remove_incomplete: bool = False) -> Path | None:
        """The newest checkpoint-N whose trainer_state.json (the Trainer writes it last) parses.

        A process killed while saving leaves a newer checkpoint without it (or with
        half of it); resuming from that one would fail or load half-written state.
        remove_incomplete deletes those newer, incomplete ones (the Trainer would
        otherwise count them when it rotates checkpoints).
        """
        import shutil

        def step(path: Path) -> int:
            tail = path.name.rpartition("-")[2]
            return int(tail) if tail.isdigit() else -1

        for candidate in sorted(self.checkpoints.glob("checkpoint-*"), key=step, reverse=True):
            if read_json(candidate / "trainer_state.json"):
                return candidate
            logger.warning("ignoring incomplete checkpoint %s (killed while saving?)", candidate)
            if remove_incomplete:
                shutil.rmtree(candidate, ignore_errors=True)
        return None

    def install_model(self, saved: Path) -> None:
        """Move a saved model's files from `saved` (the staging folder) into the run folder.

        config.json goes last: a folder with it holds every model file (loaders look for it first).
        """
        (saved / "training_args.bin").unlink(missing_ok=True)  # a pickle; a run folder holds none
        for item in sorted(saved.iterdir(), key=lambda item: item.name == self.MODEL_CONFIG):
            os.replace(item, self.path / item.name)
        saved.rmdir()

    # -- the resolved recipe ----------------------------------------------------
    def write_recipe(self, recipe: "Recipe") -> Path:
        from langtrainer.recipe import save_recipe

        return save_recipe(recipe, self.recipe_path)

    def raw_recipe(self) -> dict[str, Any] | None:
        """The saved recipe as plain YAML data, or None when missing or unreadable."""
        import yaml

        from langtrainer import safe_yaml

        try:
            raw = safe_yaml.parse(self.recipe_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError):  # UserError (a refused document) is a ValueError
            return None
        return raw if isinstance(raw, dict) else None

    def recipe_value(self, *keys: str) -> Any:
        """One field of the saved recipe (e.g. 'model', 'max_length'), None when absent."""
        node: Any = self.raw_recipe()
        for key in keys:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node

    # -- metrics ---------------------------------------------------------------
    @property
    def timings_path(self) -> Path:
        return self.path / self.TIMINGS

    def write_stage_times(self, times: StageTimes) -> Path:
        return times.write(self.timings_path)

    def read_stage_times(self) -> StageTimes | None:
        """timings.json, None when the run has none (unfinished, or written before it existed)."""
        return StageTimes.read_optional(self.timings_path)

    def read_metrics(self) -> RunMetrics | None:
        """metrics.json, None when the run has none (unfinished); UserError when it is damaged."""
        return RunMetrics.read_optional(self.metrics_path)

    def write_metrics(self, metrics: RunMetrics) -> Path:
        return metrics.write(self.metrics_path)

    # -- shap-diff summary ---------------------------------------------------------
    def read_shap_diff(self) -> ShapDiffReport | None:
        """shap_diff.json when `shap-diff` wrote into this folder, else None."""
        return ShapDiffReport.read_optional(self.shap_diff_path)

    # -- test predictions --------------------------------------------------------
    @property
    def predictions_path(self) -> Path:
        return self.path / self.PREDICTIONS

    def has_predictions(self) -> bool:
        return self.predictions_path.is_file()

    def write_predictions(self, table) -> Path:
        """Write the test predictions (a DataFrame shaped as `training.evaluation.prediction_table` makes
        it), atomically; the label names' order goes into the file's metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrow = pa.Table.from_pandas(table, preserve_index=False)
        names = list(table.attrs.get("label_names", []))
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                               b"langtrainer.label_names": json.dumps(names).encode()})
        with atomic.atomic_path(self.predictions_path) as tmp:
            pq.write_table(arrow, tmp)
        return self.predictions_path

    def read_predictions(self):
        """The test predictions as a DataFrame (columns id, language, label, predicted, then one
        probability column per class; `.attrs['label_names']` in the model's order). UserError when
        the run has none (finished before the file existed) or it cannot be read."""
        import pyarrow.parquet as pq

        if not self.has_predictions():
            raise UserError(f"'{self.path}' has no {self.PREDICTIONS} (a run from before langtrainer wrote it, "
                            "or an unfinished one): train it again to get its predictions")
        try:
            arrow = pq.read_table(self.predictions_path)
        except (OSError, ValueError) as exc:
            raise UserError(f"'{self.predictions_path}' cannot be read ({exc}): train the run again") from None
        raw = (arrow.schema.metadata or {}).get(b"langtrainer.label_names")
        frame = arrow.to_pandas()
        names = json.loads(raw) if raw else [c for c in frame.columns if c not in PREDICTION_COLUMNS]
        missing = [c for c in (*PREDICTION_COLUMNS, *map(probability_column, names)) if c not in frame.columns]
        if missing:
            raise UserError(f"'{self.predictions_path}' lacks the column(s) {', '.join(missing)}: train the run again")
        frame.attrs["label_names"] = names
        return frame

    # -- the subsets -----------------------------------------------------------
    def write_subsets(self, subsets, distribution: Distribution | dict[str, Any]) -> None:
        """Save the subsets and their distribution report as data/, atomically."""
        from langtrainer.rundir.subsets import write_subsets

        write_subsets(subsets, distribution, self.data_path)

    def load_subsets(self):
        """The run's subsets (a datasets.DatasetDict), or None when it has no data/."""
        if not self.has_data():
            return None
        import datasets

        return datasets.load_from_disk(str(self.data_path))

    def copy_data_from(self, data_dir: Path) -> None:
        """Give the run a copy of subsets built elsewhere (the demo builds them once per seed)."""
        import shutil

        if self.data_path.exists():
            return
        with atomic.atomic_dir(self.data_path) as tmp:
            shutil.copytree(data_dir, tmp, dirs_exist_ok=True)

    def read_distribution(self) -> Distribution | None:
        """data/distribution.json (counts per split, language and label); None when absent."""
        return Distribution.read_optional(self.data_path / self.DISTRIBUTION)

    # -- probes ----------------------------------------------------------------
    def read_probes(self) -> dict[str, ProbeReport]:
        """The folder's probe results by data label ('test', 'external', a file's stem)."""
        return {label: ProbeReport.read(path) for label, path in self.probe_paths().items()}

    # -- locking -----------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder for the lifetime of a command.

        A second command on the same folder fails at once with a UserError
        instead of mixing its files into the first one's. The lock is on the
        folder itself (flock of its descriptor), so no lock file is left
        behind and a killed holder releases it with its last descriptor.
        The folder must exist (see `claim`).
        """
        import fcntl

        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise setting_error(
                    f"'{self.path}' is in use by another langtrainer command (a finetune writing it, or a probe, "
                    "shap or report reading it); "
                    "wait for it to finish or give another {output_dir}", "output_dir") from None
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def read_lock(self) -> Iterator[None]:
        """Hold a shared lock on the folder while a command reads it (probe, shap, report).

        Readers share it with each other; a `finetune` holding the exclusive
        lock (writing the run) makes this fail at once with a UserError, and a
        finetune started while a reader holds it is refused in turn. A folder
        that does not exist is not locked (the command reports it missing).
        """
        import fcntl

        if not self.path.is_dir():
            yield
            return
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"'{self.path}' is being written by another langtrainer command (a finetune); "
                                "wait for it to finish, then run this command again") from None
            yield
        finally:
            os.close(fd)

    def check_not_in_use(self) -> None:
        """UserError when another command holds the folder's lock (checked before the folder's content,
        which a running command is changing)."""
        if self.path.is_dir():
            with self.lock():
                pass

    @contextlib.contextmanager
    def claim(self) -> Iterator[None]:
        """Create the folder if needed and hold its lock; on a UserError, remove what this call created.

        Leftovers of killed writers (`.NAME.XXXX.tmp`) are removed once the
        lock is held: no other command can be writing them then.
        """
        from langtrainer.preflight import remove_stale_temporaries

        created = _topmost_missing(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            with self.lock():
                remove_stale_temporaries(self.path)
                yield
        except UserError:
            if created is not None:
                import shutil

                shutil.rmtree(created, ignore_errors=True)
            raise

    # -- identity ------------------------------------------------------------------
    def data_fingerprint(self) -> str | None:
        """sha256 over data/'s files (names, sizes, and the bytes of its small JSON files), None without data/."""
        import hashlib

        if not self.has_data():
            return None
        digest = hashlib.sha256()
        # Only what write_subsets writes: datasets adds cache-*.arrow files beside them when a run tokenises.
        written = (p for p in self.data_path.rglob("*")
                   if p.is_file() and (p.suffix == ".json" or p.name.startswith("data-")))
        for path in sorted(written):
            rel = path.relative_to(self.data_path).as_posix()
            size = path.stat().st_size
            digest.update(f"{rel}\0{size}\0".encode())
            if path.suffix == ".json" and size < 10_000_000:
                digest.update(path.read_bytes())
        return digest.hexdigest()

    def read_identity(self) -> Identity | None:
        """The identity file, None when absent; UserError when present but unreadable."""
        if not self.identity_path.exists():
            return None
        try:
            identity = Identity.read(self.identity_path)
        except UserError:
            identity = None
        if identity is None or not identity.recipe_sha256:
            raise setting_error(f"'{self.identity_path}' is damaged, so the run cannot be checked: "
                            "delete the folder or give another {output_dir}", "output_dir")
        return identity

    def write_identity(self, recipe: "Recipe") -> Path:
        """Record which recipe, seed and data this run folder belongs to."""
        return Identity(recipe_sha256=recipe_sha256(recipe), seed=recipe.seed,
                        data_sha256=self.data_fingerprint()).write(self.identity_path)

    def check_identity(self, recipe: "Recipe") -> None:
        """UserError unless this folder's recipe, seed, data/ and identity file belong to `recipe`.

        A folder without an identity file (killed before it was written, right
        after recipe.yaml or data/) is checked by what it has: its data/ by the
        distribution.json it was built with; checkpoints without it are
        refused (the identity is written before training starts).
        """
        if self.recipe_path.exists() and self.raw_recipe() is None:
            raise setting_error(f"'{self.recipe_path}' cannot be read, so the run cannot be checked: "
                            "delete the folder or give another {output_dir}", "output_dir")
        identity = self.read_identity()
        if identity is None:
            if self.has_checkpoints():
                # identity.json is written before the first checkpoint: checkpoints without it were copied or
                # edited, and recipe.yaml alone does not say which data they were trained on.
                raise setting_error(f"'{self.path}' holds checkpoints but no {self.IDENTITY}, so they cannot be checked "
                                "against the recipe and its data: delete the folder or give another {output_dir}", "output_dir")
            if self.has_data():
                self._check_data_origin(recipe)
            return
        if identity.seed != recipe.seed:
            raise setting_error(f"'{self.path}' belongs to a run with seed {identity.seed}, the recipe has seed "
                            f"{recipe.seed}: give another {{output_dir}}", "output_dir")
        if identity.recipe_sha256 != recipe_sha256(recipe):
            raise setting_error(f"'{self.path}' belongs to a run of another recipe ({self.IDENTITY} differs): use the "
                            "same recipe and {overrides}, or another {output_dir}", "output_dir", "overrides")
        if self.has_data():
            self._check_data_origin(recipe)
        recorded = identity.data_sha256
        if recorded is not None and self.data_fingerprint() != recorded:
            raise setting_error(f"'{self.data_path}' changed since the run began (or is missing): delete the folder "
                            "or give another {output_dir}", "output_dir")

    def _check_data_origin(self, recipe: "Recipe") -> None:
        """data/ was built for this recipe's seed, subset kind and skew (its distribution.json says so)."""
        from langtrainer.recipe import split_seed

        try:
            report = self.read_distribution()
        except UserError:
            report = None
        if report is None:
            raise setting_error(f"'{self.data_path}' has no readable {self.DISTRIBUTION}, so it cannot be checked: "
                            "delete data/ (it is rebuilt) or give another {output_dir}", "output_dir")
        imb = recipe.imbalance
        expected = {
            "seed": split_seed(recipe),
            "as-is": imb.subset == "none",
            "groups": {k: list(v) for k, v in (imb.groups or {}).items()},
            "distribution": {k: list(v) for k, v in (imb.distribution or {}).items()},
        }
        found = {
            "seed": report.seed,
            "as-is": report.as_is,
            "groups": expected["groups"] if report.groups is None else report.groups,
            "distribution": expected["distribution"] if report.distribution is None else report.distribution,
        }
        for key, value in expected.items():
            if found[key] != value:
                raise setting_error(f"'{self.data_path}' was built with another {key} ({found[key]!r}, the recipe: "
                                f"{value!r}): delete data/ (it is rebuilt) or give another {{output_dir}}", "output_dir")

    def resume_state_is_exact(self, checkpoint: Path) -> bool:
        """True when `checkpoint` holds the random-number state an exact resume needs."""
        return any(checkpoint.glob(self.RNG_STATE_GLOB))


def _topmost_missing(path: Path) -> Path | None:
    """The highest ancestor of `path` (or `path`) that does not exist yet: what mkdir(parents=True) creates."""
    if path.exists():
        return None
    top = path
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    return top
