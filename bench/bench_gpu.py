"""What a paper-sized run costs on the device at hand: one JSON line.

    python bench/bench_gpu.py [--batch 16] [--seq-len 512] [--steps 5] [--shap-rows 64] [--probe-texts 256]

On whatever device is present (CUDA if torch sees one, else the CPU):
- a training step of a paper recipe's model: mBERT-sized (BERT, 12 layers,
  hidden 768, 12 heads, FF 3072, vocabulary 119,547) built from a config with
  random weights, sequence classification (4 labels), AdamW, batch
  --batch x --seq-len tokens, fp16 autocast with a gradient scaler on CUDA
  (fp32 on the CPU); seconds per step after one warm-up step, examples/s;
- peak memory: CUDA's max allocated bytes, or the process's peak RSS on the CPU;
- SHAP rows/s at --seq-len tokens: `analysis.shap.ModelRunner` (the engine's
  only model calls: padded batches -> softmax) on --shap-rows full-length rows;
- probe embeddings/s: `models.inference`'s "features" forward (what
  `extract_embeddings` runs after tokenising) on --probe-texts rows of
  --probe-len tokens, batch 64.

Defaults follow the device: on the CPU a couple of minutes (batch 2 x 128 for
training, 8 SHAP rows, 32 probe texts); on CUDA the paper's 16 x 512.
Random token ids: speed does not depend on the text.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

MBERT = dict(vocab_size=119547, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
             intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)


def build_model(device: str):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(**MBERT, num_labels=4)).to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_memory_bytes(device: str) -> int:
    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: kilobytes


def train_steps(model, device: str, batch: int, seq_len: int, steps: int) -> dict:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    fp16 = device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, MBERT["vocab_size"], (batch, seq_len), generator=generator).to(device)
    labels = torch.randint(0, 4, (batch,), generator=generator).to(device)
    attention = torch.ones_like(ids)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=torch.float16, enabled=fp16):
            loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    step()  # warm-up: allocator, kernels, optimizer state
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = (time.perf_counter() - started) / steps
    model.eval()
    optimizer.zero_grad(set_to_none=True)  # its state goes with the function's frame
    return {"train_batch": batch, "train_seq_len": seq_len, "train_steps_timed": steps,
            "train_precision": "fp16 autocast" if fp16 else "fp32",
            "train_s_per_step": round(seconds, 4), "train_examples_per_s": round(batch / seconds, 2)}


def shap_rows_per_s(model, device: str, seq_len: int, n_rows: int) -> dict:
    from langtrainer.analysis.shap import ModelRunner

    rng = np.random.default_rng(1)
    rows = [(rng.integers(5, MBERT["vocab_size"], seq_len).astype(np.int64), None) for _ in range(n_rows)]
    runner = ModelRunner(model, SimpleNamespace(pad_token_id=0), batch_size=64)
    started = time.perf_counter()
    runner(rows[:2])  # export / session load on the CPU, kernels on CUDA
    setup = time.perf_counter() - started
    sync(device)
    started = time.perf_counter()
    runner(rows)
    sync(device)
    seconds = time.perf_counter() - started
    return {"shap_rows": n_rows, "shap_seq_len": seq_len, "shap_forward_route": runner.route,
            "shap_setup_s": round(setup, 2), "shap_rows_per_s": round(n_rows / seconds, 2)}


def probe_embeddings_per_s(model, device: str, n_texts: int, length: int) -> dict:
    from langtrainer.models.inference import inference_forward

    encoder = model.base_model
    rng = np.random.default_rng(2)
    started = time.perf_counter()
    forward = inference_forward(encoder, "features")
    setup = time.perf_counter() - started
    ids = rng.integers(5, MBERT["vocab_size"], (n_texts, length)).astype(np.int64)
    attention = np.ones_like(ids)
    forward(ids[:2], attention[:2])
    sync(device)
    started = time.perf_counter()
    for begin in range(0, n_texts, 64):
        forward(ids[begin:begin + 64], attention[begin:begin + 64])
    sync(device)
    seconds = time.perf_counter() - started
    return {"probe_texts": n_texts, "probe_seq_len": length, "probe_forward_route": forward.route,
            "probe_setup_s": round(setup, 2), "probe_embeddings_per_s": round(n_texts / seconds, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cuda = torch.cuda.is_available()
    parser.add_argument("--batch", type=int, default=16 if cuda else 2)
    parser.add_argument("--seq-len", type=int, default=512, help="SHAP row length (and training length on CUDA)")
    parser.add_argument("--train-seq-len", type=int, default=None, help="default: --seq-len on CUDA, 128 on the CPU")
    parser.add_argument("--steps", type=int, default=5 if cuda else 2)
    parser.add_argument("--shap-rows", type=int, default=256 if cuda else 8)
    parser.add_argument("--probe-texts", type=int, default=1024 if cuda else 32)
    parser.add_argument("--probe-len", type=int, default=128)
    args = parser.parse_args(argv)
    device = "cuda" if cuda else "cpu"
    train_len = args.train_seq_len or (args.seq_len if cuda else 128)
    model = build_model(device)
    report = {
        "bench": "gpu",
        "device": torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "model": "BERT from config, mBERT-sized (12 x 768, vocab 119547), random weights, 4 labels",
        "parameters": sum(p.numel() for p in model.parameters()),
        "load_average": list(os.getloadavg()),
    }
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    report.update(train_steps(model, device, args.batch, train_len, args.steps))
    report["train_peak_memory_mb"] = round(peak_memory_bytes(device) / 2**20, 1)
    report.update(shap_rows_per_s(model, device, args.seq_len, args.shap_rows))
    report.update(probe_embeddings_per_s(model, device, args.probe_texts, args.probe_len))
    report["peak_memory_mb"] = round(peak_memory_bytes(device) / 2**20, 1)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
