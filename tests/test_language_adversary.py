"""loss.language_adversary: gradient paths, the dann ramp, the entropy variant by hand, GA, the saved run."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from langtrainer import LangTrainingArguments
from langtrainer.errors import UserError
from langtrainer.recipe import recipe_from_dict
from langtrainer.training.adversary import adversary_lambda, adversary_terms, dann_ramp
from test_finetune_tiny import tiny_recipe, write_dataset
from test_trainer import LANGS, load, make_dataset, make_trainer


def _grads(params):
    return [None if p.grad is None else p.grad.detach().clone() for p in params]


def _zero(model):
    for p in model.parameters():
        p.grad = None


@pytest.mark.parametrize("schedule,progress", [("constant", 0.0), ("dann", 0.5)])
def test_gradient_reversal_sends_minus_lambda_to_encoder_plus_to_head(tiny_model_dir, tmp_path, schedule, progress):
    trainer = make_trainer(tiny_model_dir, tmp_path, language_adversary="gradient_reversal",
                           language_adversary_weight=0.7, language_adversary_schedule=schedule)
    trainer.state.max_steps, trainer.state.global_step = 10, int(progress * 10)
    lam = 0.7 * (dann_ramp(progress) if schedule == "dann" else 1.0)
    assert trainer.adversary_lambda() == pytest.approx(lam)
    model = trainer.model.train()
    head = trainer.adversary_head
    encoder = [p for n, p in model.named_parameters() if n.startswith(model.base_model_prefix + ".")]
    head_params = list(head.parameters())
    batch = trainer.data_collator([dict(r) for r in trainer.train_dataset])
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "language")}

    # The adversary's share of compute_loss's gradient: total minus the task loss alone.
    _zero(model)
    trainer.compute_loss(model, batch).backward()
    total_enc, total_head = _grads(encoder), _grads(head_params)
    _zero(model)
    F.cross_entropy(model(**inputs).logits, batch["labels"]).backward()
    task_enc = _grads(encoder)
    # The head loss's own gradient, with no reversal.
    _zero(model)
    features = model.base_model(**inputs)[0][:, 0]
    F.cross_entropy(head(features), batch["language"]).backward()
    plain_enc, plain_head = _grads(encoder), _grads(head_params)

    moved = 0
    for total, task, plain in zip(total_enc, task_enc, plain_enc):
        if plain is None:
            continue
        torch.testing.assert_close(total - task, -lam * plain, atol=1e-6, rtol=1e-4)
        moved += int(plain.abs().max() > 1e-6)
    assert moved > 10  # the head loss reaches most of the encoder
    for got, want in zip(total_head, plain_head):
        torch.testing.assert_close(got, want, atol=1e-7, rtol=1e-5)  # +1 x, whatever lambda is
        assert want.abs().max() > 1e-4


def test_dann_ramp_values():
    assert dann_ramp(0.0) == 0.0
    assert dann_ramp(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1) == pytest.approx(0.986614, abs=1e-6)
    assert dann_ramp(1.0) == pytest.approx(0.9999092, abs=1e-7)
    assert adversary_lambda(2.0, "dann", 0.5) == pytest.approx(2 * 0.986614, abs=1e-5)
    assert adversary_lambda(2.0, "constant", 0.0) == 2.0


def test_entropy_variant_on_a_worked_example():
    """h = (1, 0), language 0, a linear head W = [[1, 0], [0, 1], [0, 0]], b = 0: logits (1, 0, 0)."""
    head = torch.nn.Linear(2, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        head.bias.zero_()
    features = torch.tensor([[1.0, 0.0]], requires_grad=True)
    lam = 0.5
    terms = adversary_terms(head, features, torch.tensor([0]), "entropy", lam)
    e = math.e
    p = [e / (e + 2), 1 / (e + 2), 1 / (e + 2)]  # 0.57612, 0.21194, 0.21194
    neg_entropy = sum(q * math.log(q) for q in p)  # -0.97533
    ce = -math.log(p[0])  # 0.55145
    assert neg_entropy == pytest.approx(-0.97533, abs=1e-5) and ce == pytest.approx(0.55145, abs=1e-5)
    assert float(terms.loss.detach()) == pytest.approx(ce + lam * neg_entropy, abs=1e-6)  # 0.06378
    assert terms.neg_entropy == pytest.approx(neg_entropy, abs=1e-6)
    assert terms.correct == 1 and terms.count == 1 and terms.head_ce_sum == pytest.approx(ce, abs=1e-6)
    terms.loss.backward()
    # Encoder side: only lambda x d(sum p log p)/dh = lambda W^T [p (log p - sum p log p)]; the CE does not reach it.
    dz = [q * (math.log(q) - neg_entropy) for q in p]
    assert features.grad[0].tolist() == pytest.approx([lam * dz[0], lam * dz[1]], abs=1e-6)  # (0.12210, -0.06105)
    # Head side: only the CE's (p - onehot) h^T; the entropy term does not move the head.
    torch.testing.assert_close(head.weight.grad, torch.tensor([[p[0] - 1, 0], [p[1], 0], [p[2], 0]]), atol=1e-6, rtol=0)
    assert head.bias.grad.tolist() == pytest.approx([p[0] - 1, p[1], p[2]], abs=1e-6)


def _one_sgd_step(model_dir, tmp_path, batch, ga, method):
    trainer = make_trainer(
        model_dir, tmp_path / f"{method}-ga{ga}", language_adversary=method, language_adversary_weight=0.5,
        language_adversary_hidden=8, per_device_train_batch_size=batch, gradient_accumulation_steps=ga,
        optim="sgd", learning_rate=1.0, head_learning_rate=1.0, lr_scheduler_type="constant", weight_decay=0.0,
        max_grad_norm=0.0, max_steps=1, logging_steps=1,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    delta = {n: p.detach() - before[n] for n, p in trainer.model.named_parameters()}
    logged = next(h for h in trainer.state.log_history if "language_adversary_loss" in h)
    return delta, logged


@pytest.mark.parametrize("method", ["gradient_reversal", "entropy"])
def test_gradient_accumulation_8x2_equals_1x16_with_adversary(tiny_model_dir, tmp_path, method):
    accumulated, logged_ga = _one_sgd_step(tiny_model_dir, tmp_path, 2, 8, method)
    single, logged = _one_sgd_step(tiny_model_dir, tmp_path, 16, 1, method)
    assert any(n.startswith("language_adversary.") for n in single)
    assert max(d.abs().max().item() for n, d in single.items() if n.startswith("language_adversary.")) > 1e-3
    for name, delta in single.items():
        torch.testing.assert_close(accumulated[name], delta, atol=1e-5, rtol=0, msg=name)
    for key in ("loss", "language_adversary_loss", "language_adversary_accuracy"):
        assert logged_ga[key] == pytest.approx(logged[key], rel=1e-5), key


def test_eval_loss_excludes_adversary_and_unseen_languages_are_left_out(tiny_model_dir, tmp_path):
    """eval_loss is the task's alone; eval rows of a language without training rows do not count for the head."""
    from datasets import concatenate_datasets

    from langtrainer.training.encoding import tokenize

    train = make_dataset()
    plain = make_trainer(tiny_model_dir, tmp_path / "plain")
    with_adversary = make_trainer(tiny_model_dir, tmp_path / "adv", language_adversary="entropy")
    base = plain.evaluate()
    metrics = with_adversary.evaluate()
    assert metrics["eval_loss"] == pytest.approx(base["eval_loss"], rel=1e-6)
    assert 0.0 <= metrics["eval_language_adversary_accuracy"] <= 1.0
    # A trainer whose languages include 'zh', which has no training row: zh rows in evaluation do not count.
    from langtrainer import LangTrainer

    model, tok = load(tiny_model_dir)
    grown = LangTrainer(model=model, args=with_adversary.args, train_dataset=tokenize(train, tok, 64),
                        processing_class=tok, languages=LANGS + ["zh"])
    assert grown.adversary_head(torch.zeros(1, model.config.hidden_size)).shape == (1, 5)
    extra = make_dataset(n=8).map(lambda r: {"language": "zh"})
    only_seen = grown.evaluate(tokenize(train, tok, 64))
    with_zh = grown.evaluate(tokenize(concatenate_datasets([train, extra]), tok, 64))
    assert with_zh["eval_loss"] != pytest.approx(only_seen["eval_loss"], rel=1e-6)  # the task loss sees zh
    for key in ("eval_language_adversary_loss", "eval_language_adversary_accuracy"):
        assert with_zh[key] == pytest.approx(only_seen[key], rel=1e-6), key


