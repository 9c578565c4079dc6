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
    "max_daily_mg",
    "min_a",
    "min_b",
)
_DAYS = {"window_days": 1.0, "window_weeks": 7.0, "window_months": 365.25 / 12}
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
    stale = _unquoted(raw, title) + _other_window(raw, title)
    return [
        f"'{title}' does not mention {key} = {value} (the title is shown as written in "
        "summary.html, explain and to_confirm: update it with the rule)"
        for key, value in stale
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
    found = ((key, _number(raw.get(key))) for key in TITLE_NUMBERS)
    return [(key, raw[key]) for key, value in found if value is not None and value not in quoted]


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
