"""Which inference forward is fastest on this CPU, and exact? The candidates for `models.inference`.

    python bench/bench_forward.py [--reps 3] [--threads 1] [--no-compile]

Model: builtin:multilingual-e5-small with a fresh 4-label head (seed 0), fp32.
Batches shaped like the SHAP engine's and the probe's (rows x tokens, some
rows padded). Routes, all fp32, the same weights:
- eager: the transformers model under torch.inference_mode (attention as loaded);
- eager-attn: the same with attn_implementation="eager" (no SDPA kernel);
- jit: torch.jit.trace + torch.jit.freeze (optimize_for_inference);
- compile: torch.compile(dynamic=True) (inductor; its compile time is reported apart);
- onnxruntime: `models.inference` (torch.onnx export, word embeddings looked up in
  torch, ONNX Runtime with all graph optimisations).
Timing: one thread by default, this process's CPU seconds, the routes
interleaved over --reps repetitions, each keeping its best. Each route's
max |logits - eager logits| is reported beside its ratio to eager. One JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

SHAPES = [(256, 24), (256, 40), (128, 80), (32, 200)]


def batches():
    rng = np.random.default_rng(0)
    out = []
    for rows, length in SHAPES:
        ids = rng.integers(5, 200000, (rows, length)).astype(np.int64)
        attention = np.ones_like(ids)
        for r in range(rows):  # a quarter of the rows padded by up to a fifth
            if r % 4 == 0:
                attention[r, length - 1 - r % (length // 5 + 1):] = 0
        ids[attention == 0] = 1
        out.append((ids, attention))
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from langtrainer.models import resolve_model_path
    from langtrainer.models.inference import inference_forward

    hf_logging.set_verbosity_error()
    path = resolve_model_path("builtin:multilingual-e5-small")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=4).eval()
    torch.manual_seed(0)
    model_eager_attn = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=4, attn_implementation="eager").eval()
    data = batches()

    def torch_route(module):
        def run(ids, attention):
            with torch.inference_mode():
                return module(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(attention)).logits.numpy()
        return run

    routes = {"eager": torch_route(model), "eager-attn": torch_route(model_eager_attn)}
    setup = {}
    errors = {}

    started = time.perf_counter()
    onnx = inference_forward(model, "logits")
    setup["onnxruntime"] = round(time.perf_counter() - started, 1)
    if onnx.route == "onnxruntime":
        routes["onnxruntime"] = lambda ids, attention: onnx(ids, attention)[0]
    else:
        errors["onnxruntime"] = "not available (eager fallback)"

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, ids, attention):
            return self.inner(input_ids=ids, attention_mask=attention).logits

    try:
        started = time.perf_counter()
        with torch.inference_mode():
            traced = torch.jit.freeze(torch.jit.trace(Logits(model_eager_attn).eval(),
                                                      (torch.from_numpy(data[0][0]), torch.from_numpy(data[0][1])),
                                                      check_trace=False))
            traced = torch.jit.optimize_for_inference(traced)
        setup["jit"] = round(time.perf_counter() - started, 1)

        def run_jit(ids, attention):
            with torch.inference_mode():
                return traced(torch.from_numpy(ids), torch.from_numpy(attention)).numpy()

        run_jit(*data[1])
        routes["jit"] = run_jit
    except Exception as exc:  # noqa: BLE001
        errors["jit"] = str(exc).splitlines()[0][:200]

    if not args.no_compile:
        try:
            compiled = torch.compile(Logits(model).eval(), dynamic=True)
            started = time.perf_counter()

            def run_compiled(ids, attention):
                with torch.inference_mode():
                    return compiled(torch.from_numpy(ids), torch.from_numpy(attention)).numpy()

            for ids, attention in data:
                run_compiled(ids, attention)
            setup["compile"] = round(time.perf_counter() - started, 1)
            routes["compile"] = run_compiled
        except Exception as exc:  # noqa: BLE001
            errors["compile"] = str(exc).splitlines()[0][:200]

    for run in routes.values():  # warm-up at every shape
        for ids, attention in data:
            run(ids, attention)
    reference = [routes["eager"](ids, attention) for ids, attention in data]
    cpu = {name: [] for name in routes}
    diffs = {}
    for _ in range(args.reps):
        for name, run in routes.items():
            started = time.process_time()
            outs = [run(ids, attention) for ids, attention in data]
            cpu[name].append(time.process_time() - started)
            diffs[name] = max(float(np.abs(o - r).max()) for o, r in zip(outs, reference))
    best = {name: min(times) for name, times in cpu.items()}
    report = {
        "bench": "forward",
        "model": "builtin:multilingual-e5-small (4-label head, seed 0), fp32",
        "shapes": SHAPES,
        "torch_threads": torch.get_num_threads(),
        "reps": args.reps,
        "load_average": list(os.getloadavg()),
        "cpu_s": {k: round(v, 3) for k, v in best.items()},
        "ratio_vs_eager": {k: round(v / best["eager"], 3) for k, v in best.items()},
        "max_abs_logit_diff_vs_eager": diffs,
        "setup_s": setup,
        "errors": errors,
    }
    for name in routes:
        print(f"{name:12} {best[name]:8.2f} CPU s  {best[name] / best['eager']:6.3f} x eager  "
              f"max |diff| {diffs[name]:.1e}")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
