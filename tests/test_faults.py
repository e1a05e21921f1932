"""Killed jobs lose nothing: resume gives the uninterrupted result; no half-written output looks valid.

A SIGKILL (the OOM killer, a preempted shared machine) gives a process no
chance to clean up, so these tests kill real subprocesses, or make a writer
die half-way, and then look at what a later command would read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fault_helpers import (
    KILL_RESUME_EPOCHS,
    cli_command,
    cli_env,
    comparable_metrics,
    error_line,
    reference_run,
    run_cli,
    split_hashes,
    training_setup,
    tree,
    weights,
    write_dataset,
    write_recipe,
)


class Killed(BaseException):
    """Stands in for a kill inside the process: nothing below the CLI catches a BaseException."""


def _complete_checkpoints(run_dir: Path) -> list[Path]:
    out = []
    for state in (run_dir / "checkpoints").glob("checkpoint-*/trainer_state.json"):
        try:
            json.loads(state.read_text())
        except ValueError:
            continue
        out.append(state.parent)
    return out


# ------------------------------------------------------------------ kill -9 and --resume


@pytest.mark.slow  # three training subprocesses: 55-100 s on 2 busy cores
def test_sigkill_then_resume_equals_an_uninterrupted_run(tiny_model_dir, tmp_path, tmp_path_factory):
    """SIGKILL after the first checkpoint; --resume gives the same metrics and bit-identical weights.

    A newer, half-written checkpoint (what a kill during a save leaves) is
    planted before resuming: it must be ignored and removed, not loaded.
    """
    reference = reference_run(tmp_path_factory, tiny_model_dir)
    training_setup(tmp_path, tiny_model_dir)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(cli_command("finetune", "tiny.yaml", "-o", "run", "--quiet"), cwd=tmp_path,
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while not _complete_checkpoints(run_dir):
            assert proc.poll() is None, f"finished before a checkpoint was seen: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    # What the kill left: no metrics.json and no config.json, so nothing reads it as a finished run.
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "config.json").exists()
    killed_at = max(int(c.name.split("-")[1]) for c in _complete_checkpoints(run_dir))
    steps_per_epoch = json.loads((reference / "metrics.json").read_text())["train"]["steps"] // KILL_RESUME_EPOCHS
    assert killed_at % steps_per_epoch == 0 and killed_at < KILL_RESUME_EPOCHS * steps_per_epoch
    partial = run_dir / "checkpoints" / "checkpoint-9999"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\x00" * 100)  # weights cut off, no trainer_state.json

    without = run_cli("finetune", "tiny.yaml", "-o", "run", "--quiet", cwd=tmp_path)
    assert without.returncode == 2
    assert "unfinished run: pass --resume" in error_line(without.stderr)

    resumed = run_cli("finetune", "tiny.yaml", "-o", "run", "--quiet", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = json.loads((reference / "metrics.json").read_text())
    got = json.loads((run_dir / "metrics.json").read_text())
    assert got["train"]["resumed_from_step"] == killed_at
    assert expected["train"]["resumed_from_step"] is None
    assert comparable_metrics(got, resumed=True) == comparable_metrics(expected, resumed=True)
    assert got["test"]["accuracy"] == expected["test"]["accuracy"] and got["test"]["loss"] == expected["test"]["loss"]
    ref_weights, new_weights = weights(reference), weights(run_dir)
    assert sorted(ref_weights) == sorted(new_weights)
    for name in ref_weights:
        np.testing.assert_array_equal(new_weights[name], ref_weights[name], err_msg=name)
    assert not (run_dir / "checkpoints").exists()  # the planted partial one was removed with the rest

    # --resume on a finished run changes nothing and says so with exit 0.
    stamp = (run_dir / "model.safetensors").stat().st_mtime_ns
    again = run_cli("finetune", "tiny.yaml", "-o", "run", "--quiet", "--resume", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (run_dir / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((run_dir / "metrics.json").read_text()) == got


def test_last_complete_checkpoint_skips_half_written_ones(tmp_path):
    from langtrainer.rundir import RunDir

    run = RunDir(tmp_path)
    checkpoints = run.checkpoints

    def last_complete_checkpoint(folder, remove_incomplete=False):
        assert folder == run.checkpoints
        return run.last_complete_checkpoint(remove_incomplete=remove_incomplete)
    assert last_complete_checkpoint(checkpoints) is None
    for step, state in ((7, '{"global_step": 7}'), (14, '{"global_step": 1'), (21, None), (3, "{}")):
        folder = checkpoints / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    # 21 has no state, 14 a truncated one; 7 beats 3 by step number, not by name order.
    assert last_complete_checkpoint(checkpoints) == checkpoints / "checkpoint-7"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-14", "checkpoint-21", "checkpoint-3",
                                                              "checkpoint-7"]
    assert last_complete_checkpoint(checkpoints, remove_incomplete=True) == checkpoints / "checkpoint-7"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-3", "checkpoint-7"]


def test_resume_with_another_recipe_is_refused(tiny_model_dir, tmp_path):
    """A run folder started with one recipe is not continued (or its data reused) with another."""
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    source = write_dataset(tmp_path / "ds")
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_model_dir, source)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    from langtrainer.recipe import load_recipe, save_recipe

    save_recipe(load_recipe(recipe), run_dir / "recipe.yaml")  # what a killed first attempt leaves
    before = tree(tmp_path)
    result = CliRunner().invoke(app, ["finetune", str(recipe), "-o", str(run_dir), "--quiet", "--resume",
                                      "--set", "data.train_per_language=6"])
    assert result.exit_code == 2
    line = error_line(result.stderr)
    assert "different recipe (data.train_per_language differs)" in line
    assert tree(tmp_path) == before


# ------------------------------------------------------------------ atomic outputs

_KILL_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys
    import datasets

    original = datasets.Dataset.save_to_disk
    saved = []

    def save_then_die(self, path, *args, **kwargs):
        original(self, path, *args, **kwargs)
        saved.append(path)
        if len(saved) == 2:  # two of the five splits are on disk
            os.kill(os.getpid(), signal.SIGKILL)

    datasets.Dataset.save_to_disk = save_then_die
    sys.argv = ["langtrainer", *sys.argv[1:]]
    from langtrainer.cli.main import main
    main()
""")


