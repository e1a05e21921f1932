"""`langtrainer compare`: which mitigation, on my data? Paired runs, honest statistics, one recommendation.

One module per concern, in the order a compare runs:

- `mitigations`: the mitigations as recipe overlays (one table), user variants, the keys each owns
- `plan`: every run's recipe, the shared split, every check before a file is written
- `folder`: the compare's output folder (file names, identity, lock)
- `orchestrate`: the stages (data once, pretrained probe once, train / probe / SHAP per run, SHAP
  differences), each skipped when its file exists
- `statistics`: paired differences, SE, paired bootstrap, verdicts, seeds needed
- `results`: the numbers, read back from the run folders
- `verdicts`: the recommendation and its rule
- `outputs`: compare.json (CompareResult), compare.md, the forest plot, the token views

From Python::

    from langtrainer.compare import compare
    result = compare("recipes/demo_imbal.yaml", ["none", "class_weights"], seeds=2, out="cmp")["result"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from langtrainer.compare.mitigations import DEFAULT_MITIGATIONS, MITIGATIONS, mitigation_table
from langtrainer.compare.orchestrate import Event, run_compare
from langtrainer.compare.outputs import CompareResult
from langtrainer.compare.plan import ComparePlan, plan_compare


def compare(recipe: str | Path, mitigations: Sequence[str] = DEFAULT_MITIGATIONS, seeds: int = 3,
            sets: Sequence[str] = (), baseline: str = "none", out: str | Path | None = None,
            variants: Sequence[str] = (), progress=None, on_plan=None) -> dict[str, Any]:
    """plan_compare + run_compare: {"plan", "result" (CompareResult), "paths", "trained"}.

    on_plan(plan) is called once every check passed, before anything is written (the CLI prints it).
    """
    plan = plan_compare(recipe, mitigations, seeds, sets, baseline, out, variants)
    if on_plan is not None:
        on_plan(plan)
    done = run_compare(plan, progress)
    return {"plan": plan, **done}


__all__ = ["DEFAULT_MITIGATIONS", "MITIGATIONS", "CompareResult", "ComparePlan", "Event", "compare",
           "mitigation_table", "plan_compare", "run_compare"]
