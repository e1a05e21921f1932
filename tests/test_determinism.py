"""Same recipe + seed => the same subsets (byte for byte) and the same metrics on CPU.

The second run of each pair is a separate process with another
PYTHONHASHSEED, so an iteration over a set or dict of strings that leaks
into the output order would show up here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from langtrainer.cli.main import app
from fault_helpers import (
    comparable_metrics,
    file_hash,
    reference_run,
    run_cli,
    split_hashes,
    training_setup,
    weights,
    write_dataset,
    write_recipe,
)


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_hash(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_data_build_twice_gives_identical_files(tiny_model_dir, tmp_path):
    import datasets

    source = write_dataset(tmp_path / "ds")
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_model_dir, source)
    first = CliRunner().invoke(app, ["data", "build", str(recipe), "--out", str(tmp_path / "a"), "--quiet"])
    assert first.exit_code == 0, first.output
    second = run_cli("data", "build", "tiny.yaml", "--out", "b", "--quiet", cwd=tmp_path,
                     env={"PYTHONHASHSEED": "1"})
    assert second.returncode == 0, second.stderr[-2000:]

    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert any(name.endswith(".arrow") for name in files_a) and "distribution.json" in files_a
    assert files_a == files_b  # every arrow file, state.json, dataset_info.json and distribution.json
    hashes = split_hashes(datasets.load_from_disk(str(tmp_path / "a")))
    assert hashes == split_hashes(datasets.load_from_disk(str(tmp_path / "b")))

    # The comparison can fail: another seed draws other rows for every subset.
    other = CliRunner().invoke(app, ["data", "build", str(recipe), "--out", str(tmp_path / "c"), "--quiet",
                                     "--set", "seed=1"])
    assert other.exit_code == 0, other.output
    other_hashes = split_hashes(datasets.load_from_disk(str(tmp_path / "c")))
    assert all(other_hashes[split] != hashes[split] for split in hashes)


def test_two_finetune_runs_give_identical_metrics_and_weights(tiny_model_dir, tmp_path, tmp_path_factory):
    reference = reference_run(tmp_path_factory, tiny_model_dir)
    training_setup(tmp_path, tiny_model_dir)
    done = run_cli("finetune", "tiny.yaml", "-o", "run", "--quiet", cwd=tmp_path, env={"PYTHONHASHSEED": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    expected = json.loads((reference / "metrics.json").read_text())
    got = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert got["test"] == expected["test"]  # every test number, exactly
    assert got["train"]["loss"] == expected["train"]["loss"]
    assert comparable_metrics(got) == comparable_metrics(expected)
    assert len([h for h in got["log_history"] if "loss" in h]) == got["train"]["steps"]  # logging_steps 1
    ref_weights, new_weights = weights(reference), weights(tmp_path / "run")
    for name in ref_weights:
        np.testing.assert_array_equal(new_weights[name], ref_weights[name], err_msg=name)
    # Training moved the weights (so equal weights are not just the initial ones twice).
    from safetensors.numpy import load_file

    initial = load_file(str(tiny_model_dir / "model.safetensors"))
    shared = [n for n in ref_weights if n in initial and n.startswith("bert.encoder")]
    assert shared and any(not np.array_equal(initial[n], ref_weights[n]) for n in shared)
