"""One administration's mg of a dosage line, read from every form its doseAndRate gives."""

from __future__ import annotations

from collections.abc import Callable

from cohort.model import Dose, Quantity

__all__ = ["dose_span"]


def dose_span(d: Dose, mg: Callable[[Quantity], float | None]) -> tuple[float, float] | None:
    """The least and the most mg (by `mg`) of one administration of line `d`, of every form
    of its dose that reads: its quantity (a doseRange: its low and high) and its other
    doseAndRate entries' (extract.entries). A form that does not read (1 mg/kg: no weight to
    convert it by; tablets of no known strength) says nothing the others do not; forms that
    disagree (10 mg beside 60 mg) give the range between them, never one of them (a limit
    inside it is unknown, docs/rules.md). None when no form reads."""
    spans = []
    for low, high in ((d.quantity, d.quantity_max), *d.forms):
        least = mg(low) if low is not None else None
        most = least if high is None else mg(high)
        if least is not None and most is not None:
            spans.append((min(least, most), max(least, most)))
    if not spans:
        return None
    return min(s[0] for s in spans), max(s[1] for s in spans)
