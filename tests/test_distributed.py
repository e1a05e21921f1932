"""Multi-process training through accelerate (CPU, gloo) equals one process.

The worker at the bottom of this file is what the tests launch: run as a
script it trains the tiny fixture with LangTrainer and writes, per rank, the
per-step losses, class weights, eval metrics, test predictions and (rank 0)
the final weights. The tests compare 2 processes x 4 examples with
1 process x 8 examples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from langtrainer.training import distributed as launch

REPO = Path(__file__).resolve().parents[1]
LANGS = ["de", "en", "fr", "ja"]
GLOBAL_BATCH = 8
N_TRAIN = 24  # 3 steps per epoch at 8 per step
N_EVAL = 13  # not a multiple of 2 x 4: the last gathered batch carries padding duplicates


# ------------------------------------------------------------------ unit: the launch command


def test_accelerate_command_on_cpu_uses_torchrun_path_and_strips_nothing():
    cmd = launch.accelerate_launch_command(
        ["finetune", "r.yaml", "--set", "seed=1", "--quiet"], num_processes=2, cuda_available=False, gpu_count=0
    )
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    # --cpu would make accelerate start one process (no MPI); --multi_gpu goes through torchrun
    assert "--multi_gpu" in cmd and "--cpu" not in cmd
    assert cmd[cmd.index("--num_processes") + 1] == "2"
    assert cmd[cmd.index("--main_process_port") + 1] == "0"
    at = cmd.index("-m", 3)
    assert cmd[at:] == ["-m", "langtrainer", "finetune", "r.yaml", "--set", "seed=1", "--quiet"]


def test_accelerate_command_with_config_file(tmp_path):
    config = REPO / "langtrainer" / "configs" / "multi_gpu.yaml"
    cmd = launch.accelerate_launch_command(["finetune", "r.yaml"], num_processes=None, config_file=config)
    assert cmd[3:5] == ["--config_file", str(config.resolve())]
    assert "--num_processes" not in cmd and "--multi_gpu" not in cmd  # the config decides
    cmd = launch.accelerate_launch_command(["finetune", "r.yaml"], num_processes=4, config_file=config)
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    with pytest.raises(launch.UserError, match="does not exist"):
        launch.accelerate_launch_command(["finetune"], 2, tmp_path / "missing.yaml")
    with pytest.raises(launch.UserError, match="2 GPU"):
        launch.accelerate_launch_command(["finetune"], 4, cuda_available=True, gpu_count=2)


def test_sample_config_parses_as_multi_gpu():
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO / "langtrainer" / "configs" / "multi_gpu.yaml"))
    assert config.distributed_type.value == "MULTI_GPU"
    assert config.num_machines == 1 and config.mixed_precision == "no"


def test_launched_processes_never_launch_again(monkeypatch):
    for name in ("LOCAL_RANK", "WORLD_SIZE", "RANK", launch.LAUNCHED_ENV, "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert launch.needs_launch(2, None) and launch.needs_launch(None, "x.yaml")
    assert not launch.needs_launch(1, None) and not launch.needs_launch(None, None)
    assert launch.launch_environment()[launch.LAUNCHED_ENV] == "1"
    monkeypatch.setenv(launch.LAUNCHED_ENV, "1")
    assert not launch.needs_launch(2, "x.yaml")
    monkeypatch.delenv(launch.LAUNCHED_ENV)
    monkeypatch.setenv("LOCAL_RANK", "1")  # started by `accelerate launch` / torchrun directly
    monkeypatch.setenv("RANK", "1")
    assert not launch.needs_launch(8, None)
    assert launch.process_rank() == 1 and not launch.is_main_process()
    with pytest.raises(launch.UserError):
        launch.needs_launch(0, None)


def test_cli_relaunches_with_the_same_arguments(tmp_path, monkeypatch):
    """`finetune --num-processes 2` hands the launch options to accelerate, the rest to the children."""
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    for name in ("LOCAL_RANK", "WORLD_SIZE", "RANK", launch.LAUNCHED_ENV):
        monkeypatch.delenv(name, raising=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nseed: 3\ndata: {source: " + str(tmp_path) + "}\n")
    calls = []
    monkeypatch.setattr(launch, "relaunch", lambda args, n, config: calls.append((args, n, config)) or 7)
    result = CliRunner().invoke(
        app,
        ["finetune", str(recipe), "--set", "loss.class_weights=per_language", "--subset", "balanced",
         "--num-processes", "2", "--quiet"],
    )
    assert result.exit_code == 7, result.output  # the launcher's exit code
    args, n, config = calls[0]
    assert n == 2 and config is None
    # The user's command line without the launch options, the default folder pinned.
    assert args == ["finetune", str(recipe), "--set", "loss.class_weights=per_language", "--subset", "balanced",
                    "--quiet", "--output-dir", str(Path("runs") / "r-balanced-cw-seed3")]
    # Every other option goes along as given (nothing is rebuilt by hand); --opt=value launch options go too.
    result = CliRunner().invoke(app, ["--verbose", "finetune", str(recipe), "-o", str(tmp_path / "new"),
                                      "--resume-inexact", "--num-processes=2"])
    assert result.exit_code == 7, result.output
    assert calls[1][0] == ["--verbose", "finetune", str(recipe), "-o", str(tmp_path / "new"), "--resume-inexact"]
    calls.pop()
    # A finished run dir is refused before anything is launched (exit 2, no launch).
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "metrics.json").write_text("{}")
    result = CliRunner().invoke(app, ["finetune", str(recipe), "-o", str(tmp_path / "done"), "--num-processes", "2"])
    assert result.exit_code == 2 and len(calls) == 1


def test_relaunch_exit_code_is_the_launchers_or_2_after_a_user_error(monkeypatch):
    """torchrun reports any failed process as 1; a process that stopped on a UserError makes it 2."""
    child = (
        "import sys; from langtrainer.training import distributed as launch; "
        "sys.argv[1] == 'user' and launch.note_user_error(); sys.exit(int(sys.argv[2]))"
    )
    monkeypatch.setattr(launch, "accelerate_launch_command", lambda args, n, config: [sys.executable, "-c", child, *args])
    assert launch.relaunch(["user", "1"], 2) == 2
    assert launch.relaunch(["bug", "1"], 2) == 1
    assert launch.relaunch(["bug", "0"], 2) == 0
    assert launch.relaunch(["user", "0"], 2) == 0  # success wins


def test_end_process_group_destroys_the_group_and_is_idempotent(tmp_path):
    """A gloo group left to the interpreter's shutdown can abort the process; this ends it first."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    launch.end_process_group()
    assert not dist.is_initialized()
    launch.end_process_group()  # no group: nothing to do, no error