def test_data_build_killed_while_saving_leaves_no_dataset(tiny_model_dir, tmp_path):
    """SIGKILL in the middle of `data build`'s save: the old output stays whole, no new half one appears."""
    import datasets
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    source = write_dataset(tmp_path / "ds")
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_model_dir, source)
    done = CliRunner().invoke(app, ["data", "build", str(recipe), "--out", str(tmp_path / "subsets"), "--quiet"])
    assert done.exit_code == 0, done.output
    before = split_hashes(datasets.load_from_disk(str(tmp_path / "subsets")))
    distribution = (tmp_path / "subsets" / "distribution.json").read_bytes()

    def killed_build(out: str) -> None:
        proc = subprocess.run([sys.executable, "-c", _KILL_DURING_SAVE, "data", "build", "tiny.yaml", "--out", out,
                               "--quiet", "--set", "seed=1"], cwd=tmp_path, env=cli_env(), capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]

    killed_build("subsets")  # over an existing build
    assert split_hashes(datasets.load_from_disk(str(tmp_path / "subsets"))) == before
    assert (tmp_path / "subsets" / "distribution.json").read_bytes() == distribution
    killed_build("fresh")  # to a new folder
    assert not (tmp_path / "fresh").exists()
    # The half-written data is only in hidden temporary folders that no command opens.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 2 and all(name.endswith(".tmp") for name in leftovers), leftovers
    missing = run_cli("data", "audit", "fresh", cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in error_line(missing.stderr)


def test_probe_interrupted_while_writing_leaves_no_json(tiny_model_dir, tmp_path, tmp_path_factory, monkeypatch):
    """An interruption at the rename of probe_test.json: no file, no temp file; a rerun writes it."""
    import shutil

    from typer.testing import CliRunner

    from langtrainer.cli.main import app
    from langtrainer import atomic

    run_dir = tmp_path / "run"
    shutil.copytree(reference_run(tmp_path_factory, tiny_model_dir), run_dir)
    calls = []

    class OsKilledAtRename:
        """`os` for langtrainer.atomic only: the process dies right before the rename."""

        def __getattr__(self, name):
            return getattr(os, name)

        def replace(self, src, dst):
            calls.append(Path(dst).name)
            raise Killed

    monkeypatch.setattr(atomic, "os", OsKilledAtRename())
    before = tree(run_dir)
    with pytest.raises(Killed):
        CliRunner().invoke(app, ["probe", "--ckpt", str(run_dir), "--folds", "2", "--quiet"])
    assert calls == ["probe_test.json"]
    assert tree(run_dir) == before  # neither probe_test.json nor its temporary file

    monkeypatch.undo()
    result = CliRunner().invoke(app, ["probe", "--ckpt", str(run_dir), "--folds", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "probe_test.json").read_text())
    assert report["n_examples"] == 18 and set(report["languages"]) == {"de", "en", "fr"}
    assert tree(run_dir) == sorted(before + ["probe_test.json"])


def test_finetune_interrupted_while_saving_the_model(tiny_model_dir, tmp_path, monkeypatch):
    """Killed between moving model files and metrics.json: no config.json (not a model), resume completes it."""
    from typer.testing import CliRunner

    from langtrainer.cli.main import app
    from langtrainer.rundir import RunDir

    source = write_dataset(tmp_path / "ds")
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_model_dir, source, epochs=1)
    run_dir = tmp_path / "run"
    real_move = os.replace

    def move_some_then_die(run: RunDir, src: Path) -> None:
        for item in sorted(src.iterdir(), key=lambda item: item.name == "config.json")[:2]:
            real_move(item, run.path / item.name)
        raise Killed

    monkeypatch.setattr(RunDir, "install_model", move_some_then_die)
    with pytest.raises(Killed):
        CliRunner().invoke(app, ["finetune", str(recipe), "-o", str(run_dir), "--quiet"])
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "config.json").exists()
    assert any((run_dir / "checkpoints").glob("checkpoint-*"))  # kept until metrics.json is written

    probe = CliRunner().invoke(app, ["probe", "--ckpt", str(run_dir), "--quiet"])
    assert probe.exit_code == 2 and "holds no model (no config.json)" in error_line(probe.stderr)

    monkeypatch.undo()
    result = CliRunner().invoke(app, ["finetune", str(recipe), "-o", str(run_dir), "--quiet", "--resume"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["steps"] == metrics["train"]["resumed_from_step"] == 7  # 27 examples / batch 4
    assert (run_dir / "config.json").exists() and not (run_dir / "checkpoints").exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------ resume, in process, per training option

@pytest.mark.parametrize("option", [
    pytest.param("", id="plain"),
    pytest.param("loss: {mask_entropy: 0.1}\n", id="mask_entropy",
                 marks=[pytest.mark.slow]),
    pytest.param("sampler", id="per_language_balanced",
                 marks=[pytest.mark.slow]),
    pytest.param("group_by_length", id="group_by_length",
                 marks=[pytest.mark.slow]),
])
def test_resume_from_the_first_epoch_checkpoint_is_exact(tiny_model_dir, tmp_path, option):
    """Resuming from the epoch-1 checkpoint of a run reproduces that run's weights and test metrics."""
    import shutil

    from langtrainer.pipelines.finetune import finetune
    from langtrainer.recipe import load_recipe

    source = write_dataset(tmp_path / "ds")
    training = "  save_total_limit: null\n"
    if option == "group_by_length":
        training += "  train_sampling_strategy: group_by_length\n"
    recipe_path = write_recipe(tmp_path / "tiny.yaml", tiny_model_dir, source, epochs=3,
                               training=training, extra=option if option.startswith("loss") else "")
    overrides = ["data.sampler=per_language_balanced"] if option == "sampler" else []
    recipe = load_recipe(recipe_path, overrides)
    full = finetune(recipe, tmp_path / "full", keep_checkpoints=True).to_dict()
    steps_per_epoch = full["train"]["steps"] // 3

    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "full" / "data", resumed_dir / "data")
    shutil.copy(tmp_path / "full" / "recipe.yaml", resumed_dir / "recipe.yaml")
    shutil.copy(tmp_path / "full" / "identity.json", resumed_dir / "identity.json")  # as a killed run leaves it
    first = f"checkpoint-{steps_per_epoch}"
    shutil.copytree(tmp_path / "full" / "checkpoints" / first, resumed_dir / "checkpoints" / first)
    resumed = finetune(recipe, resumed_dir, resume=True).to_dict()

    assert resumed["train"]["resumed_from_step"] == steps_per_epoch
    assert comparable_metrics(resumed, resumed=True) == comparable_metrics(full, resumed=True)
    for name, value in weights(tmp_path / "full").items():
        np.testing.assert_array_equal(weights(resumed_dir)[name], value, err_msg=name)
