"""Sentence features from a transformer's hidden states, fast.

The reference code pushes one example at a time through a
`pipeline("feature-extraction")`. Here examples are tokenized once, sorted by
length and cut into batches whose padding stays within `PADDING_SLACK` of
their real tokens (`length_batches`: a fixed 64 rows padded the probe's texts
to twice their tokens, slower than one at a time), and one forward pass with
`output_hidden_states` serves every requested layer.
Rows come back in input order. The forward is `models.inference`'s: an
ONNX Runtime session of the encoder where it is available and checked exact
(features within 1e-5 of the eager model's), else the eager model.
"""

from __future__ import annotations

import logging
from typing import Callable, Literal, Sequence

import numpy as np
import torch

from langtrainer.errors import UserError, setting_error
from langtrainer.models.inference import inference_forward

logger = logging.getLogger(__name__)

Feature = Literal["first-token", "mean", "pooler"]
FEATURES: tuple[str, ...] = ("first-token", "mean", "pooler")


def base_encoder(model: torch.nn.Module) -> torch.nn.Module:
    """The encoder without a task head: `model.base_model` for a head model, else the model."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, torch.nn.Module) else model


def num_hidden_layers(model: torch.nn.Module) -> int:
    config = getattr(base_encoder(model), "config", None) or getattr(model, "config", None)
    n = getattr(config, "num_hidden_layers", None)
    if n is None:
        raise UserError("cannot tell how many layers the model has (config.num_hidden_layers missing)")
    return int(n)


def resolve_layers(model: torch.nn.Module, layers: Sequence[int] | str) -> list[int]:
    """Requested layer indices, checked. `"all"` = 0 (embeddings) .. num_hidden_layers.

    Index i is `hidden_states[i]`: 0 is the embedding output, -1 the last layer.
    """
    n_states = num_hidden_layers(model) + 1
    if isinstance(layers, str):
        if layers != "all":
            raise UserError(f"layers must be integers or 'all', got {layers!r}")
        return list(range(n_states))
    if isinstance(layers, int):
        layers = [layers]
    out = [int(layer) for layer in layers]
    if not out:
        raise UserError("no layer requested")
    for layer in out:
        if not -n_states <= layer < n_states:
            raise UserError(
                f"layer {layer} does not exist: the model has {n_states} hidden states "
                f"(0 = embeddings .. {n_states - 1} = last layer, or -1)"
            )
    return out


def has_pooler(model: torch.nn.Module) -> bool:
    return getattr(base_encoder(model), "pooler", None) is not None


def _pad_batch(encodings: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of tokenized examples to the longest one (first token stays at index 0)."""
    width = max(len(e["input_ids"]) for e in encodings)
    batch: dict[str, torch.Tensor] = {}
    for key in encodings[0]:
        fill = pad_id if key == "input_ids" else 0
        rows = [list(e[key]) + [fill] * (width - len(e[key])) for e in encodings]
        batch[key] = torch.tensor(rows, dtype=torch.long)
    lengths = torch.tensor([len(e["input_ids"]) for e in encodings])
    batch["attention_mask"] = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).long()
    return batch


# Padded tokens a batch may add, as a share of its real tokens. Compute grows with padded
# tokens; on a CPU core a matrix of a few hundred token rows is already near full speed.
PADDING_SLACK = 0.1


