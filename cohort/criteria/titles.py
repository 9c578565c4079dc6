"""Whether a criterion's title still says its rule: a title is shown as written (summary.html,
`cohort explain`, to_confirm), so a researcher who changes a threshold or a window in the rule
and not in the title leaves coordinators reading the old one. `cohort mappings check` warns."""

from __future__ import annotations

import re
from typing import Any

# the numbers a title quotes (fail_below 25 -> 50 under "Platelets >= 25 ...")
TITLE_NUMBERS = (
    "min_years",
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
    if not isinstance(title, str):
        return []
    quoted = {float(n) for n in re.findall(r"\d+(?:\.\d+)?", title)}
    if not quoted:
        return []  # a title in words only says no number that could be stale
    stale: list[tuple[str, float]] = []
    for key in TITLE_NUMBERS:
        value = _number(raw.get(key))
        if value is not None and value not in quoted:
            stale.append((key, raw[key]))
    periods = _periods(title)
    for key, days in _DAYS.items():
        value = _number(raw.get(key))
        if periods and value is not None and not _said(value * days, periods):
            stale.append((key, raw[key]))
    return [
        f"'{title}' does not mention {key} = {value} (the title is shown as written in "
        "summary.html, explain and to_confirm: update it with the rule)"
        for key, value in stale
    ]


def _number(value: Any) -> float | None:
    """A number of the file (not true/false), else None (its type error is reported apart)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