def test_adversary_needs_two_languages_and_valid_settings(tiny_model_dir, tmp_path):
    one_language = make_dataset().map(lambda r: {"language": "de"})
    with pytest.raises(UserError, match="at least two languages"):
        make_trainer(tiny_model_dir, tmp_path, one_language, language_adversary="gradient_reversal")
    with pytest.raises(UserError, match="language_adversary_weight"):
        LangTrainingArguments(output_dir=str(tmp_path), language_adversary="entropy", language_adversary_weight=-1.0)
    with pytest.raises(UserError, match="^language_adversary must be one of"):
        LangTrainingArguments(output_dir=str(tmp_path), language_adversary="reverse")


@pytest.mark.parametrize("setting,message", [
    ({"method": "reversal"}, "loss.language_adversary.method: expected one of"),
    ({"schedule": "linear"}, "loss.language_adversary.schedule: expected one of"),
    ({"weight": -0.5}, "loss.language_adversary.weight must be a finite number >= 0"),
    ({"weight": float("nan")}, "loss.language_adversary.weight must be a finite number >= 0"),
    ({"hidden": -1}, "loss.language_adversary.hidden must be an integer >= 0"),
    ({"wieght": 1.0}, "unknown recipe key 'loss.language_adversary.wieght' \\(did you mean 'weight'\\?\\)"),
])
def test_recipe_refuses_bad_adversary_settings(setting, message):
    with pytest.raises(UserError, match=message):
        recipe_from_dict({"loss": {"language_adversary": setting}})


