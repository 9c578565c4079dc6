"""TOML files parsed in one place, a syntax mistake said as every other file error is."""

from __future__ import annotations

import difflib
import re
import tomllib
from typing import Any

from cohort.errors import CohortError
from cohort.tomllines import NEWLINE, TABLE_LINE

__all__ = ["TITER", "loads", "syntax_message"]

# tomllib says where only at the end of its message: "... (at line 215, column 16)"
_AT = re.compile(r"\s*\((?:at line (\d+), column \d+|at end of document)\)$")
_KEY = re.compile(r"""^\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_\-.]+))\s*=""")
_COMMENT = re.compile(r"\s+#.*$")
_DECIMAL_COMMA = re.compile(r"^([+-]?\d+),(\d+)$")
# a number then a word, not a digit (a unit: `90 days`, `16 MB`, `25 %`; `2 3` is no unit)
_WITH_UNIT = re.compile(r"^([+-]?\d[\d_.eE+\-]*)\s+[^\s\d\"'\[{,].*$")
# a titer as a lab writes it (`min_titer = 1:160`), whose number in a criteria file is the
# denominator (criteria.quoted reads it in a quoted value too)
TITER = re.compile(r"^\s*1\s*:\s*(\d+)\s*$")
_BARE_WORD = re.compile(r"^[A-Za-z_][^\"'\[\]{}=]*$")
_VALUES = 'write a number (25.5), "text" in quotes, true or false, or a [list]'
# tomllib's words for a string whose line ended before its closing quote (or the file did)
_OPEN_QUOTE = (
    "Illegal character '\\n'",
    "Found invalid character '\\n'",
    "Unterminated string",
    "Expected \"'",  # (a literal string's quote: "'" or "'''")
    "Expected '\"",
)


def loads(text: str, shown: str, error: type[CohortError]) -> dict[str, Any]:
    """`tomllib.loads(text)`; a syntax mistake an `error` (MappingError for a mapping or
    criteria file, ConfigError for a configuration) naming `shown`, its line, table and key."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(syntax_message(shown, text, str(exc))) from None


def syntax_message(shown: str, text: str, said: str) -> str:
    """`shown:line: <table and key>: <what is wrong and what to write>` for tomllib's `said`."""
    lines = NEWLINE.split(text)
    at = _AT.search(said)
    what = said[: at.start()] if at else said
    if at and at[1]:
        line = int(at[1])
    else:  # (at the end of the document: the last line written)
        line = max((n for n, ln in enumerate(lines, 1) if ln.strip()), default=1)
    line, problem = _explain(what, lines, line)
    return f"{shown}:{line}: {_where(lines, line)}{problem}"


def _explain(what: str, lines: list[str], line: int) -> tuple[int, str]:
    """(the line to name, the problem) for tomllib's message `what` about `line`."""
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    key = _key(text)
    value = _COMMENT.sub("", text.split("=", 1)[1]).strip() if key and "=" in text else ""
    if what.startswith(_OPEN_QUOTE) and (open_at := _open_quote(lines)) is not None:
        n, quote = open_at
        same = " on the same line" if len(quote) == 1 else ""
        return n, f"a quote is not closed: end the text with {quote}{same}"
    if what.startswith("Cannot overwrite a value") and key:
        first = _earlier_key(lines, line, key)
        return line, "given twice" + (f" (first on line {first})" if first else "") + ": keep one"
    if what.startswith("Cannot declare") and (table := TABLE_LINE.match(text)):
        name = table[2].strip()
        first = next(
            (n for n, ln in enumerate(lines[: line - 1], 1) if _table_name(ln) == name), None
        )
        twice = f"[{name}] given twice" + (f" (first on line {first})" if first else "")
        return line, f"{twice}: write each table once"
    if what.startswith("Expected newline or end of document") and value:
        if (m := _DECIMAL_COMMA.match(value)) and len(m[2]) == 3:  # (1,000: thousands?)
            return line, (
                f"'{value}' is not a number: write {m[1]}{m[2]} (no thousands separator) or "
                f"{m[1]}.{m[2]} (a decimal is written with a point)"
            )
        if m:
            return line, f"'{value}' is not a number: use a point: {m[1]}.{m[2]}"
        if m := TITER.match(value):  # (a titer as a lab writes it: its number is below 1)
            return line, (
                f"'{value}' is not a number: write the dilution's denominator: {key} = {m[1]}"
            )
        if m := _WITH_UNIT.match(value):
            return line, (
                f"'{value}' is not a number: a number cannot carry a unit: write the number "
                f"only: {m[1]}"
            )
        return line, f"'{value}' is not one value: {_VALUES}"
    if what.startswith("Invalid value") and key:
        if not value:
            return line, "no value after '=' (write one, or remove the line)"
        if value.lower() in ("true", "false"):
            return line, f"'{value}' is not true or false: write it in lower case: {value.lower()}"
        if near := difflib.get_close_matches(value.lower(), ("true", "false"), n=1, cutoff=0.75):
            # (`use_unverified = fals` was told to quote it: "fals" is no true or false either)
            return line, f"'{value}' is not a value: write true or false, no quotes ({near[0]}?)"
        if _BARE_WORD.match(value):
            # (`fail_below = twenty` was told to quote it, and the text was then no number)
            return line, (
                f"'{value}' is not a value: a number is written in digits (25.5), text in "
                f'quotes ("{value}")'
            )
        return line, f"'{value}' is not a value: {_VALUES}"
    return line, "invalid TOML: " + what[:1].lower() + what[1:]


