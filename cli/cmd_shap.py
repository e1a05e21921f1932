"""CLI: `langtrainer shap` (token SHAP values of a run) and `langtrainer shap-diff` (Figure 1)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from langtrainer.cli.common import options, console, make_progress, setup_logging, user_errors


def shap_command(
    ckpt: Path = typer.Option(..., "--ckpt", help="Run directory (an HF checkpoint with data/ and recipe.yaml)."),
    data: Optional[Path] = typer.Option(None, "--data", help="A save_to_disk dataset (default CKPT/data)."),
    split: str = typer.Option("test", "--split", help="Split of a DatasetDict to explain."),
    subsample: Optional[int] = typer.Option(None, "--subsample", help="Explain N examples, stratified by language and label (seeded)."),
    max_evals: int = typer.Option(500, "--max-evals", help="Model evaluations per example (shap's max_evals)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Masked rows per forward pass (speed only)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Subsample seed (default: the recipe's seed, else 0)."),
    shard_size: int = typer.Option(16, "--shard-size", help="Examples per output shard (the unit of resumption)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default CKPT/shap)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard results in --out made with other arguments."),
    num_processes: Optional[int] = typer.Option(
        None, "--num-processes", help="Split the examples over N processes (one per GPU) via accelerate launch."
    ),
) -> None:
    """Token SHAP values (mask-token baseline, partition explainer) of a run's test set; resumable."""
    _shap(ckpt, data, split, subsample, max_evals, batch_size, seed, shard_size, out, overwrite, options.quiet,
          options.verbose, num_processes)


@user_errors
def _shap(ckpt, data, split, subsample, max_evals, batch_size, seed, shard_size, out, overwrite, quiet, verbose,
          num_processes=None):
    from langtrainer.training import distributed as launch

    if launch.needs_launch(num_processes, None):
        args = ["shap", "--ckpt", str(ckpt), "--split", split, "--max-evals", str(max_evals),
                "--batch-size", str(batch_size), "--shard-size", str(shard_size)]
        for flag, value in (("--data", data), ("--subsample", subsample), ("--seed", seed), ("--out", out)):
            if value is not None:
                args += [flag, str(value)]
        args += [flag for flag, on in (("--overwrite", overwrite), ("--quiet", quiet), ("--verbose", verbose)) if on]
        raise typer.Exit(code=launch.relaunch(args, num_processes, None))
    quiet = quiet or not launch.is_main_process()
    from transformers.utils import logging as hf_logging

    from langtrainer.analysis.attribution import load_shap_result, run_shap

    setup_logging(verbose)
    hf_logging.disable_progress_bar()
    if not verbose:
        hf_logging.set_verbosity_error()
    start = time.perf_counter()
    with make_progress(quiet) as progress:
        task = progress.add_task("explaining", total=None, rate="")
        first: dict[str, float] = {}

        def report(done: int, total: int) -> None:
            now = time.perf_counter()
            first.setdefault("time", now)
            first.setdefault("done", done)
            elapsed = now - first["time"]
            rate = f"{(done - first['done']) / elapsed:.2f} ex/s" if elapsed > 0 and done > first["done"] else ""
            progress.update(task, completed=done, total=total, rate=rate)

        folder = run_shap(
            ckpt,
            data=data,
            split=split,
            subsample=subsample,
            max_evals=max_evals,
            batch_size=batch_size,
            out=out,
            seed=seed,
            shard_size=shard_size,
            overwrite=overwrite,
            progress=report,
        )
    if not launch.is_main_process():
        return
    result = load_shap_result(folder)
    frame = result.examples
    table = Table(title=f"SHAP values: {len(frame)} examples, {result.n_classes} classes, max_evals {max_evals}")
    table.add_column("language")
    table.add_column("examples", justify="right")
    table.add_column("tokens (mean)", justify="right")
    table.add_column("mean |SHAP|", justify="right")
    for language, rows in frame.groupby("language"):
        n_tokens = [len(t) for t in rows["token_ids"]]
        mean_abs = sum(float(abs(v).sum()) for v in rows["values"]) / max(sum(v.size for v in rows["values"]), 1)
        table.add_row(str(language), str(len(rows)), f"{sum(n_tokens) / len(n_tokens):.1f}", f"{mean_abs:.3g}")
    console.print(table)
    console.print(f"wrote [bold]{folder}[/] in {time.perf_counter() - start:.1f} s")


def shap_diff_command(
    bal: Path = typer.Option(..., "--bal", help="SHAP output of the balanced model (shap dir or run dir with shap/)."),
    imbal: Path = typer.Option(..., "--imbal", help="SHAP output of the compared model (shap dir or run dir with shap/)."),
    threshold: float = typer.Option(0.01, "--threshold", help="|S_bal| <= threshold is neutral (paper: 0.01)."),
    groups: Optional[List[str]] = typer.Option(None, "--groups", help="Language group, e.g. A=fr,es,ja (repeatable; default: the run's recipe imbalance.groups)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: the imbalanced run dir, else its shap folder)."),
) -> None:
    """Cumulative difference in SHAP values by token category and language (paper Figure 1)."""
    _shap_diff(bal, imbal, threshold, groups or [], out, options.quiet, options.verbose)


@user_errors
def _shap_diff(bal, imbal, threshold, groups, out, quiet, verbose):
    from langtrainer.analysis.shap_diff import (
        compute_shap_diff,
        groups_from_run,
        parse_group_options,
        resolve_inputs,
        write_shap_diff,
    )

    setup_logging(verbose)
    bal_dir, imbal_dir = resolve_inputs(bal, imbal)
    group_map = parse_group_options(groups) or groups_from_run(imbal_dir) or groups_from_run(bal_dir)
    result = compute_shap_diff(bal_dir, imbal_dir, threshold=threshold, groups=group_map)
    if out is None:
        out = imbal_dir.parent if imbal_dir.name == "shap" and (imbal_dir.parent / "config.json").is_file() else imbal_dir
    paths = write_shap_diff(result, out)
    if not quiet:
        for table in render_shap_diff(result):
            console.print(table)
    for path in paths.values():
        console.print(f"wrote [bold]{path}[/]")


def render_shap_diff(result) -> list[Table]:
    tables = []
    frame = result.by_group if len(result.by_group) else result.by_language
    key = "group" if len(result.by_group) else "language"
    for c, name in enumerate(result.label_names):
        table = Table(title=f"label {name}: mean cumulative SHAP difference (imbalanced − balanced) by {key}")
        table.add_column(key)
        for category in ("negative", "neutral", "positive", "base"):
            table.add_column(category, justify="right")
        panel = frame[frame["class"] == c]
        for value, rows in panel.groupby(key, sort=False):
            cells = rows.set_index("category")["mean"]
            table.add_row(str(value), *[f"{cells.get(cat, float('nan')):+.4f}" for cat in ("negative", "neutral", "positive", "base")])
        tables.append(table)
    split = Table(title="token split of the balanced model's values (Annex A.4: ~20/60/20 at 0.01)")
    split.add_column("threshold", justify="right")
    for category in ("negative", "neutral", "positive"):
        split.add_column(category, justify="right")
    for threshold, shares in result.token_split.items():
        split.add_row(f"{threshold:g}", *[f"{shares[c]:.1%}" for c in ("negative", "neutral", "positive")])
    tables.append(split)
    return tables


def register(app: typer.Typer) -> None:
    app.command("shap")(shap_command)
    app.command("shap-diff")(shap_diff_command)
