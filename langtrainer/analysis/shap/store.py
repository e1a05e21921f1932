"""SHAP results on disk: the manifest, the Parquet shards, and `load_shap_result`.

A SHAP output folder holds::

    manifest.json              format, arguments (+ their hash and sources), label names,
                               the explained ids in order, shard checksums once complete
    shards/shard-NNNNN.parquet one row per example (see `shard_table`), written atomically

Each shard also carries the arguments hash in its Parquet metadata, so a
shard can be checked against the arguments without the manifest (a rerun
keeps the valid shards even when manifest.json itself was damaged).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from langtrainer.artifacts import SHAP_FORMAT, ShapManifest
from langtrainer.atomic import atomic_path
from langtrainer.errors import UserError, setting_error
from langtrainer.rundir import RunDir

if TYPE_CHECKING:
    from langtrainer.analysis.shap.engine import TokenAttribution

log = logging.getLogger(__name__)

FORMAT = SHAP_FORMAT
MANIFEST = "manifest.json"
SHARD_DIR = "shards"
HASH_KEY = b"langtrainer.arguments_hash"
# values.sum(0) + base_values == probabilities holds to float32 noise; a shard off by more was altered
ADDITIVITY_TOLERANCE = 1e-3


@dataclass
class ShapResult:
    """A finished `langtrainer shap` run: one row per example.

    `examples` columns: id, language, label, text, text_pair, token_ids
    (int64 array), tokens (list of str), special (bool array: the tokens the
    masker always keeps, e.g. [CLS]/[SEP]), values (float32 array, tokens x
    classes), base_values, probabilities (float32 arrays, classes).
    """

    examples: Any  # pandas.DataFrame
    label_names: list[str]
    manifest: ShapManifest | None = None
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    @property
    def name(self) -> str:
        """A short name for tables and titles: the run folder's name (or the shap folder's)."""
        if self.path is None:
            return "results"
        folder = Path(self.path)
        return folder.parent.name if folder.name == RunDir.SHAP and folder.parent.name else folder.name

    def to_explanation(self, label: int | str | None = None):
        """The results as a `shap.Explanation` (what `shap.plots.text` / `shap.plots.bar` draw).

        label=None: values of shape (examples, tokens, classes) with
        output_names = the label names; a label (index or name): the values
        of that class only, (examples, tokens). `data` holds the token
        strings, `base_values` f(all-mask input). Examples have different
        token counts, so the arrays are ragged object arrays, as shap's own
        text explanations are.
        """
        import shap

        frame = self.examples
        if label is None:
            column, output_names = None, list(self.label_names)
        else:
            column = self._label_index(label)
            output_names = self.label_names[column]
        values, bases = [], []
        for v, b in zip(frame["values"], frame["base_values"]):
            values.append(np.asarray(v, dtype=np.float64) if column is None else np.asarray(v[:, column], np.float64))
            bases.append(np.asarray(b, dtype=np.float64) if column is None else float(b[column]))
        data = [np.asarray(t, dtype=object) for t in frame["tokens"]]
        return shap.Explanation(
            values=_ragged(values),
            base_values=np.asarray(bases) if column is not None else np.stack(bases),
            data=_ragged(data),
            feature_names=_ragged(data),
            output_names=output_names,
        )

    def _label_index(self, label: int | str) -> int:
        if isinstance(label, str):
            if label not in self.label_names:
                raise UserError(f"label {label!r} is not one of {', '.join(self.label_names)}")
            return self.label_names.index(label)
        if not 0 <= int(label) < self.n_classes:
            raise UserError(f"label index {label} is out of range (0..{self.n_classes - 1})")
        return int(label)


def _ragged(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


# --------------------------------------------------------------------------- identity


def shard_path(out: Path, k: int) -> Path:
    return out / SHARD_DIR / f"shard-{k:05d}.parquet"


def model_fingerprint(ckpt: Path) -> str:
    """Changes when the checkpoint's config or weights change (size + mtime of weight files)."""
    digest = hashlib.sha256()
    config = ckpt / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for weights in sorted(ckpt.glob("*.safetensors")) + sorted(ckpt.glob("*.bin")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def arguments_hash(arguments: dict) -> str:
    return hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(folder: Path, warn: bool = True) -> ShapManifest | None:
    """The folder's manifest, or None when it is missing or not a readable langtrainer manifest
    (logged when `warn`: a rerun then checks the shards one by one)."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        if path.exists() and warn:
            log.warning("%s is unreadable; its shards are checked one by one", path)
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    try:
        return ShapManifest.from_dict(manifest, f"'{path}'")
    except UserError as exc:
        if warn:
            log.warning("%s; its shards are checked one by one", exc)
        return None


# --------------------------------------------------------------------------- shards


def shard_table(rows, attributions: Sequence["TokenAttribution"], hash_: str):
    """One shard: the examples' columns and their attributions, tagged with the arguments hash."""
    import pyarrow as pa

    has_pair = "text_pair" in rows.columns
    table = pa.table(
        {
            "id": pa.array(rows["id"].astype(str).tolist(), pa.string()),
            "language": pa.array(rows["language"].astype(str).tolist(), pa.string()),
            "label": pa.array([int(x) for x in rows["label"]], pa.int64()),
            "text": pa.array(rows["text"].astype(str).tolist(), pa.string()),
            "text_pair": pa.array(rows["text_pair"].astype(str).tolist() if has_pair else [None] * len(rows), pa.string()),
            "token_ids": pa.array([a.token_ids.tolist() for a in attributions], pa.list_(pa.int64())),
            "tokens": pa.array([list(a.tokens) for a in attributions], pa.list_(pa.string())),
            "special": pa.array([_special(a).tolist() for a in attributions], pa.list_(pa.bool_())),
            "n_classes": pa.array([a.values.shape[1] for a in attributions], pa.int32()),
            "values": pa.array([a.values.reshape(-1).tolist() for a in attributions], pa.list_(pa.float32())),
            "base_values": pa.array([a.base_values.tolist() for a in attributions], pa.list_(pa.float32())),
            "probabilities": pa.array([a.probabilities.tolist() for a in attributions], pa.list_(pa.float32())),
        }
    )
    return table.replace_schema_metadata({HASH_KEY: hash_.encode()})


def _special(attribution: "TokenAttribution") -> np.ndarray:
    if attribution.special is not None:
        return np.asarray(attribution.special, dtype=bool)
    return np.zeros(len(attribution.token_ids), dtype=bool)


def write_shard(path: Path, table) -> None:
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def shard_is_valid(path: Path, expected_ids: list[str], hash_: str, sha256: str | None = None) -> bool:
    """True when the shard holds `expected_ids` for these arguments with intact values.

    Intact: the checksum matches when the manifest recorded one; the value
    arrays have tokens x classes entries, are finite, and add up to the
    probabilities (eq. 1's additivity), so values changed behind the id
    column are caught without a checksum too.
    """
    import pyarrow.parquet as pq

    if not path.is_file():
        return False
    if sha256 is not None and file_sha256(path) != sha256:
        return False
    try:
        table = pq.read_table(path)
    except Exception:  # a foreign or damaged file: recompute the shard
        return False
    metadata = table.schema.metadata or {}
    if metadata.get(HASH_KEY, b"").decode() != hash_ or table.column("id").to_pylist() != expected_ids:
        return False
    try:
        columns = table.select(["token_ids", "n_classes", "values", "base_values", "probabilities"]).to_pydict()
        for ids, c, values, base, probs in zip(*columns.values()):
            v = np.asarray(values, dtype=np.float64).reshape(len(ids), int(c))
            total = v.sum(0) + np.asarray(base, dtype=np.float64)
            if not np.all(np.isfinite(v)) or not np.allclose(total, probs, atol=ADDITIVITY_TOLERANCE, rtol=0):
                return False
    except (KeyError, ValueError, TypeError):
        return False
    return True


# --------------------------------------------------------------------------- reading a result


def find_shap_dir(path: str | os.PathLike) -> Path:
    """A shap output folder, given it or a run directory that holds `shap/`."""
    path = Path(path).expanduser()
    if (path / MANIFEST).is_file():
        return path
    if (RunDir(path).shap_dir / MANIFEST).is_file():
        return RunDir(path).shap_dir
    raise UserError(f"{path} holds no SHAP results (no {MANIFEST}, no shap/{MANIFEST}); run `langtrainer shap` first")


def one_cause(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _bad_manifest(folder: Path, what: str) -> UserError:
    return setting_error(f"{folder / MANIFEST} {what} (edited by hand?); rerun `langtrainer shap` with the same "
                     "arguments and {overwrite}", "overwrite")


def check_manifest(manifest: "ShapManifest | dict", folder: Path) -> None:
    """A complete manifest agrees with itself and with the model it names, before any shard is read.

    Its fields have their types; `n_examples` is the number of ids, each id is
    unique; `arguments_hash` is the hash of `arguments` (each shard carries
    it, so shards of other arguments are refused); the label names are
    unique and, when the checkpoint it was computed from is still there
    unchanged, the names of that model's classes in order.
    """
    if not isinstance(manifest, dict):
        manifest = manifest.to_dict()
    ids, names = manifest.get("ids"), manifest.get("label_names")
    n_shards, n_examples = manifest.get("n_shards"), manifest.get("n_examples")
    if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise _bad_manifest(folder, "has no list of example ids")
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise _bad_manifest(folder, "has no list of label names")
    if type(n_shards) is not int or n_shards < 0 or type(n_examples) is not int:
        raise _bad_manifest(folder, "has no whole n_shards / n_examples")
    if n_examples != len(ids):
        raise _bad_manifest(folder, f"says n_examples {n_examples} but lists {len(ids)} ids")
    if len(set(ids)) != len(ids):
        raise _bad_manifest(folder, "lists an example id twice")
    if len(set(names)) != len(names):
        raise _bad_manifest(folder, "lists a label name twice")
    arguments = manifest.get("arguments")
    if not isinstance(arguments, dict) or manifest.get("arguments_hash") != arguments_hash(arguments):
        raise _bad_manifest(folder, "has arguments that do not match its arguments_hash")
    ckpt = Path(str(arguments.get("ckpt") or ""))
    if arguments.get("ckpt") and (ckpt / "config.json").is_file() and \
            model_fingerprint(ckpt) == arguments.get("model_fingerprint"):
        try:
            id2label = json.loads((ckpt / "config.json").read_text(encoding="utf-8")).get("id2label") or {}
        except (OSError, ValueError, AttributeError):
            return
        model_names = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label))]
        if model_names and model_names != names:
            raise _bad_manifest(folder, f"names the labels {', '.join(names[:6])} but the model it explains has "
                                        f"{', '.join(model_names[:6])}")


