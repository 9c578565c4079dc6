"""Text from data made safe to show: on a terminal, in a log line, in an HTML page.

Names, values, file names and server answers may hold control characters (an ANSI escape
sequence rewrites a terminal's screen or title; CR or LF forges a log line) and bidirectional
controls (U+202E shows "evil\\u202Egpj.exe" as "evilexe.jpg" and reverses what follows it on the
line). They are shown as visible escapes instead, `\\x1b`, `\\u202e`. A long text is shortened
at a word boundary (`clipped`).
"""

from __future__ import annotations

import re

# Bidirectional embedding, override and isolate controls, the implicit marks, and the Unicode
# line and paragraph separators (a line break to some viewers)
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
_CONTROLS = [*range(0x00, 0x20), *range(0x7F, 0xA0)]


def _table(keep: str) -> dict[int, str]:
    table = {c: f"\\x{c:02x}" for c in _CONTROLS if chr(c) not in keep}
    table.update({ord(c): f"\\u{ord(c):04x}" for c in BIDI})
    return table


_ESCAPES = {keep: _table(keep) for keep in ("", "\n", "\n\t")}
_UNSAFE = {
    keep: re.compile("[" + re.escape("".join(chr(c) for c in _ESCAPES[keep])) + "]")
    for keep in _ESCAPES
}


def printable(text: str, keep: str = "") -> str:
    """`text` with control and bidirectional-control characters as visible escapes; `keep`
    ("", "\\n" or "\\n\\t") names the layout characters left as they are."""
    if _UNSAFE[keep].search(text) is None:
        return text  # nearly always: one scan
    return text.translate(_ESCAPES[keep])


def neutral(text: str) -> str:
    """`text` with every control and bidirectional-control character replaced by U+FFFD (for
    HTML, where an escape would read as part of the value)."""
    if _UNSAFE[""].search(text) is None:
        return text
    return _UNSAFE[""].sub("\ufffd", text)


# "?query" after a URL or a path: a Bulk file URL signed with a token in its query
# (X-Amz-Signature=..., sig=...), search parameters
_QUERY = re.compile(r"((?:[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?#\"'<>]*)?/[^\s?#\"'<>]*)\?[^\s#\"'<>]*")


def without_queries(text: str) -> str:
    """`text` with the query string of every URL or URL path in it replaced by `?...`."""
    return _QUERY.sub(r"\1?...", text) if "?" in text else text


_LAST_SPACE = re.compile(r"\s\S*\Z")
_TRAIL = " \t\r\n|,;:/"  # a separator left at a cut's end ("Lupus | SLE" cut after "|")


def clipped(text: str, limit: int = 80) -> str:
    """`text` when at most `limit` characters, else as much of it as fits with "…" after it,
    cut after its last whole word (inside a word only when its first word is that long): an
    evidence value cut mid-word ("Prednisone 5 MG Or") read as another drug or a typo."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if not text[limit - 1].isspace() and (space := _LAST_SPACE.search(head)) is not None:
        head = head[: space.start()]
    return (head.rstrip(_TRAIL) or text[: limit - 1]) + "…"
