"""Training logs: per-group learning rates, flat test metrics, and logs kept in RUN/logs/."""

import json

import pytest

from langtrainer.training.logs import LOG_HISTORY, keep_logs_in, log_test_metrics
from test_trainer import make_trainer


def test_logs_carry_head_and_body_learning_rates(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path, per_device_train_batch_size=4, max_steps=4, logging_steps=2)
    keep_logs_in(trainer, tmp_path / "logs")
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in logged] == [2, 4]
    for entry in logged:
        # linear decay from 5e-5 / 5e-4: step s of 4 runs at (4 - (s - 1)) / 4 of the start (the
        # rate the step used, as the Trainer's own learning_rate reports it)
        fraction = (4 - (entry["step"] - 1)) / 4
        assert entry["learning_rate_body"] == pytest.approx(5e-5 * fraction)
        assert entry["learning_rate_head"] == pytest.approx(5e-4 * fraction)
        assert entry["learning_rate"] == pytest.approx(entry["learning_rate_body"])
    # the JSON-lines copy of the log history is there without any report_to
    lines = [json.loads(line) for line in (tmp_path / "logs" / LOG_HISTORY).read_text().splitlines()]
    assert lines == json.loads(json.dumps(trainer.state.log_history))


def test_test_metrics_reach_the_loggers_under_test_keys(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path)
    frame = {
        "n": 40, "accuracy": 0.5, "macro_f1": 0.4, "loss": 1.2, "ce": 1.1,
        "prediction_shares": {"a": 0.75, "b": 0.25},
        "by_language": {"de": {"n": 20, "accuracy": 0.6, "macro_f1": 0.55, "prediction_shares": {"a": 1.0, "b": 0.0}}},
        "by_group": {"G": {"n": 20, "accuracy": 0.6, "macro_f1": 0.55, "prediction_shares": {"a": 1.0, "b": 0.0}}},
        "difference": {"accuracy": 0.2, "macro_f1": 0.3},
        "skew_index": float("nan"),
    }
    logs = log_test_metrics(trainer, frame)
    assert logs["test_accuracy"] == 0.5 and logs["test_ce"] == 1.1 and logs["test_n"] == 40
    assert logs["test_accuracy_de"] == 0.6 and logs["test_macro_f1_G"] == 0.55
    assert logs["test_pred_de_a"] == 1.0 and logs["test_difference_macro_f1"] == 0.3
    assert "test_skew_index" not in logs  # NaN is not logged
    assert trainer.state.log_history[-1]["test_accuracy_de"] == 0.6


def test_predict_reports_plain_cross_entropy_beside_the_weighted_loss(tiny_model_dir, tmp_path):
    import numpy as np
    import torch
    import torch.nn.functional as F

    trainer = make_trainer(tiny_model_dir, tmp_path, class_weights="per_language")
    output = trainer.predict(trainer.eval_dataset, metric_key_prefix="test")
    logits = torch.as_tensor(np.asarray(output.predictions), dtype=torch.float32)
    labels = torch.as_tensor(np.asarray(output.label_ids), dtype=torch.long)
    assert output.metrics["test_ce"] == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-5)
    # the weighted loss is another number (make_dataset's labels are skewed per language)
    assert abs(output.metrics["test_loss"] - output.metrics["test_ce"]) > 1e-4


def test_tensorboard_folder_is_the_logs_dir_unless_the_user_chose_one(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from transformers.integrations import TensorBoardCallback

    def tensorboard_dir(trainer):
        return next(c for c in trainer.callback_handler.callbacks if isinstance(c, TensorBoardCallback)).logging_dir

    trainer = make_trainer(tiny_model_dir, tmp_path, report_to="tensorboard")
    keep_logs_in(trainer, tmp_path / "logs")
    assert tensorboard_dir(trainer) == str(tmp_path / "logs")
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "mine"))
    trainer = make_trainer(tiny_model_dir, tmp_path, report_to="tensorboard")
    keep_logs_in(trainer, tmp_path / "logs")
    assert tensorboard_dir(trainer) == str(tmp_path / "mine")
