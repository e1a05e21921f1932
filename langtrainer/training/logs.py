"""Where a run's training logs go, and the logs the Trainer does not write by itself.

The Trainer's loggers default to folders under `output_dir`, which for a run
is checkpoints/ (deleted when the run finishes). `keep_logs_in` points them
at the run's logs/ folder instead and adds a JSON-lines copy of the log
history there, whatever `report_to` says. `log_test_metrics` sends the test
evaluation through the same loggers (the Trainer's `predict` logs nothing).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from langtrainer import atomic

LOG_HISTORY = "log_history.jsonl"


def loss_text(logs: Mapping[str, float]) -> str:
    """The loss a progress line shows for one Trainer log: eval_loss when it was evaluated, else loss."""
    if "eval_loss" in logs:
        return f"eval_loss {logs['eval_loss']:.3f}"
    if "loss" in logs:
        return f"loss {logs['loss']:.3f}"
    return ""


def log_test_metrics(trainer, frame: Mapping[str, Any], prefix: str = "test_") -> dict[str, float]:
    """Log a split's tidy metric frame through the Trainer's loggers (TensorBoard shows test/<name>).

    The keys are the evaluation logs' (training.metrics.flat_metrics: accuracy_<lang>,
    pred_<lang>_<label>, ...) plus n, loss, ce, skew_index and difference_<metric> where present.
    """
    from langtrainer.training.metrics import flat_metrics

    logs = dict(flat_metrics(frame))
    for key in ("n", "loss", "ce", "skew_index"):
        logs[key] = frame.get(key)
    for metric, value in (frame.get("difference") or {}).items():
        logs[f"difference_{metric}"] = value
    logs = {prefix + key: float(value) for key, value in logs.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(float(value))}
    trainer.log(logs)
    return logs


def _history_callback(logs_dir: Path):
    from transformers import TrainerCallback

    class LogHistoryCallback(TrainerCallback):
        """logs/log_history.jsonl: the Trainer's log history (resumed runs included), rewritten on each log."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero:
                return
            lines = "".join(json.dumps(entry, default=str) + "\n" for entry in state.log_history)
            logs_dir.mkdir(parents=True, exist_ok=True)
            atomic.write_text(logs_dir / LOG_HISTORY, lines)

    return LogHistoryCallback()


def keep_logs_in(trainer, logs_dir: str | Path) -> Path:
    """Point the Trainer's loggers that have no folder yet at `logs_dir` (TensorBoard's event files;
    any logger with a `logging_dir`) and add the JSON-lines log history there."""
    logs_dir = Path(logs_dir)
    for callback in trainer.callback_handler.callbacks:
        # TensorBoardCallback takes TENSORBOARD_LOGGING_DIR when set (kept: the user chose it),
        # else None, which it would turn into output_dir/runs/... (inside checkpoints/)
        if hasattr(callback, "logging_dir") and callback.logging_dir is None:
            callback.logging_dir = str(logs_dir)
    trainer.add_callback(_history_callback(logs_dir))
    return logs_dir
