"""What a criterion says of a patient: Status, Evidence, Result (and the CriterionInfo named)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from cohort.valuetype import value


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a criterion outcome, not a password
    FAIL = "fail"
    UNKNOWN = "unknown"


class NoValue(StrEnum):
    """What the results an unknown rests on are, when none of them is a value (`Result`)."""

    NONE = ""  # (not so: a value that decides nothing, no result, or not an unknown)
    UNCONVERTIBLE = "not convertible"  # to the concept's unit (one of them at least)
    IMPLAUSIBLE = "implausible"  # each converts, outside the plausible range (units.csv)


@value
class Evidence:
    ref: str  # resource reference, e.g. "Observation/abc"
    concept: str = ""
    value: str = ""  # as used, e.g. "1:160", "7.2", "positive"
    unit: str = ""  # canonical unit of the concept when converted
    date: str = ""  # ISO date
    note: str = ""  # why it was used or ignored
    # the result as recorded ("248", "Thou/cumm") when value/unit show it otherwise (converted
    # to the canonical unit): the note written names it (`full_note`)
    recorded_value: str = ""
    recorded_unit: str = ""

    @property
    def full_note(self) -> str:
        """The note as evidence.csv and `cohort explain` write it."""
        return with_recorded(self.note, self.recorded_value, self.recorded_unit)

    def noted(self, note: str) -> Evidence:
        """This row with another note (positional: `dataclasses.replace` costs ~4x, and
        criteria re-note rows for most records they read)."""
        return Evidence(
            self.ref,
            self.concept,
            self.value,
            self.unit,
            self.date,
            note,
            self.recorded_value,
            self.recorded_unit,
        )


def with_recorded(note: str, value: str, unit: str) -> str:
    """`note`, then the result as recorded when there is one: "most recent; recorded 248
    Thou/cumm" (a converted result's evidence row, README: evidence.csv)."""
    if not value:
        return note
    recorded = f"recorded {value} {unit}" if unit else f"recorded {value}"
    return f"{note}; {recorded}" if note else recorded


@value
class Result:
    criterion: str
    status: Status
    reason: str
    evidence: tuple[Evidence, ...] = ()
    ignored: tuple[Evidence, ...] = ()
    eligible_from: date | None = None  # set on a time-limited FAIL: first date it passes
    manual: bool = False  # an UNKNOWN that is for the coordinator to confirm, not a data gap
    # an UNKNOWN resting only on results whose value/unit could not be converted: what they are
    # ("platelets"), so `missing` asks for a readable value, not the test the chart already has
    unconvertible: str = ""
    # ... and which kind they are: IMPLAUSIBLE asks for a plausible value instead (NONE beside
    # a name, as a Result built by hand may have it, is taken as UNCONVERTIBLE)
    no_value: NoValue = NoValue.NONE
    # an UNKNOWN of a kind the criterion's `missing_hint` does not resolve: what does (the
    # doses of overlapping corticosteroid records are on file; which record stands is not)
    hint: str = ""

    def with_rows(self, evidence: tuple[Evidence, ...], ignored: tuple[Evidence, ...]) -> Result:
        """This result with other evidence rows (positional, as `Evidence.noted`: asked of a
        result in five of every ten when its rows are ordered, searched or added to)."""
        return Result(
            self.criterion,
            self.status,
            self.reason,
            evidence,
            ignored,
            self.eligible_from,
            self.manual,
            self.unconvertible,
            self.no_value,
            self.hint,
        )


@value
class CriterionInfo:
    """What the report needs to know about a criterion (from the trial file)."""

    id: str
    type: str  # "inclusion" | "exclusion"
    title: str  # short human label, e.g. "ANA titer >= 1:80"
    manual_when_unknown: bool = (
        False  # sledai/bilag: an unknown goes to `to_confirm`, not `missing`
    )
    missing_hint: str = ""  # what would resolve an unknown, e.g. "CBC within 90 days"
