"""CLI: `langtrainer data build` (the recipe's splits), `data plan` (what fits) and `data audit` (skew)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from langtrainer.cli.common import (GROUP_COLUMN, ID_COLUMN, LABEL_COLUMN, LANGUAGE_COLUMN, TEXT_COLUMN, column_mapping,
                                   console, err_console, make_progress, one_line, options, user_errors)

data_app = typer.Typer(
    help="Build balanced/imbalanced subsets of a multilingual dataset and audit language-label skew.",
    no_args_is_help=True,
)

SET_HELP_TEXT = "Override a recipe field, e.g. --set data.train_per_language=120 (repeatable)."


# ------------------------------------------------------------------ rendering

def render_counts(report: dict, split: str) -> Table:
    """One split's language x label counts with totals."""
    counts = report["counts"][split]
    labels = report["labels"]
    table = Table(title=f"{split} ({report['totals'][split]} examples)")
    table.add_column("language")
    for name in labels:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right", style="bold")
    column_totals = [0] * len(labels)
    for lang, row in counts.items():
        values = [row[name] for name in labels]
        column_totals = [a + b for a, b in zip(column_totals, values)]
        table.add_row(lang, *map(str, values), str(sum(values)))
    table.add_row("total", *map(str, column_totals), str(sum(column_totals)), style="bold")
    return table


def render_audit(result, title: str) -> list:
    """Contingency table (counts and row %), eq. 2 weights, statistics and verdict."""
    table = Table(title=f"{title}: language x label ({result.n} examples)")
    table.add_column("language")
    for name in result.label_names:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right", style="bold")
    for i, lang in enumerate(result.languages):
        cells = [f"{result.counts[i, j]} ({result.row_percent[i, j]:.1f}%)" for j in range(len(result.label_names))]
        table.add_row(lang, *cells, str(int(result.counts[i].sum())))
    totals = result.counts.sum(axis=0)
    table.add_row("total", *[str(int(v)) for v in totals], str(result.n), style="bold")

    weights = Table(title="per-language class weights w_{c,l} = n_l / (C * n_{c,l}) (eq. 2)")
    weights.add_column("language")
    for name in result.label_names:
        weights.add_column(name, justify="right")
    for i, lang in enumerate(result.languages):
        weights.add_row(lang, *[f"{w:.3f}" for w in result.weights[i]])

    stats = (
        f"chi-square {result.chi2:.2f} (dof {result.dof}), p = {result.p_value:.3g}; "
        f"Cramér's V {result.cramers_v:.3f}; NMI(language, label) {result.nmi:.4f}"
    )
    colour = {"strong": "red", "moderate": "yellow", "weak": "yellow"}.get(result.strength, "green")
    return [table, weights, stats, f"[bold {colour}]verdict:[/] {result.verdict}",
            *render_small_samples(result.small_samples)]


def render_small_samples(lines: list[str]) -> list[str]:
    """data.small_samples' warnings, one line each, under a heading (nothing when there are none)."""
    if not lines:
        return []
    return ["[bold yellow]small samples[/] (each limits the per-language numbers it names):",
            *[f"  [yellow]![/] {escape(line)}" for line in lines]]


def stepper(progress, description: str):
    """A library `progress(done, total)` callback; the bar appears at the first step (none for quick reads)."""
    task = None

    def step(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            task = progress.add_task(description, total=total, rate="")
        progress.update(task, completed=done, total=total)

    return step


def column_overrides(columns: dict[str, str]) -> list[str]:
    """The column flags as recipe --set items."""
    return [f"data.columns.{key}={value}" for key, value in columns.items()]


# ------------------------------------------------------------------ build

@data_app.command("build")
@user_errors
def build_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file (its data: and imbalance: blocks)."),
    out: Path = typer.Option(..., "--out", "-o",
                             help="Folder for the DatasetDict (save_to_disk) and distribution.json."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP_TEXT),
    text_column: Optional[str] = TEXT_COLUMN,
    label_column: Optional[str] = LABEL_COLUMN,
    language_column: Optional[str] = LANGUAGE_COLUMN,
    group_column: Optional[str] = GROUP_COLUMN,
    id_column: Optional[str] = ID_COLUMN,
) -> None:
    """Build the recipe's splits: the data as it is (imbalance.subset none) or the balanced/imbalanced subsets."""
    import datasets

    from langtrainer.data.sampling import build_from_recipe
    from langtrainer.recipe import load_recipe
    from langtrainer.preflight import check_output_folder
    from langtrainer.rundir.subsets import check_subsets_target, write_subsets

    columns = column_mapping(text=text_column, label=label_column, language=language_column, group=group_column,
                             id=id_column)
    loaded = load_recipe(recipe, [*(set_ or []), *column_overrides(columns)])
    out = check_output_folder(out, "out")  # ~ expanded, $NAME refused, a writable place
    check_subsets_target(out)
    with make_progress(options.quiet) as progress:
        subsets, report = build_from_recipe(loaded, progress=stepper(progress, "building subsets"))
    datasets.disable_progress_bars()  # ours is the progress display
    write_subsets(subsets, report, out)
    if not options.quiet:
        for split in report["counts"]:
            console.print(render_counts(report, split))
    overlap = ", ".join(f"{pool} {100 * value:.1f}%" for pool, value in report["overlap"].items())
    dropped = sum(report["dropped_rows"]["empty_text"].values())
    unlabeled = sum(report["dropped_rows"]["missing_label"].values())
    console.print(
        f"wrote [bold]{out}[/] ({', '.join(f'{s} {n}' for s, n in report['totals'].items())})"
        + (f"; balanced/imbalanced overlap: {overlap}" if overlap else "")
        + f"; dropped {dropped} rows with empty text"
        + (f" and {unlabeled} without a label" if unlabeled else "")
    )