def load_shap_result(path: str | os.PathLike) -> ShapResult:
    """Read a finished `langtrainer shap` output folder (or a run dir with `shap/`)."""
    import pandas as pd
    import pyarrow.parquet as pq

    folder = find_shap_dir(path)
    manifest = read_manifest(folder, warn=False)  # an unreadable one is the UserError below
    rerun = "rerun `langtrainer shap` with the same arguments"
    if manifest is None:
        raise UserError(f"{folder / MANIFEST} is not a readable langtrainer SHAP manifest; {rerun} to repair it")
    if not manifest.complete:
        raise UserError(f"the SHAP run in {folder} is incomplete; {rerun} to finish it")
    check_manifest(manifest, folder)
    checksums = manifest.shard_sha256 or {}
    frames = []
    for k in range(manifest.n_shards):
        shard = shard_path(folder, k)
        if not shard.is_file():
            raise UserError(f"{shard} is missing; {rerun}")
        if shard.name in checksums and file_sha256(shard) != checksums[shard.name]:
            raise UserError(f"{shard} does not match its checksum in {MANIFEST} (damaged?); {rerun} to recompute it")
        try:
            table = pq.read_table(shard)
        except Exception as exc:  # pyarrow's errors on a file that is not Parquet
            if isinstance(exc, (OSError, ValueError)) or type(exc).__module__.startswith("pyarrow"):
                raise setting_error(f"{shard} is not a readable Parquet shard ({one_cause(exc)}); {rerun} "
                                "with {overwrite}", "overwrite") from None
            raise
        if (table.schema.metadata or {}).get(HASH_KEY, b"").decode() != manifest.arguments_hash:
            raise setting_error(f"{shard} was computed with other arguments than {folder / MANIFEST} records "
                            f"(edited or mixed folders?); {rerun} with {{overwrite}}", "overwrite")
        frames.append(table.to_pandas())
    examples = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if "id" not in examples.columns or examples["id"].tolist() != manifest.ids:
        raise setting_error(f"the shards in {folder} do not match its manifest; rerun `langtrainer shap` with {{overwrite}}", "overwrite")
    n_labels = len(manifest.label_names)
    classes = {int(c) for c in examples["n_classes"]} if len(examples) else set()
    if classes and classes != {n_labels}:
        raise setting_error(f"{folder / MANIFEST} names {n_labels} labels but its shards hold "
                        f"values for {', '.join(map(str, sorted(classes)))} classes (edited?); {rerun} with "
                        "{overwrite}", "overwrite")
    for row in examples.itertuples(index=False):
        shapes_agree = (len(row.values) == len(row.token_ids) * n_labels and len(row.base_values) == n_labels
                        and len(row.tokens) == len(row.token_ids))
        if not shapes_agree or not 0 <= int(row.label) < n_labels:
            raise setting_error(f"example {row.id!r} in the shards of {folder} does not fit its {n_labels} labels "
                            f"(values, tokens or true label edited?); {rerun} with {{overwrite}}", "overwrite")
    examples["token_ids"] = [np.asarray(x, dtype=np.int64) for x in examples["token_ids"]]
    examples["tokens"] = [list(x) for x in examples["tokens"]]
    if "special" in examples.columns:
        examples["special"] = [np.asarray(x, dtype=bool) for x in examples["special"]]
    else:
        examples["special"] = [np.zeros(len(x), dtype=bool) for x in examples["token_ids"]]
    examples["values"] = [
        np.asarray(v, dtype=np.float32).reshape(-1, int(c)) for v, c in zip(examples["values"], examples["n_classes"])
    ]
    for column in ("base_values", "probabilities"):
        examples[column] = [np.asarray(x, dtype=np.float32) for x in examples[column]]
    examples = examples.drop(columns="n_classes")
    return ShapResult(examples=examples, label_names=list(manifest.label_names), manifest=manifest, path=folder)
