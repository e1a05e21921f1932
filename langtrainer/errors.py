"""User-facing errors.

`UserError` is raised for anything the user can fix (bad recipe, missing
file, too few examples). It subclasses `ValueError`, so library callers can
catch it as the bad-value error it is; the CLI turns it into one line on
stderr and exit code 2. Anything else is a bug and exits 1.
"""

import errno as _errno
import re
from typing import Callable, Mapping, Sequence


class UserError(ValueError):
    """A problem with the user's input, explained in one line."""


class SettingError(UserError):
    """A UserError that names settings: as the library knows them (a recipe key such as `data.columns.text`,
    a keyword argument such as `split` or `output_dir`), never as command-line flags.

    `template` is the message with each setting of `settings` written as `{name}`: the library's message
    writes the name, a command writes its own flag for it (`message_for`). `cli_template`, when given, is
    the wording for a command that has flags for all of them (e.g. "pass {data.columns.text} or set
    data.columns.text"). Only the listed names are placeholders: a user's value with braces stays as it is.
    """

    def __init__(self, template: str, settings: str | Sequence[str], cli_template: str | None = None):
        self.settings = [settings] if isinstance(settings, str) else list(settings)
        self.template, self.cli_template = template, cli_template
        super().__init__(self._fill(template, {}))

    @property
    def setting(self) -> str:
        """The first (main) setting."""
        return self.settings[0]

    def _fill(self, template: str, flags: Mapping[str, str]) -> str:
        for name in self.settings:
            template = template.replace("{" + name + "}", flags.get(name, name))
        return template

    def prefixed(self, prefix: str) -> "SettingError":
        """The same error with `prefix` (a file name, say) in front."""
        return SettingError(prefix + self.template, self.settings,
                            None if self.cli_template is None else prefix + self.cli_template)

    def message_for(self, flag_of: Callable[[str], str | None]) -> str:
        """The message as a command says it: `flag_of(setting)` is its flag, or None where it has none."""
        flags = {name: flag for name in self.settings if (flag := flag_of(name))}
        if self.cli_template is not None and len(flags) == len(self.settings):
            return self._fill(self.cli_template, flags)
        return self._fill(self.template, flags)


def setting_error(template: str, *settings: str) -> SettingError:
    """A SettingError from a message with `{name}` for each setting ('{folds} must be at least 2, got 1')."""
    return SettingError(template, settings)


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
        return setting_error(f"cannot write a checkpoint file ({_first_line(exc)}): the disk is full or not writable; "
                             "free some space and rerun with {resume}", "resume")
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
