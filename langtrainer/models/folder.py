"""What a local model folder holds: a readable config and whole weight files.

Checked from the file headers alone (no model is built, nothing is
unpickled), so a folder whose copy was cut short fails with one line before
transformers reports it deep inside `from_pretrained`.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from langtrainer.errors import UserError

SAFETENSORS_INDEX = "model.safetensors.index.json"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit
OTHER_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


def check_model_folder(folder: str | os.PathLike) -> Path:
    """Return `folder` if it holds a parseable config.json and complete weights, else raise UserError.

    Every safetensors file (single, or each shard named by
    model.safetensors.index.json) must have a readable header and exactly the
    bytes its header promises. Folders with only other weight formats are
    checked for their presence only.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"model folder '{folder}' does not exist")
    _read_json_object(folder / "config.json", "config")
    weight_files = _safetensors_files(folder)
    if not weight_files and not any((folder / name).is_file() for name in OTHER_WEIGHTS):
        raise UserError(f"model folder '{folder}' holds no weights (model.safetensors): "
                        "copy the whole folder again or re-run the command that wrote it")
    for path in weight_files:
        check_safetensors(path)
    return folder


def _read_json_object(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"model folder '{path.parent}' has no {path.name}: give the folder that holds the model")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{what} file '{path}' is not valid JSON ({str(exc).splitlines()[0][:100]}): "
                        "copy it again") from None
    if not isinstance(value, dict):
        raise UserError(f"{what} file '{path}' does not hold a JSON object: copy it again")
    return value


def _safetensors_files(folder: Path) -> list[Path]:
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        weight_map = _read_json_object(index, "weights index").get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise UserError(f"weights index '{index}' has no weight_map: copy it again")
        return [folder / str(name) for name in sorted(set(weight_map.values()))]
    single = folder / "model.safetensors"
    return [single] if single.exists() else []


def check_safetensors(path: Path) -> None:
    """UserError unless `path` is a whole safetensors file (header parses, size matches)."""
    damaged = f"weights file '{path}' is truncated or damaged"
    hint = "copy the model folder again or re-run the command that wrote it"
    if not path.is_file():
        raise UserError(f"weights file '{path}' is missing: {hint}")
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise UserError(f"{damaged} ({size} bytes): {hint}")
            (n_header,) = struct.unpack("<Q", head)
            if n_header > min(MAX_HEADER_BYTES, size - 8):
                raise UserError(f"{damaged} (header of {n_header} bytes in a {size}-byte file): {hint}")
            header = json.loads(handle.read(n_header).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"{damaged} (unreadable header): {hint}") from None
    except OSError as exc:
        raise UserError(f"cannot read weights file '{path}': {exc.strerror or exc}") from None
    ends = _data_ends(header)
    if ends is None:
        raise UserError(f"{damaged} (unreadable header): {hint}")
    expected = 8 + n_header + max(ends, default=0)
    if size != expected:
        raise UserError(f"{damaged} ({size:,} bytes, its header describes {expected:,}): {hint}")


def _data_ends(header) -> list[int] | None:
    """Where each tensor's bytes end, or None if the header is not a safetensors header."""
    if not isinstance(header, dict):
        return None
    ends = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            return None
        ends.append(offsets[1])
    return ends


def count_parameters(model_dir: str | os.PathLike) -> int:
    """Number of stored weights in a folder's safetensors files (no model built)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(file), framework="numpy") as handle:
            for key in handle.keys():
                total += int(np.prod(handle.get_slice(key).get_shape()))
    return total
