"""The language-identification probe (paper Section 2.2, Tables 4 and 7), one module per concern:

  core.py       the maths: cross-validated logistic regression from features to languages, the C sweep,
                whether a probe is at chance and whether a difference between two probes measures anything
                (`at_chance`, `difference_measured`: the rules every report and compare applies)
  texts.py      the texts to probe: a run's test split, an external corpus or a table, per language
  corpus.py     external corpora: a table of texts, or a Hub-shaped corpus with one config per language
  options.py    `ProbeOptions`: each setting from the caller, the run's recipe or the default, checked
  run.py        `run_probe` (embed + probe one model, optionally beside a base model) and
                `probe_with_options` (options resolved against the run's recipe): a `ProbeReport`
  evaluator.py  `ProbeEvaluator`: the probe's accuracy at every evaluation while fine-tuning

Model loading is `langtrainer.models.encoder`; writing the JSON and the layer figure is
`pipelines/probe.py`.
"""

from langtrainer.analysis.probe.core import (
    DEFAULT_C_SWEEP,
    PAPER_C,
    ProbeResult,
    at_chance,
    block_at_chance,
    difference_measured,
    probe_c_sweep,
    probe_language,
)
from langtrainer.analysis.probe.evaluator import ProbeEvaluator
from langtrainer.analysis.probe.options import ProbeOptions
from langtrainer.analysis.probe.run import probe_with_options, run_probe
from langtrainer.analysis.probe.texts import (
    EXTERNAL_SOURCE,
    probe_texts,
    run_dir_test_frame,
    run_languages,
)

__all__ = [
    "DEFAULT_C_SWEEP", "EXTERNAL_SOURCE", "PAPER_C", "ProbeEvaluator", "ProbeOptions", "ProbeResult", "at_chance",
    "block_at_chance", "difference_measured",
    "probe_c_sweep", "probe_language", "probe_texts", "probe_with_options",
    "run_dir_test_frame", "run_languages", "run_probe",
]
