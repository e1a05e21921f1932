"""LangTrainer with a user's own language column name, and eval_loss vs eval_ce."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from langtrainer import LangTrainer, LangTrainingArguments
from langtrainer.errors import UserError
from langtrainer.training.encoding import tokenize
from test_trainer import LANGS, hand_weights, load, make_dataset


def trainer_for(model_dir, tmp_path, dataset, column="language", **overrides):
    """`dataset` tokenized, its language column then renamed to `column` (or dropped when None)."""
    model, tok = load(model_dir)
    data = tokenize(dataset, tok, 64)
    if column is None:
        data = data.remove_columns("language")
    elif column != "language":
        data = data.rename_column("language", column)
    kwargs = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=16, per_device_eval_batch_size=5,
                  report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True, seed=0,
                  num_train_epochs=1, learning_rate=5e-4)
    kwargs.update(overrides)
    return LangTrainer(model=model, args=LangTrainingArguments(**kwargs), train_dataset=data, eval_dataset=data,
                       processing_class=tok), data


def hand_losses(logits, labels, lang_ids, table):
    per_example = F.cross_entropy(torch.as_tensor(logits), torch.as_tensor(labels), reduction="none").numpy()
    weights = table[lang_ids, labels]
    return float(per_example.mean()), float((weights * per_example).mean())


def test_lang_column_with_per_language_weights(tiny_model_dir, tmp_path):
    dataset = make_dataset()
    trainer, data = trainer_for(tiny_model_dir, tmp_path, dataset, "lang", class_weights="per_language",
                                language_column="lang")
    assert trainer.languages == LANGS
    np.testing.assert_allclose(trainer.class_weights.numpy(), hand_weights(dataset), rtol=1e-6)
    trainer.train()
    out = trainer.predict(data)  # 16 rows in eval batches of 5, 5, 5, 1
    labels = np.asarray(data["labels"])
    lang_ids = np.array([LANGS.index(lang) for lang in data["lang"]])
    ce, weighted = hand_losses(out.predictions, labels, lang_ids, hand_weights(dataset))
    assert out.metrics["test_ce"] == pytest.approx(ce, rel=1e-5)
    assert out.metrics["test_loss"] == pytest.approx(weighted, rel=1e-5)
    assert abs(weighted - ce) > 1e-3  # the weights do change the loss on this skewed set
    metrics = trainer.evaluate()
    assert metrics["eval_ce"] == pytest.approx(ce, rel=1e-5)
    assert metrics["eval_loss"] == pytest.approx(weighted, rel=1e-5)


def test_lang_column_without_weights_and_ce_equals_loss(tiny_model_dir, tmp_path):
    trainer, data = trainer_for(tiny_model_dir, tmp_path, make_dataset(), "lang", language_column="lang")
    assert trainer.class_weights is None
    metrics = trainer.evaluate()
    logits = trainer.predict(data).predictions
    ce = float(F.cross_entropy(torch.as_tensor(logits), torch.as_tensor(data["labels"])))
    assert metrics["eval_ce"] == pytest.approx(ce, rel=1e-5)
    assert metrics["eval_loss"] == pytest.approx(ce, rel=1e-5)


def test_no_language_column_is_fine_without_weights(tiny_model_dir, tmp_path):
    trainer, _ = trainer_for(tiny_model_dir, tmp_path, make_dataset(), None)
    assert trainer.languages == []
    trainer.train()
    assert np.isfinite(trainer.evaluate()["eval_ce"])


def test_missing_language_column_names_the_argument(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match=r"no 'language' column \(columns: .*lang.*language_column="):
        trainer_for(tiny_model_dir, tmp_path, make_dataset(), "lang", class_weights="per_language")
