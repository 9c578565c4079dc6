"""A result's evidence row: its number in the concept's canonical unit, and as recorded.

README (evidence.csv): `value, unit` are in the concept's canonical unit. A row that shows a
result otherwise than recorded (converted: the number or the unit changed) keeps the recorded
value and unit, which its note names ("most recent; recorded 248 Thou/cumm"), so a coordinator
checking the chart sees that a conversion gave the number. Rows of results the criterion did not
decide on (ignored: outside the window, superseded, ...) are converted alike; one whose unit or
value cannot be converted, or whose number is outside the plausible range, is shown as
recorded, its note saying so (criteria.plausible). A result not read as a number in a unit (a
titer, a score, a result word) is shown as recorded.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from cohort.criteria.bounds import sign
from cohort.criteria.days import shown
from cohort.criteria.plausible import unconverted_note
from cohort.model import Evidence, ObservationFact, ObsValue
from cohort.safetext import clipped

if TYPE_CHECKING:
    from cohort.criteria.base import Context

_ANNOTATION = re.compile(r"\{[^{}]*\}")


def value_text(v: ObsValue) -> tuple[str, str]:
    """Human value and unit of an observation value as recorded, for evidence."""
    if v.quantity:
        q = v.quantity
        return f"{q.comparator}{q.value:g}", q.unit or q.code
    if v.ratio:
        return f"{v.ratio[0].value:g}:{v.ratio[1].value:g}", ""
    if v.string:
        return clipped(v.string), ""
    if v.codes or v.text:
        return clipped(v.text or v.codes[0].display or v.codes[0].code), ""
    if v.boolean is not None:
        return str(v.boolean).lower(), ""
    return "", ""


@functools.lru_cache(maxsize=256)
def _dimensional(unit: str) -> bool:
    """Whether a canonical unit is one results are converted to (mg/dL, 10*3/uL), not only an
    annotation (`{titer}`, `{score}`: such results are read as recorded)."""
    return bool(_ANNOTATION.sub("", unit).strip())


def obs_evidence(
    ctx: Context,
    o: ObservationFact,
    concept: str,
    note: str = "",
    value: str = "",
    unit: str = "",
    convert: bool = True,
) -> Evidence:
    """The evidence row of result `o`: `value` and `unit` as the caller read them (one left
    empty is the result's own); with neither, and `convert`, a number in the concept's
    canonical unit (one that is no value there as recorded, the note saying why); else as
    recorded. A row showing a number otherwise than recorded keeps the recorded value and unit
    (`Evidence.full_note` names them)."""
    raw_value, raw_unit = value_text(o.value)
    q = o.value.quantity
    if not (value and unit):
        if convert and not value and not unit and q is not None and concept:
            canonical = ctx.term.canonical_unit(concept)
            if canonical and _dimensional(canonical):
                v = ctx.numeric(o, concept)
                if v is None:
                    why = unconverted_note(ctx, o, concept)
                    note = f"{note}; {why}" if note else why
                else:
                    value, unit = f"{sign(o)}{v:g}", canonical
        value, unit = value or raw_value, unit or raw_unit
    when = shown(o.when, o.when_last)
    # (a number recorded without a unit, shown in a unitless concept's `{score}`, is no change)
    if q is not None and (value != raw_value or (raw_unit and unit != raw_unit)):
        return Evidence(o.ref, concept, value, unit, when, note, raw_value, raw_unit)
    return Evidence(o.ref, concept, value, unit, when, note)
