"""Whether a criterion's title, and its missing hint, still say its rule: a title is shown as
written (summary.html, `cohort explain`, to_confirm), a hint in the `missing` column, so a
researcher who changes a threshold or a window in the rule and not in them leaves coordinators
reading the old one. `cohort mappings check` warns."""

from __future__ import annotations

import re
from typing import Any

# the numbers a title quotes (fail_below 25 -> 50 under "Platelets >= 25 ...")
TITLE_NUMBERS = (
    "min_years",
    "max_years",
    "min_months",
    "min_titer",
    "fail_below",
    "pass_at_least",
    "pass_below",
    "max_daily_mg",
    "min_a",
    "min_b",
    "min_count",
)
_DAYS = {"window_days": 1.0, "window_weeks": 7.0, "window_months": 365.25 / 12}
# thresholds that are periods too ("diagnosed >= 1 year" says min_months = 12)
_SPANS = {"min_years": 365.25, "max_years": 365.25, "min_months": 365.25 / 12}
# what a kind applies when the file leaves a number out (labs.grades)
_DEFAULTS: dict[str, dict[str, float]] = {"grades": {"min_a": 1.0, "min_b": 2.0}}
# a period a title quotes: "90 days", "12 weeks", "36-week", "12 months", "1 year"
_PERIOD = re.compile(
    r"(\d+(?:\.\d+)?)[\s-]*(days?|d|weeks?|wks?|w|months?|mos?|years?|yrs?)(?![a-z])",
    re.IGNORECASE,
)
_UNIT_DAYS = {"d": 1.0, "w": 7.0, "m": 365.25 / 12, "y": 365.25}


def _periods(title: str) -> list[float]:
    """Every period the title quotes, in days (a month 1/12 of a year)."""
    return [float(n) * _UNIT_DAYS[unit[0].lower()] for n, unit in _PERIOD.findall(title)]


def _said(days: float, periods: list[float]) -> bool:
    """Whether one of the periods is the window (4 weeks = 28 days; 3 months ~ 90 days)."""
    return any(abs(p - days) <= 0.03 * days for p in periods)


def title_problems(raw: dict[str, Any]) -> list[str]:
    """Why a title that quotes numbers no longer says its rule (one message per key): a
    threshold it does not quote, or a window when it quotes a period that is not the window's
    (a window may well go unsaid: "Platelets >= 25", a title without a period, is fine)."""
    title = raw.get("title")
    if not isinstance(title, str) or not re.search(r"\d", title):
        return []  # a title in words only says no number that could be stale
    tail = (
        "(the title is shown as written in summary.html, explain and to_confirm: update it"
        " with the rule)"
    )
    stale = _unquoted(raw, title) + _other_window(raw, title)
    if stale:  # (a number no parameter gives is then most likely the old value, said already)
        return [f"'{title}' does not mention {key} = {value} {tail}" for key, value in stale]
    return [
        f"'{title}' quotes {n}, which no parameter of the criterion gives {tail}"
        for n in _strays(raw, title)
    ]


def hint_problems(raw: dict[str, Any]) -> list[str]:
    """Why a `missing_hint` no longer says its rule, held to what it states (a hint says what
    would resolve an unknown, seldom the whole rule): a period that is not the window's ("CBC
    within 90 days" under window_days = 30), and, when it states a limit after a comparison
    ("SLEDAI-2K >= 6"), a threshold it does not quote. "body weight within 12 months" states
    no limit and is not asked for one; a number in a name ("CD19", "HbA1c") is no limit."""
    hint = raw.get("missing_hint")
    if not isinstance(hint, str):
        return []
    stale = _unquoted(raw, hint) if _COMPARED.search(hint) else []
    return [
        f"'{hint}' does not mention {key} = {value} (the hint is shown as written in the "
        "`missing` column of candidates.csv and summary.html: update it with the rule)"
        for key, value in stale + _other_window(raw, hint)
    ]


# a limit a hint states: a number after a comparison (">= 6", "(>= 1 A or >= 2 B)", "< 8.0")
_COMPARED = re.compile(r"(?:[<>]=?|[≤≥])\s*\d")


def _unquoted(raw: dict[str, Any], text: str) -> list[tuple[str, Any]]:
    """The thresholds of the rule (TITLE_NUMBERS) that `text` does not quote, with values."""
    quoted = {float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)}
    periods = _periods(text)
    found = ((key, _number(raw.get(key))) for key in TITLE_NUMBERS)
    return [
        (key, raw[key])
        for key, value in found
        if value is not None
        and value not in quoted
        # (min_months = 0, any date up to as-of, is no delay a title says)
        and not (key == "min_months" and value == 0)
        and not (key in _SPANS and _said(value * _SPANS[key], periods))
    ]


# numbers of names and units, not of the rule: "CD19", "BILAG-2004", "SLEDAI-2K", "HbA1c",
# "x10^3/uL" (or 10*3), "1.73m2", "24-h", a titer's "1:" (its 80 is min_titer), "type 2", "3rd"
_NOT_A_VALUE = re.compile(
    r"(?<=[A-Za-z])\d+(?:\.\d+)?"
    r"|(?<=[A-Za-z]-)\d+(?:\.\d+)?"
    r"|(?<=[\^*])\d+"
    r"|\d+(?=\s*[\^*⁰¹²³⁴⁵⁶⁷⁸⁹])"
    r"|\d+(?:\.\d+)?(?=\s*m[2²])"
    r"|\d+(?=\s*:\s*\d)"
    r"|\d+(?=[\s-]*(?:h|hrs?|hours?)(?![a-z]))"
    r"|\d+(?=(?:st|nd|rd|th)(?![a-z]))"
    r"|(?<=type )\d+|(?<=class )\d+|(?<=stage )\d+|(?<=grade )\d+|(?<=phase )\d+",
    re.IGNORECASE,
)


def _strays(raw: dict[str, Any], title: str) -> list[str]:
    """The numbers `title` quotes that no parameter of the rule gives (a kind's default
    counts; a period, a window or period threshold of as many days: "3 months", 90 days)."""
    values = set(_numbers(raw)) | set(_DEFAULTS.get(str(raw.get("kind")), {}).values())
    spans = {**_DAYS, **_SPANS}
    days = [v * spans[k] for k in spans if (v := _number(raw.get(k))) is not None]
    periods = {
        m.start(1): float(m[1]) * _UNIT_DAYS[m[2][0].lower()] for m in _PERIOD.finditer(title)
    }
    names = {m.start() for m in _NOT_A_VALUE.finditer(title)}
    strays: list[str] = []
    for m in re.finditer(r"(?<![\d.])\d+(?:\.\d+)?", title):
        if m.start() in names or float(m[0]) in values:
            continue
        if m.start() in periods and any(_said(d, [periods[m.start()]]) for d in days):
            continue
        strays.append(m[0])
    return strays


def _numbers(value: Any) -> list[float]:
    """Every number of a criterion, its nested tables and lists too (a measure's fail_above)."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    number = _number(value)
    return [] if number is None else [number]


def _other_window(raw: dict[str, Any], text: str) -> list[tuple[str, Any]]:
    """The rule's window when `text` quotes periods and none of them is the window."""
    periods = _periods(text)
    found = ((key, days, _number(raw.get(key))) for key, days in _DAYS.items())
    return [
        (key, raw[key])
        for key, days, value in found
        if periods and value is not None and not _said(value * days, periods)
    ]


def _number(value: Any) -> float | None:
    """A number of the file (not true/false), else None (its type error is reported apart)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
