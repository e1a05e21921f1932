"""LangTrainer on the tiny fixture: loss values, GA equivalence, plumbing, learning rates."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from langtrainer import LangTrainer, LangTrainingArguments
from langtrainer.training.encoding import tokenize
from langtrainer.training.trainer import special_tokens_around
from tiny_model import SAMPLE_TEXTS

LANGS = ["de", "en", "fr", "ja"]


def make_dataset(n=16, seed=0):
    """n examples over 4 languages with a language-dependent label skew."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        lang = LANGS[i % 4]
        text = SAMPLE_TEXTS[lang][i % 2] + " " + " ".join(rng.choice(list("abcdefg"), 3))
        label = int((i // 4 + (i % 4 < 2)) % 4) if i % 3 else int(i % 2)
        rows.append({"text": text, "label": label, "language": lang})
    return Dataset.from_list(rows)


def load(model_dir):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0
    )
    return model, tok


def make_trainer(model_dir, tmp_path, dataset=None, **overrides):
    model, tok = load(model_dir)
    dataset = dataset if dataset is not None else make_dataset()
    train = tokenize(dataset, tok, 64)
    kwargs = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=16,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        learning_rate=5e-5,
        head_learning_rate=5e-4,
    )
    kwargs.update(overrides)
    return LangTrainer(
        model=model, args=LangTrainingArguments(**kwargs), train_dataset=train, eval_dataset=train, processing_class=tok
    )


def hand_weights(dataset, n_labels=4):
    """eq. 2 by hand: w_{c,l} = n_l / (C * n_{c,l})."""
    table = np.zeros((len(LANGS), n_labels))
    for li, lang in enumerate(LANGS):
        labels = [r["label"] for r in dataset if r["language"] == lang]
        for c in range(n_labels):
            n_cl = labels.count(c)
            table[li, c] = len(labels) / (n_labels * n_cl) if n_cl else 0.0
    return table


def test_class_weight_table_from_whole_training_set(tiny_model_dir, tmp_path):
    dataset = make_dataset()
    trainer = make_trainer(tiny_model_dir, tmp_path, dataset, class_weights="per_language")
    assert trainer.languages == LANGS
    np.testing.assert_allclose(trainer.class_weights.numpy(), hand_weights(dataset), rtol=1e-6)
    # Worked cells: 'de' has labels [0, 2, 3, 0] -> w_{0,de} = 4 / (4 * 2), w_{2,de} = 4 / (4 * 1), w_{1,de} = 0.
    de = [r["label"] for r in dataset if r["language"] == "de"]
    assert sorted(de) == [0, 0, 2, 3]
    assert trainer.class_weights[0].tolist() == pytest.approx([0.5, 0.0, 1.0, 1.0])


@pytest.mark.parametrize("reduction", ["mean", "weighted_mean"])
def test_loss_equals_hand_computation(tiny_model_dir, tmp_path, reduction):
    dataset = make_dataset()
    trainer = make_trainer(tiny_model_dir, tmp_path, dataset, class_weights="per_language", reduction=reduction)
    batch = trainer.data_collator([dict(r) for r in trainer.train_dataset])
    model = trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    ce = F.cross_entropy(logits, batch["labels"], reduction="none").numpy()
    table = hand_weights(dataset)
    lang_ids = [LANGS.index(r["language"]) for r in dataset]
    w = table[lang_ids, dataset["label"]]
    expected = (w * ce).sum() / (len(ce) if reduction == "mean" else w.sum())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # and it is not the unweighted mean (the weights matter on this batch)
    assert abs(expected - ce.mean()) > 1e-3


def test_language_column_reaches_loss_not_model(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path, class_weights="per_language")
    loader = trainer.get_train_dataloader()
    batch = next(iter(loader))
    assert batch["language"].dtype == torch.int64
    assert set(batch["language"].tolist()) == {0, 1, 2, 3}
    seen = {}
    original = trainer.model.forward

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    trainer.model.forward = spy
    trainer.compute_loss(trainer.model, batch)
    assert "language" not in seen and "input_ids" in seen


