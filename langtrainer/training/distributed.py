"""Multi-process training through accelerate's launcher (never a home-made one).

`langtrainer finetune RECIPE --num-processes N` re-runs the same command under
`accelerate launch ... -m langtrainer finetune RECIPE ...`: accelerate starts the
processes (torchrun underneath), the Trainer wraps the model in DDP, and
`accelerate launch --config_file F -m langtrainer finetune ...` (multi-node,
DeepSpeed, FSDP) works the same way without our options. The launched
processes carry `LANGTRAINER_LAUNCHED=1` and the launcher's RANK/WORLD_SIZE,
so they never launch again.

Inside a run, side effects belong to the main process: `main_process_first`
lets it build the data and caches before the others read them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from langtrainer.errors import UserError, setting_error

logger = logging.getLogger(__name__)

LAUNCHED_ENV = "LANGTRAINER_LAUNCHED"
# A folder where launched processes that stop on a UserError leave a mark, so
# the launching command can exit 2 (user error) rather than torchrun's 1.
STATUS_ENV = "LANGTRAINER_LAUNCH_STATUS"
# Set by torchrun / accelerate launch (LOCAL_RANK, WORLD_SIZE) or by MPI launchers.
_LAUNCHER_ENV = ("LOCAL_RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
_RANK_ENV = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
CLI_MODULE = "langtrainer"


def inside_launched_process() -> bool:
    """True in a process started by a distributed launcher (ours or the user's)."""
    if os.environ.get(LAUNCHED_ENV) == "1":
        return True
    return any(os.environ.get(name) not in (None, "", "-1") for name in _LAUNCHER_ENV)


def process_rank() -> int:
    """Global rank from the launcher's environment (0 outside a launch)."""
    for name in _RANK_ENV:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return 0


def world_size() -> int:
    """Number of launched processes (1 outside a launch)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """Rank 0: the process that prints, writes the run directory and runs evaluators."""
    return process_rank() == 0


def available_workers(cuda_available: bool | None = None) -> tuple[int, str]:
    """(how many processes this machine can run side by side, what bounds it): its GPUs, else its CPU cores."""
    import os

    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if cuda_available:
        import torch

        return torch.cuda.device_count(), "GPU(s)"
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(cores, 1), "CPU core(s) available to this process"


def check_num_processes(num_processes: int, cuda_available: bool | None = None) -> None:
    """UserError when --num-processes asks for more processes than the machine has devices (or cores)."""
    limit, what = available_workers(cuda_available)
    if num_processes > limit:
        raise setting_error(f"{{num_processes}} {num_processes} is more than the {limit} {what}: give at most {limit}",
                            "num_processes")


def needs_launch(num_processes: int | None, config_file: str | Path | None) -> bool:
    """Relaunch through accelerate for N > 1 or a config file, unless already launched."""
    if num_processes is not None and num_processes < 1:
        raise setting_error(f"{{num_processes}} must be at least 1, got {num_processes}", "num_processes")
    if num_processes is not None and num_processes > 1 and config_file is None and not inside_launched_process():
        check_num_processes(num_processes)  # a config file may describe other machines: accelerate checks it
    if inside_launched_process():
        if (num_processes or 1) > 1 or config_file is not None:
            logger.warning("already inside a distributed launch: num_processes/accelerate_config are ignored")
        return False
    return (num_processes or 1) > 1 or config_file is not None


def accelerate_launch_command(
    cli_args: Sequence[str],
    num_processes: int | None = None,
    config_file: str | Path | None = None,
    cuda_available: bool | None = None,
    gpu_count: int | None = None,
) -> list[str]:
    """The `accelerate launch` command line that runs `python -m langtrainer <cli_args>` in N processes.

    With a config file, accelerate takes everything from it (`--num_processes`
    overrides its count when given). Without one: `--multi_gpu` (torchrun) for
    N > 1 on GPUs *and* on CPU; `--cpu` would make accelerate start a single
    process unless MPI is configured. On CPU the processes pick the gloo backend
    because the training arguments say `use_cpu`.
    """
    if num_processes is not None and num_processes < 1:
        raise setting_error(f"{{num_processes}} must be at least 1, got {num_processes}", "num_processes")
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file is not None:
        config = Path(config_file).expanduser()
        if not config.is_file():
            raise UserError(f"accelerate config '{config_file}' does not exist")
        command += ["--config_file", str(config.resolve())]
        if num_processes is not None:
            command += ["--num_processes", str(num_processes)]
    else:
        n = num_processes or 1
        if n < 2:
            raise UserError("a launch without --accelerate-config needs --num-processes of 2 or more")
        if cuda_available is None or gpu_count is None:
            import torch

            cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
            gpu_count = torch.cuda.device_count() if gpu_count is None else gpu_count
        if cuda_available and n > gpu_count:
            raise UserError(
                f"--num-processes {n} but this machine has {gpu_count} GPU(s): use at most {gpu_count}, "
                "or an --accelerate-config for several machines"
            )
        if not cuda_available and n > available_workers(cuda_available=False)[0]:
            check_num_processes(n, cuda_available=False)
        command += [
            "--multi_gpu",
            "--num_processes", str(n),
            "--num_machines", "1",
            "--mixed_precision", "no",  # the recipe's training.bf16/fp16 decide
            "--dynamo_backend", "no",
            "--main_process_port", "0",  # a free port: runs side by side do not collide
        ]
    return [*command, "-m", CLI_MODULE, *cli_args]


def launch_environment() -> dict[str, str]:
    """The children's environment: ours plus the marker that stops a second launch."""
    env = dict(os.environ)
    env[LAUNCHED_ENV] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def relaunch(
    cli_args: Sequence[str],
    num_processes: int | None = None,
    config_file: str | Path | None = None,
) -> int:
    """Run `cli_args` under `accelerate launch`; return its exit code.

    The launcher exits 1 when any process fails (the process's own message is
    on stderr above torchrun's summary); that becomes 2 when a process
    stopped on a user error (see `note_user_error`).
    """
    command = accelerate_launch_command(cli_args, num_processes, config_file)
    logger.info("launching: %s", " ".join(command))
    with tempfile.TemporaryDirectory(prefix="langtrainer-launch-") as status:
        env = launch_environment()
        env[STATUS_ENV] = status
        try:
            returncode = subprocess.run(command, env=env, check=False).returncode
        except KeyboardInterrupt:
            return 130
        if returncode != 0 and any(Path(status).iterdir()):
            return 2
    return returncode


def note_user_error() -> None:
    """In a launched process about to exit 2: tell the launching command."""
    folder = os.environ.get(STATUS_ENV)
    if folder and Path(folder).is_dir():
        with contextlib.suppress(OSError):
            (Path(folder) / f"user-error-rank{process_rank()}").touch()


# ------------------------------------------------------------ inside a run


@contextlib.contextmanager
def main_process_first(cpu: bool) -> Iterator[bool]:
    """Main process runs the block first, the others wait and then run it.

    For work that writes shared files (building `data/`, `datasets.map`
    caches, converting a builtin model): the main process writes them, the
    others then read what it wrote. Yields whether this is the main process.
    A no-op in a single process. `cpu` must match the training arguments'
    `use_cpu` (it picks gloo over nccl).
    """
    if not inside_launched_process():
        yield True
        return
    from accelerate import PartialState

    state = PartialState(cpu=cpu)
    with state.main_process_first():
        yield state.is_main_process


def wait_for_everyone(cpu: bool) -> None:
    """Barrier across the launched processes (a no-op in a single process)."""
    if not inside_launched_process():
        return
    from accelerate import PartialState

    PartialState(cpu=cpu).wait_for_everyone()


def end_process_group() -> None:
    """Destroy this process's torch.distributed process group, if it has one.

    Left to the interpreter's shutdown, a gloo process group can abort the
    process (SIGABRT, "terminate called without an active exception"): its
    worker threads are torn down after Python's own state, and a launch whose
    work all succeeded then exits 1 now and then. Every launched command calls
    this when its work is done; it does no collective, so a process that stops
    early does not wait for the others. torch is not imported for it.
    """
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
