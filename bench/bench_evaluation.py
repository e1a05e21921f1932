"""finetune's test block: the test split's predictions eager vs through `models.inference`, same run.

    python bench/bench_evaluation.py [--per-cell 30] [--max-length 96] [--reps 3] [--threads 1]

What `pipelines.finetune.test_metrics` runs: `LangTrainer.predict` over the
length-sorted test split (the demo's shape by default: 30 rows per language
and label, 6 languages x 4 labels = 720 rows, max_length 96, eval batch 64),
once on the eager model and once inside `trainer.inference_predictions()`
(the ONNX Runtime session where it is exact). Also timed: the metrics that
follow the predictions (`evaluate_predictions` with intervals and the CMI's
permutation test, the builtin demo recipe), so the forward's share of the
test stage is visible.

Model: builtin:multilingual-e5-small with a fresh 4-label head (seed 0),
fp32; texts: the libreoffice-help test split, stratified (seed 0).
Timing as bench_shap.py: torch (and ONNX Runtime) on one thread by default,
this process's CPU seconds, the phases interleaved over --reps repetitions
and each phase's best kept; the one-off export (per weights, cached, and
reused by SHAP on the same model) is timed apart. One JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

LANGUAGES = ["de", "en", "es", "fr", "ja", "zh"]
LABELS = ["scalc", "swriter", "simpress", "sbasic"]


def test_split(per_cell: int):
    """per_cell rows of each (language, label) of libreoffice-help's test split (seed 0)."""
    import datasets

    from langtrainer.data.builtin import load_builtin

    frame = load_builtin("libreoffice-help")
    frame = frame[(frame["split"] == "test") & frame["label"].isin(LABELS) & frame["language"].isin(LANGUAGES)]
    parts = [rows.sample(n=min(per_cell, len(rows)), random_state=0)
             for _, rows in frame.groupby(["language", "label"], sort=True)]
    import pandas as pd

    frame = pd.concat(parts).reset_index(drop=True)
    return datasets.Dataset.from_dict({
        "text": frame["text"].tolist(),
        "label": [LABELS.index(x) for x in frame["label"]],
        "language": frame["language"].tolist(),
    })


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-cell", type=int, default=30, help="test rows per (language, label)")
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64, help="per_device_eval_batch_size")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from langtrainer import LangTrainer, LangTrainingArguments
    from langtrainer.models import resolve_model_path
    from langtrainer.recipe import load_raw, recipe_from_dict
    from langtrainer.training.encoding import sort_by_length, tokenize
    from langtrainer.training.evaluation import evaluate_predictions

    if args.threads:
        torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import datasets

    datasets.disable_progress_bars()
    path = resolve_model_path("builtin:multilingual-e5-small")
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(LABELS)).eval()
    raw = test_split(args.per_cell)
    test, rows = sort_by_length(tokenize(raw, tokenizer, args.max_length), raw)
    lengths = [len(ids) for ids in test["input_ids"]]
    recipe = recipe_from_dict(load_raw("builtin:demo"))

    with tempfile.TemporaryDirectory() as tmp:
        trainer = LangTrainer(
            model=model, processing_class=tokenizer, train_dataset=test, languages=LANGUAGES,
            args=LangTrainingArguments(output_dir=tmp, per_device_eval_batch_size=args.batch_size, use_cpu=True,
                                       report_to="none", disable_tqdm=True, save_strategy="no"),
        )

        def eager():
            return trainer.predict(test, metric_key_prefix="test")

        def fast():
            with trainer.inference_predictions():
                return trainer.predict(test, metric_key_prefix="test")

        def metrics(prediction):
            return evaluate_predictions(prediction.predictions, rows, LABELS, recipe, uncertainty=True)

        started = time.perf_counter()
        with trainer.inference_predictions() as route:  # the export (or cache load) and its exactness check
            pass
        export_s = time.perf_counter() - started
        eager(), fast()  # warm-up: allocator, kernels
        cpu = {"eager": [], "fast": [], "metrics": []}
        wall = {k: [] for k in cpu}
        out = {}
        for _ in range(max(1, args.reps)):
            for name, fn in (("eager", eager), ("fast", fast), ("metrics", lambda: metrics(out["eager"]))):
                w, c = time.perf_counter(), time.process_time()
                out[name] = fn()
                cpu[name].append(time.process_time() - c)
                wall[name].append(time.perf_counter() - w)
    best = {k: min(v) for k, v in cpu.items()}
    e, f = out["eager"], out["fast"]
    same_labels = int((e.predictions.argmax(-1) == f.predictions.argmax(-1)).sum())
    report = {
        "bench": "evaluation",
        "model": "builtin:multilingual-e5-small (4-label head, seed 0), fp32",
        "rows": len(test),
        "tokens_mean": float(np.mean(lengths)),
        "tokens_max": int(np.max(lengths)),
        "max_length": args.max_length,
        "eval_batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "reps": args.reps,
        "load_average": list(os.getloadavg()),
        "route": route,
        "export_or_load_s": round(export_s, 2),
        "predict_eager_cpu_s": round(best["eager"], 3),
        "predict_fast_cpu_s": round(best["fast"], 3),
        "predict_eager_wall_s": round(min(wall["eager"]), 3),
        "predict_fast_wall_s": round(min(wall["fast"]), 3),
        "speedup_predict": round(best["eager"] / best["fast"], 2),
        "metrics_cpu_s": round(best["metrics"], 3),
        "max_abs_logit_diff": float(np.abs(e.predictions - f.predictions).max()),
        "same_predicted_label": f"{same_labels}/{len(test)}",
        "test_loss_diff": abs(e.metrics["test_loss"] - f.metrics["test_loss"]),
    }
    print(f"test predictions, {len(test)} rows: eager {best['eager']:.2f} CPU s, {route} {best['fast']:.2f} CPU s "
          f"({report['speedup_predict']:.2f}x), metrics {best['metrics']:.2f} CPU s, export/load {export_s:.1f} s; "
          f"max |logit diff| {report['max_abs_logit_diff']:.1e}, same label {report['same_predicted_label']}")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
