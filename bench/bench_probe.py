"""Embedding throughput: `extract_embeddings` vs one-at-a-time `pipeline("feature-extraction")`.

The paper's reference code embeds the probe texts one by one through a
transformers feature-extraction pipeline. `extract_embeddings` batches
length-sorted texts with dynamic padding and runs the encoder through
`models.inference` (ONNX Runtime where exact). Both run here on the same model
object and the same texts, in one process, so the ratio is measured, not
assumed; the first-token features of both are compared too. A third timing,
the same batching on the eager model (LANGTRAINER_FAST_FORWARD=0), splits the
gain into batching and the exported forward. The multiply-adds of both
(`encoder_flops`: the pipeline's unpadded texts, ours with their padding) and
this core's best fp32 GEMM rate (`best_gemm_gflops`: torch's and ONNX Runtime's
matrix products on the encoder's shapes and a large square) give the ceiling
of any exact fp32 route: it must still do `first_token_flops` (every layer for
every token, except that the last layer needs its query, attention, output
projection and feed-forward block for the first token only), and no route
multiplies faster than the best GEMM this core runs.

    python bench/bench_probe.py [--n 256] [--batch-size 64] [--reps 2] [--threads 1]

Timing as bench_shap.py: torch (and ONNX Runtime) on one thread by default,
each phase timed in this process's CPU seconds (the ratio) and wall seconds,
the phases interleaved over --reps repetitions and each phase's best kept, so
load that drifts on a shared machine hits all of them alike. The one-off
export (per weights, cached) is timed apart.

Model: builtin:multilingual-e5-small when it can be prepared, else the tiny
test model (reported as such). Texts: the builtin demo corpus
(libreoffice-help, round-robin over languages) when installed, else the
test sample sentences at varied lengths (reported as such).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

logger = logging.getLogger("bench_probe")


def pick_model(name: str, workdir: Path) -> tuple[Path, str]:
    """(folder, note): the requested model, or the tiny test model when it cannot be prepared."""
    try:
        from langtrainer.models import resolve_model_path

        return Path(resolve_model_path(name)), name
    except Exception as exc:  # noqa: BLE001 - any failure means: fall back and say so
        from tiny_model import build_tiny_model

        note = f"tiny test model (fallback: {name} unavailable: {str(exc).splitlines()[0]})"
        return build_tiny_model(workdir / "tiny"), note


def pick_texts(n: int, seed: int) -> tuple[list[str], str]:
    """n texts from the demo corpus, round-robin over languages; fallback: sample sentences."""
    try:
        from langtrainer.data.builtin import load_builtin

        corpus = load_builtin("libreoffice-help")
        rng = np.random.default_rng(seed)
        by_language = {
            lang: rows["text"].tolist()
            for lang, rows in corpus.groupby("language", sort=True)
        }
        shuffled = {lang: [texts[i] for i in rng.permutation(len(texts))] for lang, texts in by_language.items()}
        langs = sorted(shuffled)
        texts = [shuffled[langs[i % len(langs)]][i // len(langs)] for i in range(n)]
        return texts, f"builtin:libreoffice-help ({len(langs)} languages, round-robin, seed {seed})"
    except Exception as exc:  # noqa: BLE001
        from tiny_model import SAMPLE_TEXTS

        base = [t for items in SAMPLE_TEXTS.values() for t in items]
        texts = [" ".join([base[i % len(base)]] * (1 + i % 5)) for i in range(n)]
        return texts, f"test sample sentences at 1-5x length (fallback: demo corpus unavailable: {str(exc).splitlines()[0]})"


def encoder_flops(lengths, config) -> float:
    """Multiply-add FLOPs (x2) of a BERT-style encoder over sequences of these token counts:
    per layer the Q, K, V and output projections (4 h^2 per token), the feed-forward block
    (2 h f per token) and attention's scores and weighted sum (2 T^2 h per sequence)."""
    h, f, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return float(sum(2 * n * (t * (4 * h * h + 2 * h * f) + 2 * t * t * h) for t in lengths))


def first_token_flops(lengths, config) -> float:
    """`encoder_flops` less what the last layer's first-token feature does not need: in the last
    layer only the keys and values are needed for every token (2 h^2 each), the query, attention,
    output projection and feed-forward block for the first token alone. The least any exact
    route must multiply to get the probe's feature."""
    h, f, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    full_layers = sum(2 * (n - 1) * (t * (4 * h * h + 2 * h * f) + 2 * t * t * h) for t in lengths)
    last_layer = sum(2 * (t * 2 * h * h + (2 * h * h + 2 * h * f) + 2 * t * h) for t in lengths)
    return float(full_layers + last_layer)