def test_cli_main_ends_the_process_group_whatever_the_exit(monkeypatch):
    from langtrainer.cli import main as cli_main

    ended = []
    monkeypatch.setattr(launch, "end_process_group", lambda: ended.append(True))
    monkeypatch.setattr(sys, "argv", ["langtrainer", "no-such-command"])
    with pytest.raises(SystemExit) as exit_:
        cli_main.main()
    assert exit_.value.code == 2 and ended == [True]


# ------------------------------------------------------------------ 1 vs 2 processes


def _launch_worker(model_dir: Path, out: Path, processes: int) -> None:
    """Run the worker in `processes` processes (accelerate launch when > 1)."""
    out.mkdir(parents=True, exist_ok=True)
    worker = [str(Path(__file__).resolve()), str(model_dir), str(out), str(GLOBAL_BATCH // processes)]
    if processes > 1:
        cmd = launch.accelerate_launch_command([], processes, cuda_available=False, gpu_count=0)
        cmd = cmd[: cmd.index("-m", 3)] + worker  # a script, not `-m cli`
    else:
        cmd = [sys.executable, *worker]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    for name in ("LOCAL_RANK", "WORLD_SIZE", "RANK", launch.LAUNCHED_ENV):
        env.pop(name, None)
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


def _results(out: Path, rank: int) -> dict:
    return json.loads((out / f"rank{rank}.json").read_text())


@pytest.fixture(scope="module")
def one_and_two(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    for n in (1, 2):
        _launch_worker(tiny_model_dir, root / f"p{n}", n)
    return root / "p1", root / "p2"


@pytest.mark.slow
def test_two_processes_match_one_process(one_and_two):
    from safetensors.numpy import load_file

    single_dir, ddp_dir = one_and_two
    single, rank0, rank1 = _results(single_dir, 0), _results(ddp_dir, 0), _results(ddp_dir, 1)
    assert (rank0["world_size"], rank0["backend"], single["world_size"]) == (2, "gloo", 1)
    assert rank0["per_device_batch"] == 4 and single["per_device_batch"] == 8

    # Same examples in every step: the union of the two ranks' batches is the single batch.
    assert len(single["batch_ids"]) == 6
    for step, ids in enumerate(single["batch_ids"]):
        assert sorted(rank0["batch_ids"][step] + rank1["batch_ids"][step]) == sorted(ids)

    # Per-step loss: the logged (all-rank mean) loss and the local losses' mean match 1 process.
    single_logged = [e["loss"] for e in single["log_history"] if "loss" in e]
    ddp_logged = [e["loss"] for e in rank0["log_history"] if "loss" in e]
    assert len(single_logged) == len(ddp_logged) == 6
    np.testing.assert_allclose(ddp_logged, single_logged, atol=1e-4, rtol=0)
    local_mean = (np.array(rank0["step_losses"]) + np.array(rank1["step_losses"])) / 2
    np.testing.assert_allclose(local_mean, single["step_losses"], atol=1e-5, rtol=0)
    print(f"max per-step loss difference: logged {np.abs(np.subtract(ddp_logged, single_logged)).max():.2e}, "
          f"local means {np.abs(local_mean - single['step_losses']).max():.2e}")
    assert single_logged[0] != pytest.approx(single_logged[-1], abs=1e-3)  # it trained

    # Class weights from the whole training set on every rank.
    assert rank0["class_weights"] == single["class_weights"] == rank1["class_weights"]
    assert np.asarray(single["class_weights"]).shape == (4, 4)

    # Final weights.
    a, b = load_file(str(single_dir / "weights.safetensors")), load_file(str(ddp_dir / "weights.safetensors"))
    assert a.keys() == b.keys()
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    moved = max(float(np.abs(a[k] - load_file(str(single_dir / "initial.safetensors"))[k]).max()) for k in a)
    print(f"max |w_1proc - w_2proc| = {worst:.2e} (largest change in training {moved:.2e})")
    assert worst < 1e-5 < moved


@pytest.mark.slow
def test_eval_metrics_use_gathered_predictions_in_dataset_order(one_and_two):
    single_dir, ddp_dir = one_and_two
    single, rank0, rank1 = _results(single_dir, 0), _results(ddp_dir, 0), _results(ddp_dir, 1)
    # predict() gathers, drops the padding duplicates and keeps the dataset order
    for res in (single, rank0, rank1):
        assert len(res["predictions"]) == N_EVAL
    np.testing.assert_allclose(rank0["predictions"], single["predictions"], atol=1e-4)
    np.testing.assert_allclose(rank1["predictions"], single["predictions"], atol=1e-4)
    # compute_metrics (per language, via make_compute_metrics) on gathered predictions
    for res in (rank0, rank1):
        assert res["eval_metrics"].keys() == single["eval_metrics"].keys()
        for key, value in single["eval_metrics"].items():
            if key.startswith(("eval_accuracy", "eval_pred_", "eval_macro_f1", "eval_skew")):
                assert res["eval_metrics"][key] == value, key
    # eval_loss is sum_i w_i l_i / N in one process; with 2 processes the last batch (example 12)
    # is padded with examples 0, 1, 2, and LangTrainer recomputes the loss from the gathered,
    # de-padded logits so that it is the same number.
    logits = np.asarray(single["predictions"], dtype=np.float64)
    log_p = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1, keepdims=True)
    labels = np.asarray(single["eval_labels"])
    weights = np.asarray(single["class_weights"])[[LANGS.index(x) for x in single["eval_languages"]], labels]
    weighted = -weights * log_p[np.arange(N_EVAL), labels]
    assert single["eval_metrics"]["eval_loss"] == pytest.approx(weighted.mean(), abs=1e-5)
    padded = (weighted[:12].sum() + weighted[[12, 0, 1, 2]].mean()) / N_EVAL
    assert abs(padded - weighted.mean()) > 1e-3  # the Trainer's own number would differ
    for res in (rank0, rank1):
        assert res["eval_metrics"]["eval_loss"] == pytest.approx(weighted.mean(), abs=1e-5)
    # eval_ce: the plain cross-entropy of the same gathered, de-padded predictions, on every rank
    plain = -log_p[np.arange(N_EVAL), labels]
    assert abs(plain.mean() - weighted.mean()) > 1e-3
    for res in (single, rank0, rank1):
        assert res["eval_metrics"]["eval_ce"] == pytest.approx(plain.mean(), abs=1e-5)
    # The per-language numbers are those of the gathered predictions, row for row.
    labels, languages = single["eval_labels"], single["eval_languages"]
    predicted = np.asarray(rank1["predictions"]).argmax(-1)
    for lang in LANGS:
        mask = np.asarray(languages) == lang
        expected = float((predicted[mask] == np.asarray(labels)[mask]).mean())
        assert rank1["eval_metrics"][f"eval_accuracy_{lang}"] == pytest.approx(expected)


@pytest.mark.slow
def test_evaluators_run_on_rank_zero_only_and_reach_every_rank(one_and_two):
    _, ddp_dir = one_and_two
    rank0, rank1 = _results(ddp_dir, 0), _results(ddp_dir, 1)
    # one evaluation per epoch plus the final evaluate()
    assert rank0["evaluator_calls"] == 3 and rank1["evaluator_calls"] == 0
    for res in (rank0, rank1):
        evals = [e for e in res["log_history"] if "eval_loss" in e]
        assert [e["eval_evaluator_rank"] for e in evals] == [0.0, 0.0, 0.0]


# ------------------------------------------------------------------ end to end through the CLI


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _tiny_recipe(tmp_path: Path, model_dir: Path) -> Path:
    from tiny_model import SAMPLE_TEXTS

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("validation", 3), ("test", 2)):
        rows = []
        for lang in LANGS:
            for label in ("a", "b", "c", "d"):
                for i in range(n):
                    words = " ".join(rng.choice(SAMPLE_TEXTS[lang][0].split(), 4))
                    rows.append({"id": f"{split}-{lang}-{label}-{i}", "text": words, "label": label, "language": lang})
        _write_jsonl(data / f"{split}.jsonl", rows)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        f"""name: tiny
seed: 0
model: {{name_or_path: {model_dir}, max_length: 32}}
data:
  source: {data}
  languages: [{", ".join(LANGS)}]
  labels: [a, b, c, d]
  train_per_language: 16
  validation_per_language: 4
  test_per_cell: 2
imbalance:
  subset: imbalanced
  groups: {{A: [de, en], B: [fr, ja]}}
  distribution: {{A: [37.5, 25, 25, 12.5], B: [12.5, 25, 25, 37.5]}}
loss: {{class_weights: per_language}}
training:
  num_train_epochs: 2
  per_device_train_batch_size: 4
  per_device_eval_batch_size: 4
  logging_steps: 1
"""
    )
    return recipe


