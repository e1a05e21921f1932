"""CLI: `langtrainer probe`: language-identification probe of a run's latent space."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from langtrainer.cli.common import options, console, make_progress, user_errors


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def render_probe(report: dict) -> list[Table]:
    """Tables for one probe.json: headline + per-language recall, then layers and C sweep."""
    from langtrainer.analysis.probe.core import at_chance

    models = [report] + ([report["base"]] if report.get("base") else [])
    names = ["fine-tuned" if report.get("base") else "model", "base"]
    settings = report["settings"]
    title = (
        f"language identification on {report['data']} ({report['n_examples']} texts, "
        f"layer {report['layer']}, {report['feature']}, C={settings['C']:g}, {settings['folds']}-fold)"
    )
    from_recipe = [name for name, source in (report.get("sources") or {}).items() if source == "recipe"]
    main = Table(title=title, caption=f"from the run's recipe: {', '.join(from_recipe)}" if from_recipe else None)
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
    flags = [at_chance(m["accuracy_mean"], m["accuracy_std"], m["result"]["chance_accuracy"]) for m in models]
    if any(flags):
        # The base model (pretrained) holds its languages apart: at chance, the probe is blind at this C.
        blind = flags[-1] if report.get("base") else None
        note = ("the base model's probe is at chance: this C is too strong for this many texts, so the probe "
                "measures nothing (try --c-sweep)" if blind else
                "at chance: at this C the model's first token shows no language the probe can use (a base model "
                "at chance too would mean the probe is blind here; --compare-base and --c-sweep tell)"
                if blind is None else
                "the fine-tuned model's probe is at chance: its first token shows no language the probe can use "
                "at this C, while the base model's does")
        main.caption = ((main.caption + "; ") if main.caption else "") + note
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


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the rich bar is the progress display
    if not options.verbose:  # load reports (e.g. a base model's unused pooler) are noise here
        hf_logging.set_verbosity_error()


@user_errors
def probe_command(
    ckpt: str = typer.Option(..., "--ckpt", help="Run directory (or any HF model folder / builtin:NAME)."),
    data: Optional[str] = typer.Option(
        None, "--data", help="test (the run's test split; default) | external (the recipe's analysis.probe.external "
        "corpus, else the builtin Debian Reference) | PATH (jsonl/json/csv/parquet, split folder or save_to_disk "
        "folder with text and language columns)."),
    external: Optional[str] = typer.Option(
        None, "--external", help="Corpus behind --data external: a Hub id or Hub-shaped folder (with the recipe's "
        "or --external-configs' per-language configs), a file or folder, or builtin:debian-reference."),
    external_configs: Optional[str] = typer.Option(
        None, "--external-configs", help="Per-language configs of --external, a template such as 20231101.{lang}."),
    layer: Optional[str] = typer.Option(None, "--layer", help="Hidden-state index (-1 = last, 0 = embeddings) or 'all' for the layer curve (default: the recipe's analysis.probe.layer, else -1)."),
    feature: Optional[str] = typer.Option(None, "--feature", help="first-token | mean | pooler (default: the recipe's, else first-token)."),
    folds: Optional[int] = typer.Option(None, "--folds", help="Cross-validation folds (default: the recipe's, else 5)."),
    per_language: Optional[int] = typer.Option(None, "--per-language", help="At most this many texts per language, sampled with --seed (default: the whole test split, as in the paper; for an external corpus or a file the recipe's analysis.probe.per_language, else 1000)."),
    C: Optional[float] = typer.Option(None, "--C", help="Inverse regularisation strength (default: the recipe's, else 1e-4, what the paper's code used)."),
    c_sweep: bool = typer.Option(False, "--c-sweep", help="Also report accuracy for C in 1e-4 .. 10."),
    standardize: bool = typer.Option(False, "--standardize", help="Standardise features before the regression (not in the paper)."),
    compare_base: Optional[str] = typer.Option(None, "--compare-base", help="Base model probed the same way, e.g. builtin:multilingual-e5-small."),
    languages: Optional[str] = typer.Option(None, "--languages", help="Comma-separated ISO codes to keep (default: the fine-tuning languages)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling and fold shuffling (default 0)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Tokens per text (default: the recipe's model.max_length, else 512)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Texts per forward pass."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output JSON (default CKPT/probe_<data>.json)."),
) -> None:
    """Language-identification probe of the latent space (paper Section 2.2, Tables 4 and 7).

    Settings not given here come from the run's recipe.yaml (analysis.probe),
    else langtrainer's defaults; the JSON records which came from where.
    """
    from langtrainer.analysis.probe import DEFAULT_C_SWEEP
    from langtrainer.analysis.probe import ProbeOptions
    from langtrainer.errors import UserError
    from langtrainer.pipelines.probe import check_probe, probe_and_write

    _quiet_transformers()
    if layer is not None and layer != "all":
        try:
            layer = int(layer)
        except ValueError:
            raise UserError(f"--layer must be an integer or 'all', got {layer!r}") from None
    language_list = [x.strip() for x in languages.split(",") if x.strip()] if languages else None
    settings = ProbeOptions(data=data, C=C, folds=folds, per_language=per_language, external=external,
                            external_configs=external_configs, feature=feature, layer=layer, seed=seed,
                            languages=language_list, max_length=max_length)

    check_probe(ckpt, settings, out, batch_size)  # before the progress display: a bad input gets one line
    with make_progress() as progress:
        task = progress.add_task("embedding texts", total=None, rate="")

        def report_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report, paths = probe_and_write(
            ckpt, settings, out=out, compare_base=compare_base, c_sweep=DEFAULT_C_SWEEP if c_sweep else None,
            standardize=standardize, batch_size=batch_size, progress=report_progress,
        )
    for table in render_probe(report.to_dict()):
        console.print(table)
    for path in paths.values():
        console.print(f"wrote [bold]{path}[/]")


def register(app: typer.Typer) -> None:
    app.command("probe")(probe_command)
