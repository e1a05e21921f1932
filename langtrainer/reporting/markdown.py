"""User strings (labels, languages, group names, a recipe's description) as safe Markdown text.

report.md and the model card are Markdown that Hub pages and editors render
as HTML: a label `<script>...</script>` or `"><img onerror=...>` written raw
would run there, and a `|` or a line break would break every table. Every
user string goes through `md_text` on its way into either page; the YAML
header is written by yaml.safe_dump, which quotes what it must.
"""

from __future__ import annotations

import html
import re

# Characters that change what Markdown renders anywhere in a line or a table cell: code spans, emphasis with
# '*', links and images ('[' ']'), table cells ('|'), strike-through, escapes. ('_' inside a word, '#', '-' and
# '(' mid-line render as themselves; '<', '>', '&' and quotes are HTML-escaped.)
_MARKDOWN = re.compile(r"([\\`*\[\]|~])")


def md_text(value: object) -> str:
    """`value` as one line of Markdown that renders as exactly its characters (HTML and Markdown escaped)."""
    text = " ".join(str(value).split())  # line breaks and tabs would end a table row or a paragraph
    return _MARKDOWN.sub(r"\\\1", html.escape(text, quote=True))


def md_list(values, sep: str = ", ") -> str:
    return sep.join(md_text(v) for v in values)
