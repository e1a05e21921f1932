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


def flat_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numbers of a (tidy or flat) metrics block as flat logger keys.

    Tidy blocks become the names the evaluation logs use: accuracy,
    accuracy_<lang>, macro_f1_<lang>, n_<lang>, pred_<lang>_<label>,
    pred_<label> (overall shares), difference_accuracy; flat keys pass through.
    """
    out: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if isinstance(value, float) and math.isnan(value):
            return
        out[prefix + key] = float(value)

    for key, value in metrics.items():
        if key in ("by_language", "by_group") and isinstance(value, Mapping):
            for unit, block in value.items():
                for metric, number in (block or {}).items():
                    if metric == "prediction_shares" and isinstance(number, Mapping):
                        for label, share in number.items():
                            put(f"pred_{unit}_{label}", share)
                    else:
                        put(f"{metric}_{unit}", number)
        elif key == "prediction_shares" and isinstance(value, Mapping):
            for label, share in value.items():
                put(f"pred_{label}", share)
        elif key == "difference" and isinstance(value, Mapping):
            for metric, number in value.items():
                put(f"difference_{metric}", number)
        else:
            put(key, value)
    return out


def log_test_metrics(trainer, metrics: Mapping[str, Any], prefix: str = "test_") -> dict[str, float]:
    """Log the test metrics through the Trainer's loggers (TensorBoard shows them as test/<name>)."""
    logs = flat_metrics(metrics, prefix)
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
    """Point the Trainer's loggers at `logs_dir` (TensorBoard's event files; any logger with a
    `logging_dir`) and add the JSON-lines log history there."""
    logs_dir = Path(logs_dir)
    for callback in trainer.callback_handler.callbacks:
        # TensorBoardCallback reads its folder from TENSORBOARD_LOGGING_DIR, else output_dir/runs/...
        if hasattr(callback, "logging_dir") and getattr(callback, "tb_writer", None) is None:
            callback.logging_dir = str(logs_dir)
    trainer.add_callback(_history_callback(logs_dir))
    return logs_dir
