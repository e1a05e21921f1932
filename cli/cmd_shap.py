"""CLI: `langtrainer shap` (token SHAP values of a run) and `langtrainer shap-diff` (Figure 1)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from langtrainer.cli.common import (ID_COLUMN, LABEL_COLUMN, LANGUAGE_COLUMN, TEXT_COLUMN, column_mapping, console,
                                   make_progress, options, relaunch_args, user_errors)
from langtrainer.defaults import SHAP_THRESHOLD


@user_errors
def shap_command(
    ckpt: Path = typer.Option(..., "--ckpt", help="Run directory (an HF checkpoint with data/ and recipe.yaml)."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="A jsonl/json/csv/parquet file, a folder of split files or a save_to_disk dataset "
        "(default CKPT/data); without an id column the row number is the id."),
    split: Optional[str] = typer.Option(None, "--split", help="Split to explain (default: test)."),
    subsample: Optional[int] = typer.Option(
        None, "--subsample", help="Explain N examples, stratified by language and label (default: the recipe's "
        "analysis.shap.subsample, else every row)."),
    max_evals: Optional[int] = typer.Option(
        None, "--max-evals", help="Model evaluations per example (default: the recipe's, else shap's 500)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Masked rows per forward pass (speed only)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Subsample seed (default: the recipe's seed, else 0)."),
    shard_size: Optional[int] = typer.Option(None, "--shard-size", help="Examples per output shard (the unit of resumption)."),
    max_length: Optional[int] = typer.Option(
        None, "--max-length", help="Tokens the model sees (default: the recipe's model.max_length, as in training)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default CKPT/shap)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard results in --out made with other arguments."),
    num_processes: Optional[int] = typer.Option(
        None, "--num-processes", help="Split the examples over N processes (one per GPU) via accelerate launch."
    ),
    text_column: Optional[str] = TEXT_COLUMN,
    label_column: Optional[str] = LABEL_COLUMN,
    language_column: Optional[str] = LANGUAGE_COLUMN,
    id_column: Optional[str] = ID_COLUMN,
) -> None:
    """Token SHAP values (mask-token baseline, partition explainer) of a run's test set; resumable."""
    from langtrainer.analysis.shap import ShapOptions, load_shap_result, run_shap
    from langtrainer.training import distributed as launch

    columns = column_mapping(text=text_column, label=label_column, language=language_column, id=id_column)
    settings = ShapOptions(split=split, subsample=subsample, max_evals=max_evals, batch_size=batch_size, seed=seed,
                           shard_size=shard_size, max_length=max_length, overwrite=overwrite)
    if launch.needs_launch(num_processes, None):
        args = relaunch_args()
        raise typer.Exit(code=launch.relaunch(args, num_processes, None))
    quiet = options.quiet or not launch.is_main_process()
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

        folder = run_shap(ckpt, settings, data=data, out=out, progress=report, columns=columns)
    if not launch.is_main_process():
        return
    console.print(render_shap_summary(load_shap_result(folder)))
    console.print(f"wrote [bold]{folder}[/] in {time.perf_counter() - start:.1f} s")


def render_shap_summary(result) -> Table:
    """Per language: examples, mean tokens and mean |SHAP| of a SHAP result."""
    from langtrainer.analysis.shap import language_summary

    arguments = result.manifest.arguments if result.manifest else {}
    table = Table(title=f"SHAP values: {len(result)} examples, {result.n_classes} classes, "
                        f"max_evals {arguments['max_evals']}, max_length {arguments['max_length']}")
    for column in ("language", "examples", "tokens (mean)", "mean |SHAP|"):
        table.add_column(column, justify="left" if column == "language" else "right")
    for row in language_summary(result).itertuples(index=False):
        table.add_row(row.language, str(row.examples), f"{row.mean_tokens:.1f}", f"{row.mean_abs_shap:.3g}")
    return table


@user_errors
def shap_diff_command(
    bal: Path = typer.Option(..., "--bal", help="SHAP output of the balanced model (shap dir or run dir with shap/)."),
    imbal: Path = typer.Option(..., "--imbal", help="SHAP output of the compared model (shap dir or run dir with shap/)."),
    threshold: float = typer.Option(SHAP_THRESHOLD, "--threshold", help="|S_bal| <= threshold is neutral (paper: 0.01)."),
    groups: Optional[List[str]] = typer.Option(None, "--groups", help="Language group, e.g. A=fr,es,ja (repeatable; default: the run's recipe imbalance.groups)."),
    averaging: str = typer.Option("masked", "--averaging", help="masked: an example counts in a category's mean only if it has a token there (the released code); zero: it counts as 0."),
    special_tokens: bool = typer.Option(True, "--special-tokens/--no-special-tokens", help="Count [CLS]/[SEP] (always kept by the masker, values ~0) in the categories and the token split, as the released code does; --no-special-tokens leaves them out (a deviation from the paper's figures: docs/fidelity.md)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: the imbalanced run dir, else its shap folder)."),
) -> None:
    """Cumulative difference in SHAP values by token category and language (paper Figure 1)."""
    from langtrainer.pipelines.shap import run_shap_diff

    result, paths = run_shap_diff(bal, imbal, threshold=threshold, group_options=groups or [], out=out,
                                  averaging=averaging, special_tokens=special_tokens)
    if not options.quiet:
        for table in render_shap_diff(result):
            console.print(table)
    for path in paths.values():
        console.print(f"wrote [bold]{path}[/]")


def render_shap_diff(result) -> list[Table]:
    from langtrainer.analysis.shap_diff import CATEGORY_NOTE

    tables = []
    frame = result.by_group if len(result.by_group) else result.by_language
    key = "group" if len(result.by_group) else "language"
    columns = {"negative": "neg. tokens", "neutral": "neutral tokens", "positive": "pos. tokens", "base": "base value"}
    for c, name in enumerate(result.label_names):
        table = Table(title=f"label {name}: mean cumulative SHAP difference ({result.comparison}) by {key}",
                      caption=f"{CATEGORY_NOTE}; mean (n examples), {result.averaging} averaging")
        table.add_column(key)
        for header in columns.values():
            table.add_column(header, justify="right")
        panel = frame[frame["class"] == c]
        for value, rows in panel.groupby(key, sort=False):
            cells = rows.set_index("category")
            table.add_row(str(value), *[_cell(cells, category) for category in columns])
        tables.append(table)
    where = "" if result.special_tokens else ", special tokens left out"
    split = Table(title=f"token split of the balanced model's values (Annex A.4: ~20/60/20 at 0.01{where})")
    split.add_column("threshold", justify="right")
    for category in ("negative", "neutral", "positive"):
        split.add_column(category, justify="right")
    for threshold, shares in result.token_split.items():
        split.add_row(f"{threshold:g}", *[f"{shares[c]:.1%}" for c in ("negative", "neutral", "positive")])
    tables.append(split)
    return tables


def _cell(cells, category: str) -> str:
    if category not in cells.index or int(cells.at[category, "n"]) == 0:
        return "–"
    return f"{cells.at[category, 'mean']:+.4f} ({int(cells.at[category, 'n'])})"


def register(app: typer.Typer) -> None:
    app.command("shap")(shap_command)
    app.command("shap-diff")(shap_diff_command)
