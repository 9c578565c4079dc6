"""Names of route-of-administration codes (`routes.csv`, optional): a bare route code's words."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cohort.errors import MappingError
from cohort.terminology.csvfile import Record, read_csv
from cohort.terminology.loading import raise_first
from cohort.terminology.mappings import invisible_problem, verified_flag
from cohort.terminology.rows import KnownSystems, coding_problems

ROUTES = ("routes.csv", ("system", "code", "display", "verified"))  # optional file, its columns


def route_row(rec: Record, known: KnownSystems) -> tuple[str, str, str, str]:
    """One line of routes.csv: (system, code, display, verified). A misspelt system or a
    malformed code (a SNOMED CT check digit) is an error, as in a concept row."""
    system, code, display = rec.get("system"), rec.get("code"), rec.get("display")
    for column, text in (("system", system), ("code", code), ("display", display)):
        if not text:
            raise rec.fail(column, "empty" + (" (never guess a code)" if column == "code" else ""))
        if problem := invisible_problem(text):
            raise rec.fail(column, problem)
    verified = verified_flag(rec)
    raise_first(coding_problems(rec.where, known, system, [code]))
    return system, code, display, verified


def route_twice(
    first: dict[tuple[str, str], tuple[int, str]], rec: Record, key: tuple[str, str], display: str
) -> MappingError | None:
    """The error of a code named on a second line with another display (the later line would
    have won without a word), naming the first; None otherwise (the first line recorded)."""
    line = int(rec.where.rsplit(":", 1)[1])
    seen_line, seen = first.setdefault(key, (line, display))
    if seen_line == line or seen.casefold() == display.casefold():
        return None
    return rec.fail("code", f"'{key[1]}' is also on line {seen_line} as '{seen}': keep one line")


class RouteNames:
    """(system, code) -> display of routes.csv, the system compared after canonicalising (its
    aliases in systems.csv, `http`/`https`, a trailing slash: the `canonical` given)."""

    def __init__(self, names: dict[tuple[str, str], str], canonical: Callable[[str], str]) -> None:
        self._names = names
        self._canonical = canonical

    def name(self, system: str, code: str) -> str:
        """The display of a route code; "" when routes.csv does not name it."""
        if not self._names or not system:
            return ""
        return self._names.get((self._canonical(system), code.strip()), "")


def load_routes(
    root: Path, known: KnownSystems, canonical: Callable[[str], str], use_unverified: bool
) -> RouteNames:
    """routes.csv of `root` (none named without the file); MappingError at the first bad line,
    as `mappings check` reports it. verified=N rows are read only with `use_unverified`."""
    path = root / ROUTES[0]
    names: dict[tuple[str, str], str] = {}
    if not path.is_file():
        return RouteNames(names, canonical)
    first: dict[tuple[str, str], tuple[int, str]] = {}
    for rec in read_csv(root, path, ROUTES[1]):
        system, code, display, verified = route_row(rec, known)
        key = (canonical(system), code)
        if (twice := route_twice(first, rec, key, display)) is not None:
            raise twice
        if verified != "N" or use_unverified:
            names.setdefault(key, display)
    return RouteNames(names, canonical)
