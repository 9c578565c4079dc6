"""Tiers, score, eligible_from and ranking of candidates (pure; see docs/rules.md)."""

from __future__ import annotations

from datetime import date

from cohort.model import Candidate, Result, Status

TIER_ORDER = {"likely": 0, "possible": 1, "excluded": 2}


def tier_of(results: list[Result]) -> str:
    if any(r.status is Status.FAIL for r in results):
        return "excluded"
    if all(r.status is Status.PASS or r.manual for r in results):
        return "likely"
    return "possible"


def eligible_from(results: list[Result], time_limited: set[str]) -> date | None:
    """First date every fail passes again, when each fail is time-limited with a known end."""
    fails = [r for r in results if r.status is Status.FAIL]
    if not fails or any(r.criterion not in time_limited or r.eligible_from is None for r in fails):
        return None
    return max(r.eligible_from for r in fails if r.eligible_from)


def freshness(last_seen: date | None, as_of: date) -> float:
    """1.0 when the newest data is <= 30 days old, falling linearly to 0 at 365 days."""
    if last_seen is None:
        return 0.0
    age = (as_of - last_seen).days
    if age <= 30:
        return 1.0
    return max(0.0, 1.0 - (age - 30) / 335)


def score(results: list[Result], last_seen: date | None, as_of: date) -> float:
    passing = sum(1 for r in results if r.status is Status.PASS and not r.manual)
    return round(passing + freshness(last_seen, as_of), 2)


def rank(candidates: list[Candidate], as_of: date, time_limited: set[str]) -> list[Candidate]:
    for c in candidates:
        c.tier = tier_of(c.results)
        c.score = score(c.results, c.last_seen, as_of)
        c.eligible_from = eligible_from(c.results, time_limited) if c.tier == "excluded" else None
    ordered = sorted(candidates, key=lambda c: (TIER_ORDER[c.tier], -c.score, c.patient.id))
    for i, c in enumerate(ordered, 1):
        c.rank = i
    return ordered