def _key(text: str) -> str:
    """The key a `key = value` line sets ("" for any other line)."""
    m = _KEY.match(text)
    return next((g for g in m.groups() if g is not None), "") if m else ""


def _table_name(text: str) -> str | None:
    m = TABLE_LINE.match(text)
    return m[2].strip() if m else None


def _where(lines: list[str], line: int) -> str:
    """The table and key of `line`, as the other errors of its file name them: "[run] key
    'workers': ", "[[sites]] #2 key 'min_age': ", "criterion 'platelets': key 'fail_below': "
    (a criteria file's [[criteria]] block by its id); "" for a table's own line."""
    if not 0 < line <= len(lines) or TABLE_LINE.match(lines[line - 1]):
        return ""
    key = _key(lines[line - 1])
    head = next((n for n in range(line - 1, 0, -1) if TABLE_LINE.match(lines[n - 1])), None)
    said = f"key '{key}': " if key else ""
    if head is None:
        return said
    m = TABLE_LINE.match(lines[head - 1])
    assert m is not None
    name, array = m[2].strip(), bool(m[1])
    if not array:
        return f"[{name}] {said}" if said else f"[{name}]: "
    number = sum(1 for ln in lines[:head] if (t := TABLE_LINE.match(ln)) and t[1] and t[2] == name)
    if name == "criteria":
        cid = _block_id(lines, head)
        who = f"criterion '{cid}'" if cid else f"criterion #{number}"
        return f"{who}: {said}"
    return f"[[{name}]] #{number} {said}" if said else f"[[{name}]] #{number}: "


def _block_id(lines: list[str], head: int) -> str:
    """The `id = "..."` of the [[criteria]] block whose header is on line `head`."""
    for text in lines[head:]:
        if TABLE_LINE.match(text):
            break
        if _key(text) == "id" and (m := re.search(r"""=\s*["']([^"']*)["']""", text)):
            return m[1]
    return ""


def _earlier_key(lines: list[str], line: int, key: str) -> int | None:
    """The first line before `line`, in its table, that sets `key`."""
    start = next((n for n in range(line - 1, 0, -1) if TABLE_LINE.match(lines[n - 1])), 0)
    return next((n for n in range(start + 1, line) if _key(lines[n - 1]) == key), None)


def _open_quote(lines: list[str]) -> tuple[int, str] | None:
    """(line, quote) of the first string left open: a one-line string whose line ends before
    its closing quote, or a multi-line one the file ends in (tomllib says some of these "at end
    of document", or on the line after)."""
    multi, start = "", 0
    for n, text in enumerate(lines, 1):
        j = 0
        while j < len(text):
            if multi:
                end = text.find(multi, j)
                if end < 0:
                    break
                multi, j = "", end + 3
                continue
            ch = text[j]
            if ch == "#":
                break
            if text.startswith(('"""', "'''"), j):
                multi, start, j = text[j : j + 3], n, j + 3
                continue
            if ch in "\"'":
                close = _closing(text, j)
                if close < 0:
                    return n, ch
                j = close
            j += 1
    return (start, multi) if multi else None


def _closing(text: str, j: int) -> int:
    """Where the string opened at `j` is closed on its line (-1: it is not)."""
    quote, k = text[j], j + 1
    while k < len(text):
        if quote == '"' and text[k] == "\\":
            k += 2
            continue
        if text[k] == quote:
            return k
        k += 1
    return -1