def test_recipe_check_shows_the_adversary(tmp_path):
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    path = tmp_path / "r.yaml"
    path.write_text("extends: builtin:demo\nloss:\n  language_adversary: {method: entropy, schedule: dann}\n")
    result = CliRunner().invoke(app, ["recipe", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "language adversary: entropy, weight 1 (ramped by the dann schedule), linear head" in " ".join(
        result.output.split())
    result = CliRunner().invoke(app, ["recipe", "check", str(path), "--set", "loss.language_adversary.weight=-1"])
    assert result.exit_code == 2
    assert "loss.language_adversary.weight must be a finite number >= 0" in " ".join(result.output.split())


def test_saved_run_has_no_adversary_and_loads_with_pipeline(tiny_model_dir, tmp_path):
    from transformers import pipeline

    from langtrainer.pipelines.finetune import finetune

    data = write_dataset(tmp_path / "data.jsonl")
    recipe = tiny_recipe(tiny_model_dir, data, loss={
        "class_weights": "none", "language_adversary": {"method": "gradient_reversal", "schedule": "dann"}},
        training={"num_train_epochs": 1}, analysis={"probe": {"during_training_per_language": 0}})
    run_dir = tmp_path / "run"
    metrics = finetune(recipe, run_dir).to_dict()
    with safe_open(str(run_dir / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not [k for k in keys if "language_adversary" in k]
    train_logs = [h for h in metrics["log_history"] if "language_adversary_loss" in h]
    eval_logs = [h for h in metrics["log_history"] if "eval_language_adversary_accuracy" in h]
    assert train_logs and eval_logs
    assert [round(h["language_adversary_lambda"], 6) for h in train_logs[:1]] == [
        round(dann_ramp(train_logs[0]["step"] / metrics["train"]["steps"]), 6)]
    assert 0.0 <= metrics["test"]["language_adversary_accuracy"] <= 1.0
    assert json.loads((run_dir / "metrics.json").read_text())["test"] == metrics["test"]
    classify = pipeline("text-classification", model=str(run_dir))
    assert classify("The spreadsheet computes the sum of a column.")[0]["label"] in {"l0", "l1", "l2", "l3"}
