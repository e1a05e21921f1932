"""The shapes of what a run folder and a SHAP output hold: one dataclass per JSON file.

| file                              | class            | written by                          |
|-----------------------------------|------------------|-------------------------------------|
| `metrics.json`                    | `RunMetrics`     | `pipelines/finetune.run_metrics`    |
| `data/distribution.json`          | `Distribution`   | `data/sampling` via `write_subsets` |
| `identity.json`                   | `Identity`       | `RunDir.write_identity`             |
| `timings.json`                    | `StageTimes`     | `pipelines/finetune.finetune`       |
| `probe_<data>.json`               | `ProbeReport`    | `pipelines/probe.probe_and_write`   |
| `shap/manifest.json`              | `ShapManifest`   | `analysis/shap/sharded`             |
| `shap_diff.json`                  | `ShapDiffReport` | `analysis/shap_diff.write_shap_diff`|

Every file carries `"format_version"`. `from_dict` reads three kinds of input:

- the current version: fields by name;
- a file without `format_version` (written before this module, e.g. by
  8a5421a): through `Artifact.upgrade_legacy`, the one legacy path (each class
  overrides it only where today's format differed from version 1);
- a newer version: refused with a `UserError` naming the file's version.

Keys a class does not declare are kept in `extra` and written back unchanged,
so nothing is lost silently. A field that is None is left out of the JSON
(absent and None read the same); a missing key takes the field's default, and
a missing required one (no default: only what no reader can do without) is a
`UserError`. Nested objects (`MetricFrame`, `ProbeModelBlock`) are `Record`s:
typed the same way, without a version of their own.

Adding a field is a one-place change: declare it here with a default (for the
files that lack it), set it where the object is built. Readers see it as an
attribute; the JSON gets it by name. Bump a class's `FORMAT_VERSION` only when
an old reader would misread the new file (a renamed or re-meant key), and
translate the old version in `upgrade_legacy`. A new JSON file in a run folder
is a new subclass here plus one path in `rundir/run.py`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from langtrainer.errors import UserError

R = TypeVar("R", bound="Record")

FORMAT_KEY = "format_version"


@dataclass
class Record:
    """A typed JSON object: fields by name, unknown keys kept in `extra`, a None field left out
    (absent and None read the same)."""

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and value is not None:
                out[f.name] = _plain(value)
        for key, value in self.extra.items():
            out.setdefault(key, _plain(value))
        return out

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str = "") -> R:
        """The object of `data` (a parsed JSON object); UserError naming `where` when it does not fit."""
        what = where or cls.__name__
        if not isinstance(data, dict):
            raise UserError(f"{what} is not a JSON object")
        return cls._build(dict(data), what)

    @classmethod
    def _build(cls: type[R], data: dict[str, Any], what: str) -> R:
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            if f.name in data:
                kwargs[f.name] = _typed(hints[f.name], data.pop(f.name), f"{what}: {f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserError(f"{what} has no '{f.name}' (not a langtrainer {cls.__name__}?)")
        return cls(**kwargs, extra=data)


@dataclass
class Artifact(Record):
    """Base of every file's shape: a `Record` with `format_version` and the one legacy path."""

    FORMAT_VERSION: ClassVar[int] = 1
    # Written at the top of the file (a file's self-description, e.g. "format": "langtrainer-shap").
    HEADER: ClassVar[dict[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {**self.HEADER, FORMAT_KEY: self.FORMAT_VERSION, **super().to_dict()}

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str = "") -> R:
        what = where or cls.__name__
        if not isinstance(data, dict):
            raise UserError(f"{what} is not a JSON object")
        data = dict(data)
        version = data.pop(FORMAT_KEY, None)
        if version is None:
            data = cls.upgrade_legacy(data)
        elif not isinstance(version, int) or isinstance(version, bool):
            raise UserError(f"{what} has a {FORMAT_KEY} that is not an integer ({version!r})")
        elif version > cls.FORMAT_VERSION:
            raise UserError(f"{what} has {FORMAT_KEY} {version}, newer than this langtrainer reads "
                            f"({cls.FORMAT_VERSION}): upgrade langtrainer")
        for key in cls.HEADER:
            data.pop(key, None)
        return cls._build(data, what)

    @classmethod
    def upgrade_legacy(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A file without format_version (8a5421a and before) as version-1 data. The one legacy path."""
        return data

    # -- files ------------------------------------------------------------------
    @classmethod
    def read(cls: type[R], path: str | Path) -> R:
        """The file's object; UserError when it is unreadable or not this kind of file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UserError(f"cannot read '{path}': {exc}") from None
        return cls.from_dict(data, where=f"'{path}'")

    @classmethod
    def read_optional(cls: type[R], path: str | Path) -> R | None:
        """Like `read`, None when the file does not exist."""
        return cls.read(path) if Path(path).is_file() else None

    def write(self, path: str | Path) -> Path:
        from langtrainer.atomic import write_json

        return write_json(path, self.to_dict())


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _typed(hint: Any, value: Any, where: str) -> Any:
    """`value` with the Artifact parts of `hint` (X, X | None, dict[str, X], list[X]) built from their dicts."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and hasattr(hint, "from_dict"):
        return None if value is None else hint.from_dict(value, where)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is None or len(inner) != 1:
            return value
        return _typed(inner[0], value, where)
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: _typed(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin is list and args and isinstance(value, list):
        return [_typed(args[0], v, where) for v in value]
    return value


# ---------------------------------------------------------------------------- metrics.json


@dataclass
class MetricRow(Record):
    """One slice of test rows (all, a language, a group): n, accuracy, macro-F1, prediction shares."""

    n: int | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    label_shares: dict[str, float] | None = None  # the true labels' shares (runs from 4520572 on)
    prediction_shares: dict[str, float] = field(default_factory=dict)
    accuracy_ci: list[float] | None = None  # 95 % Wilson interval (test block only)
    macro_f1_ci: list[float] | None = None  # 95 % bootstrap interval (test block only)


@dataclass
class MetricFrame(MetricRow):
    """The tidy per-language table of one split (training.metrics.metric_frame's shape): the
    overall row's numbers, rows by language and by group, max - min over languages, the skew index."""

    by_language: dict[str, MetricRow] = field(default_factory=dict)
    by_group: dict[str, MetricRow] | None = None
    language_prediction_cmi: float | None = None  # I(language; prediction | label), training.language_dependence
    language_prediction_cmi_p_value: float | None = None
    language_prediction_cmi_permutations: int | None = None
    difference: dict[str, float] = field(default_factory=dict)
    skew_index: float | None = None
    loss: float | None = None
    ce: float | None = None
    language_adversary_loss: float | None = None  # loss.language_adversary on (training.adversary)
    language_adversary_accuracy: float | None = None


@dataclass
class RunMetrics(Artifact):
    """metrics.json: what a finished run measured (its presence means the run is finished)."""

    test: MetricFrame
    recipe: str = ""
    seed: int = 0
    languages: list[str] = field(default_factory=list)
    label_names: list[str] = field(default_factory=list)
    subset: str = "none"
    class_weights_mode: str = "none"
    sampler: str | None = None
    groups: dict[str, list[str]] | None = None
    favoured_labels: dict[str, list[int]] | None = None
    favoured_labels_by: str | None = None  # "group" (the design's) or "language" (as-is: from the training rows)
    test_examples: int | None = None
    best_validation_loss: float | None = None
    best_checkpoint: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    class_weights: list[list[float]] | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------- data/distribution.json


@dataclass
class Distribution(Artifact):
    """data/distribution.json: counts per split, language and label of the subsets a run trained on."""

    seed: int | None = None
    languages: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # split -> language -> label -> rows
    totals: dict[str, int] = field(default_factory=dict)
    available: dict[str, Any] = field(default_factory=dict)
    overlap: dict[str, float] = field(default_factory=dict)
    subset: str | None = None  # "none" for as-is data; absent for a skew design (its subsets are named by split)
    source: dict[str, Any] | None = None
    dropped_rows: dict[str, int] | None = None
    distribution: dict[str, list[float]] | None = None  # the recipe's skew (absent in `data build` of old)
    groups: dict[str, list[str]] | None = None

    @property
    def as_is(self) -> bool:
        return self.subset == "none"

    def label_shares(self, split: str, label_names: list[str]) -> dict[str, list[float]] | None:
        """Per language, the split's label shares in `label_names` order; None without counts for it."""
        counts = self.counts.get(split)
        if not isinstance(counts, dict) or not counts:
            return None
        shares = {}
        for lang, per_label in counts.items():
            if not isinstance(per_label, dict):
                return None
            total = sum(int(v) for v in per_label.values())
            if total > 0:
                shares[str(lang)] = [int(per_label.get(name, 0)) / total for name in label_names]
        return shares or None


# ---------------------------------------------------------------------------- identity.json


@dataclass
class Identity(Artifact):
    """identity.json: which recipe, seed and data/ a run folder belongs to."""

    recipe_sha256: str
    seed: int | None = None
    data_sha256: str | None = None


@dataclass
class StageTimes(Artifact):
    """timings.json of a run folder: wall-clock seconds per stage of the `finetune` that wrote it.

    Stages in order: data (subsets, tokenising), model (loading, trainer),
    train, test (evaluation of the best model, predictions), save (model
    files, metrics, model card). `resumed`: continued from a checkpoint (its
    `train` counts the resumed steps only).
    """

    stages: dict[str, float] = field(default_factory=dict)
    resumed: bool = False


# ---------------------------------------------------------------------------- probe_<data>.json


@dataclass
class ProbeModelBlock(Record):
    """One probed model's numbers inside a probe report (the run's own, or the `base` model's)."""

    model: str | None = None
    model_path: str | None = None
    num_hidden_layers: int | None = None
    max_length: int | None = None
    layer: int | None = None
    accuracy_mean: float | None = None
    accuracy_std: float | None = None
    result: dict[str, Any] | None = None  # analysis.probe.ProbeResult.to_dict()
    layers: list[dict[str, Any]] | None = None
    c_sweep: list[dict[str, Any]] | None = None
    seconds: dict[str, float] | None = None


@dataclass
class ProbeReport(Artifact):
    """probe_<data>.json: a language-identification probe of one model (and optionally a base model).

    The probed model's block is stored flat at the top level (as `block`'s
    fields); `base` holds the comparison model's block on the same texts.
    """

    block: ProbeModelBlock
    data: str | None = None
    feature: str | None = None
    languages: list[str] = field(default_factory=list)
    n_examples: int | None = None
    n_per_language: dict[str, int] = field(default_factory=dict)
    data_source: str | None = None
    layer_requested: int | str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    base: ProbeModelBlock | None = None
    options: dict[str, Any] | None = None  # every resolved option (pipelines/probe)
    sources: dict[str, str] | None = None  # each option's source: cli / recipe / default

    HEADER: ClassVar[dict[str, Any]] = {"kind": "langtrainer.analysis.probe"}

    # The probed model's headline numbers, read as the report's own.
    @property
    def accuracy_mean(self) -> float | None:
        return self.block.accuracy_mean

    @property
    def accuracy_std(self) -> float | None:
        return self.block.accuracy_std

    @property
    def model(self) -> str | None:
        return self.block.model

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        block = out.pop("block")
        tail = {k: out.pop(k) for k in ("base", "options", "sources") if k in out}
        return {**out, **block, **tail}

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> "ProbeReport":
        if isinstance(data, dict) and "block" not in data:
            data = dict(data)
            names = [f.name for f in dataclasses.fields(ProbeModelBlock) if f.name != "extra"]
            block = {k: data.pop(k) for k in names if k in data}
            data["block"] = block
        return super().from_dict(data, where)

    @classmethod
    def upgrade_legacy(cls, data: dict[str, Any]) -> dict[str, Any]:
        data.pop("version", None)  # 8a5421a wrote "version": 1 beside "kind"
        return data


# ---------------------------------------------------------------------------- SHAP


SHAP_FORMAT = "langtrainer-shap"


@dataclass
class ShapManifest(Artifact):
    """A SHAP output's manifest.json: arguments (+ hash and sources), label names, the explained ids
    in order, and, once complete, every shard's checksum (analysis.shap.store)."""

    label_names: list[str]
    n_shards: int
    ids: list[Any]
    arguments: dict[str, Any] = field(default_factory=dict)
    arguments_hash: str | None = None
    n_examples: int | None = None
    sources: dict[str, str] = field(default_factory=dict)
    complete: bool = False
    shard_sha256: dict[str, str] | None = None

    HEADER: ClassVar[dict[str, Any]] = {"format": SHAP_FORMAT}

    @classmethod
    def upgrade_legacy(cls, data: dict[str, Any]) -> dict[str, Any]:
        data.pop("version", None)  # 8a5421a wrote "version": 1 beside "format"
        return data


@dataclass
class ShapDiffReport(Artifact):
    """shap_diff.json: the cumulative SHAP difference of two runs (analysis.shap_diff), per class,
    language and group, with the balanced model's token split."""

    threshold: float
    label_names: list[str] = field(default_factory=list)
    by_language: dict[str, Any] = field(default_factory=dict)  # class name -> language -> category -> {mean, std, n}
    averaging: str = "masked"
    special_tokens: bool = False
    groups: dict[str, list[str]] | None = None
    languages: list[str] = field(default_factory=list)
    n_examples: int | None = None
    balanced: str | None = None
    imbalanced: str | None = None
    balanced_name: str | None = None
    imbalanced_name: str | None = None
    comparison: str | None = None
    categories_note: str | None = None
    token_split: dict[str, dict[str, float]] = field(default_factory=dict)
    token_split_note: str | None = None
    by_group: dict[str, Any] = field(default_factory=dict)
