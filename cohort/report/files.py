"""Safe output files: atomic 0600 writes in 0700 folders, and Excel-safe CSV cells."""

from __future__ import annotations

import re

__all__ = ["FORMULA_CHARS", "excel_safe"]

# A cell Excel/LibreOffice would read as a formula (or DDE) starts with one of these signs,
# ASCII or in the full-width and small forms that spreadsheets in East Asian locales read as them
_SIGNS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20\ufe66\ufe62\ufe63\ufe6b")
# ... also after leading whitespace (a space, NBSP, ideographic space, a line break: trimmed by
# imports that "trim spaces") or zero-width characters; a tab or CR first is guarded whatever
# follows (the OWASP list)
# (every character str.isspace() holds, then the zero-width ones)
_LEADING = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
    "\u200b\u200c\u200d\u2060\ufeff"
)
_ALWAYS = ("\t", "\r")
# the first characters of a cell that may need the guard (a fast test for most cells)
FORMULA_CHARS = frozenset(_SIGNS | set(_LEADING))
# Plain numbers (e.g. "-3", "+4.5", "-1.2e3") are data, not formulas: left as they are.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def excel_safe(cell: str) -> str:
    """Neutralise a text cell that a spreadsheet would evaluate, by prefixing `'`.

    Cells starting with `=`, `+`, `-` or `@` (or their full-width forms `＝ ＋ － ＠`), also
    after leading whitespace or zero-width characters, and cells starting with tab or CR are
    prefixed, except plain numbers such as "-3.5" or " 42"; ISO dates and other text are
    returned unchanged.
    """
    if not cell or cell[0] not in FORMULA_CHARS:
        return cell
    if cell.startswith(_ALWAYS):
        return "'" + cell
    head = cell.lstrip(_LEADING)
    if not head or head[0] not in _SIGNS or _PLAIN_NUMBER.fullmatch(head):
        return cell
    return "'" + cell
