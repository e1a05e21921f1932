"""User-facing errors.

`UserError` is raised for anything the user can fix (bad recipe, missing
file, too few examples). It subclasses `ValueError`, so library callers can
catch it as the bad-value error it is; the CLI turns it into one line on
stderr and exit code 2. Anything else is a bug and exits 1.
"""

import errno as _errno
import re


class UserError(ValueError):
    """A problem with the user's input, explained in one line."""


class SettingError(UserError):
    """A UserError about one setting: the message names it as the library knows it (a recipe key such as
    `data.columns.text`, or a keyword argument such as `split`), never as a command-line flag.

    `fact` is what is wrong and `fix` how to fix it in those terms; `flag_fix`, when given, is the fix
    with `{flag}` where a command that has a flag for `setting` names it (the CLI fills it in), e.g.
    "pass {flag} or set data.columns.text".
    """

    def __init__(self, fact: str, setting: str, fix: str, flag_fix: str | None = None):
        super().__init__(f"{fact}; {fix}")
        self.fact, self.setting, self.fix, self.flag_fix = fact, setting, fix, flag_fix

    def with_flag(self, flag: str) -> str:
        """The message with the command's flag for the setting."""
        return f"{self.fact}; {self.flag_fix.format(flag=flag) if self.flag_fix else self.fix}"


# errno values that name a fault of the machine or of the user's files (a full or read-only disk, a
# permission), never of the code: an OSError carrying one is reported as a user error. ENOENT is not
# among them: a missing file the user named is checked before use, and one of ours missing is a bug.

MACHINE_ERRNOS = frozenset(getattr(_errno, name) for name in (
    "ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG", "EIO", "ENAMETOOLONG", "EMFILE", "ENFILE",
) if hasattr(_errno, name))
# Modules whose OSErrors without an errno report a file they could not use (a model or data folder).
_LOADER_MODULES = ("transformers.", "datasets.", "huggingface_hub.", "safetensors", "tokenizers", "pyarrow")


def _raised_in(exc: BaseException, prefixes: tuple[str, ...]) -> bool:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    module = last.tb_frame.f_globals.get("__name__", "") if last is not None else ""
    return module.startswith(prefixes)


def input_error(exc: BaseException) -> UserError | None:
    """The UserError an exception caused by the user's files or machine stands for, or None for a bug.

    Narrow on purpose: an OSError with one of MACHINE_ERRNOS (disk full, read-only, permission), an
    OSError that transformers/datasets raise about a folder they cannot load, and safetensors' error
    on a damaged weights file. Everything else (a ValueError of ours, a TypeError) stays a bug.
    """
    if isinstance(exc, UserError):
        return exc
    message = str(exc)
    if type(exc).__name__ == "SafetensorError":
        if "serializ" in message and "deserializ" not in message:
            return UserError(f"cannot write a weights file ({_first_line(exc)}): check the free space and "
                             "permissions of the output folder")
        return UserError(f"a weights file cannot be read ({_first_line(exc)}): it is truncated or damaged; copy the "
                         "model folder again or re-run the command that wrote it")
    if isinstance(exc, RuntimeError) and _raised_in(exc, ("torch.",)) and (
            "PytorchStreamWriter failed" in message or "No space left on device" in message):
        return UserError(f"cannot write a checkpoint file ({_first_line(exc)}): the disk is full or not writable; "
                         "free some space and rerun with --resume")
    if isinstance(exc, OSError):
        where = f"'{exc.filename}'" if exc.filename else "a file"
        code = exc.errno
        if code is None:  # pyarrow's IOError names the errno only in its message
            found = re.search(r"\[Errno (\d+)\]", message)
            code = int(found.group(1)) if found else None
            if code in MACHINE_ERRNOS:
                return UserError(f"cannot use a file: {_first_line(exc)} (check the disk and the path)")
        if code in MACHINE_ERRNOS:
            hint = {_errno.ENOSPC: "free some space or write elsewhere", _errno.EROFS: "write elsewhere",
                    _errno.EACCES: "check its permissions", _errno.EPERM: "check its permissions"}.get(
                exc.errno, "check the disk and the path")
            return UserError(f"cannot use {where}: {exc.strerror or _first_line(exc)} ({hint})")
        if exc.errno is None and _raised_in(exc, _LOADER_MODULES):
            return UserError(f"cannot load {where if exc.filename else 'the model or data'}: {_first_line(exc)}")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__
