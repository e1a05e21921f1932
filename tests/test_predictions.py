"""predictions.parquet: the table of a run's test predictions, written and read by RunDir."""

import math

import datasets
import numpy as np
import pytest

from langtrainer.errors import UserError
from langtrainer.rundir import RunDir
from langtrainer.training.evaluation import prediction_table


def rows():
    return datasets.Dataset.from_dict({"id": ["a", "b", "c"], "language": ["en", "en", "fr"], "label": [0, 1, 1]})


def test_prediction_table_worked_example_round_trips(tmp_path):
    logits = np.array([[0.0, 0.0, 0.0], [math.log(3.0), 0.0, 0.0], [0.0, 0.0, 5.0]])
    table = prediction_table(logits, rows(), ["x", "label", "z"])
    run = RunDir(tmp_path)
    run.write_predictions(table)
    back = run.read_predictions()
    assert back.columns.tolist() == ["id", "language", "label", "predicted", "x", "p(label)", "z"]
    assert back["predicted"].tolist() == ["x", "x", "z"]  # argmax ties go to the first class
    assert back["label"].tolist() == ["x", "label", "label"]
    # softmax of (log 3, 0, 0) is (3/5, 1/5, 1/5)
    assert back.loc[1, ["x", "p(label)", "z"]].tolist() == pytest.approx([0.6, 0.2, 0.2])
    assert back.loc[0, "x"] == pytest.approx(1 / 3)
    assert back.attrs["label_names"] == ["x", "label", "z"]
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.parquet"]  # no temporary left behind


def test_missing_or_damaged_predictions_are_one_line_errors(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(UserError, match="has no predictions.parquet"):
        run.read_predictions()
    run.predictions_path.write_bytes(b"not parquet")
    with pytest.raises(UserError, match="cannot be read"):
        run.read_predictions()
