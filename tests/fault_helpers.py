"""Tiny local datasets, recipes and CLI runs shared by the fault / bad-input tests.

Everything here is local and small: 3 languages x 3 labels of short texts
made from tests/tiny_model.py's SAMPLE_TEXTS words, a recipe pointing at the
tiny BERT fixture, and a helper that runs `python -m langtrainer ...` offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from tiny_model import SAMPLE_TEXTS

REPO = Path(__file__).resolve().parents[1]
LANGS = ("de", "en", "fr")
LABELS = ("a", "b", "c")
SPLIT_ROWS = {"train": 12, "validation": 4, "test": 3}  # per (language, label) cell


def make_rows(split: str, per_cell: int, seed: int = 0, langs=LANGS, labels=LABELS) -> list[dict[str, Any]]:
    """Rows with id/text/label/language; text is 4 words of the language's sample sentence."""
    rng = np.random.default_rng([seed, len(split)])
    rows = []
    for lang in langs:
        words = " ".join(SAMPLE_TEXTS[lang]).split()
        for label in labels:
            for i in range(per_cell):
                text = " ".join(rng.choice(words, 4))
                rows.append({"id": f"{split}-{lang}-{label}-{i}", "text": text, "label": label, "language": lang})
    return rows


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_dataset(folder: Path, per_cell: dict[str, int] | None = None) -> Path:
    """A folder with train/validation/test.jsonl (3 languages x 3 labels)."""
    for split, n in (per_cell or SPLIT_ROWS).items():
        write_jsonl(folder / f"{split}.jsonl", make_rows(split, n))
    return folder


def recipe_text(model_dir: Path, source: Path, name: str = "tiny", extra: str = "", epochs: int = 2,
                training: str = "") -> str:
    """A tiny recipe: 9 train examples per language (3 per label when balanced)."""
    return f"""name: {name}
seed: 0
model: {{name_or_path: "{model_dir}", max_length: 32}}
data:
  source: "{source}"
  languages: [{", ".join(LANGS)}]
  labels: [{", ".join(LABELS)}]
  train_per_language: 9
  validation_per_language: 3
  test_per_cell: 2
imbalance:
  subset: imbalanced
  groups: {{A: [de, fr], B: [en]}}
  distribution: {{A: [50, 25, 25], B: [0, 50, 50]}}
training:
  num_train_epochs: {epochs}
  per_device_train_batch_size: 4
  per_device_eval_batch_size: 16
  logging_steps: 1
  dataloader_num_workers: 0
{training}{extra}"""


def write_recipe(path: Path, model_dir: Path, source: Path, **kwargs) -> Path:
    path.write_text(recipe_text(model_dir, source, **kwargs), encoding="utf-8")
    return path


def cli_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    for name in ("LOCAL_RANK", "WORLD_SIZE", "RANK", "LANGTRAINER_LAUNCHED"):
        env.pop(name, None)
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "langtrainer", *map(str, args)]


def run_cli(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m langtrainer ARGS` offline in `cwd`; text output captured."""
    return subprocess.run(cli_command(*args), cwd=cwd, env={**cli_env(), **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def error_line(stderr: str) -> str:
    """The one non-empty stderr line of a user error (asserts there is exactly one)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def tree(folder: Path) -> list[str]:
    """Every path below `folder`, relative, sorted (empty when it does not exist)."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def split_hashes(dataset_dict) -> dict[str, str]:
    """sha256 of each split's rows (JSON lines in stored order) and of its features."""
    out = {}
    for split, ds in dataset_dict.items():
        digest = hashlib.sha256(json.dumps(ds.features.to_dict(), sort_keys=True).encode())
        for row in ds:
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode() + b"\n")
        out[split] = digest.hexdigest()
    return out


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ one reference training run per session

KILL_RESUME_EPOCHS = 3
_reference: dict[str, Path] = {}


def training_setup(root: Path, model_dir: Path) -> Path:
    """Dataset + 3-epoch recipe (a checkpoint each epoch) under `root`; returns the recipe path."""
    source = write_dataset(root / "ds")
    return write_recipe(root / "tiny.yaml", model_dir, source, epochs=KILL_RESUME_EPOCHS)


def reference_run(tmp_path_factory, model_dir: Path) -> Path:
    """An uninterrupted `finetune` of the tiny recipe, run once per test session (subprocess)."""
    if "run" not in _reference:
        root = tmp_path_factory.mktemp("reference")
        training_setup(root, model_dir)
        done = run_cli("finetune", "tiny.yaml", "-o", "run", "--quiet", cwd=root)
        assert done.returncode == 0, done.stderr[-3000:]
        _reference["run"] = root / "run"
    return _reference["run"]


def comparable_metrics(metrics: dict, resumed: bool = False) -> dict:
    """metrics.json without what legitimately differs between runs: wall-clock times and, after a
    resume, the Trainer's `train_loss` (the mean over the steps that call ran, not the whole run)."""
    out = {k: v for k, v in metrics.items() if k not in ("train", "log_history")}
    out["train"] = {k: metrics["train"][k] for k in ("steps", "examples") + (() if resumed else ("loss",))}
    timing = ("runtime", "per_second", "total_flos") + (("train_loss",) if resumed else ())
    out["log_history"] = [
        {k: v for k, v in entry.items() if not any(t in k for t in timing)} for entry in metrics["log_history"]
    ]
    return out


def weights(run_dir: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(run_dir / "model.safetensors"))
