"""The `fast` validator's building blocks: FHIR primitive checks and object/array checkers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "ID_RE",
    "LEAVES",
    "SHAPES",
    "Checker",
    "Invalid",
    "array",
    "boolean",
    "code",
    "date",
    "datetime",
    "decimal",
    "instant",
    "integer",
    "obj",
    "one_or_array",
    "present",
    "primitives",
    "string",
]

# FHIR R4 (4.0.1) primitive regexes, copied from the specification's datatypes page.
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TZ = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_DATE_RE = re.compile(rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?")
_DATETIME_RE = re.compile(
    rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{_TIME}{_TZ})?)?)?"
)
_INSTANT_RE = re.compile(rf"{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T{_TIME}{_TZ}")
ID_RE = re.compile(r"[A-Za-z0-9\-\.]{1,64}")
_CODE_RE = re.compile(r"[^\s]+( [^\s]+)*")


class Invalid(Exception):
    """Raised inside the checkers; carries a PHI-free reason (element path + problem).

    The path is built only on failure, while the exception unwinds: valid data (nearly all of
    it) never pays for path strings (bench/RESULTS.md: fast validation 10.8 -> ~4 us/resource).
    """

    def __init__(self, problem: str, path: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


# A checker takes a value and raises Invalid (path relative to that value) on a problem.
Checker = Callable[[Any], None]


def string(v: Any) -> None:
    if not isinstance(v, str):
        raise Invalid("not a string")


class Good:
    """`pattern.fullmatch`, remembering (bounded) the strings that matched: codes and dates
    repeat endlessly, and the FHIR date regexes cost ~0.5 us a call (bench/RESULTS.md)."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.seen: set[str] = set()
        self._match = pattern.fullmatch

    def __call__(self, v: str) -> bool:
        if self._match(v) is None:
            return False
        if len(self.seen) < 100_000:
            self.seen.add(v)
        return True


def _matching(good: Good, problem: str) -> Checker:
    """A checker for strings that `good` accepts (remembered ones without the regex)."""

    def run(v: Any) -> None:
        if not isinstance(v, str) or (v not in good.seen and not good(v)):
            raise Invalid(problem)

    return run


_GOOD_CODE, _GOOD_DATE = Good(_CODE_RE), Good(_DATE_RE)
_GOOD_DATETIME, _GOOD_INSTANT = Good(_DATETIME_RE), Good(_INSTANT_RE)
code = _matching(_GOOD_CODE, "not a valid code")
date = _matching(_GOOD_DATE, "not a valid FHIR date")
datetime = _matching(_GOOD_DATETIME, "not a valid FHIR dateTime")
instant = _matching(_GOOD_INSTANT, "not a valid FHIR instant")


def boolean(v: Any) -> None:
    if not isinstance(v, bool):
        raise Invalid("not a boolean")


