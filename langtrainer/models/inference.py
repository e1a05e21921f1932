"""Inference-only forward passes (SHAP rows, probe features): ONNX Runtime where it is exact, else eager torch.

Why: on a CPU core, ONNX Runtime runs the same fp32 encoder faster than eager
PyTorch (fused attention / LayerNorm / GELU kernels, no Python per layer);
`bench/bench_shap.py` and `bench/bench_probe.py` measure by how much. The
maths stays fp32: before a session is used, its outputs on a probe batch
(padded rows of different lengths) are compared with the eager model's, and
a session that differs by more than `TOLERANCE` is not used.

`inference_forward(model, "logits")` returns a callable taking numpy
`input_ids`, `attention_mask` (and optional `token_type_ids`) and returning
the classifier's logits; `inference_forward(model, "features")` returns
per-layer first-token and mean-pooled hidden states (and the pooler output
where the model has one). Without onnxruntime / onnx, for a model on an
accelerator, a model whose export fails or is not exact, or with
LANGTRAINER_FAST_FORWARD=0, the same callable runs the eager model under
`torch.inference_mode`.

The exported graph lives in the langtrainer cache (`<cache>/onnx/`), named by
a hash of the model's config and every weight: changed weights are a new
file, and nothing is written next to a run folder's model files. A session
is kept per model object while its weights are unchanged (tensor versions).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import Callable, Literal

import numpy as np

log = logging.getLogger(__name__)

Kind = Literal["logits", "features"]
# Largest |eager - onnx| accepted on the probe batch: logits for "logits", hidden
# states for "features" (fp32 reordering differences are ~1e-6).
TOLERANCE = 1e-5
ENV_SWITCH = "LANGTRAINER_FAST_FORWARD"
EXPORT_VERSION = "1"  # part of the cache key: bump when the exported graph changes shape

_sessions: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def fast_forward_enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install is as good as none: eager
        return False
    return True


def _encoder(model):
    base = getattr(model, "base_model", None)
    import torch

    return base if isinstance(base, torch.nn.Module) else model


def _takes_types(module) -> bool:
    import inspect

    return "token_type_ids" in inspect.signature(module.forward).parameters


def _inputs(module, embeds_or_ids: str, first, attention_mask, token_type_ids) -> dict:
    kwargs = {embeds_or_ids: first, "attention_mask": attention_mask}
    if token_type_ids is not None and _takes_types(module):
        kwargs["token_type_ids"] = token_type_ids
    return kwargs


class _LogitsGraph:
    """What is exported for kind "logits": the classifier's logits."""

    @staticmethod
    def module(model, embeds: bool = True):
        import torch

        class Logits(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, first, attention_mask, token_type_ids=None):
                kwargs = _inputs(self.inner, "inputs_embeds" if embeds else "input_ids", first, attention_mask,
                                 token_type_ids)
                return self.inner(**kwargs).logits

        return Logits(model)

    outputs = ("logits",)


class _FeaturesGraph:
    """What is exported for kind "features": per-layer first-token and mean features (+ pooler)."""

    @staticmethod
    def module(model, embeds: bool = True):
        import torch

        encoder = _encoder(model)
        with_pooler = getattr(encoder, "pooler", None) is not None

        class Features(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, first, attention_mask, token_type_ids=None):
                kwargs = _inputs(self.inner, "inputs_embeds" if embeds else "input_ids", first, attention_mask,
                                 token_type_ids)
                out = self.inner(**kwargs, output_hidden_states=True, return_dict=True)
                states = torch.stack(out.hidden_states)  # (layers+1, batch, length, hidden)
                mask = attention_mask.unsqueeze(-1).to(states.dtype)
                mean = (states * mask).sum(dim=2) / mask.sum(dim=1).clamp(min=1.0)
                first = states[:, :, 0]
                if with_pooler:
                    return first, mean, out.pooler_output
                return first, mean

        return Features(encoder)

    outputs = ("first", "mean", "pooler")


GRAPHS = {"logits": _LogitsGraph, "features": _FeaturesGraph}


def _word_embeddings(model):
    """The input embedding table: looked up in torch, outside the exported graph (it is most of the
    weights of a multilingual model, and a lookup costs nothing)."""
    import torch

    table = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return table if isinstance(table, torch.nn.Embedding) else None


# Config entries that say where a model was loaded from, not what it computes: finetune's test
# predictions export the trained model in memory, and SHAP loads it from the run folder.
CONFIG_NOT_IN_GRAPH = ("_name_or_path", "transformers_version")


def weights_hash(model) -> str:
    """A hash of what the exported graph holds: class, config, every parameter and buffer but the word embeddings."""
    import torch

    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{type(model).__name__} export v{EXPORT_VERSION} torch {torch.__version__}".encode())
    config = getattr(model, "config", None)
    if config is not None:
        import json

        settings = json.loads(config.to_json_string(use_diff=False))
        for where_from in CONFIG_NOT_IN_GRAPH:  # the same weights saved and loaded again reuse the export
            settings.pop(where_from, None)
        digest.update(json.dumps(settings, sort_keys=True).encode())
    table = _word_embeddings(model)
    skip = {id(table.weight)} if table is not None else set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in skip:
            continue
        digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}".encode())
        data = tensor.detach().cpu().contiguous().reshape(-1)
        if data.numel():
            digest.update(data.view(torch.uint8).numpy())
    return digest.hexdigest()


def _fingerprint(model) -> tuple:
    """Cheap identity of the weights' current values: storage and in-place version of each tensor."""
    return tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in list(model.parameters()) + list(model.buffers()))