@pytest.mark.slow
def test_cli_finetune_with_two_processes(tiny_model_dir, tmp_path):
    """`langtrainer finetune --num-processes 2`: one complete run dir, written once, numbers consistent."""
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    recipe = _tiny_recipe(tmp_path, tiny_model_dir)
    run_dir = tmp_path / "run"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    for name in ("LOCAL_RANK", "WORLD_SIZE", "RANK", launch.LAUNCHED_ENV):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "langtrainer", "finetune", str(recipe), "-o", str(run_dir), "--num-processes", "2", "--quiet"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("run directory:") == 1  # only rank 0 prints
    assert done.stdout.count("test set") == 1

    names = sorted(p.name for p in run_dir.iterdir())
    assert {"config.json", "model.safetensors", "metrics.json", "recipe.yaml", "data", "tokenizer.json"} <= set(names)
    assert "checkpoints" not in names and not [n for n in names if n.startswith(".")]  # no staging/temp leftovers
    assert not list((run_dir / "data").glob(".*"))

    metrics = json.loads((run_dir / "metrics.json").read_text())
    subsets = datasets.load_from_disk(str(run_dir / "data"))
    train = subsets["train_imbalanced"]
    assert metrics["train"]["examples"] == len(train) == 64
    assert metrics["train"]["steps"] == 2 * 64 // 8  # global batch 2 x 4
    # eq. 2 by hand from the saved training subset: w_{c,l} = n_l / (C n_{c,l})
    counts = np.zeros((4, 4))
    for lang, label in zip(list(train["language"]), list(train["label"])):
        counts[LANGS.index(lang), label] += 1
    np.testing.assert_allclose(metrics["class_weights"], 16 / (4 * counts), rtol=1e-6)
    assert counts[0].tolist() == [6, 4, 4, 2]  # de, group A: 37.5 / 25 / 25 / 12.5 %

    # The saved model reproduces the reported test metrics (gathered order = dataset order).
    tok = AutoTokenizer.from_pretrained(run_dir)
    model = AutoModelForSequenceClassification.from_pretrained(run_dir).eval()
    test = subsets["test"]
    assert len(test) == 32
    with torch.no_grad():
        enc = tok(list(test["text"]), truncation=True, max_length=32, padding=True, return_tensors="pt")
        predicted = model(**enc).logits.argmax(-1).numpy()
    labels = np.asarray(list(test["label"]))
    assert metrics["test"]["accuracy"] == pytest.approx(float((predicted == labels).mean()))
    for lang in LANGS:
        mask = np.asarray(list(test["language"])) == lang
        assert metrics["test"]["by_language"][lang]["accuracy"] == pytest.approx(float((predicted[mask] == labels[mask]).mean()))
    assert model.config.id2label == {0: "a", 1: "b", 2: "c", 3: "d"}


