"""What a criterion id may be: letters, digits and `_`, starting with a letter.

An id names its column in candidates.csv (and its piece of the reasons cell, its rows in
evidence.csv, its line in `cohort explain`): `"platelets "` with a space after it was a column of
its own beside `platelets`, and a `cohort diff` against an earlier run saw one criterion gone and
another added. Such an id is refused on load (criteria.loading) with the id meant.

candidates.csv writes the id before each reason ("platelets: ..."), so a reason does not begin
with a name that only says the id again (`says_id`), and where "id: reason" is written the id in
words before a value, a comma or a parenthesis is left out ("platelets: 20 x10^3/uL < 25", not
"platelets: platelets 20 ...": `without_id`).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["id_problem", "says_id", "without_id"]

_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_OTHER = re.compile(r"\W+")  # (a letter outside ASCII stays: no id is meant)
# what a value begins with: a digit (a number, a titer 1:40, a date), a comparator, a signed number;
# a comparator may be said in words before it ("below 1:40 (limit 1:80)": criteria.bounds.versus)
_VALUE = re.compile(
    r"(?:(?:below|above|at least|at most) (?=[0-9]))?(?:[0-9<>=\u2264\u2265]|[+\-\u2212][0-9.])"
)
_PARENS = re.compile(r"[()]")
# characters not seen on screen (a zero-width space, a soft hyphen, a control, a line break)
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}


def id_problem(cid: str) -> str | None:
    """Why `cid` cannot be a criterion id, with the id meant when one can be told; None when it
    is a plain identifier."""
    if _ID.fullmatch(cid):
        return None
    at, ch = _first_bad(cid)
    where = "starts with" if at == 0 else "ends with" if at == len(cid) - 1 else "holds"
    shown = "".join(f"\\u{ord(c):04x}" if _invisible(c) else c for c in cid)
    meant = _meant(cid)
    hint = f" (did you mean '{meant}'?)" if meant else ""
    return (
        f"'{shown}' {where} {_name(ch)}: an id is letters a-z or A-Z, digits and _, starting "
        f"with a letter (it names a column of candidates.csv){hint}"
    )


def says_id(cid: str, name: str) -> bool:
    """Whether `name` is the criterion id `cid` in words (`_` as spaces, any case): written
    after "<id>: " it said the id twice ("malignancy: malignancy: Malignant neoplasm ...",
    "prior_ianalumab: prior ianalumab: VAY736"). Only the whole name: "HCV antibody" is not
    `hcv` said again."""
    return name.casefold() == cid.replace("_", " ").casefold()


def without_id(cid: str, reason: str) -> str:
    """`reason` without a leading name that is the id `cid` in words (`says_id`) when a space
    and a value follow it ("age 11 < 12" under `age`: "11 < 12"; "ANA titer 1:40 < 1:80" under
    `ana_titer`; a comparator in words, "ANA titer below 1:40 (limit 1:80)": "below 1:40 ..."),
    or a comma and a space ("immunodeficiency, onset 2025-10-21": "onset 2025-10-21"), or when
    the rest is one parenthesis ("deceased (no date recorded)": "no date recorded"), for
    "<id>: <reason>". A name that goes on ("HCV antibody positive" under `hcv`,
    "ANA positive", "SLEDAI-2K 4 < 6" under `sledai`) is another name and stays."""
    n = len(cid)  # (the id in words is as long as the id: `_` -> space)
    if not says_id(cid, reason[:n]):
        return reason
    rest = reason[n:]
    if rest[:1] == " " and _VALUE.match(rest, 1):
        return rest[1:]
    if rest[:2] == ", " and rest[2:].strip():
        return rest[2:]
    # the whole remainder one parenthesis: what it holds ("deceased (no date recorded)")
    inner = rest[2:-1]
    if rest[:2] == " (" and rest[-1:] == ")" and inner.strip() and not _PARENS.search(inner):
        return inner
    return reason


def _first_bad(cid: str) -> tuple[int, str]:
    """The character to name: a space or invisible one at either end first (the usual slip, a
    cell or a line copied with its blank), else the first that is not allowed."""
    for at in (0, len(cid) - 1):
        if cid[at].isspace() or _invisible(cid[at]):
            return at, cid[at]
    if not cid[0].isascii() or not cid[0].isalpha():
        return 0, cid[0]
    at = next(i for i, c in enumerate(cid) if not (c.isascii() and (c.isalnum() or c == "_")))
    return at, cid[at]


def _name(ch: str) -> str:
    if ch == " ":
        return "a space"
    if ch.isspace() or _invisible(ch):
        name = unicodedata.name(ch, "")
        return f"U+{ord(ch):04X}" + (f" {name}" if name else "")
    return f"'{ch}'"


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) in _INVISIBLE


def _meant(cid: str) -> str | None:
    """The id without the blanks and invisible characters around and in it, other characters
    as `_` (`washout-12wk` -> `washout_12wk`); None when that is no id either."""
    text = "".join(c for c in cid if not _invisible(c)).strip()
    meant = _OTHER.sub("_", text).strip("_")
    return meant if meant != cid and _ID.fullmatch(meant) else None