def length_batches(lengths: Sequence[int], batch_size: int, slack: float = PADDING_SLACK) -> list[list[int]]:
    """Indices into `lengths`, longest first, in batches of at most `batch_size` rows whose padded size
    (rows x longest) stays within (1 + slack) x their real tokens. A batch that does not fit in memory
    fails on the first, longest one."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    width = real = 0
    for i in order:
        n = max(1, int(lengths[i]))
        if current and (len(current) >= batch_size or (len(current) + 1) * width > (1 + slack) * (real + n)):
            batches.append(current)
            current, real = [], 0
        if not current:
            width = n
        current.append(i)
        real += n
    if current:
        batches.append(current)
    return batches


def _check_feature(model: torch.nn.Module, feature: str, layer_ids: list[int]) -> None:
    if feature not in FEATURES:
        raise UserError(f"unknown feature {feature!r}; choose one of {', '.join(FEATURES)}")
    if feature != "pooler":
        return
    if not has_pooler(model):
        raise setting_error(
            "feature 'pooler' needs a model with a pooler layer; this one has none: "
            "use {feature} first-token or mean", "feature")
    n_states = num_hidden_layers(model) + 1
    if any(layer % n_states != n_states - 1 for layer in layer_ids):
        raise UserError("feature 'pooler' exists only for the last layer: use layer -1")


def _encode(tokenizer, texts: list[str], text_pairs: list[str] | None, max_length: int) -> list[dict]:
    """Token ids (and token types) per example, cut at `max_length` (and the tokenizer's own limit)."""
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 100_000:
        max_length = min(max_length, model_max)
    from langtrainer.models.tokenizers import clip_text

    # Memory per text bounded by max_length, not by the text (a 50 MB text would otherwise be tokenised whole).
    texts = [clip_text(t, max_length) for t in texts]
    if text_pairs is not None:
        text_pairs = [clip_text(t, max_length) for t in text_pairs]
    if text_pairs is None:
        encoded = tokenizer(texts, truncation=True, max_length=max_length)
    else:
        encoded = tokenizer(texts, text_pairs, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "token_type_ids") if k in encoded]
    return [{k: encoded[k][i] for k in keys} for i in range(len(texts))]


def extract_embeddings(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None = None,
    layers: Sequence[int] | str = (-1,),
    feature: Feature = "first-token",
    batch_size: int = 64,
    max_length: int = 512,
    progress: Callable[[int, int], None] | None = None,
    fast: bool = True,
    padding_slack: float = PADDING_SLACK,
) -> dict[int, np.ndarray]:
    """Features of `texts` per layer: {layer: float32 array [n, hidden]}, rows in input order.

    feature: "first-token" = hidden state of the first token ([CLS] / <s>),
    "mean" = mean over non-padding tokens (special tokens included),
    "pooler" = the base model's pooler output (last layer only; the paper's
    reference code used BERT's pooler). Works on a head model (its
    `base_model` is used) or a bare encoder. The model's train/eval state is
    restored on return. `fast=False` runs the eager model (no export): for
    a model in training, whose weights change between calls. Batches hold at
    most `batch_size` texts and pad by at most `padding_slack` x their tokens
    (`length_batches`); neither changes the features.
    """
    if batch_size < 1:
        raise UserError("batch_size must be at least 1")
    texts = [str(t) for t in texts]
    if text_pairs is not None:
        text_pairs = [str(t) for t in text_pairs]
        if len(text_pairs) != len(texts):
            raise UserError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    encoder = base_encoder(model)
    layer_ids = resolve_layers(model, layers)
    _check_feature(model, feature, layer_ids)
    if not texts:
        hidden_size = int(getattr(encoder.config, "hidden_size", 0) or 0)
        return {layer: np.zeros((0, hidden_size), dtype=np.float32) for layer in layer_ids}

    examples = _encode(tokenizer, texts, text_pairs, max_length)
    batches = length_batches([len(e["input_ids"]) for e in examples], batch_size, padding_slack)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    outputs: dict[int, np.ndarray] = {}
    was_training = model.training
    model.eval()
    try:
        forward = inference_forward(encoder, "features", fast=fast)
        done = 0
        for rows in batches:
            batch = _pad_batch([examples[i] for i in rows], pad_id)
            types = batch.get("token_type_ids")
            first, mean, *pooler = forward(batch["input_ids"].numpy(), batch["attention_mask"].numpy(),
                                           None if types is None else types.numpy())
            for layer in layer_ids:
                pooled = pooler[0] if feature == "pooler" else (first if feature == "first-token" else mean)[layer]
                if layer not in outputs:
                    outputs[layer] = np.empty((len(texts), pooled.shape[-1]), dtype=np.float32)
                outputs[layer][rows] = pooled
            done += len(rows)
            if progress is not None:
                progress(done, len(texts))
    finally:
        model.train(was_training)
    return outputs
