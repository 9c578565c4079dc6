"""Safe output files: atomic 0600 writes in 0700 folders, and Excel-safe CSV cells."""

from __future__ import annotations

import re

__all__ = ["FORMULA_CHARS", "excel_safe"]

# A cell Excel/LibreOffice would read as a formula (or DDE) starts with one of these.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMULA_CHARS = frozenset(_FORMULA_START)
# Plain numbers (e.g. "-3", "+4.5", "-1.2e3") are data, not formulas: left as they are.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def excel_safe(cell: str) -> str:
    """Neutralise a text cell that a spreadsheet would evaluate, by prefixing `'`.

    Cells starting with `=`, `+`, `-`, `@`, tab or CR are prefixed, except plain numbers
    such as "-3.5"; ISO dates and other text are returned unchanged.
    """
    if not cell or not cell.startswith(_FORMULA_START):
        return cell
    if _PLAIN_NUMBER.fullmatch(cell):
        return cell
    return "'" + cell