def onnx_cache_dir() -> Path:
    from langtrainer.cache import cache_dir

    return cache_dir() / "onnx"


def _probe_inputs(model, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three rows of different lengths, right-padded: exercises masking and padding."""
    vocab = int(getattr(model.config, "vocab_size", 1000))
    rng = np.random.default_rng(0)
    ids = rng.integers(5, max(6, min(vocab, 30000)), size=(3, 19)).astype(np.int64)
    attention = np.ones_like(ids)
    attention[1, 11:] = 0
    attention[2, 4:] = 0
    ids[attention == 0] = pad_id
    return ids, attention, np.zeros_like(ids)


def _as_tensor(array: np.ndarray, device):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64)).to(device)


class EagerForward:
    """The model itself under inference_mode, with the same call signature as the ONNX session."""

    route = "eager"

    def __init__(self, model, kind: Kind):
        self.model = model
        self.graph = GRAPHS[kind].module(model, embeds=False)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                 token_type_ids: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        import torch

        device = next(self.model.parameters()).device
        with torch.inference_mode():
            types = None if token_type_ids is None else _as_tensor(token_type_ids, device)
            out = self.graph(_as_tensor(input_ids, device), _as_tensor(attention_mask, device), types)
        if not isinstance(out, tuple):
            out = (out,)
        return tuple(o.float().cpu().numpy() for o in out)


class OnnxForward:
    """An ONNX Runtime session of the exported graph, the word embeddings looked up in torch."""

    route = "onnxruntime"

    def __init__(self, path: Path, table, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.table = table
        self.path = path

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                 token_type_ids: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        import torch

        with torch.inference_mode():
            embeds = self.table(_as_tensor(input_ids, "cpu")).numpy()
        feed = {"inputs_embeds": embeds, "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64)}
        if "token_type_ids" in self.inputs:
            types = np.zeros_like(input_ids) if token_type_ids is None else token_type_ids
            feed["token_type_ids"] = np.ascontiguousarray(types, dtype=np.int64)
        return tuple(self.session.run(None, feed))


def export_onnx(model, kind: Kind, path: Path) -> None:
    """Export the model's `kind` graph (word embeddings in, batch and length dynamic) to `path`, atomically."""
    import warnings

    import torch

    graph = GRAPHS[kind].module(model).eval()
    table = _word_embeddings(model)
    ids, attention, types = _probe_inputs(model, 1)
    with torch.no_grad():
        embeds = table(torch.from_numpy(ids))
    with_types = _takes_types(model if kind == "logits" else _encoder(model))
    args = (embeds, torch.from_numpy(attention)) + ((torch.from_numpy(types),) if with_types else ())
    inputs = ["inputs_embeds", "attention_mask"] + (["token_type_ids"] if with_types else [])
    n_out = 1 if kind == "logits" else (3 if getattr(_encoder(model), "pooler", None) is not None else 2)
    names = list(GRAPHS[kind].outputs[:n_out])
    dynamic = {k: {0: "batch", 1: "length"} for k in inputs}
    for name in names:
        dynamic[name] = {0: "batch"} if kind == "logits" or name == "pooler" else {1: "batch"}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, args, str(tmp), input_names=inputs, output_names=names, dynamic_axes=dynamic,
                              opset_version=17, dynamo=False, do_constant_folding=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _prune_cache(folder: Path, keep: int) -> None:
    """Keep the `keep` most recently used exports (every fine-tuned model has its own)."""
    files = sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


CACHE_KEEP = 12


def _build(model, kind: Kind, threads: int):
    """An exact ONNX session for the model, or None (the reason is logged)."""
    import torch

    if not fast_forward_enabled():
        return None
    if not onnxruntime_available():
        log.info("onnxruntime not installed: eager forward passes")
        return None
    if next(model.parameters()).device.type != "cpu" or any(p.dtype != torch.float32 for p in model.parameters()):
        return None  # on an accelerator (or in half precision) the eager model is the path
    table = _word_embeddings(model)
    if table is None:
        return None
    try:
        path = onnx_cache_dir() / f"{weights_hash(model)}-{kind}.onnx"
        if path.exists():
            os.utime(path)
        else:
            export_onnx(model, kind, path)
            _prune_cache(path.parent, CACHE_KEEP)
        session = OnnxForward(path, table, threads)
        probe = _probe_inputs(model, getattr(model.config, "pad_token_id", None) or 0)
        ours = session(*probe)
        eager = EagerForward(model, kind)(*probe)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, eager)) if len(ours) == len(eager) else np.inf
        if not diff <= TOLERANCE:
            log.warning("ONNX export differs from the eager model by %.2e: eager forward passes", diff)
            return None
        return session
    except Exception as exc:  # noqa: BLE001 - any export/runtime failure: the eager model is always right
        log.warning("ONNX export unavailable (%s): eager forward passes", (str(exc).splitlines() or [""])[0][:200])
        return None


def inference_forward(model, kind: Kind, *, fast: bool = True) -> Callable[..., tuple[np.ndarray, ...]]:
    """The fastest exact forward for `model` (see module doc); `fast=False` always gives the eager one."""
    import torch

    if not fast or not fast_forward_enabled():
        return EagerForward(model, kind)
    threads = torch.get_num_threads()
    key = (kind, threads)
    fingerprint = _fingerprint(model)
    with _lock:
        per_model = _sessions.setdefault(model, {})
        cached = per_model.get(key)
        if cached is None or cached[0] != fingerprint:
            cached = (fingerprint, _build(model, kind, threads))
            per_model[key] = cached
    return cached[1] or EagerForward(model, kind)
