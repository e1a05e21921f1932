"""The footnote-2 experiment: the language adversary on the embedded demo, over seeds.

    python scripts/adversary_demo.py run --out runs/adversary [--seeds 0 1 2] [--variants none grl_constant ...]
                                         [--split-seed 0]
    python scripts/adversary_demo.py table --out runs/adversary

`run` trains recipes/demo_imbal.yaml once per (variant, seed) through the CLI
(`langtrainer finetune`, then `langtrainer probe --ckpt`), skipping what is
finished and resuming what was interrupted; `table` writes summary.json and
summary.md: per seed and mean ± SE over seeds of test accuracy, macro-F1, the
adversary's test accuracy and the language-ID probe, and each variant's
paired difference from `none` (mean ± SE over seeds).

`--split-seed K` pins the data split for every seed (as `compare` does), so the
seed varies training only and the `none` runs of
`langtrainer compare recipes/demo_imbal.yaml --seeds 3` are the same runs as
this script's `none` (link them in as `none-seed<k>` to reuse them).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

RECIPE = "recipes/demo_imbal.yaml"
VARIANTS = {
    "none": ["loss.language_adversary=null"],
    "grl_constant": ["loss.language_adversary.method=gradient_reversal", "loss.language_adversary.weight=1.0",
                     "loss.language_adversary.schedule=constant"],
    "grl_dann": ["loss.language_adversary.method=gradient_reversal", "loss.language_adversary.weight=1.0",
                 "loss.language_adversary.schedule=dann"],
    "entropy_constant": ["loss.language_adversary.method=entropy", "loss.language_adversary.weight=1.0",
                         "loss.language_adversary.schedule=constant"],
}
CLI = str(Path(sys.executable).with_name("langtrainer"))


def run(out: Path, seeds: list[int], variants: list[str], wrap: list[str], per_job: int = 1,
        split_seed: int | None = None) -> None:
    """Every (seed, variant) in seed-major order, `per_job` runs to one job of `wrap` (a shared machine's queue)."""
    out.mkdir(parents=True, exist_ok=True)
    pending = []
    for seed in seeds:
        for variant in variants:
            folder = out / f"{variant}-seed{seed}"
            steps = []
            if not (folder / "metrics.json").exists():
                cmd = [CLI, "finetune", RECIPE, "--set", f"seed={seed}", "-o", str(folder)]
                if split_seed is not None:
                    cmd += ["--set", f"data.split_seed={split_seed}"]
                for item in VARIANTS[variant]:
                    cmd += ["--set", item]
                if folder.exists():
                    cmd.append("--resume")
                steps.append(cmd)
            if not (folder / "probe_test.json").exists():
                steps.append([CLI, "probe", "--ckpt", str(folder), "--c-sweep"])
            if steps:
                pending.append(steps)
    for start in range(0, len(pending), per_job):
        script = " && ".join(shlex.join(step) for steps in pending[start:start + per_job] for step in steps)
        print("$", script, flush=True)
        subprocess.run(wrap + ["bash", "-c", script], check=True)
        table(out)


def _probe_accuracy(probe: dict) -> tuple[float | None, dict[str, float]]:
    """(accuracy at the recipe's C, {C: accuracy} of the sweep) from probe_test.json."""
    found: dict = {}

    def walk(node):
        if isinstance(node, dict):
            if "accuracy_mean" in node and "main" not in found:
                found["main"] = node["accuracy_mean"]
            for key, value in node.items():
                if "sweep" in key.lower() and isinstance(value, (list, dict)):
                    found.setdefault("sweep", value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(probe)
    sweep = {}
    raw = found.get("sweep")
    if isinstance(raw, list):
        for row in raw:
            if isinstance(row, dict) and "C" in row:
                sweep[f"{row['C']:g}"] = row.get("accuracy_mean", row.get("accuracy"))
    elif isinstance(raw, dict):
        for c, row in raw.items():
            sweep[str(c)] = row.get("accuracy_mean") if isinstance(row, dict) else row
    return found.get("main"), sweep


def _mean_se(values: list[float]) -> tuple[float, float | None]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _fmt(mean_se: tuple[float, float | None], digits: int = 3) -> str:
    mean, se = mean_se
    return f"{mean:.{digits}f}" if se is None else f"{mean:.{digits}f} ± {se:.{digits}f}"


def collect(out: Path) -> dict[str, dict[int, dict[str, float | None]]]:
    rows: dict[str, dict[int, dict[str, float | None]]] = {}
    for folder in sorted(out.glob("*-seed*")):
        metrics_path = folder / "metrics.json"
        if not metrics_path.exists():
            continue
        variant, _, seed = folder.name.rpartition("-seed")
        metrics = json.loads(metrics_path.read_text())
        test = metrics["test"]
        evals = [h for h in metrics["log_history"] if "eval_language_adversary_accuracy" in h]
        row = {
            "accuracy": test["accuracy"],
            "macro_f1": test["macro_f1"],
            "adversary_accuracy": test.get("language_adversary_accuracy"),
            "adversary_accuracy_last_eval": evals[-1]["eval_language_adversary_accuracy"] if evals else None,
            "skew_index": test.get("skew_index"),
            "probe": None,
        }
        probe_path = folder / "probe_test.json"
        if probe_path.exists():
            row["probe"], sweep = _probe_accuracy(json.loads(probe_path.read_text()))
            for c, acc in sweep.items():
                row[f"probe_C{c}"] = acc
        rows.setdefault(variant, {})[int(seed)] = row
    return rows


def table(out: Path) -> str:
    rows = collect(out)
    keys = ["accuracy", "macro_f1", "adversary_accuracy", "probe", "skew_index"]
    sweep_keys = sorted({k for v in rows.values() for r in v.values() for k in r if k.startswith("probe_C")},
                        key=lambda k: float(k[len("probe_C"):]))
    lines = ["| variant | seeds | test accuracy | macro-F1 | adversary test accuracy | LID probe (C = 1e-4) | "
             "skew index |", "|---|---|---|---|---|---|---|"]
    summary: dict = {"per_seed": rows, "mean_se": {}, "paired_vs_none": {}}
    for variant in [v for v in VARIANTS if v in rows] + [v for v in rows if v not in VARIANTS]:
        seeds = sorted(rows[variant])
        cells = []
        for key in keys:
            values = [rows[variant][s][key] for s in seeds if rows[variant][s].get(key) is not None]
            if values:
                summary["mean_se"].setdefault(variant, {})[key] = _mean_se(values)
                cells.append(_fmt(_mean_se(values)))
            else:
                cells.append("–")
        lines.append(f"| {variant} | {','.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    lines += ["", "Paired difference from `none` (same seed), mean ± SE over the seeds both have:", "",
              "| variant | seeds | Δ accuracy | Δ macro-F1 | Δ LID probe |", "|---|---|---|---|---|"]
    for variant in rows:
        if variant == "none" or "none" not in rows:
            continue
        shared = sorted(set(rows[variant]) & set(rows["none"]))
        if not shared:
            continue
        cells = []
        for key in ("accuracy", "macro_f1", "probe"):
            diffs = [rows[variant][s][key] - rows["none"][s][key] for s in shared
                     if rows[variant][s].get(key) is not None and rows["none"][s].get(key) is not None]
            if diffs:
                summary["paired_vs_none"].setdefault(variant, {})[key] = {"per_seed": diffs, "mean_se": _mean_se(diffs)}
                cells.append(_fmt(_mean_se(diffs)))
            else:
                cells.append("–")
        lines.append(f"| {variant} | {','.join(map(str, shared))} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed (accuracy / macro-F1 / adversary test accuracy / probe at C = 1e-4"
              + (", probe over C: " + ", ".join(k[len('probe_C'):] for k in sweep_keys) if sweep_keys else "") + "):",
              ""]
    for variant, by_seed in rows.items():
        for seed, row in sorted(by_seed.items()):
            vals = [row.get(k) for k in ("accuracy", "macro_f1", "adversary_accuracy", "probe")]
            text = " / ".join("–" if v is None else f"{v:.3f}" for v in vals)
            if sweep_keys:
                text += " | " + ", ".join("–" if row.get(k) is None else f"{row[k]:.3f}" for k in sweep_keys)
            lines.append(f"- {variant} seed {seed}: {text}")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "table"])
    parser.add_argument("--out", type=Path, default=Path("runs/adversary"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-job", type=int, default=1, help="runs per job of --wrap")
    parser.add_argument("--wrap", default="", help="a command each run goes through, e.g. /work/wt/heavy")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--split-seed", type=int, default=None,
                        help="pin the data split for every seed (default: each seed draws its own)")
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.seeds, args.variants, args.wrap.split(), args.per_job, args.split_seed)
    print(table(args.out))


if __name__ == "__main__":
    main()
