"""CLI: `langtrainer data build` (balanced/imbalanced subsets) and `langtrainer data audit` (skew)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from langtrainer.cli.common import options, console, make_progress, setup_logging, user_errors

data_app = typer.Typer(
    help="Build balanced/imbalanced subsets of a multilingual dataset and audit language-label skew.",
    no_args_is_help=True,
)

SET_HELP_TEXT = "Override a recipe field, e.g. --set data.train_per_language=120 (repeatable)."
RECIPE_SUFFIXES = (".yaml", ".yml")


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
    return [table, weights, stats, f"[bold {colour}]verdict:[/] {result.verdict}"]


# ------------------------------------------------------------------ build

@data_app.command("build")
def build_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file (its data: and imbalance: blocks)."),
    out: Path = typer.Option(..., "--out", "-o",
                             help="Folder for the DatasetDict (save_to_disk) and distribution.json."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP_TEXT),
) -> None:
    """Build train/validation balanced and imbalanced subsets and a balanced test set."""
    _build(recipe, out, set_ or [], options.quiet, options.verbose)


@user_errors
def _build(recipe_path: Path, out: Path, overrides: list[str], quiet: bool, verbose: bool) -> None:
    from langtrainer import atomic
    from langtrainer.recipe import load_recipe

    setup_logging(verbose)
    recipe = load_recipe(recipe_path, overrides)
    out = out.expanduser()
    check_build_output(out)
    subsets, report = _build_with_progress(recipe, quiet)
    import datasets

    datasets.disable_progress_bars()  # ours is the progress display
    with atomic.atomic_dir(out) as tmp:
        subsets.save_to_disk(str(tmp))
        atomic.write_json(tmp / "distribution.json", report)
    if not quiet:
        for split in report["counts"]:
            console.print(render_counts(report, split))
    overlap = ", ".join(f"{pool} {100 * value:.1f}%" for pool, value in report["overlap"].items())
    dropped = sum(report["dropped_rows"]["empty_text"].values())
    console.print(
        f"wrote [bold]{out}[/] ({', '.join(f'{s} {n}' for s, n in report['totals'].items())}); "
        f"balanced/imbalanced overlap: {overlap}; dropped {dropped} rows with empty text"
    )


def check_build_output(out: Path) -> None:
    """`--out` is replaced whole: refuse a file, or a folder that is not an earlier `data build` output."""
    from langtrainer.errors import UserError

    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' is a file: give a new folder (or an earlier data build output)")
    if out.is_dir() and any(out.iterdir()):
        if not ((out / "dataset_dict.json").is_file() and (out / "distribution.json").is_file()):
            raise UserError(
                f"--out '{out}' exists and is not a data build output; it would be replaced: "
                "give a new folder (or delete it)"
            )


def _build_with_progress(recipe, quiet: bool):
    from langtrainer.data.sampling import build_from_recipe

    with make_progress(quiet) as progress:
        task = progress.add_task("building subsets", total=None, rate="")

        def step(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return build_from_recipe(recipe, progress=step)


# ------------------------------------------------------------------ audit

@data_app.command("audit")
def audit_command(
    target: Path = typer.Argument(
        ..., help="A recipe (.yaml), a save_to_disk DatasetDict folder, or a jsonl/csv/parquet file."),
    split: Optional[str] = typer.Option(None, "--split", help="Audit only this split."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the numbers to this JSON file."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP_TEXT + " Recipes only."),
) -> None:
    """Measure how much the language predicts the label (chi-square, Cramér's V, NMI, eq. 2 weights)."""
    _audit(target, split, json_out, set_ or [], options.quiet, options.verbose)


def _tables_to_audit(target: Path, split: str | None, overrides: list[str], quiet: bool):
    """[(name, data, label_names)] for a recipe, a saved dataset or a local file."""
    from langtrainer.errors import UserError

    if target.suffix.lower() in RECIPE_SUFFIXES:
        from langtrainer.recipe import load_recipe

        subsets, report = _build_with_progress(load_recipe(target, overrides), quiet)
        names = [split] if split else ["train_balanced", "train_imbalanced"]
        return [(name, _pick(subsets, name), report["labels"]) for name in names]
    if not target.exists():
        raise UserError(f"'{target}' does not exist")
    if target.is_dir():
        import datasets

        if not ((target / "dataset_dict.json").is_file() or (target / "state.json").is_file()):
            raise UserError(f"'{target}' is not a saved dataset (no dataset_dict.json or state.json)")
        loaded = datasets.load_from_disk(str(target))
        if isinstance(loaded, datasets.Dataset):
            loaded = datasets.DatasetDict({"data": loaded})
        names = [split] if split else list(loaded)
        out = []
        for name in names:
            ds = _pick(loaded, name)
            label_names = getattr(ds.features.get("label"), "names", None)
            out.append((name, ds, label_names))
        return out
    from langtrainer.data.sources import read_table

    table = read_table(target)
    if "split" in table.columns:
        names = [split] if split else sorted(table["split"].astype(str).unique())
        for name in names:
            if not (table["split"].astype(str) == name).any():
                raise UserError(f"no rows with split '{name}' in '{target}'")
        return [(name, table[table["split"].astype(str) == name], None) for name in names]
    if split:
        raise UserError(f"'{target}' has no split column; drop --split")
    return [(target.name, table, None)]


def _pick(dataset_dict, name: str):
    from langtrainer.errors import UserError

    if name not in dataset_dict:
        raise UserError(f"no split '{name}' (splits: {', '.join(dataset_dict)})")
    return dataset_dict[name]


@user_errors
def _audit(target: Path, split: str | None, json_out: Path | None, overrides: list[str], quiet: bool,
           verbose: bool) -> None:
    from langtrainer import atomic
    from langtrainer.data.audit import audit

    setup_logging(verbose)
    results = {}
    for name, data, label_names in _tables_to_audit(target.expanduser(), split, overrides, quiet):
        result = audit(data, label_names)
        results[name] = result.to_dict()
        for item in render_audit(result, name):
            console.print(item)
        console.print()
    if json_out is not None:
        atomic.write_json(json_out.expanduser(), results)
        console.print(f"wrote [bold]{json_out}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
