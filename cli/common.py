"""What every command shares: consoles, the global flags, the error contract, progress bars.

Exit codes: 0 success, 2 user error (one line on stderr, no traceback),
1 bug (traceback).

`--quiet/-q` and `--verbose/-v` are declared once, on the app; they may be
given anywhere on the command line (`langtrainer demo --quick --quiet`), and
every command reads them from `options`.
"""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar

import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from langtrainer.errors import SettingError, UserError, input_error

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable)

QUIET_FLAGS = ("--quiet", "-q")
VERBOSE_FLAGS = ("--verbose", "-v")


@dataclass
class Options:
    """The app-level flags of the running command."""

    quiet: bool = False
    verbose: bool = False
    argv: list[str] = field(default_factory=list)  # the command line as given (after the program name)

    def flags(self) -> list[str]:
        """The flags again, for a command that relaunches itself (accelerate)."""
        return [flag for flag, on in (("--quiet", self.quiet), ("--verbose", self.verbose)) if on]


options = Options()


class GlobalFlagsGroup(TyperGroup):
    """The root command group: moves --quiet/--verbose to the front, wherever they were given.

    Click only accepts a group's options before the sub-command; users type
    them after it (`langtrainer finetune r.yaml --quiet`).
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's main, with a usage error (unknown flag, bad value) as one `error:` line and exit 2
        instead of click's multi-line usage box."""
        try:
            import typer._click.exceptions as click_errors  # typer >= 0.2x vendors click
        except ImportError:  # pragma: no cover - older typer uses click itself
            import click.exceptions as click_errors

        no_args_help = getattr(click_errors, "NoArgsIsHelpError", ())
        if not standalone_mode or not (sys.argv[1:] if args is None else args):
            return super().main(args, prog_name, complete_var, standalone_mode=standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except no_args_help:  # a group without its sub-command: click has printed the group's help
            sys.exit(2)
        except click_errors.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "langtrainer"
            err_console.print(f"[bold red]error:[/] {_escape(one_line(exc.format_message()))} "
                              f"(see '{_escape(where)} --help')", highlight=False, soft_wrap=True)
            sys.exit(2)
        except click_errors.ClickException as exc:
            err_console.print(f"[bold red]error:[/] {_escape(one_line(exc.format_message()))}", highlight=False,
                              soft_wrap=True)
            sys.exit(exc.exit_code)
        except typer.Abort:  # end of input at a prompt
            err_console.print("[bold red]error:[/] aborted", highlight=False)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        options.argv = list(args)
        if "--" in args:
            head, tail = args[: args.index("--")], args[args.index("--"):]
        else:
            head, tail = args, []
        flags = [a for a in head if a in QUIET_FLAGS + VERBOSE_FLAGS]
        rest = [a for a in head if a not in QUIET_FLAGS + VERBOSE_FLAGS]
        return super().parse_args(ctx, flags + rest + tail)


def set_global_options(
    quiet: bool = typer.Option(False, *QUIET_FLAGS, help="No progress display."),
    verbose: bool = typer.Option(False, *VERBOSE_FLAGS, help="Log INFO messages (and third-party progress)."),
) -> None:
    """Global flags, accepted before or after the command."""
    options.quiet = quiet
    options.verbose = verbose
    setup_logging(verbose)


# Options that `accelerate launch` takes over: a relaunched command runs without them.
LAUNCH_OPTIONS = ("--num-processes", "--accelerate-config")


def relaunch_args(extra: list[str] | None = None) -> list[str]:
    """The command line this command was started with, minus the launch options, plus `extra`.

    A relaunch repeats what the user typed, so no option can be left out by
    hand (as trl relaunches from sys.argv minus its launch options).
    """
    args, skip = [], False
    for item in options.argv:
        if skip:
            skip = False
            continue
        if item in LAUNCH_OPTIONS:
            skip = True  # its value follows
            continue
        if item.startswith(tuple(f"{name}=" for name in LAUNCH_OPTIONS)):
            continue
        args.append(item)
    return args + list(extra or [])


# An error line quotes user values (a path, a recipe value): a huge one must not become a huge line.
MAX_MESSAGE = 280


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """`message` as one line of at most `limit` characters (first line; the middle elided)."""
    lines = [line for line in message.splitlines() if line.strip()]
    line = lines[0].strip() if lines else ""
    if len(line) > limit:
        keep = limit - 5
        line = f"{line[: keep - keep // 4]} ... {line[len(line) - keep // 4:]}"
    return line


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def fail(message: str) -> "typer.Exit":
    """Print one line on stderr and exit 2."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def user_errors(fn: F) -> F:
    """Turn UserError, and the few library errors that stand for one (`errors.input_error`: a full or
    read-only disk, a damaged weights file), into exit 2 with one line; anything else is a bug (exit 1)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SettingError as exc:
            fail(exc.message_for(flag_for))
        except UserError as exc:
            fail(str(exc) or type(exc).__name__)
        except Exception as exc:
            mapped = input_error(exc)
            if mapped is None:
                raise
            fail(mapped.message_for(flag_for) if isinstance(mapped, SettingError) else str(mapped))

    return wrapper  # type: ignore[return-value]


# A library argument whose command-line parameter has another name.
PARAM_OF_SETTING = {"overrides": ("set_",), "sets": ("set_",), "variants": ("variant",)}


def flag_for(setting: str) -> str | None:
    """The running command's flag for a library setting (`split` -> --split, `data.columns.text` ->
    --text-column, `model_cards=False` -> --no-model-cards), or None when the command has none: the
    library's errors name settings, not flags."""
    try:
        from typer._click.globals import get_current_context  # typer >= 0.2x vendors click
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import get_current_context

    ctx = get_current_context(silent=True)
    if ctx is None:
        return None
    setting, _, value = setting.partition("=")  # `model_cards=False`: the switch that turns it off
    name = setting.replace(".", "_")
    if setting.startswith("data.columns."):
        name = f"{setting.rsplit('.', 1)[1]}_column"
    names = {name, f"{name}_", *PARAM_OF_SETTING.get(setting, ())}
    for param in ctx.command.params:
        if param.name in names:
            opts = param.secondary_opts if value == "False" and getattr(param, "secondary_opts", None) else param.opts
            long = [opt for opt in opts if opt.startswith("--")]
            return max(long, key=len) if long else None
    return None


class PlainProgress:
    """Progress for a log file: one plain line per task at a steady interval, nothing else.

    Used by `make_progress` when stderr is not a terminal (`nohup ... > log`,
    CI, a pipe), where a rich bar would print nothing until the end. It has
    the part of rich's `Progress` interface the commands use:

        with make_progress() as progress:
            task = progress.add_task("training", total=None, rate="")
            progress.update(task, completed=step, total=total, rate="loss 0.41")

    A line is printed at a task's first update, then at most every
    `interval` seconds (env LANGTRAINER_PROGRESS_INTERVAL, default 15), and
    once when the task completes; never twice for the same count. A task
    whose description changes, or whose count goes back, starts over (a
    stage line reused for the next stage):

        training r1: 12/270 (4%), 0.85/s, elapsed 0:00:14, ETA 0:05:03, loss 0.412

    The rate counts what was done since the task (re)started over the time
    since then; before `MIN_RATE_SECONDS` have passed it is `?` (and so is
    the ETA): a stage line restarted by an update that already carries 64
    done rows would otherwise claim millions per second. A task given an
    `eta_s` field (compare's overall line, whose count is of stages that
    take seconds or minutes) shows that as its ETA (`?` while it is None)
    instead of extrapolating its count.
    """

    DEFAULT_INTERVAL = 15.0
    MIN_RATE_SECONDS = 1.0

    @dataclass
    class Task:
        id: int
        description: str
        total: float | None
        completed: float
        fields: dict
        started: float
        base: float = 0.0  # the count when the task (re)started: the rate counts what came after
        printed_at: float | None = None
        printed_completed: float | None = None
        finished: bool = False

    def __init__(self, stream=None, interval: float | None = None, disable: bool = False, clock=None):
        import os
        import time

        self.stream = stream if stream is not None else sys.stderr
        if interval is None:
            interval = float(os.environ.get("LANGTRAINER_PROGRESS_INTERVAL", self.DEFAULT_INTERVAL))
        self.interval = interval
        self.disable = disable
        self.clock = clock or time.monotonic
        self.tasks: list[PlainProgress.Task] = []

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        task = self.Task(len(self.tasks), description, total, completed, dict(fields), self.clock(), base=completed)
        self.tasks.append(task)
        return task.id

    def update(self, task_id: int, *, completed: float | None = None, total: float | None = None,
               advance: float | None = None, description: str | None = None, **fields) -> None:
        task = self.tasks[task_id]
        restarted = (description is not None and description != task.description) or (
            completed is not None and task.printed_completed is not None and completed < task.printed_completed)
        if restarted:  # one task reused for the next stage (compare's stage line): a new timeline
            task.started, task.printed_at, task.printed_completed, task.finished = self.clock(), None, None, False
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if restarted:
            task.base = task.completed
        if total is not None:
            task.total = total
        if description is not None:
            task.description = description
        task.fields.update(fields)
        now = self.clock()
        done = task.total is not None and task.completed >= task.total
        due = task.printed_at is None or now - task.printed_at >= self.interval
        moved = task.completed != task.printed_completed
        if self.disable or task.finished or not moved or not (due or done):
            return
        task.printed_at, task.printed_completed = now, task.completed
        task.finished = done
        print(self.line(task, now), file=self.stream, flush=True)

    @staticmethod
    def _clock_text(seconds: float) -> str:
        seconds = int(max(0.0, seconds))
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

    def line(self, task: "PlainProgress.Task", now: float) -> str:
        elapsed = now - task.started
        done = task.completed
        step = f"{done:g}/{task.total:g}" if task.total else f"{done:g}/?"
        if task.total:
            step += f" ({100 * done / task.total:.0f}%)"
        rate = (done - task.base) / elapsed if elapsed >= self.MIN_RATE_SECONDS else None
        parts = [f"{task.description}: {step}", "?/s" if rate is None else f"{rate:.3g}/s",
                 f"elapsed {self._clock_text(elapsed)}"]
        if "eta_s" in task.fields:
            eta = task.fields["eta_s"]
            parts.append("ETA ?" if eta is None else f"ETA {self._clock_text(eta)}")
        elif task.total and rate is not None and rate > 0:
            parts.append(f"ETA {self._clock_text((task.total - done) / rate)}")
        elif task.total and done >= task.total:
            parts.append(f"ETA {self._clock_text(0)}")
        else:
            parts.append("ETA ?")
        detail = str(task.fields.get("rate", "") or "").strip()
        if detail:
            parts.append(detail)
        return ", ".join(parts)


class RemainingColumn(TimeRemainingColumn):
    """rich's time-remaining column, except for a task that carries its own estimate (`eta_s`, as
    `PlainProgress` reads it): that one is shown, or `-:--:--` while it is None."""

    def render(self, task):
        if "eta_s" not in task.fields:
            return super().render(task)
        from rich.text import Text

        eta = task.fields["eta_s"]
        text = "-:--:--" if eta is None else PlainProgress._clock_text(eta)
        return Text(text, style="progress.remaining")


def make_progress(quiet: bool | None = None):
    """The progress display of a long command; disabled with --quiet (or `quiet=True`).

    On a terminal: a rich progress bar. Elsewhere (stderr to a file or a
    pipe): `PlainProgress`, plain lines at a steady interval. Both take
    `add_task(description, total=None, rate="")` and
    `update(task, completed=, total=, rate=)` inside a `with` block; `rate`
    is free text shown beside the counts (a loss, an accuracy).
    """
    if quiet is None:
        quiet = options.quiet
    if not err_console.is_terminal:
        return PlainProgress(disable=quiet)
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        RemainingColumn(),
        console=err_console,
        disable=quiet,
        transient=False,
    )


def setup_logging(verbose: bool = False) -> None:
    """Our logs on stderr; third-party progress bars and load reports off unless -v."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if verbose:
        return
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


# ------------------------------------------------------------------ column flags (data, shap)

TEXT_COLUMN = typer.Option(None, "--text-column", help="Source column holding the text (data.columns.text).")
LABEL_COLUMN = typer.Option(None, "--label-column", help="Source column holding the label (data.columns.label).")
LANGUAGE_COLUMN = typer.Option(None, "--language-column",
                               help="Source column holding the language code (data.columns.language).")
GROUP_COLUMN = typer.Option(None, "--group-column",
                            help="Source column whose rows stay on one side of a split (data.columns.group).")
ID_COLUMN = typer.Option(None, "--id-column", help="Source column holding a unique row id (data.columns.id).")


def column_mapping(**columns: Optional[str]) -> dict[str, str]:
    """The column flags a user gave, as a load_examples `columns` mapping."""
    return {key: value for key, value in columns.items() if value}
