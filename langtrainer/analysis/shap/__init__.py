"""Token SHAP values (paper Section 2.3), one module per concern.

  masker.py    shap's Text masker, mirrored (strings, partition trees, pairs)
  rows.py      masked rows as token ids where that equals shap's string masking
  runner.py    forward passes: padded batches cut by length
  owen.py      the Owen-value recursion (shap's PartitionExplainer)
  engine.py    `explain`: many recursions side by side -> TokenAttribution
  options.py   `ShapOptions`: a run's settings, their sources and checks
  store.py     the output folder (manifest + Parquet shards), `load_shap_result`
  run.py       `run_shap` / `plan_shap`: every check and read before any write
  sharded.py   computing the shards in one process or several
  callback.py  `ShapEvaluator`: SHAP metrics during training
  summary.py   per-language tables and training-time metrics
"""

from langtrainer.analysis.shap.callback import ShapEvaluator
from langtrainer.analysis.shap.engine import TokenAttribution, explain
from langtrainer.analysis.shap.masker import split_pair_string
from langtrainer.analysis.shap.options import ShapOptions
from langtrainer.analysis.shap.run import plan_shap, run_shap
from langtrainer.analysis.shap.runner import ModelRunner
from langtrainer.analysis.shap.sharded import assign_shards
from langtrainer.analysis.shap.store import ShapResult, find_shap_dir, load_shap_result
from langtrainer.analysis.shap.summary import language_summary, shap_summary_metrics

__all__ = [
    "ModelRunner", "ShapEvaluator", "ShapOptions", "ShapResult", "TokenAttribution", "assign_shards", "explain",
    "find_shap_dir", "language_summary", "load_shap_result", "plan_shap", "run_shap", "shap_summary_metrics",
    "split_pair_string",
]
