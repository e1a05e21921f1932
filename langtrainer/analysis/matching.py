"""Matching the results of two or more runs by name before they are combined.

Anything that puts numbers of different runs side by side (`shap-diff`,
`report`, `compare`) must pair label with label, language with language and
example with example by their names, never by their position in a list: two
runs whose label lists are the same set in another order would otherwise be
combined silently wrong. Each function here returns how to reorder the other
side onto the reference, or raises a one-line `UserError` naming what cannot
be matched.
"""

from __future__ import annotations

from typing import Sequence

from langtrainer.errors import UserError


def _names(values: Sequence, what: str, side: str) -> list[str]:
    names = [str(v) for v in values]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UserError(f"{side} lists {what} {name!r} twice, so it cannot be matched by name")
        seen.add(name)
    return names


def _shown(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(repr(n) for n in list(names)[:limit])
    return shown + (", ..." if len(names) > limit else "")


def match_names(reference: Sequence, other: Sequence, what: str = "labels",
                sides: tuple[str, str] = ("the first run", "the second run")) -> list[int]:
    """Positions in `other` of each of `reference`'s names: `other[order[i]] == reference[i]`.

    Both sides must hold the same names (as strings), each once; otherwise a
    UserError names the first side's names the other lacks (or the reverse).
    """
    ref = _names(reference, what, sides[0])
    oth = _names(other, what, sides[1])
    missing = [n for n in ref if n not in set(oth)]
    extra = [n for n in oth if n not in set(ref)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{sides[1]} lacks {_shown(missing)}")
        if extra:
            parts.append(f"{sides[0]} lacks {_shown(extra)}")
        raise UserError(f"the {what} do not match ({'; '.join(parts)}): combine only runs of the same {what} "
                        f"({sides[0]}: {_shown(ref)}; {sides[1]}: {_shown(oth)})")
    position = {name: i for i, name in enumerate(oth)}
    return [position[name] for name in ref]


def match_labels(reference: Sequence, other: Sequence,
                 sides: tuple[str, str] = ("the first run", "the second run")) -> list[int]:
    """`match_names` for label names."""
    return match_names(reference, other, "labels", sides)


def match_languages(reference: Sequence, other: Sequence,
                    sides: tuple[str, str] = ("the first run", "the second run")) -> list[int]:
    """`match_names` for language codes."""
    return match_names(reference, other, "languages", sides)


def match_examples(reference: Sequence, other: Sequence,
                   sides: tuple[str, str] = ("the first run", "the second run")) -> list[int]:
    """`match_names` for example ids (the explained or predicted examples)."""
    return match_names(reference, other, "examples", sides)


def same_by_name(reference: Sequence, other: Sequence) -> bool:
    """True when both sides hold the same names, in any order (no error)."""
    return sorted(map(str, reference)) == sorted(map(str, other)) and len(set(map(str, other))) == len(other)