def _best_rate(fn, flops: float, reps: int) -> float:
    """GFLOP per CPU second of fn, the best of 3 timings of reps calls."""
    fn()
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(reps):
            fn()
        best = min(best, time.process_time() - started)
    return flops * reps / best / 1e9


def gemm_gflops(config, rows: int = 512) -> dict[str, float]:
    """The fp32 matrix-product rates this core reaches, GFLOP per CPU second: torch's sgemm and
    ONNX Runtime's MatMul (MLAS) on the encoder's projection and feed-forward shapes
    (rows x h @ h x h, rows x h @ h x f, rows x f @ f x h) and on a 1024 square. No exact route
    does its multiply-adds faster than the best of these."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    h, f = config.hidden_size, config.intermediate_size
    shapes = {"h.h": (rows, h, h), "h.f": (rows, h, f), "f.h": (rows, f, h), "square": (1024, 1024, 1024)}
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    rates = {}
    for name, (m, k, n) in shapes.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        flops = 2.0 * m * k * n
        reps = max(1, int(4e9 / flops))
        rates[f"torch {name}"] = _best_rate(lambda a=a, b=b: torch.mm(a, b), flops, reps)
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["A", "B"], ["C"])], "matmul",
            [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k]),
             helper.make_tensor_value_info("B", TensorProto.FLOAT, [k, n])],
            [helper.make_tensor_value_info("C", TensorProto.FLOAT, [m, n])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feeds = {"A": a.numpy(), "B": b.numpy()}
        rates[f"onnxruntime {name}"] = _best_rate(lambda s=session, x=feeds: s.run(None, x), flops, reps)
    return {key: round(value, 1) for key, value in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="number of texts")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--model", default="builtin:multilingual-e5-small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=2, help="interleaved repetitions; each phase's best is kept")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from transformers import AutoModel, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    from langtrainer.analysis.embeddings import extract_embeddings

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, model_note = pick_model(args.model, Path(tmp))
        texts, text_note = pick_texts(args.n, args.seed)
        model = AutoModel.from_pretrained(model_dir).eval().to(device)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        max_length = min(args.max_length, tokenizer.model_max_length)
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]

        extractor = pipeline("feature-extraction", model=model, tokenizer=tokenizer, device=model.device)
        tokenize_kwargs = {"truncation": True, "max_length": max_length}
        # warm-up both paths (allocator, kernels) before timing
        extractor(texts[:2], tokenize_kwargs=tokenize_kwargs)
        started = time.perf_counter()
        extract_embeddings(model, tokenizer, texts[:8], batch_size=args.batch_size, max_length=max_length)
        export_s = time.perf_counter() - started
        from langtrainer.models.inference import inference_forward

        route = inference_forward(model, "features").route

        def sync() -> None:
            if device == "cuda":
                torch.cuda.synchronize()

        def clocked(fn):
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            value = fn()
            sync()
            return value, time.process_time() - cpu, time.perf_counter() - wall

        def batched():
            return extract_embeddings(model, tokenizer, texts, batch_size=args.batch_size, max_length=max_length)[-1]

        def batched_eager():
            os.environ["LANGTRAINER_FAST_FORWARD"] = "0"
            try:
                return batched()
            finally:
                os.environ.pop("LANGTRAINER_FAST_FORWARD")

        def one_by_one():
            return np.stack([np.asarray(extractor(text, tokenize_kwargs=tokenize_kwargs)[0][0], dtype=np.float32)
                             for text in texts])

        phases = {"fast": batched, "batched_eager": batched_eager, "one_by_one": one_by_one}
        cpu_s = {name: [] for name in phases}
        wall_s = {name: [] for name in phases}
        values = {}
        for _ in range(max(1, args.reps)):
            for name, fn in phases.items():
                values[name], cpu, wall = clocked(fn)
                cpu_s[name].append(cpu)
                wall_s[name].append(wall)
        fast, slow, eager = values["fast"], values["one_by_one"], values["batched_eager"]
        fast_s, slow_s, eager_s = (min(cpu_s[k]) for k in ("fast", "one_by_one", "batched_eager"))
        fast_wall, slow_wall = min(wall_s["fast"]), min(wall_s["one_by_one"])

    from langtrainer.analysis.embeddings import length_batches

    batches = length_batches(lengths, args.batch_size)
    padded = [max(lengths[i] for i in batch) for batch in batches for _ in batch]
    flops_pipeline = encoder_flops(lengths, model.config)
    flops_ours = encoder_flops(padded, model.config)
    flops_needed = first_token_flops(lengths, model.config)
    gemm_rates = gemm_gflops(model.config)
    peak = max(gemm_rates.values())
    cosine = np.sum(fast * slow, axis=1) / (np.linalg.norm(fast, axis=1) * np.linalg.norm(slow, axis=1))
    result = {
        "n_texts": len(texts),
        "model": model_note,
        "texts": text_note,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "tokens_mean": float(np.mean(lengths)),
        "tokens_max": int(np.max(lengths)),
        "max_length": max_length,
        "batch_size": args.batch_size,
        "forward_route": route,
        "export_or_load_s": round(export_s, 2),
        "reps": args.reps,
        "extract_embeddings_cpu_s": round(fast_s, 3),
        "extract_embeddings_eager_cpu_s": round(eager_s, 3),
        "pipeline_one_by_one_cpu_s": round(slow_s, 3),
        "extract_embeddings_wall_s": round(fast_wall, 3),
        "pipeline_one_by_one_wall_s": round(slow_wall, 3),
        "extract_embeddings_texts_per_cpu_s": round(len(texts) / fast_s, 2),
        "pipeline_texts_per_cpu_s": round(len(texts) / slow_s, 2),
        "speedup": round(slow_s / fast_s, 2),
        "speedup_wall": round(slow_wall / fast_wall, 2),
        "speedup_batching_only": round(slow_s / eager_s, 2),
        "target_speedup": 10.0,
        "load_average": list(os.getloadavg()),
        "batches": len(batches),
        "tokens_real": int(sum(lengths)),
        "tokens_padded_ours": int(sum(padded)),
        "gflop_pipeline": round(flops_pipeline / 1e9, 1),
        "gflop_ours": round(flops_ours / 1e9, 1),
        "gflops_per_cpu_s_pipeline": round(flops_pipeline / 1e9 / slow_s, 1),
        "gflops_per_cpu_s_ours": round(flops_ours / 1e9 / fast_s, 1),
        "gemm_gflops_per_cpu_s": gemm_rates,
        "best_gemm_gflops": round(peak, 1),
        "gflop_first_token_needed": round(flops_needed / 1e9, 1),
        # The most any exact fp32 route could gain over the pipeline: the multiply-adds the feature
        # needs, at the best rate this core multiplies (or ours, if faster). 10x needs the rate below.
        "speedup_ceiling": round(slow_s / (flops_needed / 1e9 / max(peak, flops_ours / 1e9 / fast_s)), 2),
        "rate_needed_for_target_gflops": round(10 * flops_needed / 1e9 / slow_s, 1),
        "first_token_max_abs_diff_vs_eager_batched": float(np.abs(fast - eager).max()),
        "first_token_max_abs_diff": float(np.abs(fast - slow).max()),
        "first_token_min_cosine": float(cosine.min()),
    }
    print(json.dumps(result, indent=2))
    if args.json_out:
        from langtrainer.atomic import write_json

        write_json(args.json_out, result)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"embedding throughput, {len(texts)} texts, {device} ({result['torch_threads']} threads), "
                        f"load {os.getloadavg()[0]:.1f}")
    table.add_column("method")
    table.add_column("CPU s", justify="right")
    table.add_column("texts per CPU s", justify="right")
    table.add_row("pipeline('feature-extraction'), one at a time", f"{slow_s:.2f}", f"{len(texts) / slow_s:.1f}")
    table.add_row(f"extract_embeddings, eager (batch {args.batch_size})", f"{eager_s:.2f}", f"{len(texts) / eager_s:.1f}")
    table.add_row(f"extract_embeddings, {route} (batch {args.batch_size})", f"{fast_s:.2f}",
                  f"{len(texts) / fast_s:.1f}")
    table.add_row("speedup", f"{result['speedup']:.1f}x", "target >= 10x", style="bold")
    table.add_row("ours", "", f"{result['gflops_per_cpu_s_ours']:.0f} GFLOP/s")
    table.add_row("best fp32 GEMM on this core", "", f"{result['best_gemm_gflops']:.0f} GFLOP/s")
    table.add_row("ceiling: the feature's FLOPs at the best rate", f"{result['speedup_ceiling']:.1f}x", "")
    table.add_row("rate 10x would need", "", f"{result['rate_needed_for_target_gflops']:.0f} GFLOP/s")
    Console(stderr=True).print(table)


if __name__ == "__main__":
    main()
