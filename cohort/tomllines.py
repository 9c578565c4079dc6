"""Where a key of a TOML file (criteria, rules.toml) is written: its line, for errors that name
file, line and key (tomllib gives values, not positions)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from cohort.errors import shown_path

__all__ = ["NEWLINE", "TABLE_LINE", "TomlLines"]

# TOML ends a line with LF or CRLF only: str.splitlines() also splits at U+2028, U+0085, form
# feeds..., which a TOML string may hold, and every later line number was off by one
NEWLINE = re.compile(r"\r?\n")
TABLE_LINE = re.compile(r"""^\s*\[(\[)?\s*([A-Za-z0-9_.\-"' ]+?)\s*\]\]?\s*(#.*)?$""")


class TomlLines:
    """Finds the line of a criterion's key in the file, for error messages."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.shown = shown_path(path)  # as messages name the file
        self.lines = NEWLINE.split(text)
        self.tables = [
            (i, m[2].strip(), bool(m[1]))
            for i, ln in enumerate(self.lines)
            if (m := TABLE_LINE.match(ln))
        ]
        self.blocks = [i for i, name, array in self.tables if array and name == "criteria"]

    def table_key_line(self, table: str, key: str = "") -> int | None:
        """1-based line of `key` in the first `[table]` (the table's own line when the key is
        not written there or is ""); None when there is no such table."""
        start = next((i for i, name, array in self.tables if name == table and not array), None)
        if start is None:
            return None
        at = self._find(range(start + 1, self._span(start).stop), key) if key else None
        return (start if at is None else at) + 1

    def _span(self, start: int) -> range:
        end = next((i for i, _, _ in self.tables if i > start), len(self.lines))
        return range(start, end)

    def _find(self, span: Iterable[int], key: str) -> int | None:
        pat = re.compile(r"""^\s*(["']?)""" + re.escape(key) + r"""\1\s*=""")
        return next((i for i in span if pat.match(self.lines[i])), None)

    def key_line(self, index: int, cid: str, key: str) -> int:
        """1-based line of `key` (`window_days`, `checks[2].then`) in the index-th criterion."""
        if index < len(self.blocks):
            span = self._span(self.blocks[index])
            fallback = self.blocks[index]
        else:  # not written as [[criteria]] tables: the line of its id, if any
            span = range(len(self.lines))
            fallback = -1
        top = re.split(r"[.\[]", key, maxsplit=1)[0]
        at = self._find(span, top)
        if at is None and index < len(self.blocks):  # written as a [criteria.<top>] table
            at = self._subtable(index, top, key.rsplit(".", 1)[-1])
        if at is None:
            at = self._id_line(span, cid)
            return (at if at is not None else fallback) + 1
        item = re.match(r"^[^.\[]+\[(\d+)\]", key)
        return (self._item(at, int(item[1])) if item else at) + 1

    def _subtable(self, index: int, top: str, sub: str) -> int | None:
        end = self.blocks[index + 1] if index + 1 < len(self.blocks) else len(self.lines)
        for i, name, _ in self.tables:
            if self.blocks[index] < i < end and name == f"criteria.{top}":
                at = self._find(self._span(i), sub)
                return at if at is not None else i
        return None

    def _id_line(self, span: Iterable[int], cid: str) -> int | None:
        if not cid:
            return None
        pat = re.compile(r"""^\s*id\s*=\s*["']""" + re.escape(cid) + r"""["']""")
        return next((i for i in span if pat.match(self.lines[i])), None)

    def _item(self, at: int, item: int) -> int:
        """The line of the item-th inline table of the array whose key is on line `at` (an
        inline table is on one line in TOML)."""
        depth, braces, count, quote = 0, 0, -1, ""
        for n in range(at, len(self.lines)):
            text = self.lines[n]
            j = text.index("=") + 1 if n == at and "=" in text else 0
            while j < len(text):
                ch = text[j]
                if quote:
                    if ch == "\\" and quote == '"':
                        j += 1
                    elif ch == quote:
                        quote = ""
                elif ch in "\"'":
                    quote = ch
                elif ch == "#":
                    break
                elif ch == "[":
                    depth += 1
                elif ch == "]":
                    depth -= 1
                    if depth <= 0:
                        return at
                elif ch == "{":
                    if depth == 1 and braces == 0:
                        count += 1
                        if count == item:
                            return n
                    braces += 1
                elif ch == "}":
                    braces -= 1
                j += 1
        return at

    def head_line(self, key: str) -> int:
        """1-based line of a key of the [trial] table (else of the table, else 0)."""
        start = next((i for i, name, array in self.tables if name == "trial" and not array), None)
        if start is None:
            return 0
        at = self._find(self._span(start), key)
        return (at if at is not None else start) + 1

    def top_line(self, key: str) -> int:
        at = next((i for i, name, _ in self.tables if name.split(".")[0] == key), None)
        if at is None:
            at = self._find(range(len(self.lines)), key)
        return at + 1 if at is not None else 0


# a configuration's error as config.py words it: "<file> [[sites]] #2: key 'id': ...",
# "<file> [run]: unknown key 'worker' ...", "<file>: unknown key 'runn' ..."
_CONFIG_SAID = re.compile(
    r"^ ?(?:\[\[(?P<array>\w+)\]\] #(?P<n>\d+)|\[(?P<table>\w+)\])?"
    r": (?:unknown )?key '(?P<key>[^']+)'"
)


def config_line(text: str, said: str) -> int | None:
    """The line of the key a configuration error `said` (what follows the file's name) is
    about: a TOML slip named its line, a wrong key or value only its table ("[[sites]] #2"),
    and the researcher counted tables. None when it is not found."""
    m = _CONFIG_SAID.match(said)
    if m is None:
        return None
    lines = TomlLines(Path(), text)
    key = m["key"]
    if m["array"]:
        starts = [i for i, name, array in lines.tables if array and name == m["array"]]
        n = int(m["n"]) - 1
        if n >= len(starts):
            return None
        at = lines._find(lines._span(starts[n]), key)
        return (at if at is not None else starts[n]) + 1
    if m["table"]:
        return lines.table_key_line(m["table"], key)
    return lines.top_line(key) or None
