"""Running a compare's plan: every stage leaves a file behind and is skipped when it exists.

Order: the shared split (written once to DIR/data, copied into each run), the
pretrained model's probes, then run by run (seed by seed) training, the
probes, SHAP on the one shared subsample; then each run's SHAP difference
against the baseline's run of the same seed. A killed compare continues where
it stopped (a run with checkpoints resumes from its last one); a finished one
retrains nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from langtrainer import atomic
from langtrainer.compare.folder import CompareDir
from langtrainer.compare.plan import ComparePlan, RunPlan
from langtrainer.rundir import RunDir
from langtrainer.rundir.subsets import write_subsets
from langtrainer.training.logs import loss_text

logger = logging.getLogger(__name__)


@dataclass
class Event:
    """What the progress display shows: the overall stage count and the current stage's own count.

    estimate_s: seconds of training left (all runs), once the first steps of this invocation were
    measured (or from the finished runs' own speed); None before.
    remaining_s: seconds left for the whole compare (`remaining_seconds`): the training left plus
    each run's probes and SHAP at the time this invocation measured for one run; None while a part
    that is still needed has not been timed. The stage count is no clock: a run's training takes
    minutes, a SHAP difference a second.
    """

    stage: str
    stage_done: int
    stage_total: int
    done: int
    total: int
    detail: str = ""
    estimate_s: float | None = None
    remaining_s: float | None = None


def remaining_seconds(seconds_per_step: float | None, steps_left: int,
                      analysis_seconds: float | None, analyses_left: int) -> float | None:
    """Seconds a compare has left: steps_left x seconds_per_step + analyses_left x analysis_seconds.

    analysis_seconds is one run's probes and SHAP (the measured mean). A part with nothing left
    counts 0 whether or not it was timed; a part still needed but not yet timed makes the whole
    unknown (None) rather than an estimate that leaves it out.
    """
    parts = ((seconds_per_step, steps_left), (analysis_seconds, analyses_left))
    if any(count > 0 and per is None for per, count in parts):
        return None
    return float(sum(per * count for per, count in parts if count > 0))


Progress = Callable[[Event], None]
PROBE_DATA = ("test", "external")


@dataclass
class _Clock:
    """Seconds per training step, measured on this invocation's training (first steps skipped)."""

    seconds_per_step: float | None = None
    _start: tuple[int, float] | None = None

    def restart(self) -> None:
        """A new run starts: its first steps are timed afresh (the last estimate stands until then)."""
        self._start = None

    def tick(self, step: int) -> None:
        now = time.perf_counter()
        if self._start is None or step < self._start[0]:
            self._start = (step, now)
            return
        steps = step - self._start[0]
        if steps >= 3:  # the first steps include compiling and warming caches
            self.seconds_per_step = (now - self._start[1]) / steps


class _Runner:
    def __init__(self, plan: ComparePlan, progress: Progress | None):
        from langtrainer.models import resolve_model_path

        self.plan, self.progress = plan, progress
        self.folder = CompareDir(plan.out)
        self.clock = _Clock()
        self.stages = self._stage_list()
        self.done = 0
        self.base_model = str(resolve_model_path(plan.base.model.name_or_path, arch=plan.base.model.arch))
        self.trained: list[str] = []
        self._steps_left = self.remaining_steps()
        self.clock.seconds_per_step = self._measured_speed()
        # One run's probes + SHAP, timed in this invocation (mean over the runs analysed so far).
        self._analysis_times: list[float] = []
        self._analyses_left = sum(1 for run in plan.ordered_runs() if not self._analysis_on_disk(run)[0])

    def _measured_speed(self) -> float | None:
        """Seconds per step of the runs an earlier invocation finished (their metrics.json), None without any."""
        speeds = [RunDir(r.folder).read_metrics().train.get("steps_per_second")
                  for r in self.plan.ordered_runs() if RunDir(r.folder).is_finished()]
        speeds = [s for s in speeds if s]
        return sum(1 / s for s in speeds) / len(speeds) if speeds else None

    def _stage_list(self) -> list[str]:
        stages = ["data"] + [f"probe pretrained ({d})" for d in PROBE_DATA]
        for run in self.plan.ordered_runs():
            stages += [f"{run.mitigation} seed {run.seed}: {what}" for what in ("train", "probe", "SHAP")]
        stages += [f"{m} seed {s}: SHAP difference" for s in self.plan.seeds for m in self.plan.names
                   if m != self.plan.baseline]
        return stages

    @staticmethod
    def _analysis_on_disk(run: RunPlan) -> tuple[bool, bool]:
        """(all, any): whether both probes and a complete SHAP result are on disk, and whether any part
        of them is (an earlier invocation analysed the run, or was killed while it did)."""
        from langtrainer.analysis.shap.store import read_manifest

        folder = RunDir(run.folder)
        manifest = read_manifest(folder.shap_dir)
        probes = [folder.probe_path(data).exists() for data in PROBE_DATA]
        return all(probes) and manifest is not None and manifest.complete, any(probes) or manifest is not None

    def analyse(self, run: RunPlan) -> None:
        """The run's probes, then SHAP; their time feeds the estimate of the runs still to analyse, when
        they were done whole here (finishing a killed run's SHAP would time a part as if it were all)."""
        done, begun = self._analysis_on_disk(run)
        started = time.perf_counter()
        self.probe(run)
        self.shap(run)
        if not done:
            self._analyses_left = max(self._analyses_left - 1, 0)
            if not begun:
                self._analysis_times.append(time.perf_counter() - started)

    def remaining_steps(self) -> int:
        return sum(r.steps for r in self.plan.ordered_runs() if not RunDir(r.folder).is_finished())

    def tell(self, stage: str, done: int, total: int, detail: str = "") -> None:
        if self.progress is None:
            return
        estimate = None
        if self.clock.seconds_per_step is not None:
            estimate = self.clock.seconds_per_step * self._steps_left
        analysis = sum(self._analysis_times) / len(self._analysis_times) if self._analysis_times else None
        remaining = remaining_seconds(self.clock.seconds_per_step, self._steps_left, analysis, self._analyses_left)
        self.progress(Event(stage, done, total, self.done, len(self.stages), detail, estimate, remaining))

    def finish(self) -> None:
        self.done += 1

    # -- stages ------------------------------------------------------------------------
    def data(self) -> None:
        if not self.folder.data_dir.exists():
            self.tell("data", 0, 1)
            write_subsets(self.plan.subsets, self.plan.distribution, self.folder.data_dir)
            self._tokenise_once()
        self.finish()

    def _tokenise_once(self) -> None:
        """Tokenise the shared split once; its datasets cache files travel into every run's data/ copy.

        `finetune` tokenises a run's data/ with datasets.map, which finds these cache files (same rows,
        same tokenizer, same function) instead of tokenising again. The calls follow finetune's order
        (training split, test, validation) with a fresh tokenizer per training split, as each run does.
        """
        import datasets

        from langtrainer.models import load_tokenizer
        from langtrainer.pipelines.finetune import training_subset_names
        from langtrainer.training.encoding import tokenize

        subsets = datasets.load_from_disk(str(self.folder.data_dir))
        pairs = {training_subset_names(run.recipe) for run in self.plan.ordered_runs()}
        for train_name, validation_name in sorted(pairs):
            tokenizer = load_tokenizer(self.base_model, trust_remote_code=self.plan.base.model.trust_remote_code)
            for name in (train_name, "test", validation_name):
                if name in subsets and len(subsets[name]):
                    tokenize(subsets[name], tokenizer, self.plan.base.model.max_length)

    def pretrained_probes(self) -> None:
        """The pretrained model on the shared test split and the external corpus, with the recipe's settings
        given explicitly (it has no run folder whose recipe could give them)."""
        from langtrainer.analysis.probe import ProbeOptions, probe_with_options
        from langtrainer.artifacts import ProbeReport

        settings, base = self.plan.base.analysis.probe, self.plan.base
        # The runs' probes read the languages they were fine-tuned on (the recipe's, else the split's);
        # the pretrained model has no run folder to ask, so it is told: without this, a recipe that lists
        # no languages probed the pretrained model on every language of the external corpus, a different
        # task (another chance level) from the runs'.
        languages = list(base.data.languages) or self._split_languages()
        for data in PROBE_DATA:
            target = self.folder.pretrained.probe_path(data)
            if target.exists() and sorted(ProbeReport.read(target).languages) != sorted(languages):
                target.unlink()  # written by a version that probed other languages: probe it again
            if not target.exists():
                stage = f"probe pretrained ({data})"
                options = ProbeOptions(
                    data=self._pretrained_test() if data == "test" else data, C=settings.C, folds=settings.folds,
                    feature=settings.feature, layer=settings.layer,
                    per_language=settings.per_language if data == "external" else None,
                    languages=languages, seed=self.plan.split_seed,
                    max_length=base.model.max_length, external=settings.external,
                    external_configs=settings.external_configs)
                report = probe_with_options(self.base_model, options,
                                            progress=lambda done, total: self.tell(stage, done, total))
                report.write(target)
            self.finish()

    def _split_languages(self) -> list[str]:
        """The languages of the shared test split: those every run is tested and probed on."""
        import pandas as pd

        return sorted(pd.read_parquet(self._pretrained_test(), columns=["language"])["language"].astype(str).unique())

    def _pretrained_test(self) -> str:
        target = self.folder.pretrained_test_path
        if not target.exists():
            import datasets

            frame = datasets.load_from_disk(str(self.folder.data_dir))["test"].to_pandas()
            with atomic.atomic_path(target) as tmp:
                frame.to_parquet(tmp)
        return str(target)

    def train(self, run: RunPlan) -> None:
        from langtrainer.pipelines.finetune import finetune

        folder = RunDir(run.folder)
        stage = f"{run.mitigation} seed {run.seed}: train"
        if not folder.is_finished():
            folder.path.mkdir(parents=True, exist_ok=True)
            folder.copy_data_from(self.folder.data_dir)
            resume = folder.has_checkpoints()
            self.clock.restart()

            def step(done: int, total: int, logs: dict[str, float]) -> None:
                self.clock.tick(done)
                self._steps_left = self._left_after(run) + max(total - done, 0)
                self.tell(stage, done, total, loss_text(logs))

            self._steps_left = self.remaining_steps()
            finetune(run.recipe, folder.path, resume=resume, progress=step)
            self.trained.append(folder.path.name)
        self.finish()

    def _left_after(self, current: RunPlan) -> int:
        runs = self.plan.ordered_runs()
        later = runs[runs.index(current) + 1:]
        return sum(r.steps for r in later if not RunDir(r.folder).is_finished())

    def probe(self, run: RunPlan) -> None:
        from langtrainer.analysis.probe import ProbeOptions
        from langtrainer.pipelines.probe import probe_and_write

        folder = RunDir(run.folder)
        stage = f"{run.mitigation} seed {run.seed}: probe"
        for data in PROBE_DATA:
            if not folder.probe_path(data).exists():
                probe_and_write(folder.path, ProbeOptions(data=data, seed=self.plan.split_seed),
                                progress=lambda done, total, d=data: self.tell(f"{stage} ({d})", done, total))
        self.finish()

    def shap(self, run: RunPlan) -> None:
        from langtrainer.analysis.shap import ShapOptions, run_shap
        from langtrainer.analysis.shap.store import read_manifest

        folder = RunDir(run.folder)
        manifest = read_manifest(folder.shap_dir)
        if manifest is None or not manifest.complete:
            stage = f"{run.mitigation} seed {run.seed}: SHAP"
            settings = self.plan.base.analysis.shap
            # One subsample for every run: the same split and the same (split) seed draw the same rows.
            run_shap(folder.path, ShapOptions(subsample=settings.subsample, max_evals=settings.max_evals,
                                              batch_size=settings.batch_size, seed=self.plan.split_seed),
                     progress=lambda done, total: self.tell(stage, done, total))
        self.finish()

    def shap_diffs(self) -> None:
        from langtrainer.analysis.shap_diff import compute_shap_diff
        from langtrainer.pipelines.shap import write_shap_diff_outputs

        for seed in self.plan.seeds:
            baseline = RunDir(self.plan.runs[(self.plan.baseline, seed)].folder)
            for name in self.plan.names:
                if name == self.plan.baseline:
                    continue
                if not self.folder.has_shap_diff(name, seed):
                    self.tell(f"{name} seed {seed}: SHAP difference", 0, 1)
                    other = RunDir(self.plan.runs[(name, seed)].folder)
                    result = compute_shap_diff(baseline.shap_dir, other.shap_dir,
                                               threshold=self.plan.base.analysis.shap.threshold,
                                               groups=self.plan.base.imbalance.groups, allow_identical=True)
                    write_shap_diff_outputs(result, self.folder.shap_diff_dir(name, seed))
                self.finish()


def run_compare(plan: ComparePlan, progress: Progress | None = None) -> dict[str, Any]:
    """Run every stage not finished yet, then write compare.json / compare.md / figures.

    Returns {"result": CompareResult, "paths": written files, "trained": run folders trained now}.
    """
    from langtrainer.compare.outputs import write_outputs
    from langtrainer.compare.results import collect

    folder = CompareDir(plan.out)
    with folder.lock():
        folder.check_identity(plan.identity)  # again, now that no other compare writes here
        folder.write_identity(plan.identity)
        runner = _Runner(plan, progress)
        runner.data()
        runner.pretrained_probes()
        for run in plan.ordered_runs():
            runner.train(run)
            runner.analyse(run)
        runner.shap_diffs()
        runner.tell("compare.json, compare.md, figures", 0, 1)
        result = collect(plan)
        paths = write_outputs(result, plan)
    return {"result": result, "paths": paths, "trained": runner.trained}


__all__ = ["Event", "Progress", "remaining_seconds", "run_compare"]