# ------------------------------------------------------------------ plan

def render_plan(plan) -> list:
    """Per split: available (and needed) per language x label, short cells in red; then the largest sizes."""
    out = []
    for split, available in plan.available.items():
        needed = plan.needed.get(split)
        title = f"{split}: available" + (" / needed" if needed is not None else "")
        table = Table(title=title)
        table.add_column("language")
        for name in plan.label_names:
            table.add_column(name, justify="right")
        for i, lang in enumerate(plan.languages):
            cells = []
            for j in range(len(plan.label_names)):
                have = int(available[i, j])
                if needed is None:
                    cells.append(str(have))
                else:
                    need = int(needed[i, j])
                    cells.append(f"[red]{have} / {need}[/]" if need > have else f"{have} / {need}")
            table.add_row(lang, *cells)
        out.append(table)
    if plan.as_is:
        out.append("as-is (imbalance.subset none): every row of every split is used")
        return out
    fields = [f"data.{name}={plan.largest[name]} (recipe {plan.sizes[name]})" for name in plan.largest]
    short = plan.shortages()
    colour = "red" if short else "green"
    verdict = f"{len(short)} short cell(s)" if short else "every cell can be filled"
    out.append(f"[bold {colour}]{verdict}[/]; largest feasible: " + ", ".join(fields))
    return out


@data_app.command("plan")
@user_errors
def plan_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file (its data: and imbalance: blocks)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP_TEXT),
    subset: Optional[str] = typer.Option(
        None, "--subset", help="balanced | imbalanced | none: plan for this imbalance.subset instead of the recipe's."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the plan to this JSON file."),
    text_column: Optional[str] = TEXT_COLUMN,
    label_column: Optional[str] = LABEL_COLUMN,
    language_column: Optional[str] = LANGUAGE_COLUMN,
    group_column: Optional[str] = GROUP_COLUMN,
    id_column: Optional[str] = ID_COLUMN,
) -> None:
    """Counts per (split, language, label) against what the recipe's subsets need, and the largest sizes that fit.

    Exit 2 when a cell is short (the error line first, then the table), 0 when every cell can be filled."""
    from rich.markup import escape

    from langtrainer import atomic
    from langtrainer.data.sampling import plan_from_recipe
    from langtrainer.data.small_samples import plan_small_samples
    from langtrainer.errors import UserError
    from langtrainer.recipe import load_recipe

    if subset is not None and subset not in ("balanced", "imbalanced", "none"):
        raise UserError(f"--subset must be balanced, imbalanced or none, got {subset!r}")
    columns = column_mapping(text=text_column, label=label_column, language=language_column, group=group_column,
                             id=id_column)
    extra = [f"imbalance.subset={subset}"] if subset else []
    plan = plan_from_recipe(load_recipe(recipe, [*(set_ or []), *column_overrides(columns), *extra]))
    short = plan.error()
    if short is not None:  # the design does not fit: one line on stderr, the table below it, exit 2
        err_console.print(f"[bold red]error:[/] {escape(one_line(str(short)))}", highlight=False, soft_wrap=True)
    small = plan_small_samples(plan)
    for item in [*render_plan(plan), *render_small_samples(small)]:
        console.print(item)
    if json_out is not None:
        atomic.write_json(json_out.expanduser(), {**plan.to_dict(), "small_samples": small})
        console.print(f"wrote [bold]{json_out}[/]")
    if short is not None:
        raise typer.Exit(code=2)


# ------------------------------------------------------------------ audit

@data_app.command("audit")
@user_errors
def audit_command(
    target: Path = typer.Argument(
        ..., help="A recipe (.yaml), a jsonl/json/csv/parquet file, a folder of split files, "
                  "a save_to_disk dataset or a Hub-shaped folder."),
    split: Optional[str] = typer.Option(None, "--split", help="Audit only this split."),
    config: Optional[str] = typer.Option(None, "--config", help="Dataset config of a Hub-shaped folder."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the numbers to this JSON file."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP_TEXT + " Recipes only."),
    text_column: Optional[str] = TEXT_COLUMN,
    label_column: Optional[str] = LABEL_COLUMN,
    language_column: Optional[str] = LANGUAGE_COLUMN,
    group_column: Optional[str] = GROUP_COLUMN,
    id_column: Optional[str] = ID_COLUMN,
) -> None:
    """Measure how much the language predicts the label (chi-square, Cramér's V, NMI, eq. 2 weights)."""
    from langtrainer import atomic
    from langtrainer.data.audit import audit_target
    from langtrainer.preflight import check_output_file

    columns = column_mapping(text=text_column, label=label_column, language=language_column, group=group_column,
                             id=id_column)
    if json_out is not None:
        check_output_file(json_out, "json_out")
    with make_progress(options.quiet) as progress:
        audited = audit_target(target.expanduser(), split, columns, set_ or [], config,
                               progress=stepper(progress, "building subsets"))
    results = {}
    for name, result in audited:
        results[name] = result.to_dict()
        for item in render_audit(result, name):
            console.print(item)
        console.print()
    if json_out is not None:
        atomic.write_json(json_out.expanduser(), results)
        console.print(f"wrote [bold]{json_out}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