def integer(v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise Invalid("not an integer")


def decimal(v: Any) -> None:
    # bool is an int subclass in Python but never a FHIR decimal
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise Invalid("not a number")


# The structure of each object and array checker, for the compiled prechecks (precheck.py)
SHAPES: dict[Checker, tuple[Any, ...]] = {}


def present(v: dict[str, Any], name: str) -> bool:
    """Whether element `name` is in object `v`: its value, or a primitive with no value but
    an extension, which FHIR R4 JSON writes only as its `_name` sibling (json.html; ele-1: an
    element is a value or children). US Core and IPS send a required primitive that is not
    known so, with a data-absent-reason extension (`"_occurrenceDateTime": {"extension":
    [...]}`); an `_name` with only an id is no element."""
    if name in v:
        return True
    sibling = v.get("_" + name)
    return (
        isinstance(sibling, dict)
        and isinstance(sibling.get("extension"), list)
        and bool(sibling["extension"])
    )


def obj(fields: dict[str, Checker], required: tuple[str, ...] = ()) -> Checker:
    """A checker for a JSON object whose listed elements have the given checkers."""
    get = fields.get
    # arrays of primitives: checked with their `_name` companion array (`primitives`)
    paired = {name: PAIRED[c] for name, c in fields.items() if c in PAIRED}

    def run(v: Any) -> None:
        if not isinstance(v, dict):
            raise Invalid("not an object")
        for name in required:
            if name not in v and not present(v, name):
                raise Invalid("missing", f".{name}")
        # Walk the object's own keys (fewer than the spec's): the first bad element in document
        # order is the one reported.
        name = ""
        try:
            for name, value in v.items():
                checker = get(name)
                if checker is None:
                    continue
                if paired and name in paired:
                    paired[name](value, v.get("_" + name))
                else:
                    checker(value)
        except Invalid as e:
            e.path = f".{name}{e.path}"
            raise

    SHAPES[run] = ("obj", fields, required)
    return run


# an array-of-primitives checker -> the same check given the element's `_name` companion
PAIRED: dict[Checker, Callable[[Any, Any], None]] = {}


def array(item: Checker) -> Checker:
    """A checker for a JSON array of items that `item` accepts (`primitives` for a primitive
    `item`: a leaf of LEAVES)."""
    if item in LEAVES:
        return primitives(item)

    def run(v: Any) -> None:
        if not isinstance(v, list):
            raise Invalid("not an array")
        x = None
        try:
            for x in v:
                item(x)
        except Invalid as e:
            i = next(j for j, y in enumerate(v) if y is x)
            e.path = f"[{i}]{e.path}"
            raise

    SHAPES[run] = ("list", item)
    return run


def primitives(item: Checker) -> Checker:
    """A checker for an array of primitives: each value one that `item` accepts, or null where
    the element's `_name` companion array has an object (its id or extensions) at the same
    position (FHIR R4 json.html, "Primitive Types": a repeating primitive with no value but an
    extension, e.g. a given name whose data-absent-reason is `unknown`). A null without one is
    refused as before, for the value `item` refuses. Called from `obj` with the companion;
    alone (no companion known) every null is refused."""

    def paired(v: Any, companion: Any) -> None:
        if not isinstance(v, list):
            raise Invalid("not an array")
        i = 0
        try:
            for i, x in enumerate(v):
                # (a null is rare: the companion is looked at only for one)
                if x is None and _has_object(companion, i):
                    continue
                item(x)
        except Invalid as e:
            e.path = f"[{i}]{e.path}"
            raise

    def run(v: Any) -> None:
        paired(v, None)

    # the compiled precheck writes it as any list: a null fails its item test, and the walk
    # (which reads the companion) decides
    SHAPES[run] = ("list", item)
    PAIRED[run] = paired
    return run


def _has_object(companion: Any, i: int) -> bool:
    """Whether a `_name` companion array holds an element at position `i`: an object with
    extensions (an id alone is no element, ele-1: a value or children; as `present`)."""
    if not isinstance(companion, list) or i >= len(companion):
        return False
    at = companion[i]
    return isinstance(at, dict) and isinstance(at.get("extension"), list) and bool(at["extension"])


def one_or_array(item: Checker) -> Checker:
    """An element FHIR R4 allows once and R5 many times (Dosage.maxDosePerPeriod): either."""
    many = array(item)

    def run(v: Any) -> None:
        (many if isinstance(v, list) else item)(v)

    SHAPES[run] = ("one_or_list", item)
    return run


# Each leaf checker written inline: a test true when the value `{x}` is bad (as strict as the
# checker or stricter), and the names it uses
LEAVES: dict[Checker, tuple[str, dict[str, Any]]] = {
    string: ("{x}.__class__ is not str", {}),
    boolean: ("{x} is not True and {x} is not False", {}),
    integer: ("{x}.__class__ is not int", {}),
    decimal: ("{x}.__class__ is not int and {x}.__class__ is not float", {}),
}
for _leaf, _name, _good in (
    (code, "CODE", _GOOD_CODE),
    (date, "DATE", _GOOD_DATE),
    (datetime, "DATETIME", _GOOD_DATETIME),
    (instant, "INSTANT", _GOOD_INSTANT),
):
    LEAVES[_leaf] = (
        f"{{x}}.__class__ is not str or ({{x}} not in {_name}_SEEN and not {_name}({{x}}))",
        {f"{_name}_SEEN": _good.seen, _name: _good},
    )
