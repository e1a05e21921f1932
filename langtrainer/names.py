"""Names a user gives that end up in tables, Markdown, model cards and folder listings: labels and languages.

A label is shown in report.md, the model card, plots and the terminal, so it
must be a visible, one-line string: no line breaks, control or invisible
formatting characters (a right-to-left override turns 'cba' into 'abc' on
screen), not blank, not padded, at most MAX_LABEL characters. Characters
that Markdown or HTML give a meaning ('<', '|', '*') are allowed here and
escaped where they are written (`reporting.markdown`).

A language code is BCP-47-like: a 2-3 letter primary subtag, then subtags of
1-8 letters or digits, joined by '-' (or '_', as some corpora write them);
compared lower-case.
"""

from __future__ import annotations

import re
import unicodedata

from langtrainer.errors import UserError

MAX_LABEL = 100
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:[-_][a-z0-9]{1,8})*")


def label_problem(name: object) -> str | None:
    """Why `name` cannot be shown as a label, or None when it can."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not text"
    if not name.strip():
        return "is blank"
    if name != name.strip():
        return "starts or ends with a space"
    if len(name) > MAX_LABEL:
        return f"is longer than {MAX_LABEL} characters"
    for char in name:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return f"holds the invisible or control character U+{ord(char):04X}"
    return None


def check_label_names(names, where: str) -> None:
    """UserError unless every label can be shown and no label is given twice."""
    seen: set[str] = set()
    for name in names:
        problem = label_problem(name)
        if problem:
            shown = repr(name)[:60]
            raise UserError(f"{where}: label {shown} {problem}, so it cannot be shown in tables and reports: "
                            "rename it")
        if name in seen:
            raise UserError(f"{where}: label {name!r} is given twice: list each label once")
        seen.add(name)


def is_language_code(code: object) -> bool:
    return isinstance(code, str) and LANGUAGE_CODE.fullmatch(code) is not None


def check_language_codes(codes, where: str) -> None:
    """UserError unless every code is BCP-47-like (lower-case, as the data reader normalises them)."""
    for code in codes:
        if not is_language_code(code):
            shown = repr(code)[:40]
            lower = code.strip().lower() if isinstance(code, str) else None
            hint = (f"; write '{lower}'" if lower and lower != code and is_language_code(lower)
                    else " (a language code such as 'en', 'pt-br' or 'zh-hant')")
            raise UserError(f"{where}: {shown} is not a language code{hint}")
