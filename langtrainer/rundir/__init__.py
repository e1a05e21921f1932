"""The run folder and the demo folder: the only code that knows their file names.

A run folder is what `finetune` writes and what `probe`, `shap`, `shap-diff`,
`report` and `demo` read::

    RUN/
      config.json, model.safetensors, tokenizer files   a standard HF checkpoint
      recipe.yaml        the resolved recipe (every default filled in)
      identity.json      recipe hash, seed and data/ fingerprint: what the folder belongs to
      data/              the subsets (save_to_disk) + data/distribution.json
      predictions.parquet  the best model's test predictions, one row per test row: id, language,
                         label, predicted, then one probability column per class (named by the
                         class); written just before metrics.json
      metrics.json       written last: its presence means the run is finished
      checkpoints/       Trainer checkpoints while training (for --resume)
      .model.tmp/        the final model while it is being moved into place
      probe_<data>.json  a probe result (test, external, or a file's stem)
      shap/              SHAP values (its inside belongs to analysis.shap.store)
      logs/              the Trainer's loggers (TensorBoard event files, ...): kept after training
      README.md          the model card (reporting.model_card), refreshed by `report`
      shap_diff.json     `shap-diff` results when this run was the compared one (analysis.shap_diff)

A demo folder holds one folder per seed (`seed<N>/`) with a run folder per
variant, the seed's shared `data/`, the pretrained model's probes and the
shap-diff folders, plus `timings.json` and `report/`.

Every other module asks `RunDir` / `DemoDir` for a path or an object; none
spells a file name. The JSON files' shapes belong to `langtrainer.artifacts`:
the readers here return its objects. Locking and identity checks of a run folder belong here.
"""

from langtrainer.rundir.demo import DemoDir
from langtrainer.rundir.run import PREDICTION_COLUMNS, RunDir, probability_column

__all__ = ["PREDICTION_COLUMNS", "DemoDir", "RunDir", "probability_column"]
