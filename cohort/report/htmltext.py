"""Text helpers shared by the parts of summary.html: escaping, masked counts, sections."""

from __future__ import annotations

from html import escape
from typing import Any

from cohort.report.suppress import LESS, is_small
from cohort.safetext import neutral

LIST_MAX = 100  # rows of a list (changes, upcoming dates); the rest is in candidates.csv


def esc(value: Any) -> str:
    """`value` as HTML text: escaped, and with control and bidirectional-control characters as
    U+FFFD (a right-to-left override in a name reversed the rest of its line in the page)."""
    return escape(neutral(str(value)), quote=True)


def shown_count(n: int, mask: bool) -> str:
    """A count as printed: 1-10 become "<11" when masking (no PHI output)."""
    return LESS if mask and is_small(n) else str(n)


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'
