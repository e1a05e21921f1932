"""SHAP across processes: shards assigned by token count, result identical to one process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from langtrainer.analysis.shap import ShapOptions, assign_shards, load_shap_result, run_shap
from tiny_model import write_tiny_shap_run


def test_assign_shards_balances_token_counts():
    lengths = [5] * 4 + [10] * 4 + [20] * 4 + [40] * 4  # shards of 4 cost 20, 40, 80, 160
    assert assign_shards(lengths, 4, 2) == [[3], [0, 1, 2]]
    assert assign_shards(lengths, 4, 1) == [[0, 1, 2, 3]]
    # every shard exactly once, for any number of processes
    for world in (2, 3, 5):
        parts = assign_shards(list(range(1, 30)), 3, world)
        assert sorted(k for part in parts for k in part) == list(range(10))


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    return write_tiny_shap_run(tiny_model_dir, tmp_path_factory.mktemp("shard") / "run")


OPTIONS = ShapOptions(max_evals=40, shard_size=3, seed=0)


def assert_same(a, b, atol=1e-6):
    assert a.examples["id"].tolist() == b.examples["id"].tolist()
    for x, y in zip(a.examples.itertuples(), b.examples.itertuples()):
        np.testing.assert_allclose(x.values, y.values, atol=atol, rtol=0)
        np.testing.assert_allclose(x.base_values, y.base_values, atol=atol, rtol=0)


def test_two_ranks_in_turn_equal_one_process(run_dir, tmp_path):
    single = load_shap_result(run_shap(run_dir, OPTIONS, out=tmp_path / "one"))
    out = tmp_path / "two"
    run_shap(run_dir, OPTIONS, out=out, rank=1, world_size=2)
    rank1_shards = sorted(p.name for p in (out / "shards").glob("*.parquet"))
    assert 0 < len(rank1_shards) < 4  # rank 1 did its share only
    run_shap(run_dir, OPTIONS, out=out, rank=0, world_size=2)
    assert json.loads((out / "manifest.json").read_text())["complete"]
    assert_same(load_shap_result(out), single)


@pytest.mark.slow
def test_cli_two_processes_equal_one_process(run_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    base = [sys.executable, "-m", "langtrainer", "shap", "--ckpt", str(run_dir), "--max-evals", "40",
            "--shard-size", "3", "--seed", "0", "--quiet"]
    one = subprocess.run(base + ["--out", str(tmp_path / "one")], capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(base + ["--out", str(tmp_path / "two"), "--num-processes", "2"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert_same(load_shap_result(tmp_path / "two"), load_shap_result(tmp_path / "one"))
