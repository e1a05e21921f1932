"""per_language_compute_metrics: a compute_metrics for any Trainer, checked on a worked example."""

import math

import numpy as np
import pytest
from datasets import Dataset
from transformers import EvalPrediction, Trainer, TrainingArguments

from langtrainer import per_language_compute_metrics
from langtrainer.errors import UserError
from langtrainer.training.encoding import tokenize
from test_trainer import load, make_dataset

# en: labels a a b, predicted a b b; de: labels b b a, predicted b b b.
LANGUAGES = ["en", "en", "en", "de", "de", "de"]
LABELS = [0, 0, 1, 1, 1, 0]
PREDICTED = [0, 1, 1, 1, 1, 1]


def one_hot_logits(predicted, n_labels=2):
    return np.eye(n_labels)[predicted] * 3.0 - 1.0


def test_worked_example():
    dataset = Dataset.from_dict({"text": ["x"] * 6, "lang": LANGUAGES})
    compute = per_language_compute_metrics(dataset, ["a", "b"], language_column="lang", groups={"G": ["en", "de"]})
    out = compute(EvalPrediction(predictions=(one_hot_logits(PREDICTED), np.zeros((6, 4))), label_ids=np.array(LABELS)))
    # overall: 4 of 6 right; F1(a): P 1/1, R 1/3 -> 0.5; F1(b): P 3/5, R 3/3 -> 0.75
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["macro_f1"] == pytest.approx((0.5 + 0.75) / 2)
    # en: F1(a): P 1, R 1/2 -> 2/3; F1(b): P 1/2, R 1 -> 2/3
    assert out["accuracy_en"] == pytest.approx(2 / 3)
    assert out["macro_f1_en"] == pytest.approx(2 / 3)
    assert out["pred_en_a"] == pytest.approx(1 / 3) and out["pred_en_b"] == pytest.approx(2 / 3)
    # de: F1(a) = 0 (never predicted); F1(b): P 2/3, R 1 -> 0.8
    assert out["accuracy_de"] == pytest.approx(2 / 3)
    assert out["macro_f1_de"] == pytest.approx(0.4)
    assert out["pred_de_a"] == 0.0 and out["pred_de_b"] == 1.0
    # the group holds both languages: the overall numbers
    assert out["accuracy_G"] == pytest.approx(4 / 6) and out["macro_f1_G"] == pytest.approx(0.625)
    # I(language; prediction | label): label b is always predicted b (0); label a's 3 rows have
    # en: one a, one b predicted, de: one b -> (1/3)(2 log 3/2 + log 3/4); weighted by p(a) = 1/2
    assert out["language_prediction_cmi"] == pytest.approx(math.log(2.25 * 0.75) / 6)
    units = ("en", "de", "G")
    expected = {"accuracy", "macro_f1", "language_prediction_cmi"} | {f"{key}_{unit}" for unit in units for key in ("accuracy", "macro_f1")}
    assert set(out) == expected | {f"pred_{unit}_{name}" for unit in units for name in "ab"}


def test_wrong_length_and_missing_column():
    dataset = Dataset.from_dict({"language": LANGUAGES})
    compute = per_language_compute_metrics(dataset, ["a", "b"])
    with pytest.raises(UserError, match="5 predictions for an evaluation dataset of 6 rows"):
        compute(EvalPrediction(predictions=one_hot_logits(PREDICTED[:5]), label_ids=np.array(LABELS[:5])))
    with pytest.raises(UserError, match="no 'lang' column"):
        per_language_compute_metrics(dataset, ["a", "b"], language_column="lang")


def test_with_a_stock_trainer(tiny_model_dir, tmp_path):
    model, tok = load(tiny_model_dir)
    data = tokenize(make_dataset(), tok, 64)
    names = ["l0", "l1", "l2", "l3"]
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_eval_batch_size=5, report_to="none",
                             use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, eval_dataset=data, processing_class=tok,
                      compute_metrics=per_language_compute_metrics(data, names))
    metrics = trainer.evaluate()
    predicted = trainer.predict(data).predictions.argmax(-1)
    langs = np.asarray(data["language"])
    labels = np.asarray(data["labels"])
    for lang in ("de", "en", "fr", "ja"):
        mask = langs == lang
        assert metrics[f"eval_accuracy_{lang}"] == pytest.approx(float((predicted[mask] == labels[mask]).mean()))
        assert sum(metrics[f"eval_pred_{lang}_{name}"] for name in names) == pytest.approx(1.0)
        assert f"eval_macro_f1_{lang}" in metrics