# ------------------------------------------------------------------ the worker


def _worker(model_dir: str, out_dir: str, per_device_batch: int) -> None:
    """Train the tiny model for 2 epochs; every rank writes rank<r>.json, rank 0 the weights."""
    from datasets import Dataset
    from safetensors.torch import save_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback, set_seed

    from langtrainer import LangTrainer, LangTrainingArguments
    from langtrainer.training.encoding import tokenize
    from langtrainer.training.evaluation import make_compute_metrics
    from langtrainer.recipe import ImbalanceConfig, Recipe
    from tiny_model import SAMPLE_TEXTS

    out = Path(out_dir)
    rng = np.random.default_rng(0)

    def rows(n, offset):
        result = []
        for i in range(n):
            lang = LANGS[i % 4]
            text = SAMPLE_TEXTS[lang][i % 2] + " " + " ".join(rng.choice(list("abcdefg"), 3))
            label = (i // 4 + (i % 4) // 2) % 4  # every cell present, 2 labels doubled per language
            result.append({"text": text, "label": label, "language": lang, "row": offset + i})
        return result

    train_raw, eval_raw = Dataset.from_list(rows(N_TRAIN, 0)), Dataset.from_list(rows(N_EVAL, 1000))
    set_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0
    )
    initial = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    train, evaluation = tokenize(train_raw, tok, 48), tokenize(eval_raw, tok, 48)
    # A token id that tells the rows apart: the batch membership check reads it back.
    row_of = {tuple(ids): r for ids, r in zip(train["input_ids"], train_raw["row"])}

    recipe = Recipe(imbalance=ImbalanceConfig(groups={"A": ["de", "en"], "B": ["fr", "ja"]}))
    label_names = ["label0", "label1", "label2", "label3"]
    step_losses, batch_ids = [], []

    class Recording(LangTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training:
                loss = result[0] if return_outputs else result
                step_losses.append(float(loss.detach()))
                ids = [tuple(int(t) for t in row[row_attention.bool()])
                       for row, row_attention in zip(inputs["input_ids"], inputs["attention_mask"])]
                batch_ids.append([row_of[i] for i in ids])
            return result

    class RankEvaluator(TrainerCallback):
        calls = 0

        def compute_eval_metrics(self, model, tokenizer):
            RankEvaluator.calls += 1
            return {"evaluator_rank": float(int(os.environ.get("RANK", "0")))}

    args = LangTrainingArguments(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=per_device_batch,
        per_device_eval_batch_size=4,
        num_train_epochs=2,
        # SGD: the weights then differ by float rounding only. (AdamW divides each
        # gradient by its running RMS, which turns rounding noise in near-zero
        # gradients into lr-sized steps: 7e-5 apart after 6 steps at lr 5e-4.)
        optim="sgd",
        learning_rate=0.05,
        head_learning_rate=0.5,
        logging_steps=1,
        eval_strategy="epoch",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        class_weights="per_language",
        mask_entropy=0.1,
    )
    trainer = Recording(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tok,
        compute_metrics=make_compute_metrics(eval_raw, label_names, recipe),
        callbacks=[RankEvaluator()],
        languages=LANGS,
    )
    trainer.train()
    eval_metrics = trainer.evaluate()
    prediction = trainer.predict(evaluation, metric_key_prefix="test")
    rank = trainer.args.process_index
    from accelerate import PartialState

    result = {
        "world_size": trainer.args.world_size,
        "backend": PartialState().backend,
        "per_device_batch": per_device_batch,
        "step_losses": step_losses,
        "batch_ids": batch_ids,
        "log_history": trainer.state.log_history,
        "class_weights": trainer.class_weights.tolist(),
        "eval_metrics": eval_metrics,
        "predictions": np.asarray(prediction.predictions).tolist(),
        "eval_labels": list(eval_raw["label"]),
        "eval_languages": list(eval_raw["language"]),
        "evaluator_calls": RankEvaluator.calls,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    if trainer.is_world_process_zero():
        weights = {k: v.detach().contiguous() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}
        save_file(weights, str(out / "weights.safetensors"))
        save_file(initial, str(out / "initial.safetensors"))
    launch.end_process_group()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    _worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))
