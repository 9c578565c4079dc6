"""Today's date (one place, so tests can pin it) and the check of a run's --as-of against it."""

from __future__ import annotations

import os
from datetime import date

__all__ = ["AHEAD_DAYS", "BEHIND_YEARS", "TODAY_ENV", "as_of_warning", "today"]

# Testing hook only: a YYYY-MM-DD read as today (tests/conftest.py pins it, so that the tests'
# fixed --as-of dates never warn whatever day they run on, in subprocesses too). Not for
# production: screen another day with --as-of.
TODAY_ENV = "COHORT_TODAY"

# A nightly job's --as-of this far from today is almost always a typo (2062 for 2026, a month
# and day swapped): warned of, not refused, as re-running an old night on purpose is allowed
AHEAD_DAYS = 7
BEHIND_YEARS = 5


def today() -> date:
    """Today, or the date `TODAY_ENV` names (ignored when it is not a date)."""
    pinned = os.environ.get(TODAY_ENV, "")
    if pinned:
        try:
            return date.fromisoformat(pinned)
        except ValueError:
            pass
    return date.today()


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def as_of_warning(as_of: date, now: date | None = None) -> str | None:
    """The run.json warning for an `as_of` more than AHEAD_DAYS after `now` (default today) or
    more than BEHIND_YEARS before it, else None."""
    now = now or today()
    days = (as_of - now).days
    if days > AHEAD_DAYS:
        return f"--as-of {as_of} is {days} days after today ({now}): a typo?"
    if as_of < _years_before(now, BEHIND_YEARS):
        return (
            f"--as-of {as_of} is {-days} days before today ({now}), over {BEHIND_YEARS} years:"
            " a typo?"
        )
    return None
