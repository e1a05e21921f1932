"""CLI: `langtrainer probe`: language-identification probe of a run's latent space."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from langtrainer.cli.common import options, console, make_progress, setup_logging, user_errors


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def render_probe(report: dict) -> list[Table]:
    """Tables for one probe.json: headline + per-language recall, then layers and C sweep."""
    models = [report] + ([report["base"]] if report.get("base") else [])
    names = ["fine-tuned" if report.get("base") else "model", "base"]
    settings = report["settings"]
    title = (
        f"language identification on {report['data']} ({report['n_examples']} texts, "
        f"layer {report['layer']}, {report['feature']}, C={settings['C']:g}, {settings['folds']}-fold)"
    )
    main = Table(title=title)
    main.add_column("language")
    main.add_column("n", justify="right")
    for name in names[: len(models)]:
        main.add_column(f"recall {name}", justify="right")
    for lang in report["languages"]:
        row = [lang, str(report["n_per_language"][lang])]
        row += [f"{m['result']['recall_per_language'][lang]:.3f}" for m in models]
        main.add_row(*row)
    main.add_row(
        "accuracy",
        str(report["n_examples"]),
        *[_fmt(m["accuracy_mean"], m["accuracy_std"]) for m in models],
        style="bold",
    )
    main.add_row("chance", "", *[f"{m['result']['chance_accuracy']:.3f}" for m in models], style="dim")
    tables = [main]

    if report.get("layers"):
        layers = Table(title="accuracy by layer (0 = embeddings)")
        layers.add_column("layer", justify="right")
        for name in names[: len(models)]:
            layers.add_column(name, justify="right")
        for i, entry in enumerate(report["layers"]):
            layers.add_row(
                str(entry["layer"]), *[_fmt(m["layers"][i]["accuracy_mean"], m["layers"][i]["accuracy_std"]) for m in models]
            )
        tables.append(layers)

    if report.get("c_sweep"):
        sweep = Table(title=f"accuracy over C (layer {report['layer']}; the paper's code used C=1e-4)")
        sweep.add_column("C", justify="right")
        for name in names[: len(models)]:
            sweep.add_column(name, justify="right")
        for i, entry in enumerate(report["c_sweep"]):
            sweep.add_row(
                f"{entry['C']:g}", *[_fmt(m["c_sweep"][i]["accuracy_mean"], m["c_sweep"][i]["accuracy_std"]) for m in models]
            )
        tables.append(sweep)
    return tables


def plot_layers(report: dict, out_png: Path) -> Path:
    """Accuracy-by-layer curve (mean ± std over folds) as a PNG, written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from langtrainer.atomic import write_bytes

    fig, ax = plt.subplots(figsize=(6, 4))
    curves = [("fine-tuned" if report.get("base") else report["model"], report)]
    if report.get("base"):
        curves.append((f"base ({report['base']['model']})", report["base"]))
    for label, block in curves:
        xs = [e["layer"] for e in block["layers"]]
        ys = [e["accuracy_mean"] for e in block["layers"]]
        errs = [e["accuracy_std"] for e in block["layers"]]
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)
    chance = report["result"]["chance_accuracy"]
    ax.axhline(chance, color="grey", linestyle=":", label=f"chance ({chance:.2f})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel(f"LID accuracy ({report['settings']['folds']}-fold)")
    ax.set_title(f"language identification by layer: {report['data']}, C={report['settings']['C']:g}")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return write_bytes(out_png, buffer.getvalue())


def _data_label(data: str) -> str:
    return data if data in ("test", "external") else Path(data).stem


def probe_command(
    ckpt: str = typer.Option(..., "--ckpt", help="Run directory (or any HF model folder / builtin:NAME)."),
    data: str = typer.Option("test", "--data", help="test (the run's test split) | external (Debian Reference) | PATH (jsonl/csv/parquet with text, language)."),
    layer: str = typer.Option("-1", "--layer", help="Hidden-state index (-1 = last, 0 = embeddings) or 'all' for the layer curve."),
    feature: str = typer.Option("first-token", "--feature", help="first-token | mean | pooler."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds."),
    per_language: int = typer.Option(1000, "--per-language", help="At most this many texts per language (sampled with --seed)."),
    C: float = typer.Option(1e-4, "--C", help="Inverse regularisation strength; 1e-4 is what the paper's code used."),
    c_sweep: bool = typer.Option(False, "--c-sweep", help="Also report accuracy for C in 1e-4 .. 10."),
    standardize: bool = typer.Option(False, "--standardize", help="Standardise features before the regression (not in the paper)."),
    compare_base: Optional[str] = typer.Option(None, "--compare-base", help="Base model probed the same way, e.g. builtin:multilingual-e5-small."),
    languages: Optional[str] = typer.Option(None, "--languages", help="Comma-separated ISO codes to keep (default: the fine-tuning languages)."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling and fold shuffling."),
    batch_size: int = typer.Option(64, "--batch-size", help="Texts per forward pass."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output JSON (default CKPT/probe_<data>.json)."),
) -> None:
    """Language-identification probe of the latent space (paper Section 2.2, Tables 4 and 7)."""
    _probe(ckpt, data, layer, feature, folds, per_language, C, c_sweep, standardize, compare_base,
           languages, seed, batch_size, out, options.quiet, options.verbose)


@user_errors
def _probe(ckpt, data, layer, feature, folds, per_language, C, c_sweep, standardize, compare_base,
           languages, seed, batch_size, out, quiet, verbose):
    from langtrainer.atomic import write_json
    from langtrainer.errors import UserError
    from langtrainer.analysis.probe import DEFAULT_C_SWEEP, check_probe_options, run_probe
    from langtrainer.preflight import check_output_file

    setup_logging(verbose)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the rich bar below is the progress display
    if not verbose:  # load reports (e.g. a base model's unused pooler) are noise here
        hf_logging.set_verbosity_error()
    if layer != "all":
        try:
            layer = int(layer)
        except ValueError:
            raise UserError(f"--layer must be an integer or 'all', got {layer!r}") from None
    check_probe_options(C=C, folds=folds, per_language=per_language, batch_size=batch_size, seed=seed, ckpt=ckpt)
    if out is None:
        ckpt_dir = Path(ckpt)
        if not ckpt_dir.is_dir():
            raise UserError(f"--ckpt {ckpt} is not a local folder: give --out FILE")
        out = ckpt_dir / f"probe_{_data_label(data)}.json"
    out = check_output_file(out, "--out")
    if layer == "all":
        check_output_file(out.with_suffix(".png"), "--out (its .png)")
    language_list = [x.strip() for x in languages.split(",") if x.strip()] if languages else None

    with make_progress(quiet) as progress:
        task = progress.add_task("embedding texts", total=None, rate="")

        def report_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = run_probe(
            ckpt,
            data=data,
            layer=layer,
            feature=feature,
            folds=folds,
            per_language=per_language,
            C=C,
            languages=language_list,
            compare_base=compare_base,
            seed=seed,
            progress=report_progress,
            c_sweep=DEFAULT_C_SWEEP if c_sweep else None,
            standardize=standardize,
            batch_size=batch_size,
        )
    write_json(out, report)
    for table in render_probe(report):
        console.print(table)
    console.print(f"wrote [bold]{out}[/]")
    if report.get("layers"):
        png = plot_layers(report, out.with_suffix(".png"))
        console.print(f"wrote [bold]{png}[/]")


def register(app: typer.Typer) -> None:
    app.command("probe")(probe_command)
