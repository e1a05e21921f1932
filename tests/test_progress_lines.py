"""Progress where there is no terminal: plain lines at a steady interval (PlainProgress), and a
`finetune` whose stderr goes to a file shows its steps in that file."""

import io
import json
import os
import re
import subprocess
import sys

from langtrainer.cli.common import PlainProgress
from langtrainer.recipe import save_recipe
from test_finetune_tiny import tiny_recipe, write_dataset

LINE = re.compile(
    r"^(?P<what>[^:]+): (?P<done>\d+)/(?P<total>\d+|\?)( \((?P<pct>\d+)%\))?, ([0-9.e+-]+|\?)/s, "
    r"elapsed \d+:\d\d:\d\d, ETA (\d+:\d\d:\d\d|\?)(, .+)?$"
)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_plain_lines_at_a_steady_interval_and_at_the_end():
    out, clock = io.StringIO(), FakeClock()
    with PlainProgress(stream=out, interval=10, clock=clock) as progress:
        task = progress.add_task("training r", total=None, rate="")
        for step in range(1, 101):
            clock.now += 0.5  # 2 steps/s: 50 s in all
            progress.update(task, completed=step, total=100, rate=f"loss {1 / step:.3f}")
    lines = out.getvalue().splitlines()
    # the first step, then every 10 s (steps 21, 41, 61, 81), then the last step
    assert [int(LINE.match(line)["done"]) for line in lines] == [1, 21, 41, 61, 81, 100]
    assert lines[1] == "training r: 21/100 (21%), 2/s, elapsed 0:00:10, ETA 0:00:39, loss 0.048"
    assert lines[-1].startswith("training r: 100/100 (100%), 2/s, elapsed 0:00:50, ETA 0:00:00")
    progress.update(task, completed=100, total=100)  # a finished task prints no more
    assert len(out.getvalue().splitlines()) == 6


def test_plain_progress_unknown_total_and_quiet():
    out, clock = io.StringIO(), FakeClock()
    progress = PlainProgress(stream=out, interval=5, clock=clock)
    task = progress.add_task("embedding texts", total=None)
    progress.update(task, completed=3)
    assert out.getvalue() == "embedding texts: 3/?, ?/s, elapsed 0:00:00, ETA ?\n"
    quiet = io.StringIO()
    silent = PlainProgress(stream=quiet, disable=True, clock=clock)
    silent.update(silent.add_task("x", total=2), completed=2)
    assert quiet.getvalue() == ""


def test_a_task_reused_for_the_next_stage_starts_over():
    out, clock = io.StringIO(), FakeClock()
    progress = PlainProgress(stream=out, interval=10, clock=clock)
    task = progress.add_task("", total=None, rate="")
    for stage in ("train a", "train b"):
        for step in range(1, 5):
            clock.now += 1
            progress.update(task, description=stage, completed=step, total=4)
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == [
        "train a: 1/4 (25%)", "train a: 4/4 (100%)", "train b: 1/4 (25%)", "train b: 4/4 (100%)"]


def test_no_rate_before_a_second_has_passed_and_a_restart_counts_from_its_own_start():
    # compare's stage line: restarted by an update that already carries 64 rows done
    out, clock = io.StringIO(), FakeClock()
    progress = PlainProgress(stream=out, interval=10, clock=clock)
    task = progress.add_task("", total=None, rate="")
    progress.update(task, description="probe (test)", completed=64, total=720)
    clock.now += 0.5
    progress.update(task, completed=128, total=720)  # not due: no line
    clock.now += 19.5  # 20 s after the restart: (704 - 64) / 20 = 32/s
    progress.update(task, completed=704, total=720)
    clock.now += 0.5
    progress.update(task, completed=720, total=720)
    assert out.getvalue().splitlines() == [
        "probe (test): 64/720 (9%), ?/s, elapsed 0:00:00, ETA ?",
        "probe (test): 704/720 (98%), 32/s, elapsed 0:00:20, ETA 0:00:00",
        "probe (test): 720/720 (100%), 32/s, elapsed 0:00:20, ETA 0:00:00",  # (720 - 64) / 20.5
    ]
    assert all(LINE.match(line) for line in out.getvalue().splitlines())
    # a task that ends before a second has passed: no rate, but nothing is left either
    quick = io.StringIO()
    fast = PlainProgress(stream=quick, interval=10, clock=clock)
    fast.update(fast.add_task("load", total=2), completed=2)
    assert quick.getvalue() == "load: 2/2 (100%), ?/s, elapsed 0:00:00, ETA 0:00:00\n"


def test_finetune_with_stderr_to_a_file_logs_step_lines(tiny_model_dir, tmp_path):
    recipe = tiny_recipe(tiny_model_dir, write_dataset(tmp_path / "data.jsonl"))
    save_recipe(recipe, tmp_path / "tiny.yaml")
    log_path = tmp_path / "log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               LANGTRAINER_PROGRESS_INTERVAL="0")
    env.pop("FORCE_COLOR", None)
    with open(log_path, "w") as log:
        done = subprocess.run([sys.executable, "-m", "langtrainer", "finetune", str(tmp_path / "tiny.yaml"),
                               "-o", str(tmp_path / "run")], stdout=subprocess.DEVNULL, stderr=log, env=env,
                              cwd=tmp_path, timeout=600)
    text = log_path.read_text()
    assert done.returncode == 0, text[-2000:]
    assert "\x1b" not in text  # no terminal codes in a log file
    lines = [line for line in text.splitlines() if line.startswith("training tiny:")]
    steps = [int(LINE.match(line)["done"]) for line in lines]
    total = 2 * (4 * 40) // 8
    assert steps == list(range(1, total + 1))  # interval 0: every step, in order, once
    assert all(LINE.match(line)["total"] == str(total) for line in lines)
    assert any(", loss " in line for line in lines)
    times = json.loads((tmp_path / "run" / "timings.json").read_text())
    assert times["format_version"] == 1
    assert list(times["stages"]) == ["data", "model", "train", "test", "save"]
    assert all(seconds >= 0 for seconds in times["stages"].values())


def test_a_task_with_its_own_estimate_shows_it_not_its_count():
    """compare's overall line counts stages of very different lengths: its ETA is the estimate it is given."""
    out, clock = io.StringIO(), FakeClock()
    progress = PlainProgress(stream=out, interval=0, clock=clock)
    task = progress.add_task("compare", total=25, rate="", eta_s=None)
    clock.now += 10
    progress.update(task, completed=3)  # by its count: 22 stages at 0.3/s = 1:13 left
    clock.now += 5
    progress.update(task, completed=4, eta_s=3725.0, rate="~55 min of training left")
    lines = out.getvalue().splitlines()
    assert lines == ["compare: 3/25 (12%), 0.3/s, elapsed 0:00:10, ETA ?",
                     "compare: 4/25 (16%), 0.267/s, elapsed 0:00:15, ETA 1:02:05, ~55 min of training left"]


def test_the_terminal_column_shows_a_task_estimate_too():
    from rich.progress import Progress

    from langtrainer.cli.common import RemainingColumn

    column = RemainingColumn()
    with Progress(column, disable=True) as progress:
        own = progress.add_task("compare", total=25, eta_s=None)
        progress.update(own, completed=3)
        assert column.render(progress.tasks[own]).plain == "-:--:--"
        progress.update(own, eta_s=3725.0)
        assert column.render(progress.tasks[own]).plain == "1:02:05"
        counted = progress.add_task("train", total=10)
        assert column.render(progress.tasks[counted]).plain == "-:--:--"  # rich's own: no speed measured yet
