"""What a tiny finetune leaves in its run folder: TensorBoard logs in RUN/logs and the model card."""

import json

import pytest

from langtrainer.pipelines.finetune import finetune
from langtrainer.reporting.model_card import read_card_metadata
from langtrainer.rundir import RunDir
from langtrainer.training.logs import LOG_HISTORY
from test_finetune_tiny import LANGS, tiny_recipe, write_dataset


def scalars(logs_dir):
    """tag -> [(step, value)] over every event file under logs_dir."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = {}
    for events in sorted(logs_dir.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    return out


def test_tensorboard_logs_and_model_card_stay_in_the_run_folder(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboard")
    data = write_dataset(tmp_path / "data.jsonl")
    recipe = tiny_recipe(tiny_model_dir, data, training={"report_to": "tensorboard"})
    run = RunDir(tmp_path / "run")
    metrics = finetune(recipe, run.path).to_dict()

    assert not run.checkpoints.exists()
    logged = scalars(run.logs_dir)
    evals = [h for h in metrics["log_history"] if "eval_loss" in h]
    for lang in LANGS:
        # every evaluation's per-language accuracy, as the log history has it
        assert [round(v, 5) for _, v in logged[f"eval/accuracy_{lang}"]] == [
            round(h[f"eval_accuracy_{lang}"], 5) for h in evals]
    assert logged["test/accuracy"][-1][1] == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)
    assert "eval/ce" in logged and "test/ce" in logged
    head = [v for _, v in logged["train/learning_rate_head"]]
    body = [v for _, v in logged["train/learning_rate_body"]]
    assert head and all(h == pytest.approx(10 * b) for h, b in zip(head, body))  # 5e-4 vs 5e-5, same schedule
    history = [json.loads(line) for line in (run.logs_dir / LOG_HISTORY).read_text().splitlines()]
    assert any("test_accuracy" in entry for entry in history)

    card = run.model_card_path
    meta = read_card_metadata(card)
    assert meta["language"] == metrics["languages"] and meta["library_name"] == "transformers"
    by_name = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    test = metrics["test"]
    for lang in LANGS:
        accuracy = test["by_language"][lang]["accuracy"] if "by_language" in test else test[f"accuracy_{lang}"]
        assert by_name[f"test accuracy ({lang})"] == pytest.approx(accuracy, abs=1e-4)
        assert f"| {lang} |" in card.read_text()
    assert "| class weights | per_language (inverse, reduction mean) |" in card.read_text()