def _one_sgd_step_delta(model_dir, tmp_path, batch, ga):
    trainer = make_trainer(
        model_dir,
        tmp_path / f"ga{ga}",
        class_weights="per_language",
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=ga,
        optim="sgd",
        learning_rate=1.0,
        head_learning_rate=1.0,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        max_steps=1,
        logging_strategy="no",
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    return {n: (p.detach() - before[n]) for n, p in trainer.model.named_parameters()}


def test_gradient_accumulation_8x2_equals_1x16(tiny_model_dir, tmp_path):
    accumulated = _one_sgd_step_delta(tiny_model_dir, tmp_path, batch=2, ga=8)
    single = _one_sgd_step_delta(tiny_model_dir, tmp_path, batch=16, ga=1)
    biggest = max(d.abs().max().item() for d in single.values())
    assert biggest > 1e-3  # the step moved something
    for name, delta in single.items():
        torch.testing.assert_close(accumulated[name], delta, atol=1e-5, rtol=0, msg=name)


def test_head_and_body_learning_rates_decay_linearly_to_zero(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path, per_device_train_batch_size=4, max_steps=8, logging_strategy="no")
    trainer.create_optimizer_and_scheduler(num_training_steps=8)
    groups = {g["group"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert groups == {"body": 5e-5, "head": 5e-4}
    head_params = {id(p) for g in trainer.optimizer.param_groups if g["group"] == "head" for p in g["params"]}
    assert {id(p) for p in trainer.model.classifier.parameters()} == head_params
    trainer.optimizer = trainer.lr_scheduler = None
    trainer.train()
    last = {g["group"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert last == {"body": 0.0, "head": 0.0}
    # halfway (4 of 8 steps) both are at half their start value
    trainer.lr_scheduler.last_epoch = 3
    halfway = [base * lam(4) for base, lam in zip(trainer.lr_scheduler.base_lrs, trainer.lr_scheduler.lr_lambdas)]
    assert sorted(set(np.round(halfway, 12))) == [2.5e-5, 2.5e-4]


def test_special_tokens_around(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert special_tokens_around(tok) == ([tok.cls_token_id], [tok.sep_token_id])


def all_mask_entropy(model, tok, length=8):
    prefix, suffix = special_tokens_around(tok)
    ids = prefix + [tok.mask_token_id] * length + suffix
    with torch.no_grad():
        p = model.eval()(input_ids=torch.tensor([ids])).logits.softmax(-1)[0]
    return float(-(p * p.log()).sum())


def test_mask_entropy_raises_all_mask_entropy_and_stays_out_of_eval_loss(tiny_model_dir, tmp_path):
    results = {}
    for coef in (0.0, 1.0):
        trainer = make_trainer(
            tiny_model_dir,
            tmp_path / f"c{coef}",
            per_device_train_batch_size=4,
            max_steps=30,
            learning_rate=1e-3,
            head_learning_rate=1e-2,
            mask_entropy=coef,
            logging_steps=10,
        )
        eval_before = trainer.evaluate()["eval_loss"]
        trainer.train()
        logged = [h for h in trainer.state.log_history if "loss" in h]
        results[coef] = (eval_before, all_mask_entropy(trainer.model, trainer.processing_class), logged)
    # same starting model: identical eval_loss, the term is training-only
    assert results[0.0][0] == pytest.approx(results[1.0][0], abs=1e-7)
    # after training, the all-mask output is closer to uniform with the term:
    # its distance to the maximum entropy log(4) is less than half of the distance without it
    gap_with, gap_without = math.log(4) - results[1.0][1], math.log(4) - results[0.0][1]
    assert 0 <= gap_with < 0.5 * gap_without
    assert all("mask_neg_entropy" in h for h in results[1.0][2])
    assert not any("mask_neg_entropy" in h for h in results[0.0][2])


def test_eval_loss_ignores_entropy_term_on_same_model(tiny_model_dir, tmp_path):
    plain = make_trainer(tiny_model_dir, tmp_path / "a")
    with_term = make_trainer(tiny_model_dir, tmp_path / "b", mask_entropy=5.0)
    assert plain.evaluate()["eval_loss"] == pytest.approx(with_term.evaluate()["eval_loss"], abs=1e-7)


def test_per_language_balanced_sampler_draws_cells_evenly(tiny_model_dir, tmp_path):
    dataset = make_dataset(n=64)
    trainer = make_trainer(tiny_model_dir, tmp_path, dataset, language_sampler="per_language_balanced")
    sampler = trainer._get_train_sampler()
    draws = np.array(list(iter(sampler)) * 1)
    keys = np.array([LANGS.index(lang) * 4 + y for lang, y in zip(dataset["language"], dataset["label"])])
    cells = np.unique(keys)
    # each drawn index's inverse-frequency weight makes the cells equally likely in expectation
    weights = np.array(sampler.weights)
    per_cell = np.array([weights[keys == k].sum() for k in cells])
    np.testing.assert_allclose(per_cell, per_cell[0], rtol=1e-9)
    assert len(draws) == len(dataset)
