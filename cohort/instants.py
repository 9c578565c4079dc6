"""A FHIR dateTime or instant with a time of day read as an aware datetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["parse_instant"]


def parse_instant(text: str) -> datetime | None:
    """`text` as an aware datetime, None when it does not read. A leap second (hh:mm:60, valid
    FHIR, which datetime refuses) is the second after hh:mm:59; a time without a zone (not
    valid FHIR, but seen) is UTC, so two instants always compare."""
    leap = text[16:19] == ":60"
    try:
        at = datetime.fromisoformat(text[:17] + "59" + text[19:] if leap else text)
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at + timedelta(seconds=1) if leap else at
