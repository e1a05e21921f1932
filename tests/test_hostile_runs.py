"""Hostile run folders, round 2 (issue 27): results of two runs combined by name, folders that are not what
they claim, input-caused library errors, an interrupted report, and the run folder's read lock.

The table builds each row's folders in a fresh tmp folder from three real SHAP results of tiny models
(computed once per session): A, B (another model on the same examples) and B with its classes in the
reverse order. Each row runs the real CLI in process and asserts exit 2, one `error:` line under 300
characters that names the problem, no traceback, and the tmp folder and the shared results listed exactly
as before. Tests below the table check the correct result where one exists (classes matched by name, labels
read by name) and the faults that need a patched library.
"""

from __future__ import annotations

import errno
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from typer.testing import CliRunner

from langtrainer.cli.main import app
from fault_helpers import tree
from results_fixtures import LABELS3, write_tidy_run
from tiny_model import SAMPLE_TEXTS

REVERSED = [3, 2, 1, 0]  # B's class c is B_rev's class REVERSED[c]


def _data(run: Path, label_of: Callable[[int], int]) -> None:
    import datasets

    texts = [f"{t} {i}" for i, t in enumerate(t for ts in SAMPLE_TEXTS.values() for t in ts)]
    langs = [lang for lang, ts in SAMPLE_TEXTS.items() for _ in ts]
    rows = {"id": [f"ex{i:02d}" for i in range(len(texts))], "text": texts,
            "label": [label_of(i % 4) for i in range(len(texts))], "language": langs}
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(run / "data"))


def _reverse_classes(model_dir: Path, out: Path) -> Path:
    """The same model with its classes in the reverse order (head rows and id2label permuted)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    order = torch.tensor([REVERSED.index(k) for k in range(4)])  # new class k is old class order[k]
    with torch.no_grad():
        model.classifier.weight.copy_(model.classifier.weight[order])
        model.classifier.bias.copy_(model.classifier.bias[order])
    names = [model.config.id2label[int(i)] for i in order]
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {n: i for i, n in enumerate(names)}
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def _other_weights(model_dir: Path, out: Path) -> Path:
    """Another model with the same tokenizer: every weight moved by seeded noise."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator) * parameter.std().clamp(min=0.02))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def shap_runs(tiny_model_dir, tmp_path_factory):
    """{'A', 'B', 'B_rev'}: run folders (model + data/ + shap/) of tiny models on the same 12 examples."""
    from langtrainer.analysis.shap import ShapOptions, run_shap

    root = tmp_path_factory.mktemp("shap_runs")
    runs = {"A": root / "A", "B": root / "B", "B_rev": root / "B_rev"}
    shutil.copytree(tiny_model_dir, runs["A"])
    _other_weights(tiny_model_dir, runs["B"])
    _reverse_classes(runs["B"], runs["B_rev"])
    for name, run in runs.items():
        _data(run, (lambda c: REVERSED[c]) if name == "B_rev" else (lambda c: c))
        run_shap(run, ShapOptions(max_evals=20, shard_size=5, seed=0))
    return runs


# ------------------------------------------------------------------ editing SHAP results as a hostile user would


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "shap" / "manifest.json").read_text())


def _write_manifest(folder: Path, manifest: dict) -> None:
    (folder / "shap" / "manifest.json").write_text(json.dumps(manifest))


