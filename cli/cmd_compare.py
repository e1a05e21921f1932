"""CLI: `langtrainer compare RECIPE`: which mitigation, on my data."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from langtrainer.cli.cmd_recipe import SET_HELP
from langtrainer.cli.common import console, make_progress, user_errors

MITIGATIONS_HELP = ("Comma-separated: none, class_weights[:sqrt_inverse|:effective_number], sampler, entropy, "
                    "adversarial, lid_entropy, balanced, or a --variant's name (table: docs/compare.md).")


def render_plan(plan) -> None:
    from rich.table import Table

    table = Table(title=f"compare plan: {len(plan.runs)} runs into {plan.out}")
    for column in ("mitigation", "overlay", "seeds", "steps per run"):
        # fold, not "…": the overlay is what a run changes, and a log file is 80 columns wide
        table.add_column(column, overflow="fold")
    for m in plan.mitigations:
        overlay = "\n".join(f"{k}={v}" for k, v in m.overrides.items())
        steps = {plan.runs[(m.name, s)].steps for s in plan.seeds}
        table.add_row(m.name + (" (baseline)" if m.name == plan.baseline else ""), overlay,
                      ", ".join(map(str, plan.seeds)), ", ".join(map(str, sorted(steps))))
    console.print(table)
    console.print(f"split seed {plan.split_seed} for every run; {sum(r.steps for r in plan.runs.values())} training "
                  "steps in all (the training time left shows once the first steps are measured, the ETA of the "
                  "whole compare once the first run's probes and SHAP are timed too)")


def render_summary(result):
    """compare.md's summary table: mean ± SE per mitigation, Δ to the baseline and its verdict."""
    from rich.table import Table

    from langtrainer.compare.outputs import SUMMARY_METRICS, cell_text

    keys = [k for k in SUMMARY_METRICS if k in result.metrics]
    table = Table(title="mean ± SE over seeds; Δ: paired difference to the baseline")
    table.add_column("mitigation")
    for key in keys:
        table.add_column(result.metrics[key]["title"], justify="right")
    colours = {"better": "green", "worse": "red"}
    for m in [x["name"] for x in result.mitigations]:
        cells = []
        for key in keys:
            c = result.metrics[key]["by_mitigation"].get(m)
            text = cell_text(c) if c else "–"
            colour = colours.get(c["verdict"]) if c else None
            cells.append(f"[{colour}]{text}[/]" if colour else text)
        table.add_row(m + (" (baseline)" if m == result.baseline else ""), *cells)
    return table


@user_errors
def compare_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file, e.g. recipes/demo_imbal.yaml."),
    mitigations: str = typer.Option("none,class_weights,sampler,entropy", "--mitigations", help=MITIGATIONS_HELP),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per mitigation (recipe seed, +1, ...); 1 gives bootstrap "
                              "intervals over test rows only."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    baseline: str = typer.Option("none", "--baseline", help="The mitigation every other is compared against."),
    variant: Optional[List[str]] = typer.Option(
        None, "--variant", help="Your own mitigation NAME:key=value[,key=value...] (any recipe keys)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default compares/<name>-compare; "
                                       "rerunning continues it and retrains nothing)."),
) -> None:
    """Train each mitigation over several seeds on one shared split; paired differences, verdicts, one
    recommendation (compare.md, compare.json, forest plot, token views)."""
    from langtrainer.compare import compare

    with make_progress() as progress:
        overall: dict[str, int] = {}

        def report(event) -> None:
            if "all" not in overall:
                overall["all"] = progress.add_task("compare", total=event.total, rate="", eta_s=None)
                overall["stage"] = progress.add_task("", total=None, rate="")
            left = f"~{event.estimate_s / 60:.0f} min of training left" if event.estimate_s is not None else ""
            progress.update(overall["all"], completed=event.done, total=event.total, rate=left,
                            eta_s=event.remaining_s)
            progress.update(overall["stage"], description=event.stage, completed=event.stage_done,
                            total=event.stage_total or None, rate=event.detail)

        done = compare(recipe, mitigations.split(","), seeds, set_ or [], baseline, out, variant or [],
                       progress=report, on_plan=render_plan)
    result, paths = done["result"], done["paths"]
    console.print(render_summary(result))
    rec = result.recommendation
    console.print(f"[bold green]recommendation:[/] {rec['choice']}{'' if rec['decided'] else ' (not decided)'}: "
                  f"{rec['reason']}", soft_wrap=True)
    from langtrainer.compare.verdicts import seeds_to_decide

    more = None if rec["decided"] else seeds_to_decide(rec.get("undecided") or {})
    if more is not None:
        console.print(f"to decide: rerun the same command with --seeds {more} into {paths['markdown'].parent} (the "
                      f"runs done are kept; {(more - len(result.seeds)) * len(result.mitigations)} runs to train)",
                      soft_wrap=True, highlight=False)
    trained = len(done["trained"])
    console.print(f"[bold green]compare:[/] {paths['markdown']}  ({trained} run(s) trained now)", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
