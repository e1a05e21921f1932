"""`langtrainer compare` against the same runs launched one by one through the CLI.

The same (mitigation, seed) runs on the real builtin model and the embedded
demo corpus, sized to a few minutes: once as one `compare` command, once as
the commands a user would type for them (per run `finetune` with that run's
resolved recipe, `probe --data test`, `probe --data external`, `shap`; per
compared run `shap-diff` against the baseline of its seed). `compare` also
probes the pretrained model, which the one-by-one path leaves out (it does
more work). The one-by-one path goes first, then compare; the result is the
ratio of their wall times (goal: at most 0.9), and the ratio of their CPU
seconds (every child process's user + system time), which a shared machine's
load moves far less than wall time.

    python bench/bench_compare.py [--mitigations none,class_weights] [--seeds 2] [--out bench_compare.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE = [
    "data.train_per_language=48",
    "data.validation_per_language=12",
    "data.test_per_cell=8",
    "training.num_train_epochs=1",
    "analysis.probe.per_language=40",
    "analysis.probe.C=0.01",
    "analysis.shap.subsample=6",
    "analysis.shap.max_evals=100",
]


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli(*args: str, cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "langtrainer", *args, "--quiet"], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                                          "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(Path(__file__).resolve().parents[1] / "recipes" / "demo_imbal.yaml"))
    parser.add_argument("--mitigations", default="none,class_weights")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default="bench_compare.json")
    parser.add_argument("--as-is", action="store_true", help="the recipe as it is (no SIZE overrides: a recipe "
                        "already sized, e.g. a tiny model's)")
    args = parser.parse_args()
    size = [] if args.as_is else SIZE

    from langtrainer.compare import plan_compare
    from langtrainer.recipe import save_recipe

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sets = [arg for s in size for arg in ("--set", s)]
        plan = plan_compare(args.recipe, args.mitigations.split(","), args.seeds, size, out=root / "compare")
        # One by one: the runs' own resolved recipes, so both paths train exactly the same runs.
        started, cpu_started = time.perf_counter(), children_cpu()
        steps: dict[str, float] = {}
        for run in plan.ordered_runs():
            recipe = save_recipe(run.recipe, root / f"{run.mitigation}-{run.seed}.yaml")
            folder = root / "one_by_one" / run.folder.name
            steps[f"{run.folder.name}/finetune"] = cli("finetune", str(recipe), "-o", str(folder), cwd=root)
            for data in ("test", "external"):
                steps[f"{run.folder.name}/probe_{data}"] = cli("probe", "--ckpt", str(folder), "--data", data,
                                                               "--seed", str(plan.split_seed), cwd=root)
            steps[f"{run.folder.name}/shap"] = cli("shap", "--ckpt", str(folder), "--seed", str(plan.split_seed),
                                                   cwd=root)
        for run in plan.ordered_runs():
            if run.mitigation != plan.baseline:
                base = root / "one_by_one" / plan.runs[(plan.baseline, run.seed)].folder.name
                steps[f"{run.folder.name}/shap-diff"] = cli(
                    "shap-diff", "--bal", str(base), "--imbal", str(root / "one_by_one" / run.folder.name),
                    "--out", str(root / "one_by_one" / "diff" / run.folder.name), cwd=root)
        one_by_one, one_by_one_cpu = time.perf_counter() - started, children_cpu() - cpu_started
        cpu_started = children_cpu()
        compare_s = cli("compare", args.recipe, "--mitigations", args.mitigations, "--seeds", str(args.seeds),
                        *sets, "-o", str(root / "compare"), cwd=root)
        compare_cpu = children_cpu() - cpu_started
        result = {
            "runs": len(plan.runs),
            "mitigations": args.mitigations,
            "seeds": args.seeds,
            "recipe": args.recipe,
            "size": size,
            "one_by_one_s": round(one_by_one, 1),
            "compare_s": round(compare_s, 1),
            "ratio": round(compare_s / one_by_one, 3),
            "one_by_one_cpu_s": round(one_by_one_cpu, 1),
            "compare_cpu_s": round(compare_cpu, 1),
            "cpu_ratio": round(compare_cpu / one_by_one_cpu, 3),
            "load_average": os.getloadavg(),
            "one_by_one_commands": len(steps),
            "one_by_one_steps_s": {k: round(v, 1) for k, v in steps.items()},
        }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "one_by_one_steps_s"}))


if __name__ == "__main__":
    main()