def _edit_manifest(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        manifest = _manifest(folder)
        edit(manifest)
        _write_manifest(folder, manifest)
    return apply


def _edit_rows(edit: Callable, drop_last: bool = False) -> Callable[[Path], None]:
    """Rewrite the shards' rows (keeping their arguments hash), then the manifest's ids and checksums to match:
    a consistent folder whose content is not that of the other side."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from langtrainer.analysis.shap.store import file_sha256

    def apply(folder: Path) -> None:
        manifest = _manifest(folder)
        shards = sorted((folder / "shap" / "shards").glob("*.parquet"))
        ids = []
        for k, shard in enumerate(shards):
            table = pq.read_table(shard)
            frame = table.to_pandas()
            frame = edit(frame)
            if drop_last and k == len(shards) - 1:
                frame = frame.iloc[:-1]
            new = pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False)
            pq.write_table(new.replace_schema_metadata(table.schema.metadata), shard)
            ids += frame["id"].tolist()
        manifest.update(ids=ids, n_examples=len(ids),
                        shard_sha256={s.name: file_sha256(s) for s in shards})
        _write_manifest(folder, manifest)
    return apply


def _first_shard_cell(column: str, value):
    """Edit one cell of the first example of the first shard."""
    state = {"done": False}

    def edit(frame):
        if not state["done"]:
            frame.at[frame.index[0], column] = value
            state["done"] = True
        return frame
    return edit


def _cut_values(frame):
    """The first example of each shard loses its last token's values (its token list stays)."""
    values = list(frame["values"])
    values[0] = values[0][:-4]
    frame["values"] = values
    return frame


def _rename_labels(names: list[str]) -> Callable[[Path], None]:
    """Other label names in the model's config and the manifest, the manifest's arguments naming the copy: a
    consistent run of a model with other labels."""
    import pyarrow.parquet as pq

    from langtrainer.analysis.shap.store import HASH_KEY, arguments_hash, file_sha256, model_fingerprint

    def apply(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config["id2label"] = {str(i): n for i, n in enumerate(names)}
        config["label2id"] = {n: i for i, n in enumerate(names)}
        (folder / "config.json").write_text(json.dumps(config))
        manifest = _manifest(folder)
        manifest["label_names"] = names
        manifest["arguments"].update(ckpt=str(folder.resolve()), model_fingerprint=model_fingerprint(folder))
        manifest["arguments_hash"] = arguments_hash(manifest["arguments"])
        for shard in sorted((folder / "shap" / "shards").glob("*.parquet")):
            table = pq.read_table(shard)
            pq.write_table(table.replace_schema_metadata({HASH_KEY: manifest["arguments_hash"].encode()}), shard)
            manifest["shard_sha256"][shard.name] = file_sha256(shard)
        _write_manifest(folder, manifest)
    return apply


def _arguments_rehashed(folder: Path) -> None:
    from langtrainer.analysis.shap.store import arguments_hash

    manifest = _manifest(folder)
    manifest["arguments"]["max_evals"] = 999
    manifest["arguments_hash"] = arguments_hash(manifest["arguments"])
    _write_manifest(folder, manifest)


def _garbage_shard(folder: Path) -> None:
    from langtrainer.analysis.shap.store import file_sha256

    shard = sorted((folder / "shap" / "shards").glob("*.parquet"))[0]
    shard.write_bytes(b"not parquet at all")
    manifest = _manifest(folder)
    manifest["shard_sha256"][shard.name] = file_sha256(shard)
    _write_manifest(folder, manifest)


# ------------------------------------------------------------------ the table


@dataclass
class Env:
    tmp: Path
    runs: dict[str, Path]

    def copy(self, name: str, edit: Callable[[Path], None] | None = None, as_name: str | None = None) -> Path:
        target = self.tmp / (as_name or f"{name}_copy")
        shutil.copytree(self.runs[name], target)
        if edit is not None:
            edit(target)
        return target

    def diff(self, bal: Path | str, imbal: Path | str) -> list:
        bal = self.runs[bal] if isinstance(bal, str) else bal
        imbal = self.runs[imbal] if isinstance(imbal, str) else imbal
        return ["shap-diff", "--bal", bal, "--imbal", imbal, "--out", self.tmp / "diff", "--quiet"]

    def against(self, edit: Callable[[Path], None]) -> list:
        """shap-diff of A against a copy of B edited by `edit`."""
        return self.diff("A", self.copy("B", edit))


def _report_runs(env: Env, edit: Callable[[Path], None] | None = None, other_languages: bool = False) -> Path:
    """Two finished hand-made runs (labels negative/neutral/positive, languages de/pt/sw); `edit` changes the second."""
    root = env.tmp / "runs"
    even = {lang: [1 / 3] * 3 for lang in ("de", "pt", "sw")}
    write_tidy_run(root / "bal", "mine_bal", "balanced", "none", 0, {"de": .8, "pt": .8, "sw": .8}, even)
    write_tidy_run(root / "imbal", "mine_imbal", "imbalanced", "none", 0, {"de": .7, "pt": .6, "sw": .6}, even)
    if edit is not None:
        edit(root / "imbal")
    return root


def _metrics_edit(**changes) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        metrics = json.loads((run / "metrics.json").read_text())
        metrics.update(changes)
        (run / "metrics.json").write_text(json.dumps(metrics))
    return apply


def _diff_json(label_names: list[str]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        (run / "shap_diff.json").write_text(json.dumps({"threshold": 0.01, "label_names": label_names, "by_language": {}}))
    return apply


def _locked(env: Env, name: str = "A") -> Path:
    """A copy of run `name` whose exclusive lock (a finetune writing it) is held for the row."""
    from langtrainer.rundir import RunDir

    folder = env.copy(name)
    env.held = RunDir(folder).lock()
    env.held.__enter__()
    return folder


def _out_folder_of_someone_else(env: Env) -> Path:
    folder = env.tmp / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    return folder


RUN_CASES: list[tuple[str, Callable[[Env], list], str]] = [
    # ---- class 1: two runs combined only when they match by name
    ("diff_same_folder", lambda e: e.diff("A", "A"), "same SHAP results"),
    ("diff_run_and_its_shap_folder", lambda e: e.diff(e.runs["A"], e.runs["A"] / "shap"), "same SHAP results"),
    ("diff_identical_copy", lambda e: e.diff("A", e.copy("A")), "identical SHAP values"),
    ("diff_other_label_names", lambda e: e.against(_rename_labels(["w", "x", "y", "z"])), "do not match"),
    ("diff_one_label_renamed", lambda e: e.against(_rename_labels(["label0", "label1", "label2", "other"])),
     "lacks 'label3'"),
    ("diff_fewer_examples", lambda e: e.against(_edit_rows(lambda f: f, drop_last=True)), "examples"),
    ("diff_other_example_ids", lambda e: e.against(_edit_rows(_first_shard_cell("id", "intruder"))), "intruder"),
    ("diff_language_mismatch", lambda e: e.against(_edit_rows(_first_shard_cell("language", "xx"))), "has language"),
    ("diff_true_label_mismatch", lambda e: e.against(_edit_rows(_first_shard_cell("label", 3))), "true label"),
    ("report_other_labels", lambda e: ["report", _report_runs(e, _metrics_edit(label_names=["bad", "good", "meh"])),
                                       "--out", e.tmp / "rep"], "do not match"),
    ("report_labels_subset", lambda e: ["report", _report_runs(e, _metrics_edit(label_names=LABELS3[:2])),
                                        "--out", e.tmp / "rep"], "lacks 'positive'"),
    ("report_other_languages", lambda e: ["report", _report_runs(e, _metrics_edit(languages=["de", "pt", "yo"])),
                                          "--out", e.tmp / "rep"], "languages"),
    ("report_shap_diff_of_other_labels", lambda e: ["report", _report_runs(e, _diff_json(["x", "y", "z"])),
                                                    "--out", e.tmp / "rep"], "do not match"),
    # ---- class 2: a SHAP folder that is not what its manifest claims (checked when it is loaded)
    ("manifest_n_examples_wrong", lambda e: e.against(_edit_manifest(lambda m: m.update(n_examples=5))),
     "n_examples 5"),
    ("manifest_labels_renamed", lambda e: e.against(_edit_manifest(lambda m: m.update(label_names=["a", "b", "c", "d"]))),
     "names the labels"),
    ("manifest_labels_reordered", lambda e: e.against(_edit_manifest(
        lambda m: m.update(label_names=m["label_names"][::-1]))), "names the labels"),
    ("manifest_label_dropped", lambda e: e.against(_edit_manifest(lambda m: m.update(label_names=m["label_names"][:3]))),
     "names the labels"),
    ("manifest_label_twice", lambda e: e.against(_edit_manifest(
        lambda m: m.update(label_names=m["label_names"][:3] + m["label_names"][:1]))), "twice"),
    ("manifest_ids_twice", lambda e: e.against(_edit_manifest(lambda m: m.update(ids=m["ids"][:1] * len(m["ids"])))),
     "twice"),
    ("manifest_ids_not_a_list", lambda e: e.against(_edit_manifest(lambda m: m.update(ids="ex00"))), "example ids"),
    ("manifest_arguments_edited", lambda e: e.against(_edit_manifest(
        lambda m: m["arguments"].update(max_evals=999))), "arguments_hash"),
    ("manifest_arguments_rehashed", lambda e: e.against(_arguments_rehashed), "other arguments"),
    ("manifest_more_shards", lambda e: e.against(_edit_manifest(lambda m: m.update(n_shards=m["n_shards"] + 1))),
     "missing"),
    ("shard_true_label_out_of_range", lambda e: e.against(_edit_rows(_first_shard_cell("label", 9))),
     "does not fit its 4 labels"),
    ("shard_values_cut", lambda e: e.against(_edit_rows(_cut_values)),
     "does not fit its 4 labels"),
    ("manifest_shard_not_parquet", lambda e: e.against(_garbage_shard), "not a readable Parquet shard"),
    # ---- class 8: the report's --out is replaced whole, so it must be a report folder
    ("report_out_is_someone_elses_folder", lambda e: ["report", _report_runs(e), "--out",
                                                      _out_folder_of_someone_else(e)], "not a report folder"),
    # ---- class 9: probe, shap and report do not read a run a finetune is writing
    ("probe_while_written", lambda e: ["probe", "--ckpt", _locked(e), "--out", e.tmp / "p.json", "--quiet"],
     "being written"),
    ("shap_while_written", lambda e: ["shap", "--ckpt", _locked(e), "--out", e.tmp / "s", "--quiet"],
     "being written"),
    ("shap_diff_while_written", lambda e: e.diff("A", _locked(e, "B")), "being written"),
    ("report_while_written", lambda e: ["report", _locked_report(e), "--out", e.tmp / "rep"],
     "being written"),
]


def _locked_report(env: Env) -> Path:
    from langtrainer.rundir import RunDir

    root = _report_runs(env)
    env.held = RunDir(root / "imbal").lock()
    env.held.__enter__()
    return root


def test_the_run_table_is_large_and_unique():
    ids = [case[0] for case in RUN_CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 25


@pytest.mark.parametrize("name, build, fragment", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_hostile_run_folder_exits_2_with_one_line_and_changes_nothing(shap_runs, tmp_path, name, build, fragment):
    env = Env(tmp_path, shap_runs)
    env.held = None
    shared_before = {k: tree(v) for k, v in shap_runs.items()}
    try:
        args = [str(a) for a in build(env)]
        before = tree(tmp_path)
        result = CliRunner().invoke(app, args)
    finally:
        if env.held is not None:
            env.held.__exit__(None, None, None)
    assert result.exit_code == 2, (result.exit_code, result.output[-2000:], result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("error: ") and len(lines[0]) < 300, lines[0]
    assert "Traceback" not in result.output
    assert fragment in lines[0], lines[0]
    assert tree(tmp_path) == before, "the failed command left files behind"
    assert {k: tree(v) for k, v in shap_runs.items()} == shared_before


# ------------------------------------------------------------------ class 1: the correct result, by name


def test_shap_diff_pairs_classes_by_name_not_position(shap_runs):
    """B with its classes reversed gives, class by class name, the same difference as B itself."""
    from langtrainer.analysis.shap import load_shap_result
    from langtrainer.analysis.shap_diff import compute_shap_diff

    a = load_shap_result(shap_runs["A"])
    b, b_rev = load_shap_result(shap_runs["B"]), load_shap_result(shap_runs["B_rev"])
    assert b_rev.label_names == b.label_names[::-1]
    plain = compute_shap_diff(a, b).by_language.set_index(["class_name", "language", "category"])
    reordered = compute_shap_diff(a, b_rev).by_language.set_index(["class_name", "language", "category"])
    assert len(plain) == len(reordered) == 4 * 6 * 4
    joined = plain.join(reordered, rsuffix="_rev")
    np.testing.assert_allclose(joined["mean"], joined["mean_rev"], atol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(joined["n"], joined["n_rev"])
    assert np.nanmax(np.abs(plain["mean"].to_numpy(dtype=float))) > 1e-4  # two models: a difference to compare


def test_matching_names_gives_the_order_or_one_line():
    from langtrainer.analysis.matching import match_labels, match_languages
    from langtrainer.errors import UserError

    assert match_labels(["a", "b", "c"], ["c", "a", "b"]) == [1, 2, 0]
    assert match_labels([1, 2], ["2", "1"]) == [1, 0]  # names compared as text
    with pytest.raises(UserError, match=r"the second run lacks 'c'; the first run lacks 'x'"):
        match_labels(["a", "b", "c"], ["a", "b", "x"])
    with pytest.raises(UserError, match="lists languages 'de' twice"):
        match_languages(["de", "en"], ["de", "de"])


def test_report_reads_runs_whose_labels_are_in_another_order(tmp_path, shap_runs):
    from langtrainer.reporting.report import collect

    env = Env(tmp_path, shap_runs)
    root = _report_runs(env, _metrics_edit(label_names=LABELS3[::-1]))
    assert len(collect([root]).runs) == 2


# ------------------------------------------------------------------ class 2: labels read by name in `shap --data`


def _numbered_model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The tiny run folder with its classes named '1'..'4' (a user's integer labels)."""
    run = tmp_path / "numbered"
    shutil.copytree(tiny_model_dir, run)
    config = json.loads((run / "config.json").read_text())
    config["id2label"] = {str(i): str(i + 1) for i in range(4)}
    config["label2id"] = {str(i + 1): i for i in range(4)}
    (run / "config.json").write_text(json.dumps(config))
    return run


def _table_with_labels(tmp_path: Path, labels: list) -> Path:
    rows = [{"id": f"r{i}", "text": SAMPLE_TEXTS["en"][i % 2] + f" {i}", "label": label, "language": "en"}
            for i, label in enumerate(labels)]
    path = tmp_path / "own.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_integer_labels_in_shap_data_are_label_names(tiny_model_dir, tmp_path):
    import pandas as pd

    run = _numbered_model(tiny_model_dir, tmp_path)
    data = _table_with_labels(tmp_path, [1, 2, 3, 4, 1, 2, 3, 4])
    result = CliRunner().invoke(app, ["shap", "--ckpt", str(run), "--data", str(data), "--out", str(tmp_path / "s"),
                                      "--max-evals", "20", "--quiet"])
    assert result.exit_code == 0, result.output
    shards = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "s" / "shards").glob("*.parquet")))
    by_id = shards.set_index("id")["label"]
    # label 1 is the class named '1' (index 0), not class index 1
    assert [int(by_id[f"r{i}"]) for i in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]


def test_labels_mixing_names_and_class_numbers_are_refused(tiny_model_dir, tmp_path):
    run = _numbered_model(tiny_model_dir, tmp_path)
    data = _table_with_labels(tmp_path, [0, 1, 2, 3])  # 0 is no name; 1..3 are
    before = tree(tmp_path)
    result = CliRunner().invoke(app, ["shap", "--ckpt", str(run), "--data", str(data), "--out", str(tmp_path / "s"),
                                      "--quiet"])
    assert result.exit_code == 2
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert "label '0' is not one of the model's labels (1, 2, 3, 4)" in line and "mixes label names" in line
    assert tree(tmp_path) == before


# ------------------------------------------------------------------ class 6: input errors at the CLI boundary


def _patched_save(monkeypatch, exc: BaseException) -> None:
    import datasets

    def fail(self, *args, **kwargs):
        raise exc

    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", fail)


@pytest.mark.parametrize("exc, fragment", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/out/train/data-00000.arrow"),
     "'/data/out/train/data-00000.arrow': No space left on device (free some space"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/out"), "'/ro/out': Read-only file system"),
    (PermissionError(errno.EACCES, "Permission denied", "/x/out"), "'/x/out': Permission denied"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "cannot use a file: Disk quota exceeded"),
])
def test_a_full_or_read_only_disk_is_one_line_and_exit_2(tiny_model_dir, tmp_path, monkeypatch, exc, fragment):
    from fault_helpers import write_dataset, write_recipe

    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, write_dataset(tmp_path / "ds"))
    before = tree(tmp_path)
    _patched_save(monkeypatch, exc)
    result = CliRunner().invoke(app, ["data", "build", str(recipe), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, (result.output, result.exception)
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert line.startswith("error: cannot use ") and fragment in line, line
    assert tree(tmp_path) == before  # the temporary copy is gone


@pytest.mark.parametrize("exc", [ValueError("a bug of ours"), OSError(errno.ENOENT, "No such file", "ours.json"),
                                 KeyError("x"), TypeError("bad call")])
def test_a_bug_stays_exit_1_with_its_traceback(tiny_model_dir, tmp_path, monkeypatch, exc):
    from fault_helpers import write_dataset, write_recipe

    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, write_dataset(tmp_path / "ds"))
    _patched_save(monkeypatch, exc)
    result = CliRunner().invoke(app, ["data", "build", str(recipe), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1 and result.exception is exc


def test_the_mapping_is_narrow():
    from langtrainer.errors import UserError, input_error

    class SafetensorError(Exception):
        pass

    assert "truncated or damaged" in str(input_error(SafetensorError("Error while deserializing header")))
    assert isinstance(input_error(OSError(errno.ENOSPC, "No space left on device", "f")), UserError)
    for bug in (ValueError("x"), RuntimeError("x"), OSError(errno.ENOENT, "missing", "f"), OSError("no errno")):
        assert input_error(bug) is None


# ------------------------------------------------------------------ class 8: an interrupted report


def _interrupt_token_views(monkeypatch):
    from langtrainer.reporting.report import write as report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "_write_token_views", interrupted)


def test_an_interrupted_first_report_leaves_no_folder(shap_runs, tmp_path, monkeypatch):
    root = _report_runs(Env(tmp_path, shap_runs))
    before = tree(tmp_path)
    _interrupt_token_views(monkeypatch)
    result = CliRunner().invoke(app, ["report", str(root), "--out", str(tmp_path / "rep")])
    assert result.exit_code != 0 and isinstance(result.exception, (KeyboardInterrupt, SystemExit))
    assert tree(tmp_path) == before  # no --out holding only PNGs, no temporary folder


def test_an_interrupted_report_leaves_the_old_one_whole(shap_runs, tmp_path, monkeypatch):
    root = _report_runs(Env(tmp_path, shap_runs))
    out = tmp_path / "rep"
    assert CliRunner().invoke(app, ["report", str(root), "--out", str(out)]).exit_code == 0
    old = {p: (out / p).read_bytes() for p in tree(out) if (out / p).is_file()}
    assert "report.md" in old and "accuracy_probe.png" in old
    before = tree(tmp_path)
    _interrupt_token_views(monkeypatch)
    result = CliRunner().invoke(app, ["report", str(root), "--out", str(out)])
    assert result.exit_code != 0
    assert tree(tmp_path) == before
    assert {p: (out / p).read_bytes() for p in tree(out) if (out / p).is_file()} == old


def test_a_run_folder_that_cannot_take_its_card_is_refused_before_the_report(shap_runs, tmp_path, monkeypatch):
    import os

    root = _report_runs(Env(tmp_path, shap_runs))
    (root / "imbal" / "README.md").write_text("---\nlanguage: [de]\n---\n# card\n")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if Path(path) == root / "imbal"
                        and mode & os.W_OK else real_access(path, mode, *a, **k))
    before = tree(tmp_path)
    result = CliRunner().invoke(app, ["report", str(root), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 2
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert "cannot refresh the model card" in line and "--no-model-cards" in line
    assert tree(tmp_path) == before
    result = CliRunner().invoke(app, ["report", str(root), "--out", str(tmp_path / "rep"), "--no-model-cards"])
    assert result.exit_code == 0, result.output
    assert (root / "imbal" / "README.md").read_text().endswith("# card\n")


# ------------------------------------------------------------------ class 9: readers and the writer exclude each other


def test_a_finetune_is_refused_while_a_reader_holds_the_run(tmp_path):
    from langtrainer.errors import UserError
    from langtrainer.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    with run.read_lock(), RunDir(run.path).read_lock():  # readers share the folder
        with pytest.raises(UserError, match="in use by another langtrainer command"):
            with RunDir(run.path).claim():
                pass  # pragma: no cover
    with RunDir(run.path).claim():
        with pytest.raises(UserError, match="being written by another langtrainer command"):
            with run.read_lock():
                pass  # pragma: no cover
