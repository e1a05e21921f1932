"""Faults an attacker or an accident causes, and what the next command does about them.

Damaged SHAP shards and manifests are recomputed by a rerun; a run folder is
owned by one command at a time and by one recipe, seed and data; leftovers
of killed writers are cleaned when the folder is next claimed.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from langtrainer.errors import UserError
from langtrainer.rundir import RunDir
from tiny_model import SAMPLE_TEXTS, write_tiny_shap_run


# ------------------------------------------------------------------ SHAP shards and manifest


@pytest.fixture(scope="module")
def shap_run(tiny_model_dir, tmp_path_factory):
    return write_tiny_shap_run(tiny_model_dir, tmp_path_factory.mktemp("shapfault") / "run")


def _values(result) -> list[np.ndarray]:
    return [np.asarray(v) for v in result.examples["values"]]


def _same(a, b) -> None:
    assert a.examples["id"].tolist() == b.examples["id"].tolist()
    for x, y in zip(_values(a), _values(b)):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def shap_reference(shap_run, tmp_path_factory):
    from langtrainer.analysis.shap import ShapOptions, load_shap_result, run_shap

    out = tmp_path_factory.mktemp("shapref") / "shap"
    run_shap(shap_run, ShapOptions(max_evals=20, shard_size=4, seed=0), out=out)
    return out, load_shap_result(out)


def _copy(reference, tmp_path):
    out = tmp_path / "shap"
    shutil.copytree(reference, out)
    return out


def _damage_values(shard) -> None:
    """Flip bytes in the middle of a parquet shard, leaving its footer (and so its id column) readable."""
    data = bytearray(shard.read_bytes())
    middle = len(data) // 3
    for i in range(middle, middle + 16):
        data[i] ^= 0xFF
    shard.write_bytes(bytes(data))


def test_a_damaged_shard_is_refused_then_recomputed(shap_run, shap_reference, tmp_path):
    from langtrainer.analysis.shap import ShapOptions, load_shap_result, run_shap

    reference, expected = shap_reference
    out = _copy(reference, tmp_path)
    shards = sorted((out / "shards").glob("*.parquet"))
    assert len(shards) >= 3
    _damage_values(shards[1])
    with pytest.raises(UserError, match="checksum"):
        load_shap_result(out)
    untouched = {p.name: p.stat().st_mtime_ns for p in shards if p != shards[1]}
    run_shap(shap_run, ShapOptions(max_evals=20, shard_size=4, seed=0), out=out)
    _same(load_shap_result(out), expected)
    # only the damaged shard was recomputed
    assert {p.name: p.stat().st_mtime_ns for p in shards if p != shards[1]} == untouched


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not-an-object", "missing"])
def test_a_damaged_manifest_is_repaired_by_a_rerun(shap_run, shap_reference, tmp_path, damage):
    from langtrainer.analysis.shap import ShapOptions, load_shap_result, run_shap

    reference, expected = shap_reference
    out = _copy(reference, tmp_path)
    manifest = out / "manifest.json"
    text = manifest.read_text()
    {"garbage": lambda: manifest.write_bytes(b"\x00\xffnot json"),
     "truncated": lambda: manifest.write_text(text[: len(text) // 2]),
     "not-an-object": lambda: manifest.write_text("[1, 2, 3]"),
     "missing": manifest.unlink}[damage]()
    with pytest.raises(UserError):
        load_shap_result(out)
    run_shap(shap_run, ShapOptions(max_evals=20, shard_size=4, seed=0), out=out)
    _same(load_shap_result(out), expected)
    assert json.loads(manifest.read_text())["complete"]


# ------------------------------------------------------------------ the run folder: one owner, one identity


def _recipe(seed: int = 0, **overrides):
    from langtrainer.recipe import recipe_from_dict

    raw = {"name": "owned", "seed": seed, "data": {"languages": ["de", "en", "fr"]},
           "imbalance": {"subset": "imbalanced", "groups": {"A": ["de", "fr"], "B": ["en"]},
                         "distribution": {"A": [50, 25, 25], "B": [0, 50, 50]}}}
    raw.update(overrides)
    return recipe_from_dict(raw)


def _fake_data(run: RunDir, seed: int) -> None:
    """A data/ as write_subsets leaves it, with the distribution.json fields the identity check reads."""
    run.data_path.mkdir(parents=True)
    (run.data_path / "dataset_dict.json").write_text('{"splits": ["test"]}')
    (run.data_path / RunDir.DISTRIBUTION).write_text(json.dumps({
        "seed": seed, "subset": "imbalanced", "groups": {"A": ["de", "fr"], "B": ["en"]},
        "distribution": {"A": [50.0, 25.0, 25.0], "B": [0.0, 50.0, 50.0]}}))


def test_a_second_claim_on_a_run_folder_is_refused_and_leaves_nothing(tmp_path):
    run = RunDir(tmp_path / "new" / "run")
    with run.claim():
        (run.path / "recipe.yaml").write_text("name: owned\n")
        with pytest.raises(UserError, match="in use by another langtrainer command"):
            with RunDir(run.path).claim():
                pass  # pragma: no cover
        assert (run.path / "recipe.yaml").is_file()  # the refused claim removed nothing of the owner's
    with RunDir(run.path).claim():  # released with the first claim
        pass
    assert sorted(p.name for p in run.path.iterdir()) == ["recipe.yaml"]  # no lock file left


def test_a_refused_claim_removes_the_folders_it_created(tmp_path):
    run = RunDir(tmp_path / "a" / "b" / "run")
    with pytest.raises(UserError, match="boom"):
        with run.claim():
            raise UserError("boom")
    assert list(tmp_path.iterdir()) == []


def test_claiming_removes_leftovers_of_killed_writers(tmp_path):
    from langtrainer import atomic

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (run.path / ".data.k2j3.tmp").mkdir()
    (run.path / ".data.k2j3.tmp" / "big.arrow").write_bytes(b"x" * 1000)
    (run.path / ".metrics.json.abc.tmp").write_text("{")
    (run.path / ".data.old-1234").mkdir()
    (run.path / "notes.txt").write_text("mine")
    (run.path / ".keep").write_text("mine")
    with run.claim():
        atomic.write_text(run.path / "x.txt", "whole")
    assert sorted(p.name for p in run.path.iterdir()) == [".keep", "notes.txt", "x.txt"]


def test_identity_refuses_another_seed_or_recipe_or_changed_data(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    recipe = _recipe(seed=1)
    _fake_data(run, seed=0)  # data/ of another seed's build, no identity yet
    with pytest.raises(UserError, match=r"built with another seed \(0, the recipe: 1\)"):
        run.check_identity(recipe)
    shutil.rmtree(run.data_path)
    _fake_data(run, seed=1)
    run.check_identity(recipe)
    run.write_identity(recipe)
    run.check_identity(recipe)  # the same recipe, seed and data: accepted
    with pytest.raises(UserError, match="belongs to a run with seed 1, the recipe has seed 2"):
        run.check_identity(_recipe(seed=2, data={"languages": ["de", "en", "fr"]}))
    with pytest.raises(UserError, match="belongs to a run of another recipe"):
        run.check_identity(_recipe(seed=1, loss={"class_weights": "per_language"}))
    (run.data_path / "dataset_dict.json").write_text('{"splits": ["test", "train"]}')
    with pytest.raises(UserError, match="changed since the run began"):
        run.check_identity(recipe)


def test_identity_refuses_what_it_cannot_check(tmp_path):
    run = RunDir(tmp_path / "run")
    (run.checkpoints / "checkpoint-3").mkdir(parents=True)
    with pytest.raises(UserError, match="holds checkpoints but no identity.json"):
        run.check_identity(_recipe())
    run.identity_path.write_text("{not json")
    with pytest.raises(UserError, match="identity.json' is damaged"):
        run.check_identity(_recipe())
    run.identity_path.unlink()
    shutil.rmtree(run.checkpoints)
    run.recipe_path.write_bytes(b"\xff\xfe garbage: [")
    with pytest.raises(UserError, match="recipe.yaml' cannot be read"):
        run.check_identity(_recipe())
    run.recipe_path.unlink()
    _fake_data(run, seed=0)
    (run.data_path / RunDir.DISTRIBUTION).unlink()
    with pytest.raises(UserError, match="no readable distribution.json"):
        run.check_identity(_recipe())


def test_resume_state_is_exact_only_with_the_rng_state(tmp_path):
    checkpoint = tmp_path / "checkpoint-4"
    checkpoint.mkdir()
    run = RunDir(tmp_path)
    assert not run.resume_state_is_exact(checkpoint)
    (checkpoint / "rng_state_1.pth").write_bytes(b"")
    assert run.resume_state_is_exact(checkpoint)


# ------------------------------------------------------------------ one huge text


class _RecordingTokenizer:
    """Wraps a tokenizer and records the longest text it was given."""

    def __init__(self, inner):
        self._inner, self.longest = inner, 0

    def __call__(self, text, *args, **kwargs):
        items = text if isinstance(text, (list, tuple)) else [text]
        self.longest = max([self.longest, *(len(t) for t in items if isinstance(t, str))])
        return self._inner(text, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_a_huge_text_is_clipped_before_tokenising(tiny_model_dir):
    """Probe features and SHAP of a 2 MB text: the tokenizer never sees more than 16 characters per token."""
    from transformers import AutoModelForSequenceClassification

    from langtrainer.analysis.embeddings import extract_embeddings
    from langtrainer.analysis.shap import explain
    from langtrainer.models import CHARS_PER_TOKEN, load_tokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    words = " ".join(SAMPLE_TEXTS["en"])
    huge = (words + " ") * (2_000_000 // len(words))
    tokenizer = _RecordingTokenizer(load_tokenizer(tiny_model_dir))
    features = extract_embeddings(model, tokenizer, [huge, words], max_length=32)
    assert tokenizer.longest <= 32 * CHARS_PER_TOKEN
    assert features[-1].shape == (2, model.config.hidden_size)
    tokenizer = _RecordingTokenizer(load_tokenizer(tiny_model_dir))
    (attribution,) = explain(model, tokenizer, [huge], max_evals=20, max_length=24)
    assert tokenizer.longest <= 24 * CHARS_PER_TOKEN
    assert len(attribution.values) <= 24


# ------------------------------------------------------------------ finetune: one owner, one identity, exact resume


def test_a_second_finetune_into_a_running_folder_is_refused(tiny_model_dir, tmp_path):
    """While one finetune writes a folder, others (same recipe, --resume, another seed) exit 2 and change nothing.

    The first run is given many epochs so that it is still training when the
    others have finished; it is then stopped (its result is not the point).
    """
    import signal
    import subprocess
    import time

    from fault_helpers import cli_command, cli_env, error_line, training_setup

    training_setup(tmp_path, tiny_model_dir)
    run_dir = tmp_path / "run"
    first = subprocess.Popen(cli_command("finetune", "tiny.yaml", "-o", "run", "--quiet",
                                         "--set", "training.num_train_epochs=500"),
                             cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "identity.json").exists():  # the lock is held and data/ is built
            assert first.poll() is None, first.stderr.read()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        extra = {"same": [], "resume": ["--resume"], "seed": ["--set", "seed=1"]}
        others = {name: subprocess.Popen(cli_command("finetune", "tiny.yaml", "-o", "run", "--quiet",
                                                     "--set", "training.num_train_epochs=500", *args),
                                         cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
                  for name, args in extra.items()}
        results = {name: (proc.wait(timeout=300), proc.stderr.read(), proc.stdout.read())
                   for name, proc in others.items()}
        still_running = first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        first.stderr.close()
    assert still_running, "the first run finished before the others: nothing was tested"
    for name, (code, stderr, stdout) in results.items():
        assert code == 2 and stdout == "", (name, code, stderr[-2000:])
        line = error_line(stderr)
        assert "is in use by another langtrainer command" in line, line
    run = RunDir(run_dir)
    assert run.recipe_value("seed") == 0
    assert json.loads(run.identity_path.read_text())["seed"] == 0
    assert json.loads((run.data_path / RunDir.DISTRIBUTION).read_text())["seed"] == 0


def test_data_of_another_seed_in_the_run_folder_is_refused(tiny_model_dir, tmp_path):
    from fault_helpers import error_line, run_cli, training_setup, tree

    training_setup(tmp_path, tiny_model_dir)
    built = run_cli("data", "build", "tiny.yaml", "--out", "run/data", "--quiet", cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    before = tree(tmp_path)
    done = run_cli("finetune", "tiny.yaml", "-o", "run", "--quiet", "--set", "seed=1", cwd=tmp_path)
    assert done.returncode == 2
    assert "was built with another seed (0, the recipe: 1)" in error_line(done.stderr)
    assert tree(tmp_path) == before


def test_resume_without_the_rng_state_needs_resume_inexact(tiny_model_dir, tmp_path):
    from langtrainer.pipelines.finetune import finetune
    from langtrainer.recipe import load_recipe
    from fault_helpers import training_setup, weights

    recipe = load_recipe(training_setup(tmp_path, tiny_model_dir), ["training.save_total_limit=null"])
    full = finetune(recipe, tmp_path / "full", keep_checkpoints=True).to_dict()
    first = f"checkpoint-{full['train']['steps'] // 3}"
    resumed = RunDir(tmp_path / "resumed")
    shutil.copytree(tmp_path / "full" / "data", resumed.data_path)
    shutil.copy(tmp_path / "full" / "recipe.yaml", resumed.recipe_path)
    shutil.copy(tmp_path / "full" / "identity.json", resumed.identity_path)
    shutil.copytree(tmp_path / "full" / "checkpoints" / first, resumed.checkpoints / first)
    for rng in (resumed.checkpoints / first).glob("rng_state*.pth"):
        rng.unlink()
    listing = sorted(str(p) for p in resumed.path.rglob("*"))
    with pytest.raises(UserError, match="pass resume_inexact to continue anyway"):
        finetune(recipe, resumed.path, resume=True)
    assert sorted(str(p) for p in resumed.path.rglob("*")) == listing
    # Truncated checkpoint weights: refused before any loading, with the checkpoint named.
    weights_file = resumed.checkpoints / first / "model.safetensors"
    whole = weights_file.read_bytes()
    weights_file.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match=f"cannot resume: weights file .*{first}.* is truncated"):
        finetune(recipe, resumed.path, resume_inexact=True)
    weights_file.write_bytes(whole)
    metrics = finetune(recipe, resumed.path, resume_inexact=True).to_dict()
    assert metrics["train"]["resumed_from_step"] == full["train"]["steps"] // 3
    assert metrics["train"]["steps"] == full["train"]["steps"]
    assert set(weights(resumed.path)) == set(weights(tmp_path / "full"))


def test_old_temporary_copies_beside_a_data_build_output_are_removed(tmp_path):
    """A killed `data build --out X` leaves `.X.NNNN.tmp` beside X; the next build removes it once it is old."""
    import os
    import time

    import datasets

    from langtrainer.preflight import UNLOCKED_TEMP_AGE_S
    from langtrainer.rundir.subsets import write_subsets

    old = tmp_path / ".out.abc123.tmp"
    (old / "train").mkdir(parents=True)
    (old / "train" / "data-00000-of-00001.arrow").write_bytes(b"x" * 100)
    young = tmp_path / ".out.def456.tmp"  # a build running right now
    young.mkdir()
    other = tmp_path / ".other.ghi789.tmp"  # another output's
    other.mkdir()
    stamp = time.time() - UNLOCKED_TEMP_AGE_S - 60
    for path in (old, other):
        os.utime(path, (stamp, stamp))
    subsets = datasets.DatasetDict({"test": datasets.Dataset.from_dict({"text": ["a"], "label": [0]})})
    write_subsets(subsets, {"seed": 0}, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.ghi789.tmp", ".out.def456.tmp", "out"]


def test_training_inputs_are_clipped_before_tokenising(tiny_model_dir):
    import datasets

    from langtrainer.models import CHARS_PER_TOKEN, load_tokenizer
    from langtrainer.training.encoding import tokenize

    words = " ".join(SAMPLE_TEXTS["de"])
    huge = (words + " ") * (1_000_000 // len(words))
    rows = datasets.Dataset.from_dict({"text": [huge, words], "text_pair": [words, huge], "label": [0, 1],
                                       "language": ["de", "de"]})
    tokenizer = _RecordingTokenizer(load_tokenizer(tiny_model_dir))
    encoded = tokenize(rows, tokenizer, 32)
    assert 0 < tokenizer.longest <= 32 * CHARS_PER_TOKEN
    assert [len(ids) for ids in encoded["input_ids"]] == [32, 32]
    assert encoded["labels"] == [0, 1]
