"""Records of a patient's that could not be read, as facts (`model.UnreadableFact`): a stub of
a record validation refused (source.refused), a record with an element the extractor could not
read, or a result whose date is given but does not read. Criteria reading one of their concepts
do not pass as if they were not there (criteria.unreadable, docs/rules.md "Reading records")."""

from __future__ import annotations

from typing import Any

from cohort.extract.elements import codes_of, text_of
from cohort.model import Code, UnreadableFact
from cohort.source.refused import (
    MARK,
    RESULT_DATES,
    RESULT_PERIODS,
    RESULT_TIMINGS,
    kept_copy,
    stub_why,
)

__all__ = [
    "MARK",
    "failed",
    "kept_copy",
    "medication_refused",
    "own_codes",
    "refused",
    "undated_result",
    "unread_date",
]

_CODED = ("code", "vaccineCode", "medicationCodeableConcept")


def _codes(res: dict[str, Any], extra: tuple[Code, ...] = ()) -> tuple[tuple[Code, ...], str]:
    """Every code of the record (its code element, a component's) and its text, as far as they
    read: a malformed element gives none."""
    codes: tuple[Code, ...] = extra
    texts = []
    elements = [res.get(k) for k in _CODED]
    parts = res.get("component")
    if isinstance(parts, list):
        elements += [p.get("code") for p in parts if isinstance(p, dict)]
    for cc in elements:
        if isinstance(cc, dict):
            try:
                codes += codes_of(cc)
                texts.append(text_of(cc))
            except (AttributeError, TypeError, ValueError):
                continue
    return codes, " | ".join(t for t in texts if t)


def own_codes(res: dict[str, Any]) -> tuple[tuple[Code, ...], str]:
    """The codes and text of a record's own code element, without its components' (those of a
    panel are results of their own, as the Extractor reads a kept one)."""
    return _codes({k: res.get(k) for k in _CODED})


def refused(ref: str, res: dict[str, Any]) -> UnreadableFact:
    """The fact of a refused record's stub: its codes, where and why it was refused."""
    codes, text = _codes(res)
    return UnreadableFact(ref, codes, text, stub_why(res.get(MARK)) or "refused on reading")


def failed(ref: str, res: dict[str, Any], exc: Exception) -> UnreadableFact:
    """A record the extractor could not read (an element of an unexpected shape)."""
    codes, text = _codes(res)
    return UnreadableFact(ref, codes, text, f"an element does not read ({type(exc).__name__})")


def medication_refused(ref: str, med: dict[str, Any], codes: tuple[Code, ...]) -> UnreadableFact:
    """A medication record whose Medication `med` was refused on reading (its stub): the drug
    is known only as far as the record's and the stub's codes say."""
    why = stub_why(med.get(MARK))
    return UnreadableFact(ref, codes, "", f"Medication/{med.get('id', '')}: {why or 'refused'}")


def unread_date(res: dict[str, Any]) -> bool:
    """Whether a result with no date that reads gives one (a string that is no date, a Period
    with a start or an end, a Timing with events or bounds): such a result may be the most
    recent, or in any window."""
    periods = [res.get(k) for k in RESULT_PERIODS]
    return (
        any(res.get(k) is not None for k in RESULT_DATES)
        or any(_bounded(period) for period in periods)
        or any(_timed(res.get(k)) for k in RESULT_TIMINGS)
    )


def _bounded(period: Any) -> bool:
    """A Period with a start or an end."""
    return isinstance(period, dict) and (
        period.get("start") is not None or period.get("end") is not None
    )


def _timed(timing: Any) -> bool:
    """A Timing given with events or bounds (or given as something else than an object). A
    null event is none given (valid FHIR with its `_event` extension: the date is not known)."""
    if not isinstance(timing, dict):
        return timing is not None
    repeat, events = timing.get("repeat"), timing.get("event")
    given = any(e is not None for e in events) if isinstance(events, list) else bool(events)
    return given or (isinstance(repeat, dict) and _bounded(repeat.get("boundsPeriod")))


def undated_result(ref: str, res: dict[str, Any]) -> UnreadableFact:
    """The fact of a result whose date is given but does not read (`unread_date`)."""
    codes, text = _codes(res)
    return UnreadableFact(ref, codes, text, "its date does not read")
